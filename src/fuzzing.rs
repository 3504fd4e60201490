//! Entry points for the coverage-guided fuzz targets in `fuzz/` (cargo feature `fuzzing`, off
//! by default; run them with `scripts/fuzz`). Each feeds untrusted bytes to a decoder the way
//! the server does. None may panic, whatever the bytes: a panic is a bug, and each one found
//! becomes a regression test.

use serde_json::{Map, Value};

use crate::{
    commander::token::Keys,
    presence::tracker::{Gossip, ReplicaId, Tracker},
    pubsub::BusIdentity,
    transport::{
        Frame,
        assembler::{Assembler, Message},
    },
};

/// Bytes a WebSocket client sends: frames decoded, fragments assembled, limits applied,
/// text decoded as a Phoenix frame. The first byte chooses how the stream is cut into reads.
pub fn ws_frames(data: &[u8]) {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let mut assembler = Assembler::new(4096);
    for chunk in data.chunks(usize::from(cut).max(1)) {
        assembler.feed(chunk);
        loop {
            match assembler.next_message() {
                Ok(Some(Message::Text(text))) => {
                    if let Ok(text) = std::str::from_utf8(&text) {
                        let _ = Frame::decode(text);
                    }
                }
                Ok(Some(Message::Ping(_))) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// A text frame's payload decoded as a Phoenix V2 frame.
pub fn phoenix_frame(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(frame) = Frame::decode(text) {
            // Bounded strings survive a round trip.
            let bytes = crate::transport::frame::encode(
                frame.join_ref.as_deref(),
                frame.msg_ref.as_deref(),
                &frame.topic,
                &frame.event,
                &frame.payload,
            );
            let again = std::str::from_utf8(&bytes).map(Frame::decode);
            assert!(matches!(again, Ok(Ok(_))), "an encoded frame must decode");
        }
    }
}

/// A page channel's join and event payloads.
pub fn page_payload(data: &[u8]) {
    crate::commander::decode_payloads(data);
}

/// A page channel's join payload run through every check of a join: the page token, the
/// browser id, the store, the topics, the live regions and the presence lists, against a
/// commander `lab` whose tokens (secret `"f" × 64`) stay valid for a century, so a seed made
/// with them reaches every check.
pub fn page_join(data: &[u8]) {
    let _ = crate::commander::admit_join_payload(data);
}

/// A token as a browser sends it back: verified and decrypted for every purpose.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(keys) = Keys::from_secret(&"f".repeat(64)) else {
        return;
    };
    for purpose in ["page", "browser", "topics"] {
        let _ = keys.verify::<Value>(purpose, text, 1_000_000, Some(86_400));
    }
    let _ = keys.decrypt::<Map<String, Value>>("store", text, 1_000_000, None);
}

/// A message from the Redis bus: the envelope checked, then its payload decoded as presence
/// gossip and applied to a replica that tracks something.
pub fn bus(data: &[u8]) {
    let bus = BusIdentity::derive(&[3; 64], Some("fuzz"));
    let payload = crate::pubsub::fuzz_envelope(&bus, data);
    let Ok(gossip) = Gossip::decode(payload.as_deref().unwrap_or(data)) else {
        return;
    };
    let mut tracker = Tracker::new(
        ReplicaId {
            name: "me#0".into(),
            incarnation: 1,
        },
        &crate::config::PresenceConfig {
            broadcast_period_ms: 50,
            down_period_ms: 1_000,
            permdown_period_ms: 10_000,
            ..Default::default()
        },
    );
    let _ = tracker.track("room:a", 1, "k", Map::new());
    for now in [0, 5_000, 50_000] {
        let _ = tracker.receive(gossip.clone(), now);
        let _ = tracker.tick(now);
    }
    let _ = tracker.untrack_owner(1, None);
    let _ = tracker.heartbeat();
}
