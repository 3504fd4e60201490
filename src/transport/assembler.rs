//! Turns the bytes a client sends into complete messages: WebSocket frames decoded with
//! actix-http's codec, continuation frames assembled, size limits enforced as early as the
//! frame headers allow.
//!
//! Pure: no I/O, no clock. It must never hold more than one partial message of at most
//! `max` bytes plus one incomplete frame (whose header has already been checked).

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame as WsFrame, Item, ProtocolError};
use bytes::{Bytes, BytesMut};

use super::disconnect::Disconnect;

/// A complete client message the connection acts on.
#[derive(Debug)]
pub(crate) enum Message {
    /// A whole text message (one frame or assembled fragments).
    Text(Bytes),
    /// A ping with its payload.
    Ping(Bytes),
}

/// Decodes and assembles client frames.
///
/// Invariant: the read buffer is released whenever it is empty, so an idle connection holds
/// no inbound buffer.
pub(crate) struct Assembler {
    buf: BytesMut,
    codec: Codec,
    /// A text message arriving in continuation frames.
    partial: Option<BytesMut>,
    max: usize,
}

impl Assembler {
    /// An assembler for messages of at most `max` bytes.
    pub(crate) fn new(max: usize) -> Assembler {
        Assembler {
            buf: BytesMut::new(),
            codec: Codec::new().max_size(max),
            partial: None,
            max,
        }
    }

    /// Adds bytes read from the client.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete text message or ping, `None` if more bytes are needed; every error
    /// ends the connection.
    pub(crate) fn next_message(&mut self) -> Result<Option<Message>, Disconnect> {
        loop {
            let decoded = self.codec.decode(&mut self.buf);
            if self.buf.is_empty() {
                self.buf = BytesMut::new();
            }
            match decoded {
                Ok(Some(frame)) => {
                    if let Some(message) = self.frame(frame)? {
                        return Ok(Some(message));
                    }
                }
                Ok(None) => {
                    self.refuse_oversized_header()?;
                    return Ok(None);
                }
                Err(ProtocolError::Overflow) => return Err(Disconnect::TooLarge),
                Err(err) => return Err(Disconnect::Protocol(err.to_string())),
            }
        }
    }

    /// Called when the buffer holds an incomplete frame: refuses it as soon as its header
    /// shows that it, or the message it continues, would pass the size limit.
    fn refuse_oversized_header(&self) -> Result<(), Disconnect> {
        let Some(declared) = declared_length(&self.buf) else {
            return Ok(());
        };
        // Only a continuation frame adds to the message being assembled.
        let continues = self.buf.first().is_some_and(|byte| byte & 0x0F == 0);
        let partial = match &self.partial {
            Some(partial) if continues => partial.len() as u64,
            _ => 0,
        };
        if declared.saturating_add(partial) > self.max as u64 {
            return Err(Disconnect::TooLarge);
        }
        Ok(())
    }

    fn frame(&mut self, frame: WsFrame) -> Result<Option<Message>, Disconnect> {
        match frame {
            WsFrame::Text(bytes) => Ok(Some(Message::Text(bytes))),
            WsFrame::Binary(_) | WsFrame::Continuation(Item::FirstBinary(_)) => {
                Err(Disconnect::Binary)
            }
            WsFrame::Continuation(Item::FirstText(bytes)) => {
                self.partial = Some(BytesMut::from(&bytes[..]));
                Ok(None)
            }
            WsFrame::Continuation(Item::Continue(bytes)) => self.append(&bytes).map(|_| None),
            WsFrame::Continuation(Item::Last(bytes)) => {
                self.append(&bytes)?;
                match self.partial.take() {
                    Some(whole) => Ok(Some(Message::Text(whole.freeze()))),
                    None => Err(Disconnect::Protocol(
                        "continuation without a first frame".into(),
                    )),
                }
            }
            WsFrame::Ping(bytes) => Ok(Some(Message::Ping(bytes))),
            WsFrame::Pong(_) => Ok(None),
            WsFrame::Close(_) => Err(Disconnect::ClientClosed),
        }
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), Disconnect> {
        let partial = self
            .partial
            .as_mut()
            .ok_or_else(|| Disconnect::Protocol("continuation without a first frame".into()))?;
        if partial.len() + bytes.len() > self.max {
            return Err(Disconnect::TooLarge);
        }
        partial.extend_from_slice(bytes);
        Ok(())
    }
}

/// The payload length a frame header at the start of `buf` declares, once enough of the
/// header has arrived (RFC 6455 §5.2: 7 bits, or 126 + 16 bits, or 127 + 64 bits).
fn declared_length(buf: &[u8]) -> Option<u64> {
    let short = buf.get(1)? & 0x7F;
    match short {
        126 => Some(u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]))),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            Some(u64::from_be_bytes(bytes))
        }
        n => Some(u64::from(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn assembles_fragments_and_passes_pings_between_them() {
        let mut assembler = Assembler::new(100);
        let mut bytes = masked(false, 0x1, b"hel");
        bytes.extend(masked(true, 0x9, b"p"));
        bytes.extend(masked(true, 0x0, b"lo"));
        // One byte at a time: the result must not depend on how reads split the stream.
        let mut got = Vec::new();
        for byte in bytes {
            assembler.feed(&[byte]);
            while let Some(message) = assembler.next_message().unwrap() {
                got.push(message);
            }
        }
        assert!(
            matches!(&got[..], [Message::Ping(p), Message::Text(t)] if &p[..] == b"p" && &t[..] == b"hello")
        );
    }

    #[test]
    fn a_header_over_the_limit_is_refused_before_its_payload() {
        let mut assembler = Assembler::new(100);
        let mut header = masked(true, 0x1, &[]);
        header[1] = 0x80 | 127;
        header.splice(2..2, (1u64 << 40).to_be_bytes());
        assembler.feed(&header[..10]);
        assert!(matches!(
            assembler.next_message(),
            Err(Disconnect::TooLarge)
        ));

        let mut assembler = Assembler::new(100);
        assembler.feed(&masked(false, 0x1, &[b'x'; 60]));
        assert!(assembler.next_message().unwrap().is_none());
        assembler.feed(&masked(true, 0x0, &[b'y'; 41])[..2]);
        assert!(matches!(
            assembler.next_message(),
            Err(Disconnect::TooLarge)
        ));
    }
}
