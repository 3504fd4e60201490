//! Test harness: an in-process tether server on a free port, and a raw WebSocket client
//! speaking Phoenix V2 frames. Every wait is bounded.
#![allow(dead_code)]

pub mod example;
pub mod raw;
pub mod serial;

use std::{sync::Arc, thread::JoinHandle, time::Duration};

use actix_web::{App, HttpServer, dev::ServerHandle};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tether::{Config, Endpoint, SocketRoute, endpoint::EndpointBuilder};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        self, Message,
        client::IntoClientRequest,
        http::{HeaderName, HeaderValue},
        protocol::frame::coding::CloseCode,
    },
};

/// How long any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub port: u16,
    pub endpoint: Endpoint,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(config: Config, route: SocketRoute) -> TestServer {
        TestServer::start_with(config, move |builder| builder.socket(route))
    }

    /// Starts a server whose endpoint `setup` completes (sockets, commanders, hooks; the
    /// builder's presence is the endpoint's).
    pub fn start_with(
        config: Config,
        setup: impl FnOnce(EndpointBuilder) -> EndpointBuilder + Send + 'static,
    ) -> TestServer {
        TestServer::serve(config, setup, false)
    }

    /// [`TestServer::start_with`], with the dashboard and `/metrics` mounted at the root
    /// too (`Endpoint::configure_dashboard`), as `tether::serve` does.
    pub fn start_with_dashboard(
        config: Config,
        setup: impl FnOnce(EndpointBuilder) -> EndpointBuilder + Send + 'static,
    ) -> TestServer {
        TestServer::serve(config, setup, true)
    }

    fn serve(
        config: Config,
        setup: impl FnOnce(EndpointBuilder) -> EndpointBuilder + Send + 'static,
        dashboard: bool,
    ) -> TestServer {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let builder = Endpoint::builder(config).unwrap();
                let endpoint = setup(builder).build().unwrap();
                let app_endpoint = endpoint.clone();
                let server = HttpServer::new(move || {
                    let (sockets, operations) = (app_endpoint.clone(), app_endpoint.clone());
                    App::new()
                        .configure(move |cfg| sockets.configure(cfg))
                        .configure(move |cfg| {
                            if dashboard {
                                operations.configure_dashboard(cfg)
                            }
                        })
                })
                .workers(2)
                .disable_signals()
                .shutdown_timeout(1);
                let server = endpoint.tune_server(server).bind(("127.0.0.1", 0)).unwrap();
                let port = server.addrs()[0].port();
                let server = server.run();
                tx.send((port, endpoint, server.handle())).unwrap();
                let _ = server.await;
            })
        });
        let (port, endpoint, handle) = rx.recv_timeout(WAIT).expect("server did not start");
        TestServer {
            port,
            endpoint,
            handle,
            thread: Some(thread),
        }
    }

    pub fn url(&self, query: &str) -> String {
        format!(
            "ws://127.0.0.1:{}/socket/websocket?vsn=2.0.0&{query}",
            self.port
        )
    }

    pub async fn client(&self, query: &str) -> Client {
        Client::connect(&self.url(query)).await
    }

    /// Waits (bounded) until `condition` holds, polling the server's state.
    pub async fn eventually(&self, what: &str, condition: impl Fn(&Endpoint) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !condition(&self.endpoint) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        let _ = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(handle.stop(false));
        })
        .join();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits (bounded by [`WAIT`]) until a callback wrote `line` into `log`.
pub async fn wait_for_line(log: &std::sync::Mutex<Vec<String>>, line: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !log.lock().unwrap().iter().any(|l| l == line) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{line}` in {:?}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The config every test starts from (a fixed secret, default limits).
pub fn test_config() -> Config {
    Config::default().with_secret_key_base("x".repeat(64))
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
}

/// What a refused upgrade answered.
#[derive(Debug)]
pub struct Refused(pub u16);

impl Client {
    pub async fn connect(url: &str) -> Client {
        Client::try_connect(url, &[])
            .await
            .expect("upgrade refused")
    }

    pub async fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<Client, Refused> {
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        // No Nagle: a test client waiting for a reply must not wait for a delayed ACK.
        let connecting = tokio_tungstenite::connect_async_with_config(request, None, true);
        match tokio::time::timeout(WAIT, connecting)
            .await
            .expect("connect timed out")
        {
            Ok((ws, _)) => Ok(Client { ws, next_ref: 100 }),
            Err(tungstenite::Error::Http(response)) => Err(Refused(response.status().as_u16())),
            Err(err) => panic!("connect failed: {err}"),
        }
    }

    pub fn next_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("send failed");
    }

    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("send failed");
    }

    pub async fn send(
        &mut self,
        join_ref: Option<&str>,
        msg_ref: &str,
        topic: &str,
        event: &str,
        payload: Value,
    ) {
        self.send_text(json!([join_ref, msg_ref, topic, event, payload]).to_string())
            .await;
    }

    /// The next WebSocket message of any kind, `None` when the stream ended or failed.
    pub async fn next_message(&mut self) -> Option<Message> {
        self.ws.next().await.and_then(Result::ok)
    }

    /// The next text frame, decoded. Panics on close or timeout.
    pub async fn recv(&mut self) -> Value {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame");
            match next {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Skips frames until one satisfies `pred` (bounded by WAIT).
    pub async fn recv_until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out in recv_until"
            );
            let frame = self.recv().await;
            if pred(&frame) {
                return frame;
            }
        }
    }

    /// Waits for the server to close; returns the close code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let next = tokio::time::timeout(remaining, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match next {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) => {
                    return (u16::from(CloseCode::Status), String::new());
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("connection failed instead of closing: {err}"),
                None => panic!("stream ended without a close frame"),
            }
        }
    }

    /// Sends a heartbeat and returns every frame received before its reply: proof that the
    /// server sent nothing else in between (frames on one connection are ordered).
    pub async fn sync(&mut self) -> Vec<Value> {
        let msg_ref = self.next_ref();
        self.send(None, &msg_ref, "phoenix", "heartbeat", json!({}))
            .await;
        let mut before = Vec::new();
        loop {
            let frame = self.recv().await;
            if frame[2] == "phoenix" && frame[1] == msg_ref.as_str() {
                assert_eq!(frame[4]["status"], "ok");
                return before;
            }
            before.push(frame);
        }
    }

    /// Joins `topic` with `payload`; returns the reply frame.
    pub async fn join(&mut self, topic: &str, payload: Value) -> (String, Value) {
        let join_ref = self.next_ref();
        self.send(Some(&join_ref), &join_ref, topic, "phx_join", payload)
            .await;
        let reply = self
            .recv_until(|f| f[3] == "phx_reply" && f[1] == join_ref.as_str())
            .await;
        (join_ref, reply)
    }

    /// Pushes `event` on a joined topic and waits for the reply to it.
    pub async fn call(
        &mut self,
        topic: &str,
        join_ref: &str,
        event: &str,
        payload: Value,
    ) -> Value {
        let msg_ref = self.next_ref();
        self.send(Some(join_ref), &msg_ref, topic, event, payload)
            .await;
        self.recv_until(|f| f[3] == "phx_reply" && f[1] == msg_ref.as_str())
            .await
    }

    /// Pushes `event` on a joined topic; returns the reply to it and every frame received
    /// before it (pushes a handler makes reach the client before its reply).
    pub async fn call_with_pushes(
        &mut self,
        topic: &str,
        join_ref: &str,
        event: &str,
        payload: Value,
    ) -> (Value, Vec<Value>) {
        let msg_ref = self.next_ref();
        self.send(Some(join_ref), &msg_ref, topic, event, payload)
            .await;
        let mut pushed = Vec::new();
        loop {
            let frame = self.recv().await;
            if frame[3] == "phx_reply" && frame[1] == msg_ref.as_str() {
                return (frame, pushed);
            }
            pushed.push(frame);
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// `GET path` over a raw HTTP/1.1 connection to `127.0.0.1:port`; the whole response
/// (status line, headers, body). Bounded by [`WAIT`].
pub async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8(response).expect("utf-8 response")
    };
    tokio::time::timeout(WAIT, fetch)
        .await
        .expect("GET timed out")
}

/// `GET path` with extra request headers over a raw HTTP/1.1 connection to
/// `127.0.0.1:port`: the status code, the headers (names lowercased) and the body. Bounded
/// by [`WAIT`].
pub async fn http_get_with(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8(response).expect("utf-8 response")
    };
    let response = tokio::time::timeout(WAIT, fetch)
        .await
        .expect("GET timed out");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// Asserts a reply frame's status and returns its response.
pub fn reply(frame: &Value, status: &str) -> Value {
    assert_eq!(frame[3], "phx_reply", "not a reply: {frame}");
    assert_eq!(frame[4]["status"], status, "unexpected status in {frame}");
    frame[4]["response"].clone()
}

pub type Log = Arc<std::sync::Mutex<Vec<String>>>;
