//! The authenticated envelope every message between nodes travels in, and the name of the
//! channel nodes meet on: both derived from the app's secret (see [`BusIdentity`]).
//!
//! Envelope (version 1): `[1][mac: 32][instance: u64][u16 node len][node][u16 topic len]
//! [topic][payload]`, the MAC (HMAC-SHA256) taken over the version byte and everything after
//! the MAC. Pure: no I/O; it must never decide what a verified message means.

// Without the Redis adapter only the channel name is used (and the fuzz target's envelope).
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The envelope format this node writes and reads.
const VERSION: u8 = 1;

const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `parts` under `key`.
fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Where nodes meet and how they recognise each other: the Redis channel and the envelope
/// key, both derived from the app's secret unless the channel is configured.
#[derive(Clone)]
pub struct BusIdentity {
    pub(crate) channel: String,
    key: [u8; 32],
}

impl std::fmt::Debug for BusIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusIdentity")
            .field("channel", &self.channel)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl BusIdentity {
    /// Derives the envelope key from `secret`, and the channel name too unless `channel`
    /// is given.
    ///
    /// ```
    /// use tether::pubsub::BusIdentity;
    /// let a = BusIdentity::derive(b"one secret", None);
    /// let b = BusIdentity::derive(b"another secret", None);
    /// assert!(a.channel().starts_with("tether:bus:"));
    /// assert_ne!(a.channel(), b.channel());
    /// assert_eq!(BusIdentity::derive(b"x", Some("app:bus")).channel(), "app:bus");
    /// ```
    pub fn derive(secret: &[u8], channel: Option<&str>) -> BusIdentity {
        let key: [u8; 32] = mac(secret, &[b"tether redis bus key v1"])
            .finalize()
            .into_bytes()
            .into();
        let channel = match channel {
            Some(channel) => channel.to_string(),
            None => {
                let tag = mac(secret, &[b"tether redis bus channel v1"])
                    .finalize()
                    .into_bytes();
                let hex: String = tag[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("tether:bus:{hex}")
            }
        };
        BusIdentity { channel, key }
    }

    /// The Redis channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Seals `[instance][node][topic][payload]` into an envelope; `None` if the node or
    /// topic name is longer than 65,535 bytes.
    pub(crate) fn seal(
        &self,
        instance: u64,
        node: &str,
        topic: &str,
        payload: &[u8],
    ) -> Option<Bytes> {
        let node_len = u16::try_from(node.len()).ok()?;
        let topic_len = u16::try_from(topic.len()).ok()?;
        let mut body = BytesMut::with_capacity(12 + node.len() + topic.len() + payload.len());
        body.put_u64(instance);
        body.put_u16(node_len);
        body.put_slice(node.as_bytes());
        body.put_u16(topic_len);
        body.put_slice(topic.as_bytes());
        body.put_slice(payload);
        let tag = mac(&self.key, &[&[VERSION], &body]).finalize().into_bytes();
        let mut out = BytesMut::with_capacity(1 + MAC_LEN + body.len());
        out.put_u8(VERSION);
        out.put_slice(&tag);
        out.put_slice(&body);
        Some(out.freeze())
    }

    /// Checks and splits an envelope.
    pub(crate) fn open<'a>(&self, bytes: &'a [u8]) -> Result<Opened<'a>, Rejected> {
        let (&version, rest) = bytes.split_first().ok_or(Rejected::Malformed)?;
        if version != VERSION {
            return Err(Rejected::Version(version));
        }
        let (tag, body) = rest.split_at_checked(MAC_LEN).ok_or(Rejected::Malformed)?;
        mac(&self.key, &[&[version], body])
            .verify_slice(tag)
            .map_err(|_| Rejected::Forged)?;
        let (instance, rest) = body.split_at_checked(8).ok_or(Rejected::Malformed)?;
        let instance = u64::from_be_bytes(instance.try_into().map_err(|_| Rejected::Malformed)?);
        let (node, rest) = take_str(rest).ok_or(Rejected::Malformed)?;
        let (topic, payload) = take_str(rest).ok_or(Rejected::Malformed)?;
        Ok(Opened {
            instance,
            node,
            topic,
            payload,
        })
    }
}

/// Opens `data` as an envelope from Redis, as the subscriber does, and also seals and
/// reopens it (for the fuzz targets). Returns the payload of a verified envelope.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_envelope(bus: &BusIdentity, data: &[u8]) -> Option<Vec<u8>> {
    let _ = bus.open(data);
    // Sealed under the key, the fuzz input reaches the parsing behind the MAC.
    let split = data.first().map_or(0, |n| usize::from(*n)).min(data.len());
    let (head, payload) = data.split_at(split);
    let node = String::from_utf8_lossy(head);
    let sealed = bus.seal(7, &node, "tether:presence:0", payload)?;
    let opened = bus.open(&sealed).ok()?;
    Some(opened.payload.to_vec())
}

/// A `[u16 len][utf-8]` string at the start of `bytes`, and the rest.
fn take_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let len = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
    let text = std::str::from_utf8(bytes.get(2..2 + len)?).ok()?;
    Some((text, &bytes[2 + len..]))
}

/// A verified envelope.
#[derive(Debug, PartialEq)]
pub(crate) struct Opened<'a> {
    pub(crate) instance: u64,
    pub(crate) node: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) payload: &'a [u8],
}

/// Why an envelope was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    Malformed,
    Version(u8),
    Forged,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_reject_garbage_forgery_and_other_versions() {
        let bus = BusIdentity::derive(&[7; 64], None);
        let bytes = bus.seal(9, "node-a", "room:lobby", b"[1,2]").unwrap();
        assert_eq!(
            bus.open(&bytes),
            Ok(Opened {
                instance: 9,
                node: "node-a",
                topic: "room:lobby",
                payload: b"[1,2]",
            })
        );
        assert_eq!(bus.open(b""), Err(Rejected::Malformed));
        assert_eq!(bus.open(&[1, 0, 9]), Err(Rejected::Malformed));
        assert_eq!(bus.open(&[2; 80]), Err(Rejected::Version(2)));
        // Any changed byte after the MAC is a forgery.
        for at in [1, 33, 45, bytes.len() - 1] {
            let mut forged = bytes.to_vec();
            forged[at] ^= 1;
            assert_eq!(bus.open(&forged), Err(Rejected::Forged), "byte {at}");
        }
        // Another secret's envelope is a forgery too.
        let other = BusIdentity::derive(&[8; 64], Some(bus.channel()));
        assert_eq!(other.open(&bytes), Err(Rejected::Forged));
        assert!(bus.seal(1, &"n".repeat(70_000), "t", b"").is_none());
    }
}
