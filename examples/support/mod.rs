//! What every example does the same way: logging to stderr, and binding `127.0.0.1:$PORT`
//! with the `listening on` line the tests wait for. Not an example itself.

use std::net::TcpListener;

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (default `info`); colours only
/// on a terminal: [`tether::init_logging`].
pub fn init_logging() {
    tether::init_logging();
}

/// Binds `127.0.0.1:port` (0 picks a free port) and prints
/// `listening on http://127.0.0.1:<port>`: from here on connections are accepted.
pub fn listen(port: u16) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening on http://{}", listener.local_addr()?);
    Ok(listener)
}
