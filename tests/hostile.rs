//! Hostile clients below the Phoenix protocol, against the real `presence_chat` process:
//! each must cost at most bounded memory or its own connection, never anyone else's.
//!
//! - a client that floods pings and never reads keeps the server's memory bounded;
//! - a frame header that declares more than the size limit is refused with 1009 before its
//!   payload is read (also for a fragmented message);
//! - a client that stops reading while its topic is busy has its socket released within
//!   the write timeout;
//! - a client that sends faster than it reads is slowed down, not cut, and none of its
//!   pushes are lost: every bystander receives every shout.
//!
//! The tests that measure memory or time, or push megabytes, take `support::serial`'s lock.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    Client,
    example::{ConfigFile, Example},
    raw::{self, OP_PING, OP_TEXT},
    reply,
};
use tokio::io::AsyncWriteExt;

const WRITE_TIMEOUT_MS: u64 = 1500;

/// A config file setting a short write timeout; kept as long as the example runs.
fn write_timeout_config() -> ConfigFile {
    ConfigFile::new(&format!(
        "[endpoint]\nwrite_timeout_ms = {WRITE_TIMEOUT_MS}\n"
    ))
}

/// Sends a join of `room:lobby` on a raw connection (the reply is read, or not, by the test).
async fn join_lobby(stream: &mut tokio::net::TcpStream) {
    let join = raw::frame(OP_TEXT, br#"["1","1","room:lobby","phx_join",{}]"#);
    stream.write_all(&join).await.unwrap();
}

fn socket_path(user: &str) -> String {
    format!("/socket/websocket?vsn=2.0.0&user_id={user}")
}

fn ws_url(port: u16, user: &str) -> String {
    format!("ws://127.0.0.1:{port}{}", socket_path(user))
}

#[tokio::test]
async fn a_ping_flood_from_a_client_that_never_reads_keeps_memory_bounded() {
    let _serial = support::serial::serial();
    let example = Example::start("presence_chat", &[]);
    // A small receive buffer, so that unread pongs back up into the server quickly.
    let mut flood = raw::connect_with(example.port, &socket_path("flood"), Some(4096)).await;
    let mut bystander = Client::connect(&ws_url(example.port, "bystander")).await;
    let before = raw::rss_kib(example.pid());
    // 4,000,000 empty pings (24 MB) in batches; the client never reads a byte.
    let batch = raw::frame(OP_PING, b"").repeat(100_000);
    let started = Instant::now();
    let mut peak = before;
    for _ in 0..40 {
        let written = tokio::time::timeout(Duration::from_secs(5), flood.write_all(&batch)).await;
        peak = peak.max(raw::rss_kib(example.pid()));
        // Closed, or the server stopped reading us (TCP pushes back): either is fine.
        if !matches!(written, Ok(Ok(()))) || started.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    // Whatever the server still has to read is at most a few socket buffers.
    for _ in 0..20 {
        peak = peak.max(raw::rss_kib(example.pid()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let growth_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "ping flood: {before} KiB before, {peak} KiB peak, {:?}",
        started.elapsed()
    );
    assert!(
        growth_mib < 16,
        "server RSS grew by {growth_mib} MiB under a ping flood ({before} KiB before, {peak} KiB peak)"
    );
    assert!(bystander.sync().await.is_empty());
}

#[tokio::test]
async fn a_header_declaring_more_than_the_limit_is_refused_before_its_payload() {
    let example = Example::start("presence_chat", &[]);
    let mut liar = raw::connect(example.port, &socket_path("liar")).await;
    let sent = Instant::now();
    liar.write_all(&raw::header(true, OP_TEXT, 1 << 40))
        .await
        .unwrap();
    liar.write_all(&[b'x'; 4096]).await.unwrap();
    let frame = raw::read_frame(&mut liar, Duration::from_secs(3))
        .await
        .expect("no close frame within 3 s of a 2^40-byte header");
    assert_eq!(frame.close_code(), Some(1009), "{frame:?}");
    eprintln!(
        "2^40-byte header: closed with 1009 after {:?}",
        sent.elapsed()
    );

    // A fragmented message: the second fragment's header alone pushes the total over 1 MiB.
    let mut fragments = raw::connect(example.port, &socket_path("fragments")).await;
    let first = 600 * 1024;
    let mut bytes = raw::header(false, OP_TEXT, first as u64);
    bytes.extend(std::iter::repeat_n(b'x', first));
    bytes.extend(raw::header(true, 0x0, first as u64));
    fragments.write_all(&bytes).await.unwrap();
    let frame = raw::read_frame(&mut fragments, Duration::from_secs(3))
        .await
        .expect("no close frame within 3 s of a fragment header over the limit");
    assert_eq!(frame.close_code(), Some(1009), "{frame:?}");

    let mut bystander = Client::connect(&ws_url(example.port, "bystander")).await;
    assert!(bystander.sync().await.is_empty());
}

#[tokio::test]
async fn a_client_that_stops_reading_has_its_socket_released_within_the_write_timeout() {
    let _serial = support::serial::serial();
    let config = write_timeout_config();
    let example = Example::start("presence_chat", &[("TETHER_CONFIG", config.path())]);
    let mut stalled = raw::connect(example.port, &socket_path("stalled")).await;
    let stalled_port = stalled.local_addr().unwrap().port();
    join_lobby(&mut stalled).await;
    let mut sender = Client::connect(&ws_url(example.port, "sender")).await;
    let (join_ref, frame) = sender.join("room:lobby", json!({})).await;
    reply(&frame, "ok");
    // 20 MB of shouts, more than every buffer between the server and the stalled client
    // (its outbox, the server's socket send buffer, the client's receive buffer).
    let body = "s".repeat(100 * 1024);
    let flood = Instant::now();
    for n in 0..200 {
        sender
            .send(
                Some(&join_ref),
                &n.to_string(),
                "room:lobby",
                "shout",
                json!({"n": n, "body": body}),
            )
            .await;
        let echo = sender.recv_until(|f| f[3] == "shout").await;
        assert_eq!(echo[4]["n"], n);
    }
    let flooded = Instant::now();
    let allowed = Duration::from_millis(WRITE_TIMEOUT_MS) + Duration::from_secs(3);
    while raw::tcp_socket_open(example.port, stalled_port) {
        assert!(
            flooded.elapsed() < allowed,
            "the server still holds the stalled client's socket {:?} after the flood",
            flooded.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "stalled reader: server socket gone {:?} after the end of a {:?} flood",
        flooded.elapsed(),
        flooded.duration_since(flood)
    );
    assert!(sender.sync().await.is_empty());
    drop(stalled);
}

// A bystander is cut as a slow consumer (as it should be) once its outbox (4 MiB) overflows,
// so the bystanders must never fall that far behind, however the machine schedules this
// test's threads. The sender is slower than the server (a pause of 1 ms every 4 frames) and
// also never reads more than `AHEAD` echoes past the slower bystander: a starved bystander
// stops the sender's reading, the server stops reading the sender (that is what is under
// test), and little more is pushed at the bystander meanwhile. Every client has the same
// fixed receive buffer: Linux grows the buffer of a socket that is read (here up to 32 MB),
// and a sender whose kernel buffers took megabytes of echoes that a starved bystander's did
// not would let the server accept that much more (seen: a bystander cut after reading 672
// shouts in its first second). The bystanders thus hold at most the sender's own backlog
// (the server pauses it at half its outbox limit) plus `AHEAD` frames, on a busy machine as
// on an idle one; no assertion depends on how fast anything ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_sends_faster_than_it_reads_is_slowed_and_loses_nothing() {
    // 10 MB of shouts: more than twice the outbox limit, so a server that did not slow the
    // sender down would have to cut it.
    const SHOUTS: usize = 10_000;
    // Echoes the sender may read past the slower bystander (about 200 KB).
    const AHEAD: usize = 200;
    // Every client's receive buffer (the kernel doubles it).
    const RECV_BUFFER: u32 = 128 * 1024;
    let _serial = support::serial::serial();
    let example = Example::start("presence_chat", &[]);
    // Two bystanders that read every frame as it comes and count the shouts.
    let mut bystanders = Vec::new();
    let mut progress = Vec::new();
    for name in ["b1", "b2"] {
        let mut stream =
            raw::connect_with(example.port, &socket_path(name), Some(RECV_BUFFER)).await;
        join_lobby(&mut stream).await;
        let (counted, seen) = tokio::sync::watch::channel(0);
        progress.push(seen);
        bystanders.push(tokio::spawn(count(stream, SHOUTS, Pace::Free(counted))));
    }
    let mut sender =
        raw::connect_with(example.port, &socket_path("sender"), Some(RECV_BUFFER)).await;
    join_lobby(&mut sender).await;
    // Wait for the sender's join reply before shouting.
    loop {
        let frame = raw::read_frame(&mut sender, support::WAIT)
            .await
            .expect("no join reply");
        if frame.payload.windows(11).any(|w| w == b"\"phx_reply\"") {
            break;
        }
    }
    let (reader, mut writer) = sender.into_split();
    // The sender reads everything, more slowly than the server can echo, and never more than
    // AHEAD frames past the slower bystander.
    let own = tokio::spawn(count(reader, SHOUTS, Pace::Behind(progress, AHEAD)));
    // 10,000 shouts of 1 KB in one write.
    let body = "b".repeat(1000);
    let mut all = Vec::new();
    for n in 0..SHOUTS {
        let text = format!(r#"["1","{n}","room:lobby","shout",{{"n":{n},"body":"{body}"}}]"#);
        all.extend(raw::frame(OP_TEXT, text.as_bytes()));
    }
    tokio::time::timeout(READING, writer.write_all(&all))
        .await
        .expect("the server did not take 10 MB within the reading deadline")
        .expect("the sender was cut while writing");
    let own = own.await.unwrap();
    assert_eq!(
        own.shouts, SHOUTS,
        "the sender lost its own echoes: reading ended by {}",
        own.ended_by
    );
    for bystander in bystanders {
        let counted = bystander.await.unwrap();
        assert_eq!(
            counted.shouts, SHOUTS,
            "a bystander lost shouts: reading ended by {}",
            counted.ended_by
        );
    }
    eprintln!("fast sender: {SHOUTS} of {SHOUTS} shouts reached the sender and both bystanders");
}

/// How long a reader may take for all its shouts (bounded; generous for a busy machine: the
/// idle figure is about 5 s, set by the sender's pauses).
const READING: Duration = Duration::from_secs(180);

/// How a reader of [`count`] reads.
enum Pace {
    /// As fast as it can, publishing its count of shouts.
    Free(tokio::sync::watch::Sender<usize>),
    /// A pause of 1 ms every 4 frames (at most 2,500 frames a second), and never more than
    /// `.1` shouts past the slowest of the given counts.
    Behind(Vec<tokio::sync::watch::Receiver<usize>>, usize),
}

/// Shouts counted by a reader, and what ended the reading.
struct Counted {
    shouts: usize,
    ended_by: String,
}

/// Reads frames until `expected` shouts were seen, the stream ends, or [`READING`] passes
/// (bounded); returns how many shouts arrived and, if not all, why the reading stopped.
async fn count(
    mut stream: impl tokio::io::AsyncReadExt + Unpin,
    expected: usize,
    mut pace: Pace,
) -> Counted {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + READING;
    let mut shouts = 0;
    let ended_by = loop {
        if shouts == expected {
            break "all read".to_string();
        }
        if let Pace::Behind(others, ahead) = &mut pace {
            for other in others.iter_mut() {
                let caught_up = other.wait_for(|&n| n + *ahead > shouts || n == expected);
                match tokio::time::timeout_at(deadline, caught_up).await {
                    Ok(Ok(_)) => {}
                    // A bystander ended (its own count says why): read on, so that this
                    // reader's count is its own.
                    Ok(Err(_)) => {}
                    Err(_) => break,
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            break format!("the {READING:?} deadline");
        }
        let Some(frame) = raw::read_frame(&mut stream, Duration::from_secs(30)).await else {
            break "no frame for 30 s, or the stream ended".to_string();
        };
        if frame.opcode == raw::OP_CLOSE {
            break format!(
                "a close frame {:?}",
                String::from_utf8_lossy(&frame.payload)
            );
        }
        if frame.payload.windows(8).any(|w| w == b"\"shout\",") {
            shouts += 1;
            match &pace {
                Pace::Free(counted) => {
                    counted.send_replace(shouts);
                }
                Pace::Behind(..) if shouts % 4 == 0 => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Pace::Behind(..) => {}
            }
        }
    };
    Counted {
        shouts,
        ended_by: format!("{ended_by}, after {:?}", started.elapsed()),
    }
}
