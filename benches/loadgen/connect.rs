//! Where and how clients connect: the target of each server (a port of 127.0.0.1, or a
//! `--url`), the TCP connection from a source address of its own, the WebSocket handshake
//! (tokio-tungstenite), and the Phoenix frames the clients send (join, heartbeat).
//!
//! It must never connect anywhere but loopback: a `--url` that does not resolve to
//! 127.0.0.0/8 or ::1 is refused, and source addresses stay in 127.0.0.2–127.0.0.250.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{Error as WsError, Message, protocol::WebSocketConfig},
};

pub const JOIN_REF: &str = "1";

/// `phx_join` of `topic` (join ref and ref "1").
pub fn join_frame(topic: &str) -> String {
    join_frame_with(topic, "{}")
}

/// `phx_join` of `topic` with `payload` (a JSON object; join ref and ref "1").
pub fn join_frame_with(topic: &str, payload: &str) -> String {
    format!(r#"["{JOIN_REF}","1","{topic}","phx_join",{payload}]"#)
}

/// The start of the reply to [`join_frame`].
pub fn join_reply_prefix(topic: &str) -> String {
    format!(r#"["{JOIN_REF}","1","{topic}","phx_reply","#)
}

/// A heartbeat with ref `r`.
pub fn heartbeat_frame(r: u64) -> String {
    format!(r#"[null,"{r}","phoenix","heartbeat",{{}}]"#)
}

#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `ws://host:port/path?` or `…?query&`, ready for `vsn=…&user_id=…`.
    url_prefix: String,
}

impl Target {
    pub fn from_port(port: u16) -> Target {
        Target {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            url_prefix: format!("ws://127.0.0.1:{port}/socket/websocket?"),
        }
    }

    pub fn from_url(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or("--url must start with ws:// (no TLS)")?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/socket/websocket"),
        };
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {hostport}: {e}"))?
            .next()
            .ok_or(format!("cannot resolve {hostport}"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "refusing to load {addr}: only loopback (127.0.0.0/8, ::1) targets are allowed"
            ));
        }
        let path = if path.contains('?') {
            format!("{path}&")
        } else {
            format!("{path}?")
        };
        Ok(Target {
            addr,
            url_prefix: format!("ws://{hostport}{path}"),
        })
    }

    /// The same server, with the socket at `socket_path` (`/tether/socket` →
    /// `ws://host:port/tether/socket/websocket?`).
    pub fn with_socket_path(&self, socket_path: &str) -> Target {
        Target {
            addr: self.addr,
            url_prefix: format!(
                "ws://{}{}/websocket?",
                self.addr,
                socket_path.trim_end_matches('/')
            ),
        }
    }

    fn url(&self, user_id: &str) -> String {
        format!("{}vsn=2.0.0&user_id={user_id}", self.url_prefix)
    }

    /// Source address for client `i`: 127.0.0.2–127.0.0.250 when the target is IPv4 loopback.
    pub fn source(&self, i: usize) -> Option<SocketAddr> {
        match self.addr {
            SocketAddr::V4(v4) if v4.ip().is_loopback() => Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 249) as u8)),
                0,
            )),
            _ => None,
        }
    }
}

pub type Ws = WebSocketStream<TcpStream>;

/// Connects to `target` (from `source` if given) and performs the WebSocket handshake.
pub async fn connect_ws(
    target: &Target,
    source: Option<SocketAddr>,
    user_id: &str,
    config: WebSocketConfig,
) -> Result<Ws, String> {
    let stream = tcp_connect(target, source)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    upgrade(stream, target, user_id, config)
        .await
        .map_err(|e| format!("handshake: {e}"))
}

/// The TCP connection to `target` (from `source` if given), `TCP_NODELAY` set. An error is
/// the io error kind (`ConnectionRefused`), or `bind: <kind>` / `socket: <kind>`.
pub async fn tcp_connect(target: &Target, source: Option<SocketAddr>) -> Result<TcpStream, String> {
    let socket = match target.addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {}", e.kind()))?;
    if let Some(source) = source {
        socket
            .bind(source)
            .map_err(|e| format!("bind: {}", e.kind()))?;
    }
    let stream = socket
        .connect(target.addr)
        .await
        .map_err(|e| e.kind().to_string())?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The WebSocket handshake (HTTP upgrade) on `stream`. An error names its cause: `HTTP 408`
/// for a response other than 101, `io: <kind>` (e.g. the server closed the connection),
/// else tungstenite's text (at most 80 characters).
pub async fn upgrade(
    stream: TcpStream,
    target: &Target,
    user_id: &str,
    config: WebSocketConfig,
) -> Result<Ws, String> {
    let (ws, _response) = client_async_with_config(target.url(user_id), stream, Some(config))
        .await
        .map_err(|e| match e {
            WsError::Http(response) => format!("HTTP {}", response.status().as_u16()),
            WsError::Io(io) => format!("io: {}", io.kind()),
            other => other.to_string().chars().take(80).collect(),
        })?;
    Ok(ws)
}

/// Sends `phx_join` and waits for its reply (other frames, e.g. presence_state, are skipped).
pub async fn join(ws: &mut Ws, topic: &str) -> Result<(), String> {
    ws.send(Message::text(join_frame(topic)))
        .await
        .map_err(|e| format!("join send: {e}"))?;
    let expected = join_reply_prefix(topic);
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if text.as_str().starts_with(&expected) {
                    return if text.as_str().contains(r#""status":"ok""#) {
                        Ok(())
                    } else {
                        Err("join: error reply".into())
                    };
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(format!(
                    "join: closed ({})",
                    frame.map(|f| u16::from(f.code)).unwrap_or(0)
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("join: {e}")),
            None => return Err("join: connection ended".into()),
        }
    }
}
