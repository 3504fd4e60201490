//! The process's metrics move with real traffic: connections, joins, frames and bytes in and
//! out, over real sockets. One test in this binary, so the deltas are exact.

mod support;

use serde_json::{Value, json};
use support::{TestServer, test_config};
use tether::{
    SocketRoute,
    channel::{Channel, HandleResult, JoinResult, Reply, Router, Socket},
    metrics::metrics,
};

struct Echo;

impl Channel for Echo {
    type Info = ();
    async fn join(&self, _topic: &str, _payload: Value, _socket: &mut Socket) -> JoinResult {
        Ok(json!({}))
    }

    async fn handle_in(&self, _event: &str, payload: Value, _socket: &mut Socket) -> HandleResult {
        Ok(Reply::Ok(payload))
    }
}

#[tokio::test]
async fn traffic_moves_the_connection_join_frame_and_byte_counts() {
    let server = TestServer::start(
        test_config(),
        SocketRoute::new("/socket", Router::new().channel("room:*", Echo)),
    );
    let m = metrics();
    let (connections, opened, joins) = (
        m.connections.get(),
        m.connections_opened.get(),
        m.joins.get(),
    );
    let (frames_in, frames_out) = (m.frames_in.get(), m.frames_out.get());
    let (bytes_in, bytes_out) = (m.bytes_in.get(), m.bytes_out.get());

    let mut client = server.client("").await;
    server
        .eventually("the connection to be counted", |_| {
            m.connections.get() == connections + 1
        })
        .await;
    assert_eq!(m.connections_opened.get(), opened + 1);
    let (join_ref, _) = client.join("room:1", json!({})).await;
    let echo = r#"[null,"2","room:1","echo",{"text":"hello"}]"#;
    client
        .send_text(format!(r#"["{join_ref}"{}"#, &echo[5..]))
        .await;
    let answer = client.recv().await;
    assert_eq!(answer[4]["response"]["text"], "hello", "{answer}");

    assert_eq!(m.joins.get(), joins + 1);
    assert_eq!(m.frames_in.get(), frames_in + 2, "the join and the echo");
    assert!(m.bytes_in.get() >= bytes_in + echo.len() as u64);
    server
        .eventually("two replies to be counted as written", |_| {
            m.frames_out.get() == frames_out + 2
        })
        .await;
    assert!(m.bytes_out.get() > bytes_out + 20);
    assert!(m.outbox_depth.get_sample_count() >= 2);
    let text = m.render();
    assert!(text.contains("tether_frames_in_total"), "{text}");

    client.close().await;
    server
        .eventually("the connection to be uncounted", |_| {
            m.connections.get() == connections
        })
        .await;
}
