//! The result of a run ([`Report`], [`StormReport`], [`PagesReport`]), printed as a Markdown block on stdout,
//! and the exit code it implies.
//!
//! It only formats what the run measured: it must never measure, wait or touch a process
//! itself (the machine summary line aside), and a figure that was not measured is left out
//! or said to be missing, never printed as a zero that looks measured.

use std::collections::BTreeMap;

use crate::{
    histogram::Summary,
    options::{OPEN_LOOP_MAX_IN_FLIGHT, Opts},
    procfs::{PhaseCpu, machine_summary},
    shared::Phase,
};

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub requested: usize,
    pub joined: Option<usize>,
    /// Clients that did not join, by phase and cause.
    pub failures: BTreeMap<(Phase, String), usize>,
    pub connect: Option<PhaseCpu>,
    /// Open loop (`--arrival-rate`): handshake start − scheduled time, µs; clients that
    /// waited for a slot under the safety bound.
    pub arrival_lag: Option<Summary>,
    pub held_back: usize,
    /// Clients joined per node (client `idx` is on node `idx % nodes`).
    pub joined_per_node: Vec<usize>,
    /// VmRSS of each server, in KiB.
    pub rss_before: Option<Vec<u64>>,
    pub rss_joined: Option<Vec<u64>>,
    pub rss_settle: Option<(f64, bool)>,
    pub rss_after_load: Option<Vec<u64>>,
    /// Frames other than shouts/heartbeat replies received by all clients after joining.
    pub other_frames_at_idle: Option<u64>,
    pub rounds_done: usize,
    /// Latency-round samples (µs), per node of the receiving client.
    pub round_samples: Vec<Vec<u32>>,
    /// Per node, per round: the earliest receive among that node's clients (µs), i.e. when
    /// the node started writing the broadcast.
    pub round_first: Vec<Vec<u32>>,
    pub round_misses: usize,
    pub latency: Option<PhaseCpu>,
    pub sustained_sent: Option<usize>,
    pub sustained_delivered: u64,
    pub sustained_elapsed: f64,
    pub sustained_abandoned: usize,
    /// Sustained-phase latency (count, p50, p99, max in µs): all, clients on the sender's
    /// node, clients on the other nodes.
    pub sustained_lat: Option<Summary>,
    pub sustained_lat_local: Option<Summary>,
    pub sustained_lat_remote: Option<Summary>,
    pub sustained: Option<PhaseCpu>,
    pub disconnects: usize,
    pub close_reasons: BTreeMap<String, usize>,
    pub generator_rss_kib: Option<u64>,
    pub frame_bytes: usize,
    pub server_stop: Option<String>,
    /// Description of the cluster (nodes, ports, pids, redis).
    pub cluster: Option<String>,
    /// Per server node: (panicked, ERROR, WARN lines); the first flagged lines of every
    /// log are in `log_samples`.
    pub server_logs: Vec<(u64, u64, u64)>,
    pub log_samples: Vec<String>,
    /// Warning lines in redis-server's log after start.
    pub redis_warnings: Option<u64>,
    pub redis_stop: Option<String>,
    pub aborted: Option<String>,
    pub elapsed: f64,
    pub storm: Option<StormReport>,
    pub pages: Option<PagesReport>,
    /// Rows of the rooms scenario (convergence, idle CPU, the node failure).
    pub rooms: Vec<(String, String)>,
    /// The soak's readings over time (a Markdown table), and whether a check failed.
    pub soak_table: Option<String>,
    pub soak_failed: bool,
}

/// The pages scenario's figures. Latencies are µs.
#[derive(Debug, Default, Clone)]
pub struct PagesReport {
    /// What `GET --page` gave.
    pub page: String,
    pub initial_items: usize,
    /// Pages joined (ok reply), and those of them that got a patch.
    pub joined: usize,
    pub patched: usize,
    /// Join sent → ok reply, per page.
    pub join_latency: Option<Summary>,
    /// First join sent → last ok reply (s).
    pub join_phase: f64,
    /// Ok reply → first patch, per page.
    pub first_patch: Option<Summary>,
    /// First join sent → the last page's first patch (s), if every joined page got one.
    pub all_patched: Option<f64>,
    /// VmHWM once the pages joined and idle; after the event round.
    pub rss_peak_joined: Option<Vec<u64>>,
    pub rss_peak: Option<Vec<u64>>,
    pub rss_after_round: Option<Vec<u64>>,
    /// Adders that were joined (each sent one `add`), and their replies.
    pub adders: usize,
    pub replies_ok: usize,
    pub replies_error: usize,
    /// `add` sent → its reply.
    pub reply_latency: Option<Summary>,
    /// Items every page must show after the round (initial + ok replies).
    pub target_items: usize,
    /// Pages showing them, and pages live at the end of the round.
    pub at_target: usize,
    pub live: usize,
    /// First `add` sent → each page's `#items` first showing every add.
    pub page_convergence: Option<Summary>,
    /// … the last page's (s), if every live page got there.
    pub round_convergence: Option<f64>,
    /// The round's patches were counted once none had arrived for 1 s (else while some
    /// still arrived).
    pub round_quiet: bool,
    pub round_patches: u64,
    pub round_items_patches: u64,
    pub round_patch_bytes: u64,
    pub round_cpu: Option<PhaseCpu>,
    /// Every patch of the run.
    pub patches: u64,
    pub patch_bytes: u64,
    /// Other frames on the page topic, by event, and the first few of them (and of error
    /// replies).
    pub other_events: BTreeMap<String, u64>,
    pub samples: Vec<String>,
}

#[derive(Debug, Default, Clone)]
pub struct StormReport {
    /// First join sent → last join reply received.
    pub join_phase: f64,
    /// First join sent → the last change of any client's count, once all equal `target`.
    pub convergence: Option<f64>,
    /// Last join reply → that last change (what coalescing windows add after the storm).
    pub after_last_join: Option<f64>,
    /// Per-client time from the first join sent to its count's last change: p50, p99, max.
    pub client_convergence: (f64, f64, f64),
    /// Expected count (clients joined).
    pub target: usize,
    pub converged_clients: usize,
    /// The most frequent counts among clients that did not converge: (count, clients).
    pub stuck: Vec<(i64, usize)>,
    pub no_state: usize,
    pub state_frames: u64,
    pub diff_frames: u64,
    pub presence_bytes: u64,
    pub state_metas: u64,
    pub join_metas: u64,
    pub leave_metas: u64,
    /// Presence frames (state + diffs) per client.
    pub frames_per_client: Summary,
    pub late_frames: u64,
    pub overcounts: u64,
    pub max_count: i64,
    pub repeated_states: u64,
    pub malformed: u64,
    /// After the settle period: clients whose count is no longer `target`.
    pub drifted_after: usize,
    pub cpu: Option<PhaseCpu>,
    /// Per node: the last change of any of its clients' counts (s after the first join),
    /// and how many of its clients count the target.
    pub per_node: Vec<(f64, usize, usize)>,
    /// VmHWM and settled VmRSS of each server, in KiB.
    pub rss_peak: Option<Vec<u64>>,
    pub rss_post: Option<Vec<u64>>,
    pub rss_settle: Option<(f64, bool)>,
    /// A single join on a quiet topic after the storm, join sent → the other member's
    /// `presence_diff` (µs), or why it could not be measured.
    pub quiet_join: Option<Result<Summary, String>>,
}

impl PhaseCpu {
    /// `generator N %, server N %, …, whole machine N % of M % (100 % = one core; over S s)`.
    pub fn describe(&self) -> String {
        let pct = |cpu: f64| {
            if self.wall > 0.0 {
                cpu / self.wall * 100.0
            } else {
                0.0
            }
        };
        let mut text = format!("generator {:.0} %", pct(self.generator));
        if let Some(server) = self.server {
            if self.server_each.len() > 1 {
                let each: Vec<String> = self
                    .server_each
                    .iter()
                    .map(|&c| format!("{:.0}", pct(c)))
                    .collect();
                text += &format!(
                    ", servers {:.0} % (node-0…: {} %)",
                    pct(server),
                    each.join(" / ")
                );
            } else {
                text += &format!(", server {:.0} %", pct(server));
            }
        }
        if let Some(redis) = self.redis {
            text += &format!(", redis {:.0} %", pct(redis));
        }
        if let Some(machine) = self.machine {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            text += &format!(", whole machine {:.0} % of {} %", pct(machine), cores * 100);
        }
        text + &format!(" (100 % = one core; over {:.1} s)", self.wall)
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The sum, and each node's figure when there are several: `912.3 MiB (node-0 …, …)`.
pub fn mib_nodes(kib: &[u64]) -> String {
    let total = mib(kib.iter().sum());
    if kib.len() > 1 {
        let each: Vec<String> = kib
            .iter()
            .enumerate()
            .map(|(i, &k)| format!("node-{i} {:.1}", k as f64 / 1024.0))
            .collect();
        format!("{total} (MiB: {})", each.join(", "))
    } else {
        total
    }
}

/// Per-connection growth: the sum over nodes, and each node's own when there are several.
fn per_conn_nodes(before: &[u64], after: &[u64], joined: &[usize]) -> String {
    let total: usize = joined.iter().sum();
    let delta = |b: u64, a: u64| a as f64 - b as f64;
    let sum: f64 = before.iter().zip(after).map(|(&b, &a)| delta(b, a)).sum();
    let mut text = format!("{:.2} KiB", sum / total.max(1) as f64);
    if after.len() > 1 {
        let each: Vec<String> = (0..after.len())
            .map(|i| {
                format!(
                    "node-{i} {:.2}",
                    delta(before[i], after[i]) / joined.get(i).copied().unwrap_or(0).max(1) as f64
                )
            })
            .collect();
        text += &format!(" (KiB: {})", each.join(", "));
    }
    text
}

/// p50 / p99 / max (ms) of µs samples.
fn quantiles_ms(s: &Summary) -> String {
    if s.count == 0 {
        return "no samples".into();
    }
    format!("{} / {} / {} ms", ms(s.p50), ms(s.p99), ms(s.max))
}

/// ", stable after N s" (or NOT stable) for an RSS reading that waited to settle.
fn settle_note(settle: Option<(f64, bool)>) -> String {
    settle
        .map(|(s, ok)| {
            if ok {
                format!(", stable after {s:.0} s")
            } else {
                format!(", NOT stable after {s:.0} s")
            }
        })
        .unwrap_or_default()
}

/// `N× reason; …` of a count per reason.
fn reasons(counts: &BTreeMap<String, usize>) -> String {
    let each: Vec<String> = counts.iter().map(|(k, v)| format!("{v}× {k}")).collect();
    each.join("; ")
}

/// The rows of the result table, in order.
#[derive(Default)]
struct Rows(Vec<(String, String)>);

impl Rows {
    fn row(&mut self, key: &str, value: String) {
        self.0.push((key.to_string(), value));
    }
}

pub fn print_report(report: &Report, opts: &Opts, command: &str) {
    let mut rows = Rows::default();
    let joined = report.joined.unwrap_or(0);
    client_rows(&mut rows, report, opts, joined);
    rss_rows(&mut rows, report, joined);
    round_rows(&mut rows, report, opts);
    sustained_rows(&mut rows, report, opts);
    if let Some(st) = &report.storm {
        storm_rows(&mut rows, st, report, joined);
    }
    if let Some(pr) = &report.pages {
        pages_rows(&mut rows, pr, report, opts);
    }
    rows.0.extend(report.rooms.iter().cloned());
    tail_rows(&mut rows, report);

    println!();
    println!("### loadgen result");
    println!();
    println!("Machine: {}", machine_summary());
    println!();
    println!("Command: `{command}`");
    println!();
    println!("| metric | value |");
    println!("|---|---|");
    for (k, v) in rows.0 {
        println!("| {k} | {v} |");
    }
    println!();
    if let Some(table) = &report.soak_table {
        println!("{table}");
    }
}

/// Who joined, who failed, how long joining took, and the cluster.
fn client_rows(rows: &mut Rows, report: &Report, opts: &Opts, joined: usize) {
    rows.row(
        "clients joined / requested (N)",
        format!("{joined} / {}", report.requested),
    );
    // Failures before the WebSocket was up (TCP connect, HTTP upgrade), and in the join.
    let failures = |handshake: bool| {
        let each: BTreeMap<String, usize> = report
            .failures
            .iter()
            .filter(|((phase, _), _)| phase.is_handshake() == handshake)
            .map(|((phase, cause), n)| (format!("{phase}: {cause}"), *n))
            .collect();
        (each.values().sum::<usize>(), each)
    };
    if report.joined.is_some() {
        let (failed, each) = failures(true);
        rows.row(
            "**handshake failures (TCP connect + WebSocket upgrade), by cause**",
            if failed == 0 {
                "**0**".to_string()
            } else {
                format!("**{failed}** ({})", reasons(&each))
            },
        );
    }
    let (failed, each) = failures(false);
    if failed > 0 {
        rows.row("join failures", format!("{failed} ({})", reasons(&each)));
    }
    if let Some(c) = &report.connect {
        rows.row(
            "connect + join time",
            format!(
                "{:.2} s ({:.0} joins/s, {})",
                c.wall,
                joined as f64 / c.wall.max(1e-9),
                opts.arrivals()
            ),
        );
    }
    if let Some(lag) = &report.arrival_lag {
        rows.row(
            "open loop: handshake start behind schedule, p50 / p99 / max",
            format!(
                "{}; {} clients waited for a slot (bound {OPEN_LOOP_MAX_IN_FLIGHT} in flight)",
                quantiles_ms(lag),
                report.held_back
            ),
        );
    }
    if let Some(cluster) = &report.cluster {
        rows.row("cluster", cluster.clone());
        let per: Vec<String> = report
            .joined_per_node
            .iter()
            .enumerate()
            .map(|(i, j)| format!("node-{i} {j}"))
            .collect();
        rows.row("clients joined per node", per.join(", "));
    }
}

/// Server RSS before the clients and with N joined and idle, and the growth per connection.
fn rss_rows(rows: &mut Rows, report: &Report, joined: usize) {
    match (&report.rss_before, &report.rss_joined) {
        (Some(before), Some(after)) => {
            rows.row("server RSS before clients", mib_nodes(before));
            let settle = settle_note(report.rss_settle);
            rows.row(
                "server RSS, N joined and idle",
                format!("{}{settle}", mib_nodes(after)),
            );
            if joined > 0 {
                rows.row(
                    "**RSS per idle joined connection**",
                    format!(
                        "**{}**",
                        per_conn_nodes(before, after, &report.joined_per_node)
                    ),
                );
            }
        }
        (Some(before), None) => rows.row("server RSS before clients", mib_nodes(before)),
        _ => rows.row("server RSS", "not measured (--url)".into()),
    }
    if let Some(other) = report.other_frames_at_idle {
        rows.row(
            "non-shout frames received while joining",
            format!("{other}"),
        );
    }
}

/// One-broadcast latency: all clients, and with several nodes local / remote / per node.
fn round_rows(rows: &mut Rows, report: &Report, opts: &Opts) {
    if report.rounds_done > 0 {
        let summary = |nodes: std::ops::Range<usize>| {
            Summary::of(
                report.round_samples[nodes]
                    .iter()
                    .flatten()
                    .map(|&v| v as u64),
            )
        };
        let k = report.round_samples.len();
        let all = summary(0..k);
        rows.row(
            "broadcast latency rounds",
            format!(
                "{} of {} ({} samples, {} missed)",
                report.rounds_done, opts.rounds, all.count, report.round_misses
            ),
        );
        rows.row(
            "**one broadcast to N: p50 / p99 / max**",
            format!("**{}**", quantiles_ms(&all)),
        );
        if k > 1 {
            let (local, remote) = (summary(0..1), summary(1..k));
            rows.row(
                "**… to clients on the sender's node (local)**",
                format!("**{}** ({} samples)", quantiles_ms(&local), local.count),
            );
            rows.row(
                "**… to clients on the other nodes (remote, via Redis)**",
                format!("**{}** ({} samples)", quantiles_ms(&remote), remote.count),
            );
            let each: Vec<String> = (0..k)
                .map(|i| format!("node-{i} {}", quantiles_ms(&summary(i..i + 1))))
                .collect();
            rows.row("… per node", each.join("; "));
            let first: Vec<String> = report
                .round_first
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let s = Summary::of(v.iter().map(|&v| v as u64));
                    format!("node-{i} {} / {} ms", ms(s.p50), ms(s.max))
                })
                .collect();
            rows.row(
                "… first client reached on each node, median / max over rounds",
                first.join("; "),
            );
        }
    }
    if let Some(c) = &report.latency {
        rows.row("CPU during latency rounds", c.describe());
    }
}

/// Sustained fan-out: shouts, delivered frames/s, latency, CPU, RSS after.
fn sustained_rows(rows: &mut Rows, report: &Report, opts: &Opts) {
    if let Some(sent) = report.sustained_sent {
        let fps = report.sustained_delivered as f64 / report.sustained_elapsed.max(1e-9);
        rows.row(
            "sustained fan-out",
            format!(
                "{sent} shouts sent in {:.1} s (window {}), {} frames delivered in {:.2} s",
                opts.seconds, opts.window, report.sustained_delivered, report.sustained_elapsed
            ),
        );
        rows.row("**delivered frames/s**", format!("**{fps:.0}**"));
        if report.sustained_abandoned > 0 {
            rows.row(
                "shouts not delivered to all within 10 s",
                format!("{}", report.sustained_abandoned),
            );
        }
        let lat = |s: Summary| {
            format!(
                "{} / {} / {} ms ({} samples)",
                ms(s.p50),
                ms(s.p99),
                ms(s.max),
                s.count
            )
        };
        if let Some(all) = report.sustained_lat {
            rows.row("latency under sustained load p50 / p99 / max", lat(all));
        }
        if let (Some(local), Some(remote)) =
            (report.sustained_lat_local, report.sustained_lat_remote)
        {
            rows.row(
                "… local (sender's node) / remote",
                format!("{} / {}", lat(local), lat(remote)),
            );
        }
    }
    if let Some(c) = &report.sustained {
        rows.row("CPU during sustained fan-out", c.describe());
    }
    if let Some(kib) = &report.rss_after_load {
        rows.row("server RSS after sustained load", mib_nodes(kib));
    }
}

/// The join storm: join phase and convergence (overall, per client, per node).
fn storm_rows(rows: &mut Rows, st: &StormReport, report: &Report, joined: usize) {
    rows.row(
        "join phase (first join sent → last join reply)",
        format!("{:.2} s", st.join_phase),
    );
    match st.convergence {
        Some(secs) => {
            rows.row(
                "**convergence (first join sent → every client counts N)**",
                format!("**{secs:.2} s**"),
            );
            if let Some(after) = st.after_last_join {
                rows.row(
                    "**last join reply → every client counts N**",
                    format!("**{:.0} ms**", after * 1000.0),
                );
            }
        }
        None => rows.row(
            "**convergence**",
            format!(
                "**NOT CONVERGED**: {} of {joined} clients count {}",
                st.converged_clients, st.target
            ),
        ),
    }
    let (p50, p99, max) = st.client_convergence;
    rows.row(
        "per client, first join sent → its count's last change: p50 / p99 / max",
        format!("{p50:.2} / {p99:.2} / {max:.2} s"),
    );
    if st.per_node.len() > 1 {
        let each: Vec<String> = st
            .per_node
            .iter()
            .enumerate()
            .map(|(i, (last, ok, of))| format!("node-{i} {last:.2} s ({ok}/{of} at N)"))
            .collect();
        rows.row(
            "**per node, last count change of its clients**",
            format!("**{}**", each.join(", ")),
        );
    }
    if !st.stuck.is_empty() {
        let stuck: Vec<String> = st
            .stuck
            .iter()
            .map(|(count, clients)| format!("{clients} at {count}"))
            .collect();
        rows.row("counts of clients not converged", stuck.join(", "));
    }
    storm_traffic_rows(rows, st, joined);
    storm_rss_rows(rows, st, report);
    match &st.quiet_join {
        Some(Ok(s)) => rows.row(
            "single join on a quiet topic after the storm (join sent → the other member's \
             presence_diff): p50 / p99 / max",
            format!("{} ({} joins)", quantiles_ms(s), s.count),
        ),
        Some(Err(err)) => rows.row(
            "single join on a quiet topic",
            format!("not measured: {err}"),
        ),
        None => {}
    }
}

/// The join storm's presence traffic against N², over-counts and anomalies, CPU.
fn storm_traffic_rows(rows: &mut Rows, st: &StormReport, joined: usize) {
    let n = joined as f64;
    let n2 = n * n;
    let frames = st.state_frames + st.diff_frames;
    rows.row(
        "**presence frames received (= sent)**",
        format!(
            "**{frames}** ({} states + {} diffs) = {:.5} × N² = {:.5} × N²/2",
            st.state_frames,
            st.diff_frames,
            frames as f64 / n2,
            frames as f64 / (n2 / 2.0),
        ),
    );
    let per = &st.frames_per_client;
    rows.row(
        "**presence frames per client: mean / p50 / p99 / max**",
        format!(
            "**{:.1}** / {} / {} / **{}**",
            frames as f64 / n,
            per.p50,
            per.p99,
            per.max
        ),
    );
    rows.row(
        "**presence bytes received**",
        format!(
            "**{:.1} MiB** ({:.1} bytes × N²; {:.1} KiB per client)",
            st.presence_bytes as f64 / 1048576.0,
            st.presence_bytes as f64 / n2,
            st.presence_bytes as f64 / n / 1024.0
        ),
    );
    rows.row(
        "metas received: in states / diff joins / diff leaves",
        format!(
            "{} ({:.3} × N²/2) / {} / {}",
            st.state_metas,
            st.state_metas as f64 / (n2 / 2.0),
            st.join_metas,
            st.leave_metas
        ),
    );
    rows.row(
        "**over-counts (a client counted more than N)**",
        if st.overcounts == 0 {
            format!("**0** (highest count {})", st.max_count)
        } else {
            format!(
                "**{} updates — SERVER BUG** (highest count {})",
                st.overcounts, st.max_count
            )
        },
    );
    if st.repeated_states > 0 || st.malformed > 0 || st.no_state > 0 {
        rows.row(
            "**anomalies**",
            format!(
                "**{} second presence_state, {} diffs without \"leaves\", {} clients without a \
                 state**",
                st.repeated_states, st.malformed, st.no_state
            ),
        );
    }
    rows.row(
        "presence frames after convergence / counts changed since",
        format!("{} / {}", st.late_frames, st.drifted_after),
    );
    if let Some(c) = &st.cpu {
        rows.row("CPU, first join → convergence", c.describe());
    }
}

/// The join storm's peak RSS and RSS once idle after it.
fn storm_rss_rows(rows: &mut Rows, st: &StormReport, report: &Report) {
    let Some(before) = &report.rss_before else {
        return;
    };
    if let Some(peak) = &st.rss_peak {
        rows.row(
            "**server peak RSS (VmHWM)**",
            format!("**{}**", mib_nodes(peak)),
        );
    }
    if let Some(post) = &st.rss_post {
        let settle = settle_note(st.rss_settle);
        rows.row(
            "**server RSS after the storm, idle**",
            format!(
                "**{}**{settle}; {} per joined connection",
                mib_nodes(post),
                per_conn_nodes(before, post, &report.joined_per_node)
            ),
        );
    }
}

/// The pages scenario: the page, joins and first patches, memory per page, the event round.
fn pages_rows(rows: &mut Rows, pr: &PagesReport, report: &Report, opts: &Opts) {
    rows.row("page", pr.page.clone());
    if let Some(c) = &report.connect {
        rows.row("CPU during connect + join", c.describe());
    }
    rows.row(
        "join phase (first join sent → last ok reply)",
        format!("{:.3} s", pr.join_phase),
    );
    if let Some(s) = &pr.join_latency {
        rows.row(
            "**join latency (join sent → ok reply): p50 / p99 / max**",
            format!("**{}** ({} pages)", quantiles_ms(s), s.count),
        );
    }
    if let Some(s) = &pr.first_patch {
        rows.row(
            "ok reply → first patch: p50 / p99 / max",
            format!("{} ({} pages)", quantiles_ms(s), s.count),
        );
    }
    match pr.all_patched {
        Some(secs) => rows.row(
            "**every page patched (first join sent → last page's first patch)**",
            format!("**{secs:.3} s**"),
        ),
        None => rows.row(
            "**every page patched**",
            format!(
                "**NO**: {} of {} joined pages got a patch within {} s",
                pr.patched, pr.joined, opts.converge_timeout_secs
            ),
        ),
    }
    if let (Some(before), Some(after)) = (&report.rss_before, &report.rss_joined) {
        let delta_kib = after.iter().sum::<u64>() as f64 - before.iter().sum::<u64>() as f64;
        let per_page = delta_kib * 1024.0 / pr.joined.max(1) as f64;
        rows.row(
            "**bytes per page (RSS delta / pages joined)**",
            format!("**{per_page:.0} bytes** ({:.2} KiB)", per_page / 1024.0),
        );
    }
    if let Some(peak) = &pr.rss_peak_joined {
        rows.row("server peak RSS (VmHWM), pages joined", mib_nodes(peak));
    }
    pages_round_rows(rows, pr);
    rows.row(
        "patches received, whole run",
        format!(
            "{} ({:.1} MiB)",
            pr.patches,
            pr.patch_bytes as f64 / 1048576.0
        ),
    );
    if !pr.other_events.is_empty() {
        rows.row(
            "**other frames on the page topic**",
            format!(
                "**{}**",
                reasons(
                    &pr.other_events
                        .iter()
                        .map(|(k, v)| (k.clone(), *v as usize))
                        .collect()
                )
            ),
        );
    }
    if !pr.samples.is_empty() {
        let samples: Vec<String> = pr
            .samples
            .iter()
            .map(|l| format!("`{}`", l.replace('|', "\\|").replace('`', "'")))
            .collect();
        rows.row("first such frames", samples.join("<br>"));
    }
}

/// The pages scenario's event round.
fn pages_round_rows(rows: &mut Rows, pr: &PagesReport) {
    rows.row(
        "event round: adds sent / ok replies / error replies",
        format!("{} / {} / {}", pr.adders, pr.replies_ok, pr.replies_error),
    );
    if let Some(s) = &pr.reply_latency {
        rows.row(
            "**add reply latency (event sent → phx_reply): p50 / p99 / max**",
            format!("**{}** ({} replies)", quantiles_ms(s), s.count),
        );
    }
    match pr.round_convergence {
        Some(secs) => rows.row(
            "**every page shows every add (first add sent → last page's `#items`)**",
            format!(
                "**{secs:.3} s** ({} items on {} pages)",
                pr.target_items, pr.live
            ),
        ),
        None => rows.row(
            "**every page shows every add**",
            format!(
                "**NO**: {} of {} live pages show {} items",
                pr.at_target, pr.live, pr.target_items
            ),
        ),
    }
    if let Some(s) = &pr.page_convergence {
        rows.row(
            "per page, first add sent → its `#items` shows every add: p50 / p99 / max",
            quantiles_ms(s),
        );
    }
    let expected = pr.live as f64 * pr.replies_ok as f64;
    rows.row(
        "`#items` patches received in the round",
        format!(
            "{} ({:.5} × pages × adds); {} patches in all, {:.1} MiB{}",
            pr.round_items_patches,
            pr.round_items_patches as f64 / expected.max(1.0),
            pr.round_patches,
            pr.round_patch_bytes as f64 / 1048576.0,
            if pr.round_quiet {
                ""
            } else {
                " (**counted while patches still arrived**)"
            }
        ),
    );
    if let Some(c) = &pr.round_cpu {
        rows.row("CPU, event round", c.describe());
    }
    if let Some(kib) = &pr.rss_after_round {
        rows.row("server RSS after the event round", mib_nodes(kib));
    }
    if let Some(peak) = &pr.rss_peak {
        rows.row("server peak RSS (VmHWM) at the end", mib_nodes(peak));
    }
}

/// Disconnects, frame size, generator RSS, server logs, shutdowns, abort, elapsed.
fn tail_rows(rows: &mut Rows, report: &Report) {
    rows.row(
        "**disconnects during the run**",
        if report.close_reasons.is_empty() {
            format!("**{}**", report.disconnects)
        } else {
            format!(
                "**{}** ({})",
                report.disconnects,
                reasons(&report.close_reasons)
            )
        },
    );
    if report.storm.is_none() && report.pages.is_none() {
        rows.row("shout frame size", format!("{} bytes", report.frame_bytes));
    }
    if let Some(kib) = report.generator_rss_kib {
        rows.row("generator RSS", mib(kib));
    }
    log_rows(rows, report);
    if let Some(stop) = &report.server_stop {
        rows.row("server shutdown", stop.clone());
    }
    if let Some(stop) = &report.redis_stop {
        rows.row("redis-server shutdown", stop.clone());
    }
    if let Some(reason) = &report.aborted {
        rows.row("**ABORTED**", reason.clone());
    }
    rows.row("elapsed", format!("{:.1} s", report.elapsed));
}

/// What the servers' stderr and redis-server's log showed.
fn log_rows(rows: &mut Rows, report: &Report) {
    if !report.server_logs.is_empty() {
        let (panics, errors, warns) = report
            .server_logs
            .iter()
            .fold((0, 0, 0), |acc, l| (acc.0 + l.0, acc.1 + l.1, acc.2 + l.2));
        let mut text = format!("{panics} panicked, {errors} ERROR, {warns} WARN lines");
        if report.server_logs.len() > 1 {
            let each: Vec<String> = report
                .server_logs
                .iter()
                .enumerate()
                .map(|(i, l)| format!("node-{i} {}/{}/{}", l.0, l.1, l.2))
                .collect();
            text += &format!(" ({})", each.join(", "));
        }
        if panics + errors + warns > 0 {
            text = format!("**{text}**");
        }
        rows.row("server stderr", text);
    }
    if let Some(warnings) = report.redis_warnings {
        rows.row("redis-server warnings after start", format!("{warnings}"));
    }
    if !report.log_samples.is_empty() {
        let samples: Vec<String> = report
            .log_samples
            .iter()
            .map(|l| format!("`{}`", l.replace('|', "\\|").replace('`', "'")))
            .collect();
        rows.row("first flagged log lines", samples.join("<br>"));
    }
}

/// 2 if the run was aborted, 1 for an over-count or too many connect/join failures (more
/// than `--fail-tolerance` percent), else 0.
pub fn exit_code(r: &Report, opts: &Opts, outcome: &Result<(), String>) -> i32 {
    let joined = r.joined.unwrap_or(0);
    let failed = opts.clients - joined.min(opts.clients);
    let allowed = (opts.clients as f64 * opts.fail_tolerance / 100.0).floor() as usize;
    if let Err(err) = outcome {
        eprintln!("loadgen: run aborted: {err}");
        2
    } else if r.storm.as_ref().is_some_and(|st| st.overcounts > 0) {
        eprintln!("loadgen: OVER-COUNT: some client counted more members than clients joined");
        1
    } else if r.soak_failed {
        eprintln!("loadgen: soak: RSS grew past the bound or a gauge did not come back");
        1
    } else if failed > allowed {
        eprintln!(
            "loadgen: {failed} of {} clients failed to connect/join (tolerance {allowed})",
            opts.clients
        );
        1
    } else {
        0
    }
}
