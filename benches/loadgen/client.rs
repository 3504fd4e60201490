//! A minimal client-side RFC 6455 codec over the raw TCP stream ([`RawWs`]), used for the N
//! measured clients after tungstenite did the handshake.
//!
//! It must stay cheap per client and safe against whatever the server sends: no zeroing of a
//! read buffer per read, no per-message allocation, no UTF-8 validation, no panic on a
//! malformed frame (it ends the connection with a reason instead), and nothing larger than
//! [`MAX_MESSAGE`] is accepted.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Largest frame or message accepted from the server.
const MAX_MESSAGE: usize = 64 << 20;

/// A minimal client-side WebSocket codec over the raw TCP stream, used for the N measured
/// clients after tungstenite did the handshake. It exists to keep 10,000 receive loops cheap:
/// no zeroing of a read buffer per read, no per-message allocation, no UTF-8 validation
/// (frames are only byte-searched), and the buffer shrinks back after a large frame (e.g. a
/// big `presence_state`) instead of keeping its high-water mark per client.
///
/// It handles what a server may send: text (also fragmented), binary (ignored), ping (answered
/// with pong), pong, close. Outgoing frames are masked as RFC 6455 requires.
pub struct RawWs {
    stream: TcpStream,
    /// Storage; bytes `[start, end)` are received and not yet consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes needed from `start` before the next frame can be parsed.
    need: usize,
    default_len: usize,
    /// What received frames left to do: a fragmented message, pongs to send.
    pending: Pending,
    mask_state: u32,
}

/// State carried between frames.
#[derive(Default)]
struct Pending {
    /// A fragmented text message being assembled.
    fragments: Option<Vec<u8>>,
    pongs: Vec<Vec<u8>>,
}

/// Where a complete frame lies in the received bytes.
struct Head {
    fin: bool,
    opcode: u8,
    /// Offset of the masking key, if the frame is masked.
    mask_at: Option<usize>,
    /// Header length (masking key included).
    header: usize,
    /// Header + payload.
    total: usize,
}

/// Parses the frame at the start of `avail`: `Ok(Err(need))` if only `need` bytes would
/// complete it (header or payload); `Err` for a frame over [`MAX_MESSAGE`].
fn parse_head(avail: &[u8]) -> Result<Result<Head, usize>, String> {
    if avail.len() < 2 {
        return Ok(Err(2));
    }
    let (b0, b1) = (avail[0], avail[1]);
    let (mut header, len) = match b1 & 0x7f {
        126 if avail.len() < 4 => return Ok(Err(4)),
        126 => (4, u16::from_be_bytes([avail[2], avail[3]]) as u64),
        127 if avail.len() < 10 => return Ok(Err(10)),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&avail[2..10]);
            (10, u64::from_be_bytes(b))
        }
        n => (2, n as u64),
    };
    if len > MAX_MESSAGE as u64 {
        return Err(format!("protocol: frame of {len} bytes"));
    }
    let mask_at = (b1 & 0x80 != 0).then_some(header);
    if mask_at.is_some() {
        header += 4;
    }
    let total = header + len as usize;
    if avail.len() < total {
        return Ok(Err(total));
    }
    Ok(Ok(Head {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        mask_at,
        header,
        total,
    }))
}

impl Pending {
    /// Acts on one frame's payload `data`; text messages go to `on_text`. `Err` means the
    /// connection is over (close frame or protocol error), with the reason.
    fn on_frame(
        &mut self,
        fin: bool,
        opcode: u8,
        data: &[u8],
        on_text: &mut impl FnMut(&[u8]),
    ) -> Result<(), String> {
        match opcode {
            0x1 if fin => on_text(data),
            0x1 => self.fragments = Some(data.to_vec()),
            0x0 => {
                let Some(mut message) = self.fragments.take() else {
                    return Err("protocol: continuation without a start".into());
                };
                if message.len() + data.len() > MAX_MESSAGE {
                    return Err("protocol: message too large".into());
                }
                message.extend_from_slice(data);
                if fin {
                    on_text(&message);
                } else {
                    self.fragments = Some(message);
                }
            }
            0x2 => {}
            0x8 => {
                let code = match data {
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    _ => 1005,
                };
                let reason = String::from_utf8_lossy(data.get(2..).unwrap_or_default());
                return Err(format!("close {code} {reason}"));
            }
            0x9 => self.pongs.push(data.to_vec()),
            0xA => {}
            other => return Err(format!("protocol: opcode {other:#x}")),
        }
        Ok(())
    }
}

impl RawWs {
    pub fn new(stream: TcpStream, default_len: usize, seed: u32) -> RawWs {
        let default_len = default_len.max(256);
        RawWs {
            stream,
            buf: vec![0; default_len],
            start: 0,
            end: 0,
            need: 2,
            default_len,
            pending: Pending::default(),
            mask_state: seed.wrapping_mul(2_654_435_761).max(1),
        }
    }

    /// Reads at least one more chunk from the socket. Cancel-safe: the only await is the read.
    pub async fn fill(&mut self) -> Result<(), String> {
        if self.start + self.need > self.buf.len() || self.end == self.buf.len() {
            // Move the unconsumed bytes to the front, and grow only for a frame that needs it.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.need > self.buf.len() {
                self.buf.resize(self.need, 0);
            }
            if self.end == self.buf.len() {
                // Cannot happen (a full buffer holds a complete frame, already consumed), but
                // a zero-length read would look like EOF.
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
        match self.stream.read(&mut self.buf[self.end..]).await {
            Ok(0) => Err("eof".into()),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => Err(format!("read: {}", e.kind())),
        }
    }

    /// Handles every complete frame in the buffer; text messages go to `on_text`.
    /// `Err` means the connection is over (close frame or protocol error), with the reason.
    pub fn process(&mut self, mut on_text: impl FnMut(&[u8])) -> Result<(), String> {
        loop {
            let head = match parse_head(&self.buf[self.start..self.end])? {
                Ok(head) => head,
                Err(need) => {
                    self.need = need;
                    break;
                }
            };
            let frame_at = self.start;
            self.start += head.total;
            let payload = frame_at + head.header..frame_at + head.total;
            if let Some(at) = head.mask_at {
                let at = frame_at + at;
                let key = [
                    self.buf[at],
                    self.buf[at + 1],
                    self.buf[at + 2],
                    self.buf[at + 3],
                ];
                mask(&mut self.buf[payload.clone()], key);
            }
            let data = &self.buf[payload];
            self.pending
                .on_frame(head.fin, head.opcode, data, &mut on_text)?;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > self.default_len {
                // Give back what a large frame needed.
                self.buf = vec![0; self.default_len];
            }
        }
        Ok(())
    }

    /// Writes one masked frame (FIN set) with `opcode`.
    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let key = self.next_mask();
        frame.extend_from_slice(&key);
        let at = frame.len();
        frame.extend_from_slice(payload);
        mask(&mut frame[at..], key);
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| format!("write: {}", e.kind()))
    }

    /// The next masking key: xorshift32, as masking keys need not be cryptographic for a
    /// load generator.
    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        x.to_be_bytes()
    }

    /// Answers every ping received so far.
    pub async fn send_pongs(&mut self) -> Result<(), String> {
        for payload in std::mem::take(&mut self.pending.pongs) {
            self.send(0xA, &payload).await?;
        }
        Ok(())
    }
}

/// XORs `data` with the masking `key` (RFC 6455 §5.3), in place.
fn mask(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}
