//! Logging for apps that have not set up their own: tether logs through [`tracing`], which
//! prints nothing until a subscriber is installed, so the development-secret warning, the
//! unknown-handler lines and the development no-op warnings stay invisible without one.

/// Installs a [`tracing_subscriber`] fmt subscriber writing to stderr, filtered by `RUST_LOG`
/// (default `info`), with colours only when stderr is a terminal.
///
/// Call it first in `main`. It returns quietly, changing nothing, when a global subscriber is
/// already set (by the app, or by an earlier call), so calling it twice is harmless. An app
/// with its own subscriber does not need it.
///
/// ```
/// tether::init_logging(); // RUST_LOG=tether=debug for more, RUST_LOG=warn for less
/// tether::init_logging(); // a second call is a no-op
/// tracing::info!("visible on stderr");
/// ```
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _already_set = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
