//! The HTTP response body of a WebSocket connection: it writes the connection's [`Outbox`](super::Outbox)
//! to the socket as WebSocket frames, in chunks of at most [`CHUNK`] bytes.
//!
//! Small frames queued together are coalesced into one chunk (so one write); a large frame
//! fills one chunk and is handed over in further slices of its payload (no copy). No chunk
//! exceeds actix-http's initial 8 KiB write buffer, and actix-http is told to take a chunk only
//! when that buffer is empty (`h1_write_buffer_size(1)`), so the buffer never grows: a buffer
//! grown by one large chunk would otherwise stay allocated for the life of the connection.
//!
//! When the outbox is closed (or overflows) the body writes what is queued, then the close
//! frame, then ends, which ends the HTTP response and so the TCP connection. If the body is
//! dropped first (the client went away), the connection task is told.

use std::{
    cell::RefCell,
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use actix_http::ws::{CloseReason, OpCode, Parser};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;

use super::outbox::{Close, Shared, Wire};

/// Largest chunk handed to actix-http at once: the size of its initial write buffer.
pub(crate) const CHUNK: usize = 8192;

/// The `h1_write_buffer_size` to give actix-web's `HttpServer` (as [`crate::serve`] does):
/// take a chunk only when the write buffer is empty, so one chunk is one write and the buffer
/// keeps its initial size.
pub(crate) const H1_WRITE_BUFFER_SIZE: usize = 1;

/// Room kept for the largest header plus a control frame.
const CONTROL_ROOM: usize = 14 + 125;

const OP_TEXT: u8 = 0x1;
const FIN: u8 = 0x80;

/// Writes the header of an unmasked (server) text frame; its payload follows, possibly in
/// several chunks (which is why this is not actix-http's `Parser::write_message`, which
/// copies the payload).
fn header(out: &mut BytesMut, opcode: u8, len: usize) {
    out.put_u8(FIN | opcode);
    if len < 126 {
        out.put_u8(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.put_u8(126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
}

/// A pong (its payload is at most 125 bytes: the outbox keeps no more of a ping's).
fn pong(out: &mut BytesMut, payload: &[u8]) {
    Parser::write_message(out, payload, OpCode::Pong, true, false);
}

/// A close frame; its reason is cut to fit a control frame (123 bytes after the code).
fn close_frame(out: &mut BytesMut, close: &Close) {
    let reason = CloseReason {
        code: close.code,
        description: Some(crate::text::truncate_utf8(&close.reason, 123).to_string()),
    };
    Parser::write_close(out, Some(reason), false);
}

/// Writes `part` of a frame's payload: into `buf` while it fits and nothing waits in
/// `pieces`, the rest as slices of at most [`CHUNK`] bytes into `pieces` (no copy).
fn emit(buf: &mut BytesMut, pieces: &mut VecDeque<Bytes>, part: &Bytes) {
    let mut at = 0;
    if pieces.is_empty() {
        at = (CHUNK - buf.len()).min(part.len());
        buf.put_slice(&part[..at]);
    }
    while at < part.len() {
        let end = (at + CHUNK).min(part.len());
        pieces.push_back(part.slice(at..end));
        at = end;
    }
}

thread_local! {
    /// The buffer chunks are encoded into, one per thread: each chunk is split off it, and
    /// its allocation is taken back once actix-http has copied and dropped that chunk, so a
    /// busy connection allocates no buffer per write and an idle one holds none.
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The body; see the module docs.
pub(crate) struct OutboxBody {
    shared: Arc<Shared>,
    /// Pieces of a large frame still to hand over.
    pieces: VecDeque<Bytes>,
    finished: bool,
}

impl OutboxBody {
    pub(crate) fn new(shared: Arc<Shared>) -> OutboxBody {
        OutboxBody {
            shared,
            pieces: VecDeque::new(),
            finished: false,
        }
    }

    /// Encodes queued frames into `buf` (at most [`CHUNK`] bytes); the rest of a large payload
    /// goes to `self.pieces` as slices.
    /// Records the hand-over as progress for the write timeout (under the lock it holds).
    fn fill(&mut self, buf: &mut BytesMut, cx: &Context<'_>) {
        let shared = &self.shared;
        let mut state = shared.lock();
        let mut ended = None;
        let (mut frames, mut bytes) = (0, 0);
        while buf.len() + CONTROL_ROOM <= CHUNK {
            match state.take_wire(shared, cx) {
                Some(Wire::Text(text)) => {
                    frames += 1;
                    bytes += text.len() as u64;
                    header(buf, OP_TEXT, text.len());
                    for part in text.parts() {
                        emit(buf, &mut self.pieces, part);
                    }
                    if !self.pieces.is_empty() {
                        break; // the rest of this frame goes out first
                    }
                }
                Some(Wire::Pong(payload)) => pong(buf, &payload),
                None => {
                    // Drained: if the connection is closing, the close frame comes last.
                    if let Some(close) = state.close.take() {
                        close_frame(buf, &close);
                        self.finished = true;
                        ended = state.body_ended();
                    }
                    break;
                }
            }
        }
        if !buf.is_empty() && !self.finished {
            state.wrote(!self.pieces.is_empty());
        }
        drop(state);
        if frames > 0 {
            let metrics = crate::metrics::metrics();
            metrics.frames_out.inc_by(frames);
            metrics.bytes_out.inc_by(bytes);
        }
        if let Some(task) = ended {
            task.wake();
        }
    }
}

impl Stream for OutboxBody {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(piece) = this.pieces.pop_front() {
            if this.pieces.is_empty() {
                this.pieces = VecDeque::new(); // an idle connection keeps no buffer
            }
            // Handing a piece over is progress for the write timeout.
            this.shared.lock().wrote(!this.pieces.is_empty());
            return Poll::Ready(Some(Ok(piece)));
        }
        if this.finished {
            return Poll::Ready(None);
        }
        let chunk = SCRATCH.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            // Reclaims the allocation of the chunk before this one once it has been written
            // (actix-http copies each chunk into its write buffer and drops it).
            buf.reserve(CHUNK + CONTROL_ROOM);
            this.fill(&mut buf, cx);
            buf.split().freeze()
        });
        if chunk.is_empty() {
            // Nothing queued (a chunk always holds the start of what was taken).
            return if this.finished {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}

impl Drop for OutboxBody {
    fn drop(&mut self) {
        let task = self.shared.lock().body_ended();
        if let Some(task) = task {
            task.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use futures_util::StreamExt;

    use super::*;
    use crate::transport::Outbox;
    use actix_http::ws::CloseCode;

    fn drain(body: &mut OutboxBody) -> Vec<u8> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        while let Poll::Ready(Some(Ok(chunk))) = body.poll_next_unpin(&mut cx) {
            assert!(chunk.len() <= CHUNK, "chunk of {} bytes", chunk.len());
            out.extend_from_slice(&chunk);
        }
        out
    }

    #[test]
    fn small_frames_are_coalesced_with_correct_headers() {
        let outbox = Outbox::new(1 << 20);
        let mut body = OutboxBody::new(outbox.shared().clone());
        outbox.push_frame(Bytes::from_static(b"ab")).unwrap();
        outbox.push_frame(Bytes::from_static(b"cde")).unwrap();
        assert_eq!(drain(&mut body), b"\x81\x02ab\x81\x03cde");
    }

    #[test]
    fn large_frames_use_extended_lengths_and_come_in_small_chunks() {
        let outbox = Outbox::new(1 << 20);
        let mut body = OutboxBody::new(outbox.shared().clone());
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        outbox.push_frame(Bytes::from(big.clone())).unwrap();
        let out = drain(&mut body);
        assert_eq!(&out[..2], &[0x81, 127]);
        assert_eq!(u64::from_be_bytes(out[2..10].try_into().unwrap()), 70_000);
        assert_eq!(&out[10..], &big[..]);
        let medium = vec![b'y'; 300];
        outbox.push_frame(Bytes::from(medium)).unwrap();
        let out = drain(&mut body);
        assert_eq!(&out[..4], &[0x81, 126, 1, 44]);
    }

    #[test]
    fn a_spliced_frame_is_one_frame_and_shares_its_large_part() {
        let outbox = Outbox::new(1 << 20);
        let mut body = OutboxBody::new(outbox.shared().clone());
        let shared: Bytes = (0..20_000u32)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into();
        outbox.push_frame(Bytes::from_static(b"a")).unwrap();
        let parts = [
            Bytes::from_static(b"[head,"),
            shared.clone(),
            Bytes::from_static(b"]"),
        ];
        outbox.push_exempt_spliced(parts).unwrap();
        outbox.push_frame(Bytes::from_static(b"z")).unwrap();
        let out = drain(&mut body);
        assert_eq!(&out[..3], b"\x81\x01a");
        let len = 6 + 20_000 + 1;
        assert_eq!(&out[3..5], &[0x81, 126]);
        assert_eq!(usize::from(u16::from_be_bytes([out[5], out[6]])), len);
        let payload = &out[7..7 + len];
        assert_eq!(&payload[..6], b"[head,");
        assert_eq!(&payload[6..6 + 20_000], &shared[..]);
        assert_eq!(payload[len - 1], b']');
        assert_eq!(
            &out[7 + len..],
            b"\x81\x01z",
            "the next frame follows whole"
        );
    }

    #[test]
    fn close_comes_after_the_queued_frames_and_ends_the_body() {
        let outbox = Outbox::new(1 << 20);
        let mut body = OutboxBody::new(outbox.shared().clone());
        outbox.push_frame(Bytes::from_static(b"x")).unwrap();
        outbox.close(Close {
            code: CloseCode::Away,
            reason: "bye".into(),
        });
        assert_eq!(drain(&mut body), b"\x81\x01x\x88\x05\x03\xe9bye");
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(body.poll_next_unpin(&mut cx), Poll::Ready(None)));
    }
}
