//! The authenticated envelope every message between nodes travels in, and the name of the
//! channel nodes meet on: both derived from the app's secret (see [`BusIdentity`]).
//!
//! Envelope (version 2): `[2][mac: 32][instance: u64][counter: u64][sent: u64][u16 node
//! len][node][u16 topic len][topic][payload]`, the MAC (HMAC-SHA256) taken over the version
//! byte and everything after the MAC. `instance` is random per process start, `counter`
//! numbers that process's envelopes from 1 in the order it publishes them, `sent` is the
//! sender's clock (ms since the Unix epoch) when it sealed the envelope.
//!
//! # Replays
//!
//! Anyone who can `PUBLISH` on the Redis server can copy a genuine envelope and publish it
//! again. [`ReplayGuard`] refuses, for each receiving process:
//! - an envelope sent more than the replay window (`pubsub.replay_window_ms`, 60 s) ago, or
//!   dated more than the window ahead, by the receiver's clock (so node clocks must agree to
//!   well within the window);
//! - an envelope whose counter is not above the highest seen from its (node, instance):
//!   within the window every envelope is accepted at most once, and in order.
//!
//! The state is bounded: at most [`MAX_SENDERS`] sending processes are remembered, and a
//! sender is forgotten once its latest envelope is older than the window (its earlier ones
//! are then refused by age). What is left: a receiver that just started accepts, once, a
//! genuine envelope up to a window old that it never saw (it has no counter to compare
//! with yet); presence gossip refuses older incarnations on its own (see the tracker).
//!
//! Pure: no I/O, no clock (times are passed in); it must never decide what a verified
//! message means.

// Without the Redis adapter only the channel name is used (and the fuzz target's envelope).
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use hmac::Mac;

use crate::mac::mac;

/// The envelope format this node writes and reads.
const VERSION: u8 = 2;

/// Bytes of an envelope besides its node name, topic and payload.
pub(crate) const ENVELOPE_OVERHEAD: usize = 1 + MAC_LEN + 3 * 8 + 2 + 2;

/// Sending processes a [`ReplayGuard`] remembers, at most.
pub(crate) const MAX_SENDERS: usize = 1024;

const MAC_LEN: usize = 32;

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

    /// Seals `[instance][counter][sent][node][topic][payload]` into an envelope; `None` if
    /// the node or topic name is longer than 65,535 bytes.
    pub(crate) fn seal(
        &self,
        stamp: Stamp,
        node: &str,
        topic: &str,
        payload: &[u8],
    ) -> Option<Bytes> {
        let node_len = u16::try_from(node.len()).ok()?;
        let topic_len = u16::try_from(topic.len()).ok()?;
        let mut body = BytesMut::with_capacity(28 + node.len() + topic.len() + payload.len());
        body.put_u64(stamp.instance);
        body.put_u64(stamp.counter);
        body.put_u64(stamp.sent);
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
        let (instance, rest) = take_u64(body).ok_or(Rejected::Malformed)?;
        let (counter, rest) = take_u64(rest).ok_or(Rejected::Malformed)?;
        let (sent, rest) = take_u64(rest).ok_or(Rejected::Malformed)?;
        let (node, rest) = take_str(rest).ok_or(Rejected::Malformed)?;
        let (topic, payload) = take_str(rest).ok_or(Rejected::Malformed)?;
        Ok(Opened {
            stamp: Stamp {
                instance,
                counter,
                sent,
            },
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
    let stamp = Stamp {
        instance: 7,
        counter: 1,
        sent: 0,
    };
    let sealed = bus.seal(stamp, &node, "tether:presence:0", payload)?;
    let opened = bus.open(&sealed).ok()?;
    Some(opened.payload.to_vec())
}

/// A big-endian u64 at the start of `bytes`, and the rest.
fn take_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = bytes.split_at_checked(8)?;
    Some((u64::from_be_bytes(head.try_into().ok()?), rest))
}

/// A `[u16 len][utf-8]` string at the start of `bytes`, and the rest.
fn take_str(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let len = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
    let text = std::str::from_utf8(bytes.get(2..2 + len)?).ok()?;
    Some((text, &bytes[2 + len..]))
}

/// Who sealed an envelope and when: the process (`instance`, random per start), its
/// envelope number (`counter`, from 1, in publishing order) and its clock (`sent`, ms since
/// the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) instance: u64,
    pub(crate) counter: u64,
    pub(crate) sent: u64,
}

/// A verified envelope.
#[derive(Debug, PartialEq)]
pub(crate) struct Opened<'a> {
    pub(crate) stamp: Stamp,
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
    /// Sent longer than the replay window ago, or dated too far ahead.
    Stale,
    /// Its counter is not above the last one seen from its sender.
    Replayed,
}

/// Refuses replayed and stale envelopes (see the module docs). One per receiving process.
#[derive(Debug)]
pub(crate) struct ReplayGuard {
    window_ms: u64,
    /// (node, instance) -> (highest counter, its `sent`).
    senders: HashMap<(String, u64), (u64, u64)>,
}

impl ReplayGuard {
    pub(crate) fn new(window_ms: u64) -> ReplayGuard {
        ReplayGuard {
            window_ms,
            senders: HashMap::new(),
        }
    }

    /// Accepts `opened` at `now` (the receiver's clock, ms since the Unix epoch) and
    /// remembers its counter, or says why not.
    pub(crate) fn check(&mut self, opened: &Opened<'_>, now: u64) -> Result<(), Rejected> {
        let Stamp {
            instance,
            counter,
            sent,
        } = opened.stamp;
        if sent.saturating_add(self.window_ms) < now || sent > now.saturating_add(self.window_ms) {
            return Err(Rejected::Stale);
        }
        let key = (opened.node.to_string(), instance);
        if let Some((highest, _)) = self.senders.get(&key) {
            if counter <= *highest {
                return Err(Rejected::Replayed);
            }
        } else if self.senders.len() >= MAX_SENDERS {
            let window = self.window_ms;
            self.senders
                .retain(|_, (_, sent)| sent.saturating_add(window) >= now);
            if self.senders.len() >= MAX_SENDERS {
                // Every remembered sender is recent (a cluster of more than MAX_SENDERS
                // processes within a window): the one heard from longest ago goes.
                let oldest = self
                    .senders
                    .iter()
                    .min_by_key(|(_, (_, sent))| *sent)
                    .map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    self.senders.remove(&oldest);
                }
            }
        }
        self.senders.insert(key, (counter, sent));
        Ok(())
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.senders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_reject_garbage_forgery_and_other_versions() {
        let bus = BusIdentity::derive(&[7; 64], None);
        let bytes = bus
            .seal(stamp(9, 1, 5), "node-a", "room:lobby", b"[1,2]")
            .unwrap();
        assert_eq!(
            bus.open(&bytes),
            Ok(Opened {
                stamp: stamp(9, 1, 5),
                node: "node-a",
                topic: "room:lobby",
                payload: b"[1,2]",
            })
        );
        assert_eq!(bus.open(b""), Err(Rejected::Malformed));
        assert_eq!(bus.open(&[2, 0, 9]), Err(Rejected::Malformed));
        assert_eq!(bus.open(&[3; 80]), Err(Rejected::Version(3)));
        // Version 1 (no counter, no time) is no longer accepted.
        assert_eq!(bus.open(&[1; 80]), Err(Rejected::Version(1)));
        // Any changed byte after the MAC is a forgery (instance, counter, time included).
        for at in [1, 33, 41, 49, 57, 61, bytes.len() - 1] {
            let mut forged = bytes.to_vec();
            forged[at] ^= 1;
            assert_eq!(bus.open(&forged), Err(Rejected::Forged), "byte {at}");
        }
        // Another secret's envelope is a forgery too.
        let other = BusIdentity::derive(&[8; 64], Some(bus.channel()));
        assert_eq!(other.open(&bytes), Err(Rejected::Forged));
        assert!(
            bus.seal(stamp(1, 1, 1), &"n".repeat(70_000), "t", b"")
                .is_none()
        );
        assert_eq!(
            bytes.len(),
            ENVELOPE_OVERHEAD + "node-a".len() + "room:lobby".len() + 5
        );
    }

    fn stamp(instance: u64, counter: u64, sent: u64) -> Stamp {
        Stamp {
            instance,
            counter,
            sent,
        }
    }

    fn opened(node: &str, stamp: Stamp) -> Opened<'_> {
        Opened {
            stamp,
            node,
            topic: "t",
            payload: b"",
        }
    }

    #[test]
    fn replays_and_stale_envelopes_are_refused() {
        let mut guard = ReplayGuard::new(1_000);
        let now = 1_000_000;
        assert_eq!(guard.check(&opened("a", stamp(1, 1, now)), now), Ok(()));
        assert_eq!(guard.check(&opened("a", stamp(1, 2, now)), now), Ok(()));
        // The same envelope again, or an earlier one: refused.
        for counter in [1, 2] {
            assert_eq!(
                guard.check(&opened("a", stamp(1, counter, now)), now + 10),
                Err(Rejected::Replayed)
            );
        }
        // Counters may skip (lost messages), never go back.
        assert_eq!(guard.check(&opened("a", stamp(1, 9, now)), now), Ok(()));
        assert_eq!(
            guard.check(&opened("a", stamp(1, 5, now)), now),
            Err(Rejected::Replayed)
        );
        // Another process (instance), or another node, has its own counter.
        assert_eq!(guard.check(&opened("a", stamp(2, 1, now)), now), Ok(()));
        assert_eq!(guard.check(&opened("b", stamp(1, 1, now)), now), Ok(()));
        // Outside the window, whatever the counter: refused.
        assert_eq!(
            guard.check(&opened("c", stamp(3, 1, now - 1_001)), now),
            Err(Rejected::Stale)
        );
        assert_eq!(
            guard.check(&opened("c", stamp(3, 1, now + 1_001)), now),
            Err(Rejected::Stale)
        );
        assert_eq!(
            guard.check(&opened("c", stamp(3, 1, now - 1_000)), now),
            Ok(())
        );
    }

    #[test]
    fn the_guard_remembers_a_bounded_number_of_senders() {
        let mut guard = ReplayGuard::new(1_000);
        for instance in 0..MAX_SENDERS as u64 {
            assert_eq!(guard.check(&opened("a", stamp(instance, 1, 0)), 0), Ok(()));
        }
        assert_eq!(guard.remembered(), MAX_SENDERS);
        // Once they are older than the window, a new sender makes room by dropping them
        // (their envelopes are refused by age anyway).
        let later = 2_000;
        assert_eq!(
            guard.check(&opened("a", stamp(0, 1, 0)), later),
            Err(Rejected::Stale)
        );
        assert_eq!(guard.check(&opened("b", stamp(1, 1, later)), later), Ok(()));
        assert_eq!(guard.remembered(), 1);
        // All recent: the oldest goes, the count stays bounded.
        for instance in 0..2 * MAX_SENDERS as u64 {
            let _ = guard.check(&opened("c", stamp(instance, 1, later + instance)), later);
        }
        assert!(guard.remembered() <= MAX_SENDERS);
    }
}
