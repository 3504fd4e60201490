//! Every protocol event of Phoenix Channels V2, against an in-process server over real
//! sockets.

mod support;

use serde_json::{Value, json};
use support::{Client, TestServer, WAIT, reply, test_config};
use tether::{
    SocketRoute,
    channel::{
        Assigns, BoxError, Channel, HandleResult, JoinError, JoinResult, Reply, Router, Socket,
        TerminateReason,
    },
    endpoint::ConnectError,
};
use tokio::sync::mpsc;

/// A channel that exercises every feature on demand; reports terminations on `ended`.
struct TestChannel {
    ended: mpsc::UnboundedSender<String>,
}

impl Channel for TestChannel {
    type Info = Value;
    async fn join(&self, topic: &str, payload: Value, socket: &mut Socket) -> JoinResult {
        if payload["refuse"] == true {
            return Err(JoinError::reason("refused"));
        }
        if payload["panic"] == true {
            panic!("join panicked on purpose");
        }
        socket.push("joined", &json!({ "topic": topic }))?;
        let user = socket
            .assigns()
            .get_str("user_id")
            .unwrap_or("")
            .to_string();
        socket.assigns_mut().insert("joined_as", &user);
        Ok(json!({ "welcome": user }))
    }

    async fn handle_in(&self, event: &str, payload: Value, socket: &mut Socket) -> HandleResult {
        match event {
            "echo" => Ok(Reply::Ok(payload)),
            "error" => Ok(Reply::Error(payload)),
            "noreply" => Ok(Reply::None),
            "whoami" => Ok(Reply::Ok(json!(socket.assigns().get_str("joined_as")))),
            "broadcast" => {
                socket.broadcast("bcast", &payload);
                Ok(Reply::None)
            }
            "broadcast_from" => {
                socket.broadcast_from("bcast", &payload);
                Ok(Reply::ok())
            }
            "push" => {
                socket.push("pushed", &payload)?;
                Ok(Reply::ok())
            }
            "fail" => Err("handler failed on purpose".into()),
            "panic" => panic!("handler panicked on purpose"),
            "later" => {
                let to = socket.reply_ref().expect("a push has a ref");
                let handle = socket.handle();
                std::thread::spawn(move || handle.reply(&to, Reply::Ok(payload)).unwrap());
                Ok(Reply::None)
            }
            "info" => {
                let handle = socket.handle();
                std::thread::spawn(move || handle.send_info(payload).unwrap());
                Ok(Reply::None)
            }
            // A message of another type than the channel's `Info`: dropped, nothing breaks.
            "wrong_info" => {
                socket.handle().send_info(5u8)?;
                Ok(Reply::ok())
            }
            _ => Ok(Reply::unhandled()),
        }
    }

    async fn handle_info(&self, payload: Value, socket: &mut Socket) -> Result<(), BoxError> {
        socket.push("info", &payload)?;
        Ok(())
    }

    async fn terminate(&self, reason: &TerminateReason, socket: &mut Socket) {
        let _ = self.ended.send(format!("{} {reason:?}", socket.topic()));
    }
}

fn start() -> (TestServer, mpsc::UnboundedReceiver<String>) {
    let (ended, ended_rx) = mpsc::unbounded_channel();
    let router = Router::new().channel("test:*", TestChannel { ended });
    let route = SocketRoute::new("/socket", router).connect(|info| {
        if info.param("refuse").is_some() {
            return Err(ConnectError::new("refused by test"));
        }
        let mut assigns = Assigns::default();
        assigns.insert("user_id", info.param("user_id").unwrap_or("anon"));
        Ok(assigns)
    });
    (TestServer::start(test_config(), route), ended_rx)
}

async fn ended(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no terminate")
        .unwrap()
}

#[tokio::test]
async fn heartbeat_is_answered_on_the_phoenix_topic() {
    let (server, _) = start();
    let mut client = server.client("user_id=a").await;
    client
        .send(None, "7", "phoenix", "heartbeat", json!({}))
        .await;
    assert_eq!(
        client.recv().await,
        json!([null, "7", "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );
}

#[tokio::test]
async fn join_replies_with_the_response_and_then_delivers_pushes_made_during_join() {
    let (server, _) = start();
    let mut client = server.client("user_id=alice").await;
    client
        .send(Some("3"), "3", "test:a", "phx_join", json!({}))
        .await;
    assert_eq!(
        client.recv().await,
        json!(["3", "3", "test:a", "phx_reply", {"status": "ok", "response": {"welcome": "alice"}}])
    );
    assert_eq!(
        client.recv().await,
        json!(["3", null, "test:a", "joined", {"topic": "test:a"}])
    );
    // Assigns set during join persist for later events.
    let answer = client.call("test:a", "3", "whoami", json!({})).await;
    assert_eq!(reply(&answer, "ok"), json!("alice"));
}

#[tokio::test]
async fn unmatched_topics_get_an_error_reply_with_a_null_join_ref() {
    let (server, _) = start();
    let mut client = server.client("").await;
    client
        .send(Some("9"), "9", "nosuchtopic:1", "phx_join", json!({}))
        .await;
    assert_eq!(
        client.recv().await,
        json!([null, "9", "nosuchtopic:1", "phx_reply", {"status": "error", "response": {"reason": "unmatched topic"}}])
    );
    // An event on a topic that was never joined gets the same answer.
    client
        .send(None, "10", "test:never", "echo", json!({}))
        .await;
    assert_eq!(
        client.recv().await,
        json!([null, "10", "test:never", "phx_reply", {"status": "error", "response": {"reason": "unmatched topic"}}])
    );
}

#[tokio::test]
async fn a_refused_join_echoes_the_join_ref_and_joins_nothing() {
    let (server, _) = start();
    let mut client = server.client("").await;
    let (_, frame) = client.join("test:r", json!({"refuse": true})).await;
    assert_eq!(reply(&frame, "error"), json!({"reason": "refused"}));
    assert!(frame[0].is_string());
    // Nothing was pushed: the next frame is the heartbeat reply.
    assert!(client.sync().await.is_empty());
    client.send(None, "50", "test:r", "echo", json!({})).await;
    assert_eq!(
        reply(&client.recv().await, "error"),
        json!({"reason": "unmatched topic"})
    );
}

#[tokio::test]
async fn a_panicking_join_is_an_error_reply_and_the_connection_survives() {
    let (server, _) = start();
    let mut client = server.client("").await;
    let (_, frame) = client.join("test:p", json!({"panic": true})).await;
    assert_eq!(reply(&frame, "error"), json!({"reason": "join crashed"}));
    let (_, frame) = client.join("test:p", json!({})).await;
    reply(&frame, "ok");
}

#[tokio::test]
async fn replies_echo_refs_and_carry_the_response() {
    let (server, _) = start();
    let mut client = server.client("").await;
    let (join_ref, _) = client.join("test:e", json!({})).await;
    client
        .send(
            Some(&join_ref),
            "77",
            "test:e",
            "echo",
            json!({"x": [1, 2]}),
        )
        .await;
    let frame = client.recv_until(|f| f[3] == "phx_reply").await;
    assert_eq!(
        frame,
        json!([join_ref, "77", "test:e", "phx_reply", {"status": "ok", "response": {"x": [1, 2]}}])
    );
    let frame = client
        .call("test:e", &join_ref, "error", json!({"why": "no"}))
        .await;
    assert_eq!(reply(&frame, "error"), json!({"why": "no"}));
    // No reply at all for a handler that returns Reply::None.
    client
        .send(Some(&join_ref), "78", "test:e", "noreply", json!({}))
        .await;
    assert!(client.sync().await.is_empty());
}

#[tokio::test]
async fn unknown_events_get_an_error_reply_and_the_channel_stays() {
    let (server, _) = start();
    let mut client = server.client("").await;
    let (join_ref, _) = client.join("test:u", json!({})).await;
    let frame = client
        .call("test:u", &join_ref, "no_such_event", json!({}))
        .await;
    assert_eq!(reply(&frame, "error"), json!({"reason": "unhandled event"}));
    let frame = client.call("test:u", &join_ref, "echo", json!(1)).await;
    assert_eq!(reply(&frame, "ok"), json!(1));
}

#[tokio::test]
async fn leave_replies_ok_then_closes_with_the_join_ref() {
    let (server, mut ended_rx) = start();
    let mut client = server.client("").await;
    let (join_ref, _) = client.join("test:l", json!({})).await;
    client
        .send(Some(&join_ref), "20", "test:l", "phx_leave", json!({}))
        .await;
    let frames = [
        client.recv().await,
        client.recv().await,
        client.recv().await,
    ];
    assert_eq!(
        frames[0],
        json!([join_ref, null, "test:l", "joined", {"topic": "test:l"}])
    );
    assert_eq!(
        frames[1],
        json!([join_ref, "20", "test:l", "phx_reply", {"status": "ok", "response": {}}])
    );
    assert_eq!(
        frames[2],
        json!([join_ref, join_ref, "test:l", "phx_close", {}])
    );
    assert_eq!(ended(&mut ended_rx).await, "test:l Leave");
    assert_eq!(server.endpoint.pubsub().local_subscriber_count("test:l"), 0);
    // Leaving a topic that is not joined is answered ok, as Phoenix does.
    client
        .send(Some("90"), "21", "test:elsewhere", "phx_leave", json!({}))
        .await;
    assert_eq!(
        client.recv().await,
        json!(["90", "21", "test:elsewhere", "phx_reply", {"status": "ok", "response": {}}])
    );
}

#[tokio::test]
async fn a_second_join_replaces_the_first_and_stale_join_refs_are_ignored() {
    let (server, mut ended_rx) = start();
    let mut client = server.client("").await;
    let (first, _) = client.join("test:d", json!({})).await;
    client.recv_until(|f| f[3] == "joined").await;
    let (second, frame) = client.join("test:d", json!({})).await;
    reply(&frame, "ok");
    assert_eq!(ended(&mut ended_rx).await, "test:d Rejoin");
    assert_ne!(first, second);
    // The close for the old join came before the new join's reply.
    // (recv_until skipped it; check that the topic works with the new ref only.)
    client
        .send(Some(&first), "31", "test:d", "echo", json!("stale"))
        .await;
    let before = client.sync().await;
    assert!(
        before.iter().all(|f| f[3] == "joined"),
        "a stale join_ref must get no answer: {before:?}"
    );
    let frame = client.call("test:d", &second, "echo", json!("fresh")).await;
    assert_eq!(reply(&frame, "ok"), json!("fresh"));
    assert_eq!(server.endpoint.pubsub().local_subscriber_count("test:d"), 1);
}

#[tokio::test]
async fn rejoin_sends_phx_close_for_the_old_join_ref() {
    let (server, _) = start();
    let mut client = server.client("").await;
    client
        .send(Some("1"), "1", "test:c", "phx_join", json!({}))
        .await;
    client.recv().await; // reply
    client.recv().await; // joined push
    client
        .send(Some("2"), "2", "test:c", "phx_join", json!({}))
        .await;
    assert_eq!(
        client.recv().await,
        json!(["1", "1", "test:c", "phx_close", {}])
    );
    assert_eq!(
        client.recv().await,
        json!(["2", "2", "test:c", "phx_reply", {"status": "ok", "response": {"welcome": "anon"}}])
    );
}

#[tokio::test]
async fn broadcast_reaches_everyone_on_the_topic_and_broadcast_from_skips_the_sender() {
    let (server, _) = start();
    let mut a = server.client("user_id=a").await;
    let mut b = server.client("user_id=b").await;
    let mut other = server.client("user_id=c").await;
    let (ja, _) = a.join("test:room", json!({})).await;
    b.join("test:room", json!({})).await;
    let (jo, _) = other.join("test:other", json!({})).await;

    a.send(Some(&ja), "40", "test:room", "broadcast", json!({"n": 1}))
        .await;
    let expected = json!([null, null, "test:room", "bcast", {"n": 1}]);
    assert_eq!(a.recv_until(|f| f[3] == "bcast").await, expected);
    assert_eq!(b.recv_until(|f| f[3] == "bcast").await, expected);

    let frame = a
        .call("test:room", &ja, "broadcast_from", json!({"n": 2}))
        .await;
    reply(&frame, "ok");
    assert_eq!(
        b.recv_until(|f| f[3] == "bcast").await,
        json!([null, null, "test:room", "bcast", {"n": 2}])
    );
    // The sender got only the reply: nothing else before its heartbeat reply.
    assert!(a.sync().await.is_empty());

    // The other topic saw neither: its own broadcast is the first bcast it receives.
    other
        .send(Some(&jo), "41", "test:other", "broadcast", json!({"n": 3}))
        .await;
    assert_eq!(
        other.recv_until(|f| f[3] == "bcast").await,
        json!([null, null, "test:other", "bcast", {"n": 3}])
    );
}

#[tokio::test]
async fn a_failing_handler_crashes_only_its_channel() {
    for event in ["fail", "panic"] {
        let (server, mut ended_rx) = start();
        let mut client = server.client("").await;
        let (jx, _) = client.join("test:x", json!({})).await;
        let (jy, _) = client.join("test:y", json!({})).await;
        client
            .send(Some(&jx), "60", "test:x", event, json!({}))
            .await;
        let frame = client.recv_until(|f| f[3] == "phx_error").await;
        assert_eq!(frame, json!([jx, jx, "test:x", "phx_error", {}]));
        let reason = ended(&mut ended_rx).await;
        assert!(reason.starts_with("test:x Crash"), "{reason}");
        // The crashed channel is gone, the other one and the connection still work.
        client.send(None, "61", "test:x", "echo", json!({})).await;
        let frame = client.recv_until(|f| f[1] == "61").await;
        assert_eq!(reply(&frame, "error"), json!({"reason": "unmatched topic"}));
        let frame = client.call("test:y", &jy, "echo", json!("alive")).await;
        assert_eq!(reply(&frame, "ok"), json!("alive"));
        assert_eq!(server.endpoint.pubsub().local_subscriber_count("test:x"), 0);
    }
}

#[tokio::test]
async fn replies_and_infos_can_come_from_other_threads() {
    let (server, _) = start();
    let mut client = server.client("").await;
    let (join_ref, _) = client.join("test:t", json!({})).await;
    let frame = client
        .call("test:t", &join_ref, "later", json!({"done": true}))
        .await;
    assert_eq!(reply(&frame, "ok"), json!({"done": true}));
    let frame = client
        .call("test:t", &join_ref, "wrong_info", json!({}))
        .await;
    reply(&frame, "ok");
    client
        .send(
            Some(&join_ref),
            "70",
            "test:t",
            "info",
            json!({"via": "info"}),
        )
        .await;
    assert_eq!(
        client.recv_until(|f| f[3] == "info").await,
        json!([join_ref, null, "test:t", "info", {"via": "info"}])
    );
    let frame = client
        .call("test:t", &join_ref, "push", json!({"p": 1}))
        .await;
    reply(&frame, "ok");
}

#[tokio::test]
async fn the_connect_hook_can_refuse_with_403_and_bad_versions_are_refused() {
    let (server, _) = start();
    let refused = Client::try_connect(&server.url("refuse=1"), &[]).await;
    assert_eq!(refused.err().map(|r| r.0), Some(403));
    let url = format!("ws://127.0.0.1:{}/socket/websocket?vsn=1.0.0", server.port);
    assert_eq!(
        Client::try_connect(&url, &[]).await.err().map(|r| r.0),
        Some(403)
    );
    // Other clients are unaffected.
    let mut client = server.client("").await;
    assert!(client.sync().await.is_empty());
}

#[tokio::test]
async fn a_vanished_client_terminates_its_channels_and_subscriptions() {
    let (server, mut ended_rx) = start();
    let mut client = server.client("").await;
    client.join("test:gone", json!({})).await;
    assert_eq!(
        server.endpoint.pubsub().local_subscriber_count("test:gone"),
        1
    );
    drop(client); // TCP closed without a close frame
    let reason = ended(&mut ended_rx).await;
    assert!(reason.starts_with("test:gone Disconnect"), "{reason}");
    server
        .eventually("unsubscribe", |e| {
            e.pubsub().local_subscriber_count("test:gone") == 0
        })
        .await;
    server
        .eventually("connection end", |e| e.connection_count() == 0)
        .await;
}

#[tokio::test]
async fn shutdown_closes_with_1001_after_terminating_channels() {
    let (server, mut ended_rx) = start();
    let mut a = server.client("").await;
    let mut b = server.client("").await;
    a.join("test:s", json!({})).await;
    b.join("test:s", json!({})).await;
    server.endpoint.shutdown().await;
    assert_eq!(a.expect_close().await.0, 1001);
    assert_eq!(b.expect_close().await.0, 1001);
    for _ in 0..2 {
        assert!(
            ended(&mut ended_rx)
                .await
                .starts_with("test:s Disconnect(Shutdown)")
        );
    }
    assert_eq!(server.endpoint.connection_count(), 0);
    // New upgrades are refused while shutting down.
    assert_eq!(
        Client::try_connect(&server.url(""), &[])
            .await
            .err()
            .map(|r| r.0),
        Some(503)
    );
}

#[tokio::test]
async fn endpoint_broadcast_reaches_joined_clients() {
    let (server, _) = start();
    let mut client = server.client("").await;
    client.join("test:ext", json!({})).await;
    server
        .endpoint
        .broadcast("test:ext", "news", &json!({"from": "outside"}));
    assert_eq!(
        client.recv_until(|f| f[3] == "news").await,
        json!([null, null, "test:ext", "news", {"from": "outside"}])
    );
}
