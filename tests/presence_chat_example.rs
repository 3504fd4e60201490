//! The `presence_chat` example against its contract (docs/contracts.md), as a real process.

mod support;

use serde_json::json;
use support::{Client, example::Example, reply};

fn url(port: u16, query: &str) -> String {
    format!("ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0&{query}")
}

#[tokio::test]
async fn connect_requires_a_user_id_of_at_most_128_bytes() {
    let example = Example::start("presence_chat", &[]);
    let port = example.port;
    for query in ["", "user_id=", &format!("user_id={}", "u".repeat(129))] {
        let refused = Client::try_connect(&url(port, query), &[]).await;
        assert_eq!(refused.err().map(|r| r.0), Some(403), "for {query:?}");
    }
    let longest = format!("user_id={}", "u".repeat(128));
    assert!(Client::try_connect(&url(port, &longest), &[]).await.is_ok());
    let evil = [("origin", "http://evil.example")];
    let refused = Client::try_connect(&url(port, "user_id=a"), &evil).await;
    assert_eq!(refused.err().map(|r| r.0), Some(403));
}

#[tokio::test]
async fn shout_reaches_the_room_and_unmatched_topics_are_refused() {
    let example = Example::start("presence_chat", &[]);
    let mut alice = Client::connect(&url(example.port, "user_id=alice")).await;
    let mut bob = Client::connect(&url(example.port, "user_id=bob")).await;
    let (ja, frame) = alice.join("room:lobby", json!({})).await;
    reply(&frame, "ok");
    bob.join("room:lobby", json!({})).await;
    alice
        .send(Some(&ja), "9", "room:lobby", "shout", json!({"body": "hi"}))
        .await;
    let shout = json!([null, null, "room:lobby", "shout", {"body": "hi"}]);
    assert_eq!(bob.recv_until(|f| f[3] == "shout").await, shout);
    assert_eq!(alice.recv_until(|f| f[3] == "shout").await, shout);

    let (_, frame) = alice.join("nosuchtopic:1", json!({})).await;
    assert_eq!(reply(&frame, "error"), json!({"reason": "unmatched topic"}));
    assert!(frame[0].is_null());
}

#[tokio::test]
async fn sigterm_closes_connections_with_1001_and_exits_cleanly() {
    let mut example = Example::start("presence_chat", &[]);
    let mut alice = Client::connect(&url(example.port, "user_id=alice")).await;
    alice.join("room:lobby", json!({})).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = example.terminate();
        (status, example)
    });
    assert_eq!(alice.expect_close().await.0, 1001);
    let (status, _example) = status.await.unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn invalid_config_fails_at_start_naming_the_key() {
    let path = std::env::current_exe().unwrap();
    let example = path
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/presence_chat");
    let output = std::process::Command::new(example)
        .env("PORT", "0")
        .env("TETHER_PRESENCE_DOWN_PERIOD_MS", "1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("presence.down_period_ms"), "{stderr}");
}
