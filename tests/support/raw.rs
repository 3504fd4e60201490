//! A raw WebSocket client over a plain TCP socket, for hostile tests that work below what a
//! WebSocket library lets a client do: lying frame headers, ping floods, never reading.
//! Every wait is bounded.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;

/// Connects to `127.0.0.1:port` and upgrades `path_and_query` to a WebSocket.
pub async fn connect(port: u16, path_and_query: &str) -> TcpStream {
    connect_with(port, path_and_query, None).await
}

/// [`connect`] with the socket's receive buffer set to `recv_buffer` bytes (the kernel may
/// round it), so that a client that does not read pushes back on the server sooner.
pub async fn connect_with(port: u16, path_and_query: &str, recv_buffer: Option<u32>) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = tokio::time::timeout(super::WAIT, socket.connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Read the response head byte by byte so no frame byte after it is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tokio::time::timeout(super::WAIT, stream.read_u8())
            .await
            .expect("upgrade response timed out")
            .expect("connection closed during upgrade");
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
    stream
}

/// A masked client frame header for a payload of `len` bytes (the mask is all zeros, so the
/// payload goes on the wire unchanged).
pub fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u64::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

/// A whole masked client frame.
pub fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(true, opcode, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// A server frame: opcode and payload.
#[derive(Debug)]
pub struct ServerFrame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Reads one (unmasked, unfragmented) server frame; `None` when the stream ends or fails, or
/// nothing arrives within `timeout`.
pub async fn read_frame<R: AsyncReadExt + Unpin>(
    stream: &mut R,
    timeout: Duration,
) -> Option<ServerFrame> {
    tokio::time::timeout(timeout, async {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.ok()?;
        let len = match head[1] & 0x7F {
            126 => u64::from(stream.read_u16().await.ok()?),
            127 => stream.read_u64().await.ok()?,
            n => u64::from(n),
        };
        let mut payload = vec![0u8; usize::try_from(len).ok()?];
        stream.read_exact(&mut payload).await.ok()?;
        Some(ServerFrame {
            opcode: head[0] & 0x0F,
            payload,
        })
    })
    .await
    .ok()
    .flatten()
}

/// The resident set size of process `pid`, in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("no VmRSS line")
}

/// Whether a TCP socket with local port `local` and remote port `remote` exists on this
/// machine in any state but TIME_WAIT/CLOSE (read from /proc/net/tcp and tcp6).
pub fn tcp_socket_open(local: u16, remote: u16) -> bool {
    const TIME_WAIT: &str = "06";
    const CLOSE: &str = "07";
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        let Ok(text) = std::fs::read_to_string(table) else {
            return false;
        };
        text.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|hex| u16::from_str_radix(hex, 16).ok())
            };
            fields.len() > 3
                && port(fields[1]) == Some(local)
                && port(fields[2]) == Some(remote)
                && fields[3] != TIME_WAIT
                && fields[3] != CLOSE
        })
    })
}
