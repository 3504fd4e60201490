//! Phoenix Channels V2 JSON frames: `[join_ref, ref, topic, event, payload]`.
//!
//! Decoding is strict about shape (a 5-element array; refs are strings or null; topic and
//! event are strings) and lenient about the payload (any JSON value, as Phoenix accepts).
//! Client-chosen strings are bounded: a topic or event over [`MAX_NAME_BYTES`] or a ref over
//! [`MAX_REF_BYTES`] makes the frame malformed (the connection closes with 1007).
//! Encoding writes the same shape; replies carry `{"status": …, "response": …}`. A payload
//! encoded once for many frames (a `presence_state` for several joiners) is passed as a
//! `serde_json::value::RawValue`, which is spliced in as it is.
//! This module is pure: no I/O, no knowledge of channels.
//!
//! ```
//! use tether::transport::frame::{Frame, encode};
//! let frame = Frame::decode(r#"["1","2","room:lobby","shout",{"body":"hi"}]"#).unwrap();
//! assert_eq!(frame.topic, "room:lobby");
//! let bytes = encode(None, None, "room:lobby", "shout", &frame.payload);
//! assert_eq!(&bytes[..], br#"[null,null,"room:lobby","shout",{"body":"hi"}]"#);
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde_json::Value;

/// Events of the protocol itself.
pub mod events {
    /// Client asks to join a topic.
    pub const JOIN: &str = "phx_join";
    /// Client leaves a topic.
    pub const LEAVE: &str = "phx_leave";
    /// Reply to a client push.
    pub const REPLY: &str = "phx_reply";
    /// Server closed a channel gracefully.
    pub const CLOSE: &str = "phx_close";
    /// A channel crashed; the client should rejoin.
    pub const ERROR: &str = "phx_error";
    /// Socket-level keepalive, on topic [`HEARTBEAT_TOPIC`].
    pub const HEARTBEAT: &str = "heartbeat";
    /// The topic heartbeats travel on.
    pub const HEARTBEAT_TOPIC: &str = "phoenix";
}

/// One decoded client frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The join reference of the channel the frame belongs to.
    pub join_ref: Option<String>,
    /// The frame's own reference, echoed in the reply.
    pub msg_ref: Option<String>,
    /// Topic, e.g. `room:lobby`.
    pub topic: String,
    /// Event, e.g. `phx_join` or an application event.
    pub event: String,
    /// Any JSON value (normally an object).
    pub payload: Value,
}

/// Longest topic or event name a client may send, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// Longest `join_ref` or `ref` a client may send, in bytes.
pub const MAX_REF_BYTES: usize = 64;

/// Why a text frame could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed frame: {0}")]
pub struct FrameError(String);

impl Frame {
    /// Decodes one text frame.
    pub fn decode(text: &str) -> Result<Frame, FrameError> {
        type Wire = (Option<String>, Option<String>, String, String, Value);
        let (join_ref, msg_ref, topic, event, payload): Wire =
            serde_json::from_str(text).map_err(|err| FrameError(shorten(&err.to_string())))?;
        let too_long = |what: &str, len: usize, max: usize| {
            (len > max).then(|| FrameError(format!("{what} longer than {max} bytes")))
        };
        let refs = [("join_ref", &join_ref), ("ref", &msg_ref)];
        let checks = refs
            .iter()
            .filter_map(|(what, r)| r.as_ref().map(|r| (*what, r.len(), MAX_REF_BYTES)))
            .chain([
                ("topic", topic.len(), MAX_NAME_BYTES),
                ("event", event.len(), MAX_NAME_BYTES),
            ]);
        for (what, len, max) in checks {
            if let Some(err) = too_long(what, len, max) {
                return Err(err);
            }
        }
        Ok(Frame {
            join_ref,
            msg_ref,
            topic,
            event,
            payload,
        })
    }
}

fn shorten(reason: &str) -> String {
    // Close reasons must fit in a control frame (123 bytes) together with the prefix.
    crate::text::truncate_utf8(reason, 90).to_string()
}

/// Status of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// `"ok"`
    Ok,
    /// `"error"`
    Error,
}

#[derive(Serialize)]
struct ReplyPayload<'a, T: Serialize + ?Sized> {
    status: Status,
    response: &'a T,
}

/// Encodes a frame. The payload is serialized straight into the output buffer.
pub fn encode<T: Serialize + ?Sized>(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
    payload: &T,
) -> Bytes {
    let mut out = BytesMut::with_capacity(48 + topic.len() + event.len()).writer();
    // Serializing strings, options and a `Serialize` payload into memory cannot fail unless
    // the payload's own `Serialize` impl fails (e.g. a map with non-string keys).
    if let Err(err) = serde_json::to_writer(&mut out, &(join_ref, msg_ref, topic, event, payload)) {
        tracing::error!(%topic, %event, "payload could not be serialized: {err}");
        return encode(join_ref, msg_ref, topic, event, &serde_json::json!({}));
    }
    out.into_inner().freeze()
}

/// The head of a frame whose payload is spliced in after it (the payload, already JSON, is
/// shared by many frames): `[join_ref,msg_ref,"topic","event",` — the frame is head, payload,
/// then [`FRAME_TAIL`].
///
/// ```
/// use tether::transport::frame::{FRAME_TAIL, encode_head};
/// let head = encode_head(Some("3"), None, "room:1", "presence_state");
/// let frame = [&head[..], br#"{"a":1}"#, FRAME_TAIL].concat();
/// assert_eq!(frame, br#"["3",null,"room:1","presence_state",{"a":1}]"#);
/// ```
pub fn encode_head(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    event: &str,
) -> Bytes {
    let whole = encode(join_ref, msg_ref, topic, event, &0);
    // `…,"event",0]`: drop the placeholder and the closing bracket.
    whole.slice(..whole.len() - 2)
}

/// What closes a frame begun by [`encode_head`].
pub const FRAME_TAIL: &[u8] = b"]";

/// Encodes a broadcast: V2 broadcasts carry no refs, so the bytes are the same for every
/// subscriber and are encoded once.
///
/// ```
/// use tether::transport::frame::encode_broadcast;
/// let bytes = encode_broadcast("room:lobby", "shout", &serde_json::json!({"body": "hi"}));
/// assert_eq!(&bytes[..], br#"[null,null,"room:lobby","shout",{"body":"hi"}]"#);
/// ```
pub fn encode_broadcast<T: Serialize + ?Sized>(topic: &str, event: &str, payload: &T) -> Bytes {
    encode(None, None, topic, event, payload)
}

/// Encodes a `phx_reply` to the frame with `join_ref`/`msg_ref` on `topic`.
pub fn encode_reply<T: Serialize + ?Sized>(
    join_ref: Option<&str>,
    msg_ref: Option<&str>,
    topic: &str,
    status: Status,
    response: &T,
) -> Bytes {
    let payload = ReplyPayload { status, response };
    encode(join_ref, msg_ref, topic, events::REPLY, &payload)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn decodes_the_five_fields() {
        let frame = Frame::decode(r#"[null,"4","phoenix","heartbeat",{}]"#).unwrap();
        assert_eq!(frame.join_ref, None);
        assert_eq!(frame.msg_ref.as_deref(), Some("4"));
        assert_eq!(frame.event, "heartbeat");
        assert_eq!(frame.payload, json!({}));
    }

    #[test]
    fn rejects_every_wrong_shape() {
        for bad in [
            r#"[null,"1","room:lobby","phx_join",{"#,
            r#"{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1"}"#,
            r#"[null,"1","phoenix","heartbeat"]"#,
            r#"[null,"1","phoenix","heartbeat",{},6]"#,
            r#"[null,1,"phoenix","heartbeat",{}]"#,
            r#"[null,"1",7,"heartbeat",{}]"#,
            r#""just a string""#,
            "",
        ] {
            let err = Frame::decode(bad).unwrap_err();
            assert!(
                err.to_string().len() <= 110,
                "reason too long for a close frame"
            );
        }
    }

    #[test]
    fn client_strings_are_bounded() {
        let frame = |join_ref: &str, topic: &str, event: &str| {
            json!([join_ref, "1", topic, event, {}]).to_string()
        };
        let ok = Frame::decode(&frame(&"r".repeat(64), &"t".repeat(255), &"e".repeat(255)));
        assert!(ok.is_ok());
        for bad in [
            frame(&"r".repeat(65), "t", "e"),
            frame("r", &"t".repeat(256), "e"),
            frame("r", "t", &"e".repeat(256)),
            json!([null, "9".repeat(65), "t", "e", {}]).to_string(),
        ] {
            assert!(Frame::decode(&bad).is_err(), "accepted {}", &bad[..40]);
        }
    }

    #[test]
    fn encodes_replies_like_phoenix() {
        let reply = encode_reply(
            Some("3"),
            Some("6"),
            "room:lobby",
            Status::Error,
            &json!({"reason": "unmatched topic"}),
        );
        assert_eq!(
            std::str::from_utf8(&reply).unwrap(),
            r#"["3","6","room:lobby","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]"#
        );
    }

    #[test]
    fn pre_encoded_payloads_are_spliced_in_as_raw_values() {
        let raw = serde_json::value::RawValue::from_string(r#"{"a":{"metas":[]}}"#.into()).unwrap();
        let bytes = encode(Some("7"), None, "room:\"x", "presence_state", &raw);
        let frame = Frame::decode(std::str::from_utf8(&bytes).unwrap()).unwrap();
        assert_eq!(frame.join_ref.as_deref(), Some("7"));
        assert_eq!(frame.topic, "room:\"x");
        assert_eq!(frame.payload, json!({"a": {"metas": []}}));
    }

    #[test]
    fn escapes_strings() {
        let bytes = encode(None, None, "t\"", "e", &json!({"a": "</script>\n"}));
        let back = Frame::decode(std::str::from_utf8(&bytes).unwrap()).unwrap();
        assert_eq!(back.topic, "t\"");
        assert_eq!(back.payload["a"], "</script>\n");
    }
}
