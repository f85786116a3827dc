//! Logging: journald natively when started by systemd (JOURNAL_STREAM set),
//! readable text on stderr otherwise. Secrets are never logged: handlers log
//! ids and outcomes, never bodies, tokens or passwords.
//!
//! The journal gets each event as its own entry over journald's native
//! protocol: `MESSAGE` is the line as stderr shows it — the message, then
//! its fields as `key=value` — so `journalctl -u keepd -p err` tells what
//! failed *and why* (`SCHEDULED BACKUP FAILED error=…`), and every field is
//! also kept as a structured field (`F_ERROR=…`, as before), with
//! `PRIORITY`, `SYSLOG_IDENTIFIER`, `TARGET`, `CODE_FILE` and `CODE_LINE`.

use std::fmt;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::Context;
use tracing_subscriber::{fmt as tfmt, prelude::*};

/// journald's socket for the native protocol.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// `filter` is a level (`warn`) or `level,target=level,…` directives
/// (`info,keepd::http=debug`); an unreadable one means `info`.
pub fn init(filter: &str) {
    let filter: Targets = filter
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(j) = Journal::connect(Path::new(JOURNAL_SOCKET)) {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(j)
                .try_init();
            return;
        }
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tfmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .try_init();
}

/// A layer writing events to journald's native socket.
pub struct Journal {
    socket: UnixDatagram,
    path: PathBuf,
    identifier: String,
}

/// Longest field value sent whole; a datagram the socket refuses as too
/// large is sent again with every value cut to this.
const CUT: usize = 4096;

impl Journal {
    /// A layer sending to the socket at `path` (journald's, or a test's);
    /// fails when nothing listens there.
    pub fn connect(path: &Path) -> io::Result<Journal> {
        let socket = UnixDatagram::unbound()?;
        // journald discards an empty datagram: a cheap check that it listens.
        socket.send_to(&[], path)?;
        Ok(Journal {
            socket,
            path: path.to_path_buf(),
            identifier: "keepd".into(),
        })
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for Journal {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = Fields::default();
        event.record(&mut v);
        let meta = event.metadata();
        let entry = |cut: usize| Entry {
            level: *meta.level(),
            message: &v.message,
            fields: &v.fields,
            target: meta.target(),
            file: meta.file(),
            line: meta.line(),
            identifier: &self.identifier,
            cut,
        };
        let too_large = rustix::io::Errno::MSGSIZE.raw_os_error();
        match self.socket.send_to(&entry(usize::MAX).encode(), &self.path) {
            Err(e) if e.raw_os_error() == Some(too_large) => {
                let _ = self.socket.send_to(&entry(CUT).encode(), &self.path);
            }
            // Nowhere else to say it.
            _ => {}
        }
    }
}

/// An event's message and its other fields, in order.
#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.push((field.name(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.push((field.name(), text));
        }
    }
}

/// The `MESSAGE` of an event: the message, then `key=value` for each field
/// (as the text on stderr reads).
pub fn message_line(message: &str, fields: &[(&str, String)]) -> String {
    let mut line = message.to_string();
    for (k, v) in fields {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(k);
        line.push('=');
        line.push_str(v);
    }
    line
}

/// One journal entry in the native protocol.
struct Entry<'a> {
    level: Level,
    message: &'a str,
    fields: &'a [(&'static str, String)],
    target: &'a str,
    file: Option<&'a str>,
    line: Option<u32>,
    identifier: &'a str,
    /// Longest value kept (bytes).
    cut: usize,
}

impl Entry<'_> {
    fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(256);
        let priority = match self.level {
            Level::ERROR => "3",
            Level::WARN => "4",
            Level::INFO => "5",
            Level::DEBUG => "6",
            Level::TRACE => "7",
        };
        put(&mut buf, "PRIORITY", priority, self.cut);
        put(
            &mut buf,
            "MESSAGE",
            &message_line(self.message, self.fields),
            self.cut,
        );
        put(&mut buf, "SYSLOG_IDENTIFIER", self.identifier, self.cut);
        put(&mut buf, "TARGET", self.target, self.cut);
        if let Some(f) = self.file {
            put(&mut buf, "CODE_FILE", f, self.cut);
        }
        if let Some(l) = self.line {
            put(&mut buf, "CODE_LINE", &l.to_string(), self.cut);
        }
        for (k, v) in self.fields {
            let name = field_name(k);
            put(&mut buf, &name, v, self.cut);
        }
        buf
    }
}

/// `F_` and the field's name as journald accepts names: upper-case ASCII
/// letters, digits and `_` (dots become `_`).
fn field_name(name: &str) -> String {
    let mut out = String::from("F_");
    out.extend(
        name.chars()
            .map(|c| if c == '.' { '_' } else { c })
            .skip_while(|c| *c == '_')
            .filter(|c| *c == '_' || c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase()),
    );
    out
}

/// NAME, newline, 64-bit little-endian length, value, newline: the form
/// that carries any bytes (newlines included).
fn put(buf: &mut Vec<u8>, name: &str, value: &str, cut: usize) {
    let mut end = value.len().min(cut);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let v = &value.as_bytes()[..end];
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.extend_from_slice(&(v.len() as u64).to_le_bytes());
    buf.extend_from_slice(v);
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Parses native-protocol datagrams (both forms) into fields.
    fn parse(mut d: &[u8]) -> HashMap<String, String> {
        let mut out = HashMap::new();
        while !d.is_empty() {
            let nl = d.iter().position(|b| *b == b'\n').expect("newline");
            let head = std::str::from_utf8(&d[..nl]).expect("utf8");
            d = &d[nl + 1..];
            if let Some((k, v)) = head.split_once('=') {
                out.insert(k.to_string(), v.to_string());
                continue;
            }
            let n = u64::from_le_bytes(d[..8].try_into().expect("len")) as usize;
            let v = String::from_utf8(d[8..8 + n].to_vec()).expect("utf8");
            assert_eq!(d[8 + n], b'\n');
            d = &d[9 + n..];
            out.insert(head.to_string(), v);
        }
        out
    }

    /// A socket standing in for journald, and a subscriber writing to it.
    fn journal() -> (UnixDatagram, impl Subscriber, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "keepd-journal-{}-{}",
            std::process::id(),
            crate::util::random_string(8, crate::util::ALPHANUM)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let layer = Journal::connect(&path).unwrap();
        let mut empty = [0u8; 16];
        assert_eq!(rx.recv(&mut empty).unwrap(), 0, "the connect check");
        (rx, tracing_subscriber::registry().with(layer), dir)
    }

    fn next(rx: &UnixDatagram) -> HashMap<String, String> {
        let mut buf = vec![0u8; 65536];
        let n = rx.recv(&mut buf).unwrap();
        parse(&buf[..n])
    }

    #[test]
    fn an_errors_cause_is_in_its_message_and_in_its_own_field() {
        let (rx, sub, dir) = journal();
        tracing::subscriber::with_default(sub, || {
            let e = std::io::Error::other("no space left on device");
            tracing::error!(error = %e, "SCHEDULED BACKUP FAILED");
            tracing::warn!(error = %"timed out\nafter 15 s", "health probe failed; withholding the watchdog ping");
            tracing::info!(addr = %"127.0.0.1:8090", "keepd is serving");
        });
        let e = next(&rx);
        assert_eq!(
            e["MESSAGE"],
            "SCHEDULED BACKUP FAILED error=no space left on device"
        );
        assert_eq!(e["PRIORITY"], "3");
        assert_eq!(e["F_ERROR"], "no space left on device");
        assert_eq!(e["SYSLOG_IDENTIFIER"], "keepd");
        assert!(e["TARGET"].starts_with("keepd"), "{e:?}");
        assert!(e["CODE_FILE"].ends_with("logging.rs"), "{e:?}");
        let w = next(&rx);
        assert_eq!(
            w["MESSAGE"],
            "health probe failed; withholding the watchdog ping error=timed out\nafter 15 s"
        );
        assert_eq!(w["PRIORITY"], "4");
        let i = next(&rx);
        assert_eq!(i["MESSAGE"], "keepd is serving addr=127.0.0.1:8090");
        assert_eq!(i["PRIORITY"], "5");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn names_and_long_values() {
        assert_eq!(field_name("error"), "F_ERROR");
        assert_eq!(field_name("_a.b-c"), "F_A_BC");
        let mut buf = Vec::new();
        put(&mut buf, "X", "ééé", 3);
        assert_eq!(parse(&buf)["X"], "é", "cut on a character boundary");
    }
}
