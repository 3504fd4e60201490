//! Bad input and limits: each costs at most the one connection, with a clear close code or
//! error reply, while the server and every other client carry on.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, TestServer, reply, test_config};
use tether::{
    Config, SocketRoute,
    channel::{Channel, HandleResult, JoinResult, Reply, Router, Socket},
    config::CheckOrigin,
};
use tokio_tungstenite::tungstenite::Message;

struct Echo;

impl Channel for Echo {
    type Info = ();
    async fn join(&self, _topic: &str, _payload: Value, _socket: &mut Socket) -> JoinResult {
        Ok(json!({}))
    }

    async fn handle_in(&self, event: &str, payload: Value, socket: &mut Socket) -> HandleResult {
        match event {
            "broadcast" => {
                socket.broadcast("bcast", &payload);
                Ok(Reply::None)
            }
            _ => Ok(Reply::Ok(payload)),
        }
    }
}

fn start(config: Config) -> TestServer {
    TestServer::start(
        config,
        SocketRoute::new("/socket", Router::new().channel("room:*", Echo)),
    )
}

/// A bystander that must keep working whatever the other connection does.
async fn assert_alive(client: &mut Client) {
    assert!(client.sync().await.is_empty());
}

#[tokio::test]
async fn malformed_frames_close_only_that_connection_with_1007() {
    let server = start(test_config());
    let mut bystander = server.client("").await;
    for bad in [
        "not json",
        r#"{"topic":"room:lobby","event":"phx_join","payload":{},"ref":"1"}"#,
        r#"[null,"1","phoenix","heartbeat"]"#,
        r#"[null,1,"phoenix","heartbeat",{}]"#,
        r#"[null,"1","room:lobby",["x"],{}]"#,
        "[]",
    ] {
        let mut client = server.client("").await;
        client.send_text(bad).await;
        let (code, reason) = client.expect_close().await;
        assert_eq!(code, 1007, "for {bad}");
        assert!(reason.starts_with("malformed frame"), "{reason}");
        assert_alive(&mut bystander).await;
    }
}

#[tokio::test]
async fn a_payload_that_is_not_an_object_is_accepted_like_phoenix() {
    let server = start(test_config());
    let mut client = server.client("").await;
    client
        .send_text(r#"[null,"1","phoenix","heartbeat","x"]"#)
        .await;
    assert_eq!(reply(&client.recv().await, "ok"), json!({}));
}

#[tokio::test]
async fn binary_frames_close_with_1003() {
    let server = start(test_config());
    let mut bystander = server.client("").await;
    let mut client = server.client("").await;
    client
        .send_message(Message::binary(
            br#"[null,"1","phoenix","heartbeat",{}]"#.to_vec(),
        ))
        .await;
    assert_eq!(client.expect_close().await.0, 1003);
    assert_alive(&mut bystander).await;
}

#[tokio::test]
async fn a_message_over_one_mebibyte_closes_with_1009_and_one_just_under_passes() {
    let server = start(test_config());
    let mut bystander = server.client("").await;
    let frame = |size: usize| {
        let head = r#"[null,"1","phoenix","heartbeat",{"pad":""#;
        let tail = r#""}]"#;
        format!("{head}{}{tail}", "x".repeat(size - head.len() - tail.len()))
    };
    let mut fits = server.client("").await;
    fits.send_text(frame(1024 * 1024)).await;
    assert_eq!(reply(&fits.recv().await, "ok"), json!({}));

    let mut big = server.client("").await;
    big.send_text(frame(1024 * 1024 + 1)).await;
    assert_eq!(big.expect_close().await.0, 1009);
    assert_alive(&mut bystander).await;
    assert_alive(&mut fits).await;
}

#[tokio::test]
async fn a_fragmented_message_over_the_limit_closes_with_1009() {
    use tokio_tungstenite::tungstenite::protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    };
    let server = start(test_config());
    let mut client = server.client("").await;
    let chunk = vec![b'x'; 600 * 1024];
    client
        .send_message(Message::Frame(Frame::message(
            chunk.clone(),
            OpCode::Data(Data::Text),
            false,
        )))
        .await;
    client
        .send_message(Message::Frame(Frame::message(
            chunk,
            OpCode::Data(Data::Continue),
            true,
        )))
        .await;
    assert_eq!(client.expect_close().await.0, 1009);
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_and_nobody_else_waits() {
    // 64 KiB of outbound queue; a reader that never reads fills its socket buffers and then
    // its queue, and must be dropped while a reading client gets every broadcast. The write
    // timeout is long (60 s) so that nothing here waits for it: the cut slow consumer, whose
    // close frame cannot be written, must not hold up its worker meanwhile (each wait below
    // is bounded by 10 s). The broadcasts come from the server (`Endpoint::broadcast`), not
    // from a client: a client's broadcasts would be paced by their slowest subscriber (the
    // publisher pays, tests/hostile.rs) and the stalled reader dropped by the write timeout.
    let server = start(
        test_config()
            .with_max_outbound_bytes(64 * 1024)
            .with_write_timeout_ms(60_000),
    );
    let closes_before = tether::metrics::metrics().slow_consumer_closes.get();
    let mut slow = server.client("").await;
    let mut fast = server.client("").await;
    slow.join("room:flood", json!({})).await;
    let (_, _) = fast.join("room:flood", json!({})).await;
    let padding = "y".repeat(16 * 1024);
    let mut sent = 0;
    // Bounded: at most 2000 broadcasts of 16 KiB (32 MiB), far more than the slow client's
    // kernel buffers plus 64 KiB of queue.
    while server
        .endpoint
        .pubsub()
        .local_subscriber_count("room:flood")
        == 2
    {
        assert!(sent < 2000, "the slow consumer was never disconnected");
        server
            .endpoint
            .broadcast("room:flood", "bcast", &json!({"n": sent, "pad": padding}));
        sent += 1;
        // The fast client keeps up: it reads the broadcast before the next one.
        let got = fast.recv_until(|f| f[3] == "bcast").await;
        assert_eq!(got[4]["n"], sent - 1);
    }
    assert_eq!(
        server
            .endpoint
            .pubsub()
            .local_subscriber_count("room:flood"),
        1
    );
    // Counted for /metrics and the dashboard (other tests of this binary may add theirs).
    server
        .eventually("the slow consumer close to be counted", |_| {
            tether::metrics::metrics().slow_consumer_closes.get() > closes_before
        })
        .await;
    assert_alive(&mut fast).await;
    drop(slow);
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_1001_and_heartbeats_keep_it_open() {
    // Timed (the idle timeout): not beside another test that measures memory or time.
    let _serial = support::serial::serial();
    let server = start(test_config().with_idle_timeout_ms(400));
    let mut idle = server.client("").await;
    let mut busy = server.client("").await;
    let started = tokio::time::Instant::now();
    // The busy client heartbeats every 100 ms (pacing, not synchronization) for 1.2 s,
    // three times the idle timeout.
    while started.elapsed() < Duration::from_millis(1200) {
        assert!(busy.sync().await.is_empty());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, reason) = idle.expect_close().await;
    assert_eq!((code, reason.as_str()), (1001, "idle timeout"));
    assert_alive(&mut busy).await;
}

#[tokio::test]
async fn a_connection_silent_for_longer_than_the_write_timeout_still_gets_its_close_frame() {
    // Timed (the idle timeout): not beside another test that measures memory or time.
    let _serial = support::serial::serial();
    let server = start(
        test_config()
            .with_idle_timeout_ms(800)
            .with_write_timeout_ms(200),
    );
    let mut idle = server.client("").await;
    // Nothing was written to it for 800 ms, four write timeouts: that is silence, not a
    // stalled write. The idle close must be written, not abandoned as a write timeout.
    let (code, reason) = idle.expect_close().await;
    assert_eq!((code, reason.as_str()), (1001, "idle timeout"));
}

#[tokio::test]
async fn origin_check_refuses_other_hosts_by_default() {
    let server = start(test_config());
    let own = format!("http://127.0.0.1:{}", server.port);
    let url = server.url("");
    assert_eq!(
        Client::try_connect(&url, &[("origin", "http://evil.example")])
            .await
            .err()
            .map(|r| r.0),
        Some(403)
    );
    assert!(Client::try_connect(&url, &[("origin", &own)]).await.is_ok());
    assert!(
        Client::try_connect(&url, &[]).await.is_ok(),
        "no Origin: not a browser"
    );
}

/// Whether an upgrade with this `Origin` is accepted; a refusal must be a 403.
async fn origin_accepted(url: &str, origin: &str) -> bool {
    match Client::try_connect(url, &[("origin", origin)]).await {
        Ok(_) => true,
        Err(refused) => {
            assert_eq!(refused.0, 403, "{origin}");
            false
        }
    }
}

#[tokio::test]
async fn origin_allow_list_is_configurable() {
    let config =
        test_config().with_check_origin(CheckOrigin::AllowList(vec!["https://app.example".into()]));
    let server = start(config);
    let url = server.url("");
    assert!(origin_accepted(&url, "https://app.example").await);
    let own = format!("http://127.0.0.1:{}", server.port);
    assert!(!origin_accepted(&url, &own).await);
}

#[tokio::test]
async fn joining_more_than_max_channels_is_refused() {
    let server = start(test_config().with_max_channels(3));
    let mut client = server.client("").await;
    for i in 0..3 {
        let (_, frame) = client.join(&format!("room:{i}"), json!({})).await;
        reply(&frame, "ok");
    }
    let (_, frame) = client.join("room:3", json!({})).await;
    assert_eq!(
        reply(&frame, "error"),
        json!({"reason": "too many channels"})
    );
    // Re-joining a topic already joined does not count twice.
    let (_, frame) = client.join("room:0", json!({})).await;
    reply(&frame, "ok");
}

#[tokio::test]
async fn over_long_topics_events_and_refs_close_with_1007() {
    let server = start(test_config());
    let mut bystander = server.client("").await;
    let long_topic = format!("room:{}", "t".repeat(300));
    for (bad, why) in [
        (
            json!(["1", "1", long_topic, "phx_join", {}]),
            "topic longer than 255 bytes",
        ),
        (
            json!(["1", "1", "room:a", "e".repeat(256), {}]),
            "event longer than 255 bytes",
        ),
        (
            json!(["j".repeat(65), "1", "room:a", "phx_join", {}]),
            "join_ref longer than 64 bytes",
        ),
    ] {
        let mut client = server.client("").await;
        client.send_text(bad.to_string()).await;
        let (code, reason) = client.expect_close().await;
        assert_eq!(
            (code, reason.as_str()),
            (1007, &*format!("malformed frame: {why}"))
        );
        assert_alive(&mut bystander).await;
    }
}

#[tokio::test]
async fn pings_alone_do_not_keep_a_connection_open() {
    // Timed (the idle timeout): not beside another test that measures memory or time.
    let _serial = support::serial::serial();
    let server = start(test_config().with_idle_timeout_ms(400));
    let mut pinger = server.client("").await;
    let started = tokio::time::Instant::now();
    // Pings every 50 ms (pacing) for up to 3 s: the idle close must come anyway.
    let closed = loop {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "pings kept an idle connection open"
        );
        pinger
            .send_message(Message::Ping(b"p".to_vec().into()))
            .await;
        match tokio::time::timeout(Duration::from_millis(50), pinger.next_message()).await {
            Ok(Some(Message::Close(Some(frame)))) => break frame,
            _ => continue,
        }
    };
    assert_eq!(
        (u16::from(closed.code), closed.reason.as_str()),
        (1001, "idle timeout")
    );
}

#[tokio::test]
async fn with_endpoint_url_the_origin_must_be_that_url_whatever_the_host_header() {
    let mut config = test_config();
    config.endpoint.url = Some("https://app.example".into());
    let server = start(config);
    let url = server.url("");
    assert!(origin_accepted(&url, "https://app.example").await);
    // The request's own host is no longer enough (as behind a proxy, or under DNS rebinding).
    let own = format!("http://127.0.0.1:{}", server.port);
    for origin in [own.as_str(), "http://app.example", "https://evil.example"] {
        assert!(!origin_accepted(&url, origin).await, "{origin}");
    }
}

/// Sends `frames` frames made by `frame(n)` and reads until the server closes: the replies
/// with status ok, those refused as rate limited, and the close code and reason.
async fn push_until_closed(
    client: &mut Client,
    frames: usize,
    frame: impl Fn(usize) -> Value,
) -> (usize, usize, (u16, String)) {
    for n in 0..frames {
        client.send_text(frame(n).to_string()).await;
    }
    let (mut ok, mut limited) = (0, 0);
    loop {
        match tokio::time::timeout(support::WAIT, client.next_message())
            .await
            .expect("timed out before the close")
        {
            Some(Message::Text(text)) => {
                let reply: Value = serde_json::from_str(&text).unwrap();
                if reply[3] != "phx_reply" {
                    continue;
                }
                match (&reply[4]["status"], &reply[4]["response"]["reason"]) {
                    (status, _) if status == "ok" => ok += 1,
                    (_, reason) if reason == "rate limited" => limited += 1,
                    _ => panic!("unexpected reply {reply}"),
                }
            }
            Some(Message::Close(Some(close))) => {
                return (
                    ok,
                    limited,
                    (u16::from(close.code), close.reason.to_string()),
                );
            }
            Some(_) => {}
            None => panic!("the stream ended without a close frame"),
        }
    }
}

fn rate_limited(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = test_config();
    // Next to no refill: what passes is the burst, whatever the machine's speed.
    config.endpoint.join_rate = 0.001;
    config.endpoint.event_rate = 0.001;
    config.endpoint.rate_limit_strikes = 3;
    adjust(&mut config);
    start(config)
}

#[tokio::test]
async fn joins_past_the_burst_are_refused_and_a_client_that_keeps_joining_is_closed() {
    let server = rate_limited(|config| config.endpoint.join_burst = 5);
    let mut bystander = server.client("").await;
    reply(&bystander.join("room:b", json!({})).await.1, "ok");
    let mut client = server.client("").await;
    // Joins and rejoins of one topic draw from the same bucket.
    let (ok, limited, close) = push_until_closed(&mut client, 40, |n| {
        json!([
            n.to_string(),
            n.to_string(),
            format!("room:{}", n % 2),
            "phx_join",
            {}
        ])
    })
    .await;
    assert_eq!(ok, 5, "the burst passes");
    assert!(limited >= 3, "{limited} refused before the close");
    assert_eq!(close, (1008, "rate limit exceeded".to_string()));
    assert_alive(&mut bystander).await;
    // A fresh connection has its own bucket.
    let mut again = server.client("").await;
    reply(&again.join("room:c", json!({})).await.1, "ok");
}

#[tokio::test]
async fn pushes_past_the_burst_are_refused_and_a_flood_is_closed_while_others_carry_on() {
    let server = rate_limited(|config| config.endpoint.event_burst = 10);
    let mut bystander = server.client("").await;
    let (bystander_ref, joined) = bystander.join("room:b", json!({})).await;
    reply(&joined, "ok");
    let mut client = server.client("").await;
    let (join_ref, joined) = client.join("room:a", json!({})).await;
    reply(&joined, "ok");
    let (ok, limited, close) = push_until_closed(
        &mut client,
        100,
        |n| json!([join_ref, n.to_string(), "room:a", "echo", {"n": n}]),
    )
    .await;
    assert_eq!(ok, 10, "the burst passes");
    assert!(limited >= 3, "{limited} refused before the close");
    assert_eq!(close, (1008, "rate limit exceeded".to_string()));
    let echoed = bystander
        .call("room:b", &bystander_ref, "echo", json!({"still": "here"}))
        .await;
    assert_eq!(reply(&echoed, "ok"), json!({"still": "here"}));
}

#[tokio::test]
async fn a_refused_push_is_answered_and_the_connection_carries_on_below_the_strikes() {
    let server = rate_limited(|config| {
        config.endpoint.event_burst = 2;
        config.endpoint.rate_limit_strikes = 50;
    });
    let mut client = server.client("").await;
    let (join_ref, joined) = client.join("room:a", json!({})).await;
    reply(&joined, "ok");
    for expected in ["ok", "ok", "error", "error"] {
        let answer = client.call("room:a", &join_ref, "echo", json!({})).await;
        let response = reply(&answer, expected);
        if expected == "error" {
            assert_eq!(response, json!({"reason": "rate limited"}));
        }
    }
    // Heartbeats are never limited.
    assert_alive(&mut client).await;
}

// Issue 22, item 3: a slow reader is not a dead one. A client that reads all the time, but
// slowly (8 KiB every 20 ms, at most 400 KB/s), while the server has 20 MB for it, must never
// be taken for a stalled one: progress for the write timeout is any bytes the socket accepts.
// Before, the kernel held up to 4 MB of unsent output per socket and reported it writable
// again only once a third of that had gone, which took this reader longer than the write
// timeout (2 s here): it was dropped while reading. Now a write gets through every ~64 KiB it
// reads (a fraction of a second at this pace; a busier machine only makes it slower to fail
// before, not to pass now, unless it starves the reader for 2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_reads_slowly_but_steadily_is_not_dropped_by_the_write_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const WRITE_TIMEOUT_MS: u64 = 2000;
    let server = start(
        test_config()
            .with_max_outbound_bytes(64 * 1024 * 1024)
            .with_write_timeout_ms(WRITE_TIMEOUT_MS),
    );
    let mut reader = support::raw::connect(server.port, "/socket/websocket?vsn=2.0.0").await;
    let join = support::raw::frame(
        support::raw::OP_TEXT,
        br#"["1","1","room:big","phx_join",{}]"#,
    );
    reader.write_all(&join).await.unwrap();
    server
        .eventually("the reader to join", |e| {
            e.pubsub().local_subscriber_count("room:big") == 1
        })
        .await;
    // 20 MB for the reader at once, from the server (not paced by anyone).
    let pad = "z".repeat(512 * 1024);
    for n in 0..40 {
        server
            .endpoint
            .broadcast("room:big", "big", &json!({"n": n, "pad": pad}));
    }
    // Read 8 s worth: at most ~3 MB, far from all of it, always more than nothing per
    // write timeout.
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 8 * 1024];
    let mut read = 0usize;
    while started.elapsed() < Duration::from_secs(8) {
        let n = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf))
            .await
            .expect("nothing to read for 10 s")
            .unwrap_or_else(|err| {
                panic!(
                    "the server dropped a reader that reads: {err} after {read} bytes, {:?}",
                    started.elapsed()
                )
            });
        assert!(
            n > 0,
            "the server closed on a reader that reads ({read} bytes read, {:?})",
            started.elapsed()
        );
        read += n;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "slow steady reader: {read} bytes read in {:?}",
        started.elapsed()
    );
    assert_eq!(
        server.endpoint.pubsub().local_subscriber_count("room:big"),
        1,
        "the reader was dropped (by the write timeout) after {read} bytes"
    );
}
