//! Email over SMTP (lettre, rustls): PocketBase's settings (`smtp`, `meta`)
//! and per-collection templates with their placeholders.
//!
//! Mail leaves off the request path: requests queue a message (bounded;
//! a full queue drops the message with a warning, it never blocks a request
//! or grows memory) and one task sends them in order. `smtp.tls` true is
//! implicit TLS; false uses STARTTLS when the server offers it. With SMTP
//! disabled, the message is not sent and the log says so (without its body,
//! which holds a token).

use crate::settings::{Meta, Settings, Smtp};
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Map, Value};
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages waiting to be sent.
const QUEUE: usize = 64;

#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub html: String,
}

/// Queued messages, each with the settings in force when it was queued.
#[derive(Clone)]
pub struct Mailer {
    tx: mpsc::Sender<(Box<(Smtp, Meta)>, Mail)>,
}

impl Mailer {
    /// Starts the sending task (inside a tokio runtime).
    pub fn start() -> Mailer {
        let (tx, mut rx) = mpsc::channel::<(Box<(Smtp, Meta)>, Mail)>(QUEUE);
        tokio::spawn(async move {
            while let Some((conf, mail)) = rx.recv().await {
                let to = mail.to.clone();
                let sending = send(&conf.0, &conf.1, mail);
                match tokio::time::timeout(Duration::from_secs(60), sending).await {
                    Ok(Ok(true)) => tracing::info!(to = %to, "mail sent"),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::error!(to = %to, error = %e, "mail not sent"),
                    Err(_) => tracing::error!(to = %to, "mail not sent: timed out"),
                }
            }
        });
        Mailer { tx }
    }

    /// Queues a message; false when the queue is full (dropped).
    pub fn queue(&self, settings: &Settings, mail: Mail) -> bool {
        let conf = Box::new((settings.smtp.clone(), settings.meta.clone()));
        match self.tx.try_send((conf, mail)) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "mail queue full: message dropped");
                false
            }
        }
    }
}

/// Sends one message with the SMTP settings; Ok(false) when SMTP is off.
pub async fn send(smtp: &Smtp, meta: &Meta, mail: Mail) -> Result<bool, String> {
    if !smtp.enabled {
        tracing::warn!(to = %mail.to, subject = %mail.subject, "SMTP is disabled in the settings: mail not sent");
        return Ok(false);
    }
    let host = smtp.host.as_str();
    let port =
        u16::try_from(smtp.port).map_err(|_| format!("SMTP port {} out of range", smtp.port))?;
    let from_addr = &meta.sender_address;
    let from_name = &meta.sender_name;
    let from: Mailbox = format!("{from_name} <{from_addr}>")
        .parse()
        .or_else(|_| from_addr.parse())
        .map_err(|e| format!("sender address: {e}"))?;
    let to: Mailbox = mail.to.parse().map_err(|e| format!("recipient: {e}"))?;
    let msg = Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject)
        .header(ContentType::TEXT_HTML)
        .body(mail.html)
        .map_err(|e| e.to_string())?;
    let tls_params = TlsParameters::new(host.to_string()).map_err(|e| e.to_string())?;
    let tls = if smtp.tls {
        Tls::Wrapper(tls_params)
    } else {
        Tls::Opportunistic(tls_params)
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(30)));
    if !smtp.username.is_empty() {
        b = b.credentials(Credentials::new(
            smtp.username.clone(),
            smtp.password.clone(),
        ));
        if smtp.auth_method == "LOGIN" {
            b = b.authentication(vec![Mechanism::Login]);
        }
    }
    if !smtp.local_name.is_empty() {
        b = b.hello_name(lettre::transport::smtp::extension::ClientId::Domain(
            smtp.local_name.clone(),
        ));
    }
    b.build().send(msg).await.map_err(|e| e.to_string())?;
    Ok(true)
}

/// Expands a template `{subject, body}` of a collection's options:
/// `{APP_NAME}`, `{APP_URL}`, `{RECORD:<field>}` (HTML-escaped; hidden
/// fields left out) and the given extra placeholders (`{TOKEN}`, `{OTP}`,
/// …). The body is wrapped in a minimal HTML document.
pub fn render(
    template: &Value,
    meta: &Meta,
    record: &Map<String, Value>,
    hidden: &dyn Fn(&str) -> bool,
    extra: &[(&str, &str)],
) -> (String, String) {
    let app_name = meta.app_name.as_str();
    let app_url = meta.app_url.as_str();
    let expand = |text: &str, escape: bool| -> String {
        let mut out = text
            .replace("{APP_NAME}", app_name)
            .replace("{APP_URL}", app_url);
        for (k, v) in extra {
            out = out.replace(k, v);
        }
        for (k, v) in record {
            if hidden(k) {
                continue;
            }
            let val = crate::schema::record::to_text(v);
            let val = if escape { html_escape(&val) } else { val };
            out = out.replace(&format!("{{RECORD:{k}}}"), &val);
        }
        out
    };
    let subject = expand(template["subject"].as_str().unwrap_or_default(), false);
    let body = expand(template["body"].as_str().unwrap_or_default(), true);
    let html = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    );
    (subject, html)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders() {
        let t = json!({"subject": "Hi {RECORD:name} from {APP_NAME}", "body": "<a href=\"{APP_URL}/x/{TOKEN}\">{RECORD:name}</a>{RECORD:password}"});
        let s = Meta {
            app_name: "Acme".into(),
            app_url: "https://acme.test".into(),
            ..Meta::default()
        };
        let rec = json!({"name": "<b>Bo</b>", "password": "hash"});
        let (subject, html) = render(
            &t,
            &s,
            rec.as_object().unwrap(),
            &|f| f == "password",
            &[("{TOKEN}", "tok123")],
        );
        assert_eq!(subject, "Hi <b>Bo</b> from Acme");
        assert!(
            html.contains(
                "<a href=\"https://acme.test/x/tok123\">&lt;b&gt;Bo&lt;/b&gt;</a>{RECORD:password}"
            ),
            "{html}"
        );
    }
}
