//! Logging: journald natively when started by systemd (JOURNAL_STREAM set),
//! readable text on stderr otherwise. Secrets are never logged: handlers log
//! ids and outcomes, never bodies, tokens or passwords.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::{fmt, prelude::*};

/// `filter` is a level (`warn`) or `level,target=level,…` directives
/// (`info,keepd::http=debug`); an unreadable one means `info`.
pub fn init(filter: &str) {
    let filter: Targets = filter
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO));
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
