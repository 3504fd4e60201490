//! A ready-made server: the endpoint's routes plus the app's, on a listener the caller bound,
//! stopped cleanly on SIGTERM or SIGINT.

use actix_web::{App, HttpServer, web};

use super::Endpoint;

/// Runs an actix-web server for `endpoint` on `listener`, with the endpoint's routes (and the
/// dashboard's, when enabled) plus the app's own (`routes`), tuned by [`Endpoint::tune_server`]; starts the endpoint. Without
/// `endpoint.url`, browsers may connect from where `listener` listens. On SIGTERM or SIGINT
/// every connection closes (their channels terminate, so presences leave first), peers are
/// told goodbye, then the server stops. Prints nothing.
///
/// ```no_run
/// # async fn run(endpoint: tether::Endpoint) -> std::io::Result<()> {
/// let listener = std::net::TcpListener::bind(("127.0.0.1", 4000))?;
/// println!("listening on http://{}", listener.local_addr()?);
/// tether::serve(endpoint, listener, |_routes| {}).await
/// # }
/// ```
pub async fn serve(
    endpoint: Endpoint,
    listener: std::net::TcpListener,
    routes: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
) -> std::io::Result<()> {
    let server = server(&endpoint, listener, routes)?;
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        endpoint.shutdown().await;
        handle.stop(true).await;
    });
    server.await
}

/// The server [`serve`] runs, without the signal handling: the endpoint's routes, the
/// dashboard's and the app's on `listener` (its backlog widened), browsers allowed from where
/// it listens, the endpoint started. Must be called on an actix system's thread.
pub(crate) fn server(
    endpoint: &Endpoint,
    listener: std::net::TcpListener,
    routes: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
) -> std::io::Result<actix_web::dev::Server> {
    endpoint.allow_served_origins(&[listener.local_addr()?]);
    widen_backlog(&listener)?;
    endpoint.start();
    let app_endpoint = endpoint.clone();
    let server = HttpServer::new(move || {
        let endpoint = app_endpoint.clone();
        App::new()
            .configure(|cfg| endpoint.configure(cfg))
            .configure(|cfg| endpoint.configure_dashboard(cfg))
            .configure(routes.clone())
    })
    .disable_signals()
    .shutdown_timeout(1);
    Ok(endpoint.tune_server(server).listen(listener)?.run())
}

/// How many connections may wait for `accept` on a listener [`serve`] runs (the kernel caps
/// it at `net.core.somaxconn`, 4096 by default on Linux).
const BACKLOG: i32 = 4096;

/// Gives `listener` a backlog of [`BACKLOG`]. `TcpListener::bind` listens with 128, and actix's
/// own `backlog` setting applies only to sockets it binds itself; a join storm overflowing 128
/// costs every dropped connection a one-second SYN retry. Listening again on a listening
/// socket only changes its backlog.
fn widen_backlog(listener: &std::net::TcpListener) -> std::io::Result<()> {
    socket2::SockRef::from(listener).listen(BACKLOG)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                tracing::error!("cannot install signal handlers; stop with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Nobody accepts: every connection that completes its handshake waits in the queue, so
    /// with `bind`'s 128 the 130th connect hangs (its SYN is dropped).
    #[tokio::test]
    async fn a_served_listener_queues_hundreds_of_connections_not_128() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        widen_backlog(&listener).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        for _ in 0..600 {
            let connect = tokio::net::TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_millis(500), connect).await {
                Ok(Ok(stream)) => queued.push(stream),
                _ => break,
            }
        }
        assert_eq!(queued.len(), 600);
    }
}
