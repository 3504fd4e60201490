//! One measured client's life: connect (from its own loopback source address, at most
//! `--connect-concurrency` handshakes in flight), hand the TCP stream from tungstenite to
//! [`RawWs`], join the topic, then receive, answer pings and send heartbeats until the
//! connection ends; every frame goes to [`Shared::on_text`].
//!
//! It must never panic on what the server sends (a failure is counted with its reason) and
//! never wait unbounded for a connection: connect + join give up after 30 s, and the receive
//! loop ends with the connection or with the run.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use memchr::memmem;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::{
    client::RawWs,
    connect::{Target, connect_ws, heartbeat_frame, join_frame, join_reply_prefix},
    shared::Shared,
};

/// What every measured client needs.
#[derive(Clone)]
pub struct ClientCtx {
    pub shared: Arc<Shared>,
    /// One per server node; client `idx` connects to `targets[idx % targets.len()]`.
    pub targets: Arc<Vec<Target>>,
    pub connect_slots: Arc<tokio::sync::Semaphore>,
    pub config: WebSocketConfig,
    pub topic: Arc<str>,
    pub heartbeat: Duration,
    pub read_buf: usize,
}

/// Client `idx`: connects and joins (counted as joined or failed), then receives until the
/// connection ends (counted as closed).
pub async fn run_client(idx: usize, ctx: ClientCtx) {
    let shared = &ctx.shared;
    let Ok(permit) = ctx.connect_slots.acquire().await else {
        shared.fail("semaphore closed".into());
        return;
    };
    let result = tokio::time::timeout(Duration::from_secs(30), connect_and_join(idx, &ctx)).await;
    drop(permit);
    let ws = match result {
        Ok(Ok(ws)) => ws,
        Ok(Err(reason)) => return shared.fail(reason),
        Err(_) => return shared.fail("connect+join timed out (30 s)".into()),
    };
    shared.joined.fetch_add(1, Ordering::AcqRel);
    shared.joined_per_node[idx % shared.nodes].fetch_add(1, Ordering::AcqRel);
    shared.live.fetch_add(1, Ordering::AcqRel);
    shared.connect_done.fetch_add(1, Ordering::AcqRel);
    let reason = receive(idx, &ctx, ws).await;
    shared.closed(reason);
}

/// Handshake with tungstenite, then the join on the raw stream (the join-storm scenario
/// stamps the first join sent and the last join reply).
async fn connect_and_join(idx: usize, ctx: &ClientCtx) -> Result<RawWs, String> {
    let shared = &ctx.shared;
    let user_id = format!("u{idx}");
    let target = &ctx.targets[idx % ctx.targets.len()];
    let ws = connect_ws(target, target.source(idx), &user_id, ctx.config).await?;
    // The server sends nothing before the join, so tungstenite holds no buffered bytes
    // beyond the handshake response: the raw stream continues exactly at a frame boundary.
    let mut ws = RawWs::new(ws.into_inner(), ctx.read_buf, idx as u32);
    if let Some(storm) = &shared.storm {
        storm
            .first_join_ns
            .fetch_min(shared.now_ns(), Ordering::AcqRel);
    }
    join(&mut ws, &ctx.topic, |frame| shared.on_text(idx, frame)).await?;
    if let Some(storm) = &shared.storm {
        storm
            .last_join_ns
            .fetch_max(shared.now_ns(), Ordering::AcqRel);
    }
    Ok(ws)
}

/// Sends `["1","1",topic,"phx_join",{}]` and reads until its reply; every other frame read
/// meanwhile goes to `other`.
async fn join(ws: &mut RawWs, topic: &str, mut other: impl FnMut(&[u8])) -> Result<(), String> {
    ws.send(0x1, join_frame(topic).as_bytes()).await?;
    let expected = join_reply_prefix(topic);
    let mut reply: Option<bool> = None;
    while reply.is_none() {
        ws.fill().await.map_err(|e| format!("join: {e}"))?;
        ws.process(|frame| {
            if reply.is_none() && frame.starts_with(expected.as_bytes()) {
                reply = Some(memmem::find(frame, br#""status":"ok""#).is_some());
            } else {
                other(frame);
            }
        })
        .map_err(|e| format!("join: {e}"))?;
        ws.send_pongs().await?;
    }
    match reply {
        Some(true) => Ok(()),
        _ => Err("join: error reply".into()),
    }
}

/// Receives and heartbeats until the connection ends; returns why it ended.
async fn receive(idx: usize, ctx: &ClientCtx, mut ws: RawWs) -> String {
    let shared = &ctx.shared;
    // Spread heartbeats over the interval so they do not arrive in bursts.
    let first = ctx
        .heartbeat
        .mul_f64(((idx as u64 * 7919) % 1000) as f64 / 1000.0);
    let sleep = tokio::time::sleep(first);
    tokio::pin!(sleep);
    let mut next_ref: u64 = 2;
    loop {
        let step = tokio::select! {
            filled = ws.fill() => match filled {
                Ok(()) => ws.process(|frame| shared.on_text(idx, frame)),
                Err(reason) => Err(reason),
            },
            () = &mut sleep => {
                let frame = heartbeat_frame(next_ref);
                next_ref += 1;
                shared.heartbeats.fetch_add(1, Ordering::Relaxed);
                sleep.as_mut().reset(tokio::time::Instant::now() + ctx.heartbeat);
                ws.send(0x1, frame.as_bytes()).await
            }
        };
        let step = match step {
            Ok(()) => ws.send_pongs().await,
            Err(reason) => Err(reason),
        };
        if let Err(reason) = step {
            return reason;
        }
    }
}
