//! Load generator: thousands of real WebSocket clients against `examples/presence_chat`.
//!
//! ```text
//! cargo build --release --example presence_chat
//! cargo bench --bench loadgen -- --clients 10000
//! ```
//!
//! It starts the server itself (`--server`, env `PORT=0`, `RUST_LOG=warn`), or targets a running
//! one (`--url ws://127.0.0.1:4000/socket/websocket`, loopback only, then no RSS figures), and:
//!
//! 1. connects N clients (each from its own source address in 127.0.0.2–127.0.0.250, at most
//!    `--connect-concurrency` handshakes in flight), all joining `room:bench`. With
//!    `--arrival-rate R` the loop is open instead (every scenario): client i starts its
//!    handshake at t0 + i/R s whatever became of the clients before it, held back only by a
//!    safety bound of [`OPEN_LOOP_MAX_IN_FLIGHT`](options::OPEN_LOOP_MAX_IN_FLIGHT)
//!    handshakes in flight; the report gives how late the handshakes started against the
//!    schedule and how many clients waited for a slot. A client that does not join within
//!    30 s is counted as failed, by phase (TCP connect, WebSocket upgrade, join) and cause
//!    (the HTTP status of a refused upgrade, e.g. `HTTP 408`; the io error; a timeout);
//! 2. reads the server's VmRSS before the N connect and once they are joined and idle (stable),
//!    and reports the delta per connection;
//! 3. measures one broadcast to all N, `--rounds` times: a separate sender pushes a `shout`
//!    carrying a sequence number; every client takes the receive instant (same process, monotonic
//!    clock) and latency = receive − send;
//! 4. saturates the fan-out for `--seconds`: the sender keeps at most `--window` shouts whose
//!    delivery to all N is incomplete, and the delivered frames/s are counted (plus closes, e.g.
//!    slow consumers);
//! 5. prints a Markdown result block and exits non-zero if more than `--fail-tolerance` percent
//!    of the clients could not connect and join, or if the run was aborted.
//!
//! `--scenario join-storm` replaces steps 2–4: the N clients (distinct `user_id`s) join
//! `room:storm` as fast as `--connect-concurrency` allows (or at `--arrival-rate`), and each
//! counts the members it is told about with a byte scan (occurrences of `"phx_ref":` in its
//! `presence_state`, plus those in every `presence_diff`'s `joins` part, minus those in its
//! `leaves` part). It reports the time from the first join sent, and from the last join
//! reply, until every client counts N, the presence frames (per client: mean, p50, p99, max)
//! and bytes received (compared with N²), the server's peak and post-storm RSS, and any
//! client whose count ever exceeded N (a server bug). Once the server is idle again it times
//! five single joins on a quiet topic (`room:storm:quiet`, two members: join sent → the other
//! member's `presence_diff`). It exits non-zero if the clients did not converge or anyone
//! over-counted.
//!
//! `--scenario pages` measures commander pages against `examples/live_todo` (the default
//! `--server` of this scenario: `cargo build --release --example live_todo`). It fetches
//! `--page` (`/lists/bench`) once with a plain HTTP/1.1 GET and reads the socket path, the
//! commander and the page token from the page's `<script data-tether-…>` tag; the N clients
//! then connect to that socket (`…/websocket?vsn=2.0.0`) and join `tether:page:<commander>`
//! with `{"token": …}` (one token for all). It reports the join latency (join sent → ok
//! reply), when each page got its first `patch` (its `on_connect`), the server's RSS before
//! the clients and once all pages joined and idle (the delta / N is the bytes per page),
//! and an event round: the first `--adders` (20) pages each send one `add` event
//! (`{"handler":"add","sender":{"form":{"new_item":"x<i>"}}}`), and the run measures their
//! replies and when every page's `#items` patch shows every item added (every page of the
//! list re-renders on every add). Each wait is bounded by `--converge-timeout-secs`; a
//! timeout, an error reply or a page that never showed every add ends the run non-zero.
//!
//! `--nodes K` (K > 1) runs a cluster on this machine: it starts its own `redis-server`
//! (`--port <free> --bind 127.0.0.1 --save "" --appendonly no`), then K servers with
//! `TETHER_PUBSUB_URL` pointing at it, `TETHER_NODE=node-<i>` and one shared
//! `TETHER_SECRET_KEY_BASE`, and waits until all K subscribe the Redis bus. Client `i` connects
//! to node `i mod K`, the fan-out sender to node-0: one-broadcast latency is reported for the
//! sender's node (local) and the other nodes (remote, one Redis hop), and the join storm
//! reports when each node's clients converged. RSS and CPU are reported per node and summed.
//! `--server-env KEY=VALUE` (repeatable) passes e.g. `TETHER_PRESENCE_BROADCAST_PERIOD_MS` to
//! every server. Each server's stderr is scanned for `panicked`, ` ERROR ` and ` WARN `
//! lines, redis-server's log for warnings after start; the counts are in the report.
//!
//! `--scenario rooms --nodes K --shards S` (issue 12) spreads N clients over K nodes and S
//! generator processes (one process can hold only ~19,000 sockets here): client i joins
//! `<topic>:<(i / K) mod R>` (`--rooms R`, presence per room), the coordinator measures the
//! servers' RSS, idle CPU over `--idle-secs`, one broadcast to all N (a shout on every room,
//! stamped with `CLOCK_MONOTONIC`, which the processes share), the convergence of every
//! client's member count after the last join, and after a SIGKILL of `--kill-node` (see
//! [`rooms`]). With `--counts` (and `--rounds 0`) the nodes are `anonymous_counts` and each
//! client sums the counts of its counts-only presence payloads instead of counting metas.
//!
//! `--scenario soak` (issue 22) holds N clients on `room:soak` for `--seconds` with `--churn`
//! joins and leaves per second and a broadcast per second, reads the server's RSS and its
//! `/metrics` gauges every `--sample-secs`, and checks the RSS growth after `--settle-secs`
//! and that the gauges come back to their baseline once the clients go (see [`soak`]).
//!
//! Everything is bounded by `--deadline-secs`; every child (servers, redis-server) is stopped
//! on every exit path (SIGTERM, then SIGKILL after 5 s; a watchdog SIGKILLs them 20 s after the
//! deadline; each also gets SIGKILL if this process dies, through `PR_SET_PDEATHSIG`).
//!
//! Receive loops are kept cheap. tokio-tungstenite performs each client's handshake; the N
//! measured clients then continue on the same TCP stream with a minimal RFC 6455 codec
//! ([`RawWs`](client::RawWs): no per-read buffer zeroing, no per-message allocation, a read
//! buffer that shrinks back after a large frame such as a big `presence_state`). They never
//! parse JSON: a broadcast `shout` is recognised by its prefix `[null,null,` and the bytes
//! `","shout",{`, and its `"seq":` number is read by a byte search. Every other frame
//! (replies, `presence_state`, `presence_diff`, ...) is only counted. The sender is a plain
//! tokio-tungstenite client.
//!
//! The modules, one job each: [`options`] (the command line), [`process`] (child processes:
//! die-with-parent, stop, watchdog, log scanning), [`servers`] (the servers under test and the
//! cluster), [`redis`] (the cluster's redis-server), [`procfs`] (RSS and CPU readings),
//! [`server_metrics`] (what the servers' `/metrics` say: gauges, write timeouts and slow
//! consumers, shown in every scenario's report),
//! [`connect`] (targets, handshake, Phoenix frames), [`client`] (the RFC 6455 codec),
//! [`session`] (one measured client), [`shared`] (the state the clients and scenarios share),
//! [`histogram`] (percentiles), [`run`] (what every scenario shares), [`fanout`],
//! [`join_storm`], [`pages`], [`rooms`] and [`soak`] (the scenarios), [`report`] (the printed result
//! and the exit code).

mod client;
mod connect;
mod fanout;
mod histogram;
mod join_storm;
mod options;
mod pages;
mod process;
mod procfs;
mod redis;
#[path = "../../tests/support/redis.rs"]
mod redis_support;
mod report;
mod rooms;
mod run;
mod server_metrics;
mod servers;
mod session;
mod shared;
mod soak;

use std::time::{Duration, Instant};

fn main() {
    // `cargo bench` appends `--bench` to a harness-less bench's arguments.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let opts = options::parse_or_exit(&args);
    let command = options::command_line(&args);
    let started = Instant::now();
    process::check_nofile(opts.client_range().len());
    let deadline = Duration::from_secs(opts.deadline_secs);
    process::spawn_watchdog(deadline + Duration::from_secs(20));

    // The servers are started from the main thread (PR_SET_PDEATHSIG follows the spawning
    // thread).
    let mut fleet = match servers::Fleet::start(&opts, Duration::from_secs(20).min(deadline)) {
        Ok(fleet) => fleet,
        Err(err) => {
            // Whatever had started was stopped when `Fleet::start` returned.
            eprintln!("loadgen: {err}");
            std::process::exit(2);
        }
    };
    let remaining = deadline.saturating_sub(started.elapsed());
    let (mut report, outcome) = run::execute(&opts, &fleet, remaining);
    if opts.worker.is_some() {
        // A rooms worker reports on its stdout as it goes (see `rooms`).
        if let Err(err) = &outcome {
            eprintln!("loadgen worker: {err}");
        }
        std::process::exit(i32::from(outcome.is_err()) * 2);
    }
    // Servers first (a clean stop says goodbye through Redis), then redis-server.
    fleet.stop(&mut report);
    report.elapsed = started.elapsed().as_secs_f64();
    report::print_report(&report, &opts, &command);
    let code = report::exit_code(&report, &opts, &outcome);
    // Exit without tearing down thousands of sockets one by one.
    std::process::exit(code);
}
