//! One measured client's life: connect (from its own loopback source address; at most
//! `--connect-concurrency` handshakes in flight, or with `--arrival-rate` at its time in the
//! open loop's schedule), hand the TCP stream from tungstenite to [`RawWs`], join the topic,
//! then receive, answer pings and send heartbeats until the connection ends; every frame goes
//! to [`Shared::on_text`]. In the pages scenario the first `--adders` clients also send one
//! `add` event when the scenario says so.
//!
//! It must never panic on what the server sends (a failure is counted with its phase and
//! cause) and never wait unbounded for a connection: connect + handshake + join give up after
//! [`CONNECT_TIMEOUT`] (counted as a timeout of the phase it was in), and the receive loop ends
//! with the connection or with the run.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use memchr::memmem;
use tokio::{sync::watch, time::Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::{
    client::RawWs,
    connect::{Target, heartbeat_frame, join_frame_with, join_reply_prefix, tcp_connect, upgrade},
    shared::{Phase, Shared},
};

/// Connect + handshake + join of one client must be done within this.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What every measured client needs.
#[derive(Clone)]
pub struct ClientCtx {
    pub shared: Arc<Shared>,
    /// One per server node; client `idx` connects to `targets[idx % targets.len()]`.
    pub targets: Arc<Vec<Target>>,
    /// The index among all N of this process's client 0 (a rooms worker's share starts at a
    /// multiple of the node count, so `idx % nodes` is the node either way).
    pub first: usize,
    /// Rooms scenario: client `i` (among all N) joins `<topic>:<(i / nodes) mod rooms>`;
    /// 0: every client joins `topic`.
    pub rooms: usize,
    /// Handshakes in flight at most ([`Opts::connect_slots`](crate::options::Opts)).
    pub connect_slots: Arc<tokio::sync::Semaphore>,
    /// The open loop's schedule (`--arrival-rate`), set when the clients are spawned.
    pub arrivals: Option<Arrivals>,
    pub config: WebSocketConfig,
    pub topic: Arc<str>,
    /// The `phx_join` payload (`{}`, or a page's `{"token": …}`).
    pub join_payload: Arc<str>,
    pub heartbeat: Duration,
    pub read_buf: usize,
}

/// The open loop: client `idx` starts its handshake at `start + idx / rate` seconds, whatever
/// became of the clients before it.
#[derive(Debug, Clone, Copy)]
pub struct Arrivals {
    pub start: Instant,
    /// Connects per second.
    pub rate: f64,
}

impl ClientCtx {
    /// The topic client `idx` joins. A room's members are spread over every node.
    fn topic_of(&self, idx: usize) -> Arc<str> {
        match self.rooms {
            0 => self.topic.clone(),
            rooms => {
                let room = (self.first + idx) / self.targets.len() % rooms;
                Arc::from(format!("{}:{room}", self.topic))
            }
        }
    }
}

impl Arrivals {
    fn due(&self, idx: usize) -> Instant {
        self.start + Duration::from_secs_f64(idx as f64 / self.rate)
    }
}

/// Client `idx`: waits for its arrival time (open loop) and a connect slot, connects and
/// joins (counted as joined or failed), then receives until the connection ends (counted as
/// closed).
pub async fn run_client(idx: usize, ctx: ClientCtx) {
    run_client_until(idx, ctx, std::future::pending()).await;
}

/// [`run_client`] that also leaves when `leave` completes (the soak's churn): it closes its
/// socket, and is counted as gone ([`Shared::left`]), not as closed by the server.
pub async fn run_client_until(idx: usize, ctx: ClientCtx, leave: impl Future<Output = ()>) {
    let shared = &ctx.shared;
    let due = ctx.arrivals.map(|a| a.due(idx));
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
    let permit = match ctx.connect_slots.try_acquire() {
        Ok(permit) => Ok(permit),
        Err(_) => {
            if due.is_some() {
                shared.held_back.fetch_add(1, Ordering::Relaxed);
            }
            ctx.connect_slots.acquire().await
        }
    };
    let Ok(permit) = permit else {
        return shared.fail(Phase::Connect, "no connect slot (semaphore closed)".into());
    };
    if let Some(due) = due {
        let late = Instant::now().saturating_duration_since(due);
        shared.arrival_lag.record(idx, late.as_micros() as u64);
    }
    let topic = ctx.topic_of(idx);
    let result = connect_and_join(idx, &ctx, &topic).await;
    drop(permit);
    let ws = match result {
        Ok(ws) => ws,
        Err((phase, cause)) => return shared.fail(phase, cause),
    };
    shared.joined.fetch_add(1, Ordering::AcqRel);
    shared.joined_per_node[idx % shared.nodes].fetch_add(1, Ordering::AcqRel);
    shared.live.fetch_add(1, Ordering::AcqRel);
    shared.connect_done.fetch_add(1, Ordering::AcqRel);
    match receive(idx, &ctx, &topic, ws, leave).await {
        Some(reason) => shared.closed(reason),
        None => shared.left(),
    }
}

/// `step` of `phase`, given up at `deadline`; a failure or the timeout is reported with the
/// phase.
async fn within<T>(
    deadline: Instant,
    phase: Phase,
    step: impl Future<Output = Result<T, String>>,
) -> Result<T, (Phase, String)> {
    match tokio::time::timeout_at(deadline, step).await {
        Ok(result) => result.map_err(|cause| (phase, cause)),
        Err(_) => Err((
            phase,
            format!(
                "timed out (connect + join over {} s)",
                CONNECT_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// TCP connect and handshake with tungstenite, then the join on the raw stream (the
/// join-storm scenario stamps the first join sent and the last join reply, the pages scenario
/// each client's), all within [`CONNECT_TIMEOUT`].
async fn connect_and_join(
    idx: usize,
    ctx: &ClientCtx,
    topic: &str,
) -> Result<RawWs, (Phase, String)> {
    let shared = &ctx.shared;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    let global = ctx.first + idx;
    let user_id = format!("u{global}");
    let target = &ctx.targets[global % ctx.targets.len()];
    let stream = within(
        deadline,
        Phase::Connect,
        tcp_connect(target, target.source(global)),
    )
    .await?;
    let ws = within(
        deadline,
        Phase::Handshake,
        upgrade(stream, target, &user_id, ctx.config),
    )
    .await?;
    // The server sends nothing before the join, so tungstenite holds no buffered bytes
    // beyond the handshake response: the raw stream continues exactly at a frame boundary.
    let mut ws = RawWs::new(ws.into_inner(), ctx.read_buf, idx as u32);
    let sent = shared.now_ns();
    if let Some(storm) = &shared.storm {
        storm.first_join_ns.fetch_min(sent, Ordering::AcqRel);
    }
    if let Some(pages) = &shared.pages {
        pages.join_sent(idx, sent);
    }
    let replied = within(deadline, Phase::Join, join(&mut ws, idx, ctx, topic)).await?;
    if let Some(storm) = &shared.storm {
        storm.last_join_ns.fetch_max(replied, Ordering::AcqRel);
    }
    if let Some(pages) = &shared.pages {
        pages.join_ok(idx, replied);
    }
    Ok(ws)
}

/// Sends `["1","1",topic,"phx_join",<payload>]` and reads until its reply; every other frame
/// read meanwhile goes to [`Shared::on_text`]. Returns when the ok reply was read (ns since
/// the run's base); an error reply fails with its reason.
async fn join(ws: &mut RawWs, idx: usize, ctx: &ClientCtx, topic: &str) -> Result<u64, String> {
    let shared = &ctx.shared;
    ws.send(0x1, join_frame_with(topic, &ctx.join_payload).as_bytes())
        .await?;
    let expected = join_reply_prefix(topic);
    let mut reply: Option<Result<u64, String>> = None;
    while reply.is_none() {
        ws.fill().await?;
        ws.process(|frame| {
            if reply.is_none() && frame.starts_with(expected.as_bytes()) {
                reply = Some(if memmem::find(frame, br#""status":"ok""#).is_some() {
                    Ok(shared.now_ns())
                } else {
                    Err(format!("error reply{}", reason_of(frame)))
                });
            } else {
                shared.on_text(idx, frame);
            }
        })?;
        ws.send_pongs().await?;
    }
    reply.unwrap_or_else(|| Err("no reply".into()))
}

/// ` (<reason>)` of an error reply `…"reason":"<reason>"…`, at most 60 bytes; empty without
/// one.
fn reason_of(frame: &[u8]) -> String {
    let Some(at) = memmem::find(frame, br#""reason":""#) else {
        return String::new();
    };
    let rest = &frame[at + 10..];
    let end = memchr::memchr(b'"', rest).unwrap_or(rest.len()).min(60);
    format!(" ({})", String::from_utf8_lossy(&rest[..end]))
}

/// Waits until `trigger` (if any) says go; pending forever without one.
async fn go(trigger: &mut Option<watch::Receiver<bool>>) {
    match trigger {
        Some(rx) => {
            if rx.wait_for(|go| *go).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Receives and heartbeats until the connection ends (returns why) or `leave` completes
/// (sends a close frame and returns `None`; the socket closes when `ws` is dropped).
async fn receive(
    idx: usize,
    ctx: &ClientCtx,
    topic: &str,
    mut ws: RawWs,
    leave: impl Future<Output = ()>,
) -> Option<String> {
    let shared = &ctx.shared;
    tokio::pin!(leave);
    // Spread heartbeats over the interval so they do not arrive in bursts.
    let first = ctx
        .heartbeat
        .mul_f64(((idx as u64 * 7919) % 1000) as f64 / 1000.0);
    let sleep = tokio::time::sleep(first);
    tokio::pin!(sleep);
    let mut next_ref: u64 = 2;
    // Pages: the adders' signal to send their one event.
    let mut trigger = shared
        .pages
        .as_ref()
        .filter(|pages| idx < pages.adders)
        .map(|pages| pages.go.subscribe());
    loop {
        let step = tokio::select! {
            () = &mut leave => {
                // 1000, normal closure; the server's reply is not awaited.
                let _ = ws.send(0x8, &1000u16.to_be_bytes()).await;
                return None;
            }
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
            () = go(&mut trigger) => {
                trigger = None;
                match &shared.pages {
                    Some(pages) => {
                        let frame = pages.event_frame(topic, idx);
                        pages.event_sent(idx, shared.now_ns());
                        ws.send(0x1, frame.as_bytes()).await
                    }
                    None => Ok(()),
                }
            }
        };
        let step = match step {
            Ok(()) => ws.send_pongs().await,
            Err(reason) => Err(reason),
        };
        if let Err(reason) = step {
            return Some(reason);
        }
    }
}
