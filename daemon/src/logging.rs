//! Logging: journald natively when started by systemd (JOURNAL_STREAM set),
//! readable text on stderr otherwise. Secrets are never logged: handlers log
//! ids and outcomes, never bodies, tokens or passwords.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(j) = tracing_journald::layer() {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(j)
                .try_init();
            return;
        }
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr).with_target(false))
        .try_init();
}
