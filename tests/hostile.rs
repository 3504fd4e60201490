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
        bystanders.push(tokio::spawn(count(
            stream,
            SHOUTS,
            Pace::Free(counted),
            READING,
        )));
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
    let own = tokio::spawn(count(
        reader,
        SHOUTS,
        Pace::Behind(progress, AHEAD),
        READING,
    ));
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

/// Reads as fast as it can until `expected` shouts were seen, the stream ends, or `limit`
/// passes; see [`count`].
async fn count_shouts_within(
    stream: impl tokio::io::AsyncReadExt + Unpin,
    expected: usize,
    limit: Duration,
) -> Counted {
    let (counted, _) = tokio::sync::watch::channel(0);
    count(stream, expected, Pace::Free(counted), limit).await
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
    limit: Duration,
) -> Counted {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
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
            break format!("the {limit:?} deadline");
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

/// The bound of every flood test's reading and writing: generous, for a busy machine (a
/// flood paced by readers that sleep takes 10 s on an idle one).
const FLOOD_LIMIT: Duration = Duration::from_secs(240);

/// A config file for the flood tests: client rate limits out of the way (they are not what
/// is tested), a 1 MiB outbox (high water at 512 KiB), and `write_timeout_ms`.
fn flood_config(write_timeout_ms: u64) -> ConfigFile {
    ConfigFile::new(&format!(
        "[endpoint]\nwrite_timeout_ms = {write_timeout_ms}\nmax_outbound_bytes = 1048576\n\
         event_rate = 1000000.0\nevent_burst = 1000000\n"
    ))
}

/// `count` shouts of about 1 KB, as one buffer of client frames (one write).
fn shouts(count: usize) -> Vec<u8> {
    let body = "f".repeat(1000);
    let mut all = Vec::new();
    for n in 0..count {
        let text = format!(r#"["1","{n}","room:lobby","shout",{{"n":{n},"body":"{body}"}}]"#);
        all.extend(raw::frame(OP_TEXT, text.as_bytes()));
    }
    all
}

/// Reads frames until the join reply (bounded).
async fn await_join_reply(stream: &mut tokio::net::TcpStream) {
    loop {
        let frame = raw::read_frame(stream, support::WAIT)
            .await
            .expect("no join reply");
        if frame.payload.windows(11).any(|w| w == b"\"phx_reply\"") {
            return;
        }
    }
}

/// What a reader saw: shouts, heartbeats sent and answered, and what ended its reading.
#[derive(Debug)]
struct Seen {
    shouts: usize,
    heartbeats: usize,
    answered: usize,
    ended_by: String,
}

/// A reader on a thread of its own (its own runtime, so no other client of the test can
/// starve it): joins `room:lobby`, says it is ready, then reads
/// every frame, pausing 5 ms every `pace` shouts (0: never; few long pauses rather than many
/// short ones, so that a loaded machine's scheduling latency does not multiply), sending a heartbeat every 1,000
/// shouts and after the last one, until it has `expected` shouts and every heartbeat
/// answered, or the stream ends, or nothing comes for 20 s, or [`FLOOD_LIMIT`] passes (all
/// bounded). Default socket buffers: with a 16 KiB receive buffer loopback TCP itself stalls
/// (window updates wait for zero-window probes, 200 ms and more), and a 20,000-shout flood
/// paced to such a reader took over 3 minutes.
fn reader_thread(
    port: u16,
    name: &'static str,
    expected: usize,
    pace: usize,
    ready: std::sync::mpsc::Sender<()>,
) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut stream = raw::connect(port, &socket_path(name)).await;
            join_lobby(&mut stream).await;
            await_join_reply(&mut stream).await;
            let _ = ready.send(());
            let started = Instant::now();
            let deadline = started + FLOOD_LIMIT;
            let mut seen = Seen {
                shouts: 0,
                heartbeats: 0,
                answered: 0,
                ended_by: String::new(),
            };
            let heartbeat = |n: usize| {
                raw::frame(
                    OP_TEXT,
                    format!(r#"[null,"hb-{n}","phoenix","heartbeat",{{}}]"#).as_bytes(),
                )
            };
            seen.ended_by = loop {
                if seen.shouts == expected && seen.answered == seen.heartbeats {
                    break format!("all read in {:?}", started.elapsed());
                }
                if Instant::now() >= deadline {
                    break format!("the {FLOOD_LIMIT:?} deadline");
                }
                let Some(frame) = raw::read_frame(&mut stream, Duration::from_secs(20)).await
                else {
                    break "no frame for 20 s, or the stream ended".to_string();
                };
                if frame.opcode == raw::OP_CLOSE {
                    break format!(
                        "a close frame {:?}",
                        String::from_utf8_lossy(&frame.payload)
                    );
                }
                let payload = &frame.payload;
                if payload
                    .windows(21)
                    .any(|w| w == b"\"phoenix\",\"phx_reply\"")
                {
                    seen.answered += 1;
                } else if payload.windows(8).any(|w| w == b"\"shout\",") {
                    seen.shouts += 1;
                    if seen.shouts % 1000 == 0 || seen.shouts == expected {
                        seen.heartbeats += 1;
                        if stream.write_all(&heartbeat(seen.heartbeats)).await.is_err() {
                            break "a failed heartbeat write".to_string();
                        }
                    }
                    if pace > 0 && seen.shouts % pace == 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            };
            seen
        })
    })
}

// Issue 22, item 4: the publisher pays. Three readers slower than the flooder, but reading
// all the time: before, the server queued the flood for them until their outboxes overflowed
// and cut them ("outbound queue full"); now the flooder's reads pause until their outboxes
// drain, so each gets every shout and an answer to every heartbeat, and the flooder gets
// every echo. Nothing here depends on speed: the readers are slower than the server whatever
// the machine, and every wait is bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooder_is_slowed_to_its_slow_readers_and_no_reader_is_cut() {
    const SHOUTS: usize = 20_000;
    let config = flood_config(3000);
    let example = Example::start("presence_chat", &[("TETHER_CONFIG", config.path())]);
    let (ready, readies) = std::sync::mpsc::channel();
    // At most 4,000, 3,333 and 2,857 shouts a second: slower than the server.
    let readers: Vec<_> = [("slow20", 20), ("slow24", 24), ("slow28", 28)]
        .into_iter()
        .map(|(name, pace)| reader_thread(example.port, name, SHOUTS, pace, ready.clone()))
        .collect();
    for _ in 0..readers.len() {
        readies
            .recv_timeout(support::WAIT)
            .expect("a reader did not join");
    }
    let mut flooder = raw::connect(example.port, &socket_path("flooder")).await;
    join_lobby(&mut flooder).await;
    await_join_reply(&mut flooder).await;
    let (reader, mut writer) = flooder.into_split();
    let own = tokio::spawn(count_shouts_within(reader, SHOUTS, FLOOD_LIMIT));
    // 20,000 shouts of 1 KB in one write: the server takes them as its readers allow.
    let all = shouts(SHOUTS);
    tokio::time::timeout(FLOOD_LIMIT, writer.write_all(&all))
        .await
        .expect("the server did not take 20 MB in time")
        .expect("the flooder was cut while writing");
    for (reader, name) in readers.into_iter().zip(["slow20", "slow24", "slow28"]) {
        let seen = reader.join().unwrap();
        eprintln!("flood: {name} saw {seen:?}");
        assert_eq!(seen.shouts, SHOUTS, "{name} lost shouts: {seen:?}");
        assert_eq!(
            seen.answered, seen.heartbeats,
            "{name} had heartbeats unanswered: {seen:?}"
        );
    }
    let own = own.await.unwrap();
    assert_eq!(
        own.shouts, SHOUTS,
        "the flooder lost its own echoes: reading ended by {}",
        own.ended_by
    );
    drop(writer);
}

// Issue 22, item 4, the other half: pacing never protects the flooder from a dead reader. A
// reader that stops reading entirely is still released within the write timeout while a
// flooder publishes to it (the flooder waits for it at most that long), and the flooder and
// a reading bystander then get everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_is_released_within_the_write_timeout_while_a_flooder_publishes() {
    const SHOUTS: usize = 5_000;
    let config = flood_config(WRITE_TIMEOUT_MS);
    let example = Example::start("presence_chat", &[("TETHER_CONFIG", config.path())]);
    let (ready, readies) = std::sync::mpsc::channel();
    let bystander = reader_thread(example.port, "bystander", SHOUTS, 0, ready);
    readies
        .recv_timeout(support::WAIT)
        .expect("the bystander did not join");
    let mut stalled = raw::connect_with(example.port, &socket_path("stalled"), Some(4096)).await;
    let stalled_port = stalled.local_addr().unwrap().port();
    join_lobby(&mut stalled).await;
    let mut flooder = raw::connect(example.port, &socket_path("flooder")).await;
    join_lobby(&mut flooder).await;
    await_join_reply(&mut flooder).await;
    let (reader, mut writer) = flooder.into_split();
    let own = tokio::spawn(count_shouts_within(reader, SHOUTS, FLOOD_LIMIT));
    let started = Instant::now();
    let all = shouts(SHOUTS);
    let write = tokio::spawn(async move {
        let written = tokio::time::timeout(FLOOD_LIMIT, writer.write_all(&all)).await;
        (written, writer)
    });
    // The stalled reader stops making progress within moments of the flood's start (its
    // buffers are small); it must be gone within the write timeout after that.
    let allowed = Duration::from_millis(WRITE_TIMEOUT_MS) + Duration::from_secs(5);
    while raw::tcp_socket_open(example.port, stalled_port) {
        assert!(
            started.elapsed() < allowed,
            "the server still holds the stalled reader's socket {:?} into the flood",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "stalled reader under a flood: released {:?} after the flood began",
        started.elapsed()
    );
    let (written, _writer) = write.await.unwrap();
    written
        .expect("the server did not take the flood in time")
        .expect("the flooder was cut while writing");
    let own = own.await.unwrap();
    assert_eq!(own.shouts, SHOUTS, "flooder: {}", own.ended_by);
    let seen = bystander.join().unwrap();
    assert_eq!(seen.shouts, SHOUTS, "bystander: {seen:?}");
    assert_eq!(seen.answered, seen.heartbeats, "bystander: {seen:?}");
    drop(stalled);
}
