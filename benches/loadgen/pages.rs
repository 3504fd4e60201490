//! The pages scenario: N commander pages of one list (`examples/live_todo`, `--page`
//! `/lists/bench`) join at once. Measured are each page's join latency (join sent → ok
//! reply), when each page got its first `patch` (from its `on_connect`), the server's RSS
//! per idle page, and an event round: the first `--adders` pages each send one `add` event,
//! and the run measures their replies and when every page's `#items` shows all the adds
//! (each add re-renders `#items` on every page of the list).
//!
//! The page is fetched once with a minimal HTTP/1.1 GET over loopback ([`fetch_page`]); its
//! `<script>` tag gives the socket path, the commander and the page token, which every
//! client reuses in its `phx_join` (`{"token": …}`).
//!
//! It must never parse JSON on the receive path (frame prefixes, `"sel":"#items"` and one
//! `<li ` per item are byte searches), except for the rare frames it reports by event name,
//! and never wait past `--converge-timeout-secs` in any phase: a wait that times out is
//! reported and fails the run.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, LazyLock, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use memchr::memmem;
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
};

use crate::{
    connect::JOIN_REF, histogram::Summary, procfs::CpuMark, report::PagesReport, run::RunCtx,
};

/// The ref of the one `event` an adder sends.
const EVENT_REF: &str = "ev";
/// Largest page accepted from `GET --page`.
const MAX_PAGE_BYTES: usize = 4 << 20;
/// Bound of the page fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

static PATCH_EVENT: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\",\"patch\",{"));
static ITEMS_SEL: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"sel\":\"#items\""));
/// The list as a live region, morphed by a broadcast on the list's topic.
static ITEMS_LIVE_SEL: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(br#""sel":"[tether-live=\"items\"]""#));
static ITEM: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"<li "));
static STATUS_OK: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"status\":\"ok\""));

/// Per-page stamps and counts of the pages scenario. A time is ns since the run's base; 0
/// means "not yet". Each client's slots are written by its own task only.
pub struct Pages {
    /// Clients `0..adders` send one `add` each when `go` turns true.
    pub adders: usize,
    pub go: watch::Sender<bool>,
    join_sent_ns: Box<[AtomicU64]>,
    join_ok_ns: Box<[AtomicU64]>,
    first_patch_ns: Box<[AtomicU64]>,
    /// The most items a page's `#items` patch showed, and when it first showed that many.
    items_max: Box<[AtomicU32]>,
    items_at_ns: Box<[AtomicU64]>,
    event_sent_ns: Box<[AtomicU64]>,
    event_reply_ns: Box<[AtomicU64]>,
    event_ok: Box<[AtomicBool]>,
    in_round: AtomicBool,
    /// Every frame this scenario classified (for the RSS settle's "quiet").
    frames: AtomicU64,
    patches: AtomicU64,
    patch_bytes: AtomicU64,
    round_patches: AtomicU64,
    round_items_patches: AtomicU64,
    round_patch_bytes: AtomicU64,
    /// Other frames on the page topic (`error`, `phx_error`, `phx_close`, …), by event.
    other_events: Mutex<BTreeMap<String, u64>>,
    /// The first few of them, and of error replies to `add`.
    samples: Mutex<Vec<String>>,
}

fn stamps(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl Pages {
    pub fn new(n: usize, adders: usize) -> Pages {
        Pages {
            adders,
            go: watch::Sender::new(false),
            join_sent_ns: stamps(n),
            join_ok_ns: stamps(n),
            first_patch_ns: stamps(n),
            items_max: (0..n).map(|_| AtomicU32::new(0)).collect(),
            items_at_ns: stamps(n),
            event_sent_ns: stamps(adders),
            event_reply_ns: stamps(adders),
            event_ok: (0..adders).map(|_| AtomicBool::new(false)).collect(),
            in_round: AtomicBool::new(false),
            frames: AtomicU64::new(0),
            patches: AtomicU64::new(0),
            patch_bytes: AtomicU64::new(0),
            round_patches: AtomicU64::new(0),
            round_items_patches: AtomicU64::new(0),
            round_patch_bytes: AtomicU64::new(0),
            other_events: Mutex::new(BTreeMap::new()),
            samples: Mutex::new(Vec::new()),
        }
    }

    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    pub fn join_sent(&self, idx: usize, ns: u64) {
        self.join_sent_ns[idx].store(ns, Ordering::Release);
    }

    pub fn join_ok(&self, idx: usize, ns: u64) {
        self.join_ok_ns[idx].store(ns, Ordering::Release);
    }

    pub fn event_sent(&self, idx: usize, ns: u64) {
        self.event_sent_ns[idx].store(ns, Ordering::Release);
    }

    /// The `add` event of client `idx` (ref [`EVENT_REF`]): it adds the item `x<idx>`.
    pub fn event_frame(&self, topic: &str, idx: usize) -> String {
        format!(
            r#"["{JOIN_REF}","{EVENT_REF}","{topic}","event",{{"handler":"add","sender":{{"form":{{"new_item":"x{idx}"}}}}}}]"#
        )
    }

    /// Counts a frame of the page channel for client `idx`; `false` if `frame` is not one
    /// (heartbeat replies, …).
    pub fn on_frame(&self, idx: usize, now: u64, frame: &[u8]) -> bool {
        if frame.starts_with(br#"["1",null,""#) || frame.starts_with(br#"[null,null,""#) {
            // A push on the page's topic, or a broadcast on one of its topics (the list's
            // re-render, live tokens).
            self.frames.fetch_add(1, Ordering::Relaxed);
            let head = &frame[..frame.len().min(160)];
            if PATCH_EVENT.find(head).is_some() {
                self.on_patch(idx, now, frame, head);
            } else {
                self.note_other(frame);
            }
            true
        } else if frame.starts_with(br#"["1","ev","#) && idx < self.adders {
            self.frames.fetch_add(1, Ordering::Relaxed);
            let ok = STATUS_OK.find(frame).is_some();
            self.event_ok[idx].store(ok, Ordering::Release);
            self.event_reply_ns[idx].store(now, Ordering::Release);
            if !ok {
                self.sample(frame);
            }
            true
        } else if frame.starts_with(br#"["1","#) {
            // phx_error, phx_close, another reply on the page's topic.
            self.frames.fetch_add(1, Ordering::Relaxed);
            self.note_other(frame);
            true
        } else {
            false
        }
    }

    fn on_patch(&self, idx: usize, now: u64, frame: &[u8], head: &[u8]) {
        let len = frame.len() as u64;
        self.patches.fetch_add(1, Ordering::Relaxed);
        self.patch_bytes.fetch_add(len, Ordering::Relaxed);
        let round = self.in_round.load(Ordering::Relaxed);
        if round {
            self.round_patches.fetch_add(1, Ordering::Relaxed);
            self.round_patch_bytes.fetch_add(len, Ordering::Relaxed);
        }
        if self.first_patch_ns[idx].load(Ordering::Relaxed) == 0 {
            self.first_patch_ns[idx].store(now, Ordering::Release);
        }
        if ITEMS_SEL.find(head).is_some() || ITEMS_LIVE_SEL.find(head).is_some() {
            if round {
                self.round_items_patches.fetch_add(1, Ordering::Relaxed);
            }
            let items = ITEM.find_iter(frame).count() as u32;
            if items > self.items_max[idx].load(Ordering::Relaxed) {
                self.items_at_ns[idx].store(now, Ordering::Release);
                self.items_max[idx].store(items, Ordering::Release);
            }
        }
    }

    /// Counts a rare frame by its event name (parsed), and keeps the first few.
    fn note_other(&self, frame: &[u8]) {
        let event = serde_json::from_slice::<(Value, Value, Value, String, Value)>(frame)
            .map_or_else(|_| "(not a Phoenix frame)".to_string(), |f| f.3);
        *self.other_events.lock().unwrap().entry(event).or_default() += 1;
        self.sample(frame);
    }

    fn sample(&self, frame: &[u8]) {
        let mut samples = self.samples.lock().unwrap();
        if samples.len() < 5 {
            let text = String::from_utf8_lossy(&frame[..frame.len().min(200)]).into_owned();
            samples.push(text);
        }
    }

    fn stamp(slots: &[AtomicU64], i: usize) -> Option<u64> {
        Some(slots[i].load(Ordering::Acquire)).filter(|&t| t > 0)
    }

    fn joined(&self) -> usize {
        (0..self.join_ok_ns.len())
            .filter(|&i| Pages::stamp(&self.join_ok_ns, i).is_some())
            .count()
    }

    /// Joined pages that got a patch.
    fn patched(&self) -> usize {
        (0..self.join_ok_ns.len())
            .filter(|&i| {
                Pages::stamp(&self.join_ok_ns, i).is_some()
                    && Pages::stamp(&self.first_patch_ns, i).is_some()
            })
            .count()
    }

    fn replies(&self) -> usize {
        (0..self.adders)
            .filter(|&i| Pages::stamp(&self.event_reply_ns, i).is_some())
            .count()
    }

    /// Pages whose `#items` showed at least `target` items.
    fn at_target(&self, target: usize) -> usize {
        self.items_max
            .iter()
            .filter(|m| m.load(Ordering::Acquire) as usize >= target)
            .count()
    }
}

/// What the page's `<script>` tag and markup say.
struct PageInfo {
    socket: String,
    commander: String,
    token: String,
    items: usize,
    html_bytes: usize,
}

/// The pages scenario (see the module docs).
pub async fn run_pages(run: &RunCtx<'_>) -> Result<(), String> {
    let (opts, procs, shared) = (run.opts, run.procs, run.shared);
    let pages = shared.pages.as_ref().expect("pages state");
    let limit = Duration::from_secs_f64(opts.converge_timeout_secs);
    let page = fetch_page(run.clients.targets[0].addr, &opts.page).await?;
    let topic = format!("tether:page:{}", page.commander);
    let mut pr = PagesReport {
        page: format!(
            "GET {}: {} bytes of HTML, commander `{}`, socket `{}`, token of {} bytes, {} items",
            opts.page,
            page.html_bytes,
            page.commander,
            page.socket,
            page.token.len(),
            page.items
        ),
        initial_items: page.items,
        ..PagesReport::default()
    };
    eprintln!("loadgen: {}", pr.page);
    let mut ctx = run.clients.clone();
    ctx.targets = Arc::new(
        ctx.targets
            .iter()
            .map(|t| t.with_socket_path(&page.socket))
            .collect(),
    );
    ctx.topic = Arc::from(topic.as_str());
    ctx.join_payload = Arc::from(serde_json::json!({ "token": page.token }).to_string());
    run.report.lock().unwrap().pages = Some(pr.clone());
    run.baseline_rss().await;

    eprintln!(
        "loadgen: {} pages join {topic} ({})…",
        opts.clients,
        opts.arrivals()
    );
    let mark = CpuMark::now(procs);
    run.spawn_clients_with(&ctx);
    let all_done = wait_for(limit, "connected or failed", || {
        (shared.connect_done.load(Ordering::Acquire), opts.clients)
    })
    .await;
    let joined = run.record_joined(mark.since(procs));
    if !all_done {
        return Err(format!(
            "only {} of {} clients connected or failed within {} s",
            shared.connect_done.load(Ordering::Acquire),
            opts.clients,
            opts.converge_timeout_secs
        ));
    }
    if joined == 0 {
        return Err("no page could connect and join".into());
    }
    let all_patched = wait_for(limit, "pages with their first patch", || {
        (pages.patched(), pages.joined())
    })
    .await;
    join_figures(pages, &mut pr, all_patched);
    run.report.lock().unwrap().pages = Some(pr.clone());

    // Idle: RSS once stable.
    run.record_idle_rss().await;
    pr.rss_peak_joined = procs.status_kib("VmHWM:");

    let round = event_round(run, limit, &mut pr).await;
    if !procs.servers.is_empty() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        pr.rss_after_round = procs.rss();
        pr.rss_peak = procs.status_kib("VmHWM:");
    }
    pr.patches = pages.patches.load(Ordering::Relaxed);
    pr.patch_bytes = pages.patch_bytes.load(Ordering::Relaxed);
    pr.other_events = pages.other_events.lock().unwrap().clone();
    pr.samples = pages.samples.lock().unwrap().clone();
    run.report.lock().unwrap().pages = Some(pr.clone());
    run.hold().await;
    if !all_patched {
        return Err(format!(
            "{} of {} joined pages got no patch within {} s",
            pr.joined - pr.patched,
            pr.joined,
            opts.converge_timeout_secs
        ));
    }
    round
}

/// Join latency, the join phase, and when each page got its first patch.
fn join_figures(pages: &Pages, pr: &mut PagesReport, all_patched: bool) {
    let n = pages.join_ok_ns.len();
    let sent = |i| Pages::stamp(&pages.join_sent_ns, i);
    let ok = |i| Pages::stamp(&pages.join_ok_ns, i);
    let patch = |i| Pages::stamp(&pages.first_patch_ns, i);
    pr.joined = pages.joined();
    pr.patched = pages.patched();
    pr.join_latency =
        Some(Summary::of((0..n).filter_map(|i| {
            Some(ok(i)?.saturating_sub(sent(i)?) / 1000)
        })));
    let first = (0..n).filter_map(sent).min().unwrap_or(0);
    let last_ok = (0..n).filter_map(ok).max().unwrap_or(0);
    pr.join_phase = last_ok.saturating_sub(first) as f64 / 1e9;
    pr.first_patch =
        Some(Summary::of((0..n).filter_map(|i| {
            Some(patch(i)?.saturating_sub(ok(i)?) / 1000)
        })));
    let last_patch = (0..n)
        .filter(|&i| ok(i).is_some())
        .filter_map(patch)
        .max()
        .unwrap_or(0);
    pr.all_patched = all_patched.then(|| last_patch.saturating_sub(first) as f64 / 1e9);
}

/// The event round: every joined adder sends one `add`; waits (each ≤ `limit`) for the
/// replies, then until every live page's `#items` shows all the items added.
async fn event_round(
    run: &RunCtx<'_>,
    limit: Duration,
    pr: &mut PagesReport,
) -> Result<(), String> {
    let (procs, shared) = (run.procs, run.shared);
    let pages = shared.pages.as_ref().expect("pages state");
    let adders: Vec<usize> = (0..pages.adders)
        .filter(|&i| Pages::stamp(&pages.join_ok_ns, i).is_some())
        .collect();
    pr.adders = adders.len();
    eprintln!(
        "loadgen: event round: {} pages send one add each…",
        adders.len()
    );
    let mark = CpuMark::now(procs);
    pages.in_round.store(true, Ordering::Release);
    pages.go.send_replace(true);
    let replied = wait_for(limit, "add replies", || (pages.replies(), adders.len())).await;
    let sent = |i| Pages::stamp(&pages.event_sent_ns, i);
    let reply = |i| Pages::stamp(&pages.event_reply_ns, i);
    let ok = |i: usize| pages.event_ok[i].load(Ordering::Acquire);
    pr.replies_ok = adders
        .iter()
        .filter(|&&i| reply(i).is_some() && ok(i))
        .count();
    pr.replies_error = adders
        .iter()
        .filter(|&&i| reply(i).is_some() && !ok(i))
        .count();
    pr.reply_latency =
        Some(Summary::of(adders.iter().filter_map(|&i| {
            Some(reply(i)?.saturating_sub(sent(i)?) / 1000)
        })));
    let target = pr.initial_items + pr.replies_ok;
    pr.target_items = target;
    let converged = wait_for(limit, "pages showing every add", || {
        (pages.at_target(target), shared.live.load(Ordering::Acquire))
    })
    .await;
    pr.round_cpu = Some(mark.since(procs));
    // A page may show every add before it has rendered every message (a re-render shows the
    // list as it is by then): its remaining patches are still coming. Count them once no
    // frame arrived for 1 s.
    pr.round_quiet = wait_quiet(pages, limit).await;
    let first = adders.iter().filter_map(|&i| sent(i)).min().unwrap_or(0);
    let n = pages.items_max.len();
    let reached: Vec<u64> = (0..n)
        .filter(|&i| pages.items_max[i].load(Ordering::Acquire) as usize >= target)
        .filter_map(|i| Pages::stamp(&pages.items_at_ns, i))
        .map(|t| t.saturating_sub(first) / 1000)
        .collect();
    pr.at_target = reached.len();
    pr.live = shared.live.load(Ordering::Acquire);
    pr.page_convergence = Some(Summary::of(reached.iter().copied()));
    pr.round_convergence =
        converged.then(|| reached.iter().max().copied().unwrap_or(0) as f64 / 1e6);
    pr.round_patches = pages.round_patches.load(Ordering::Relaxed);
    pr.round_items_patches = pages.round_items_patches.load(Ordering::Relaxed);
    pr.round_patch_bytes = pages.round_patch_bytes.load(Ordering::Relaxed);
    eprintln!(
        "loadgen: {}",
        if converged {
            format!(
                "all {} live pages show {target} items {:.2} s after the first add",
                pr.live,
                pr.round_convergence.unwrap_or(0.0)
            )
        } else {
            format!(
                "NOT converged: {} of {} live pages show {target} items",
                pr.at_target, pr.live
            )
        }
    );
    if !replied {
        return Err(format!(
            "{} of {} add events got no reply within {} s",
            adders.len() - pr.replies_ok - pr.replies_error,
            adders.len(),
            limit.as_secs_f64()
        ));
    }
    if pr.replies_error > 0 {
        return Err(format!(
            "{} of {} add events got an error reply",
            pr.replies_error,
            adders.len()
        ));
    }
    if !converged {
        return Err(format!(
            "{} of {} live pages did not show all {target} items within {} s",
            pr.live.saturating_sub(pr.at_target),
            pr.live,
            limit.as_secs_f64()
        ));
    }
    Ok(())
}

/// Waits (≤ `limit`) until no page frame arrived for 1 s; `false` on timeout.
async fn wait_quiet(pages: &Pages, limit: Duration) -> bool {
    let start = Instant::now();
    let mut before = pages.frames();
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = pages.frames();
        if now == before {
            return true;
        }
        before = now;
    }
    false
}

/// Waits (≤ `limit`) until `progress()` gives (done, of) with done ≥ of, printing it every
/// 2 s; `false` on timeout.
async fn wait_for(
    limit: Duration,
    what: &str,
    mut progress: impl FnMut() -> (usize, usize),
) -> bool {
    let start = Instant::now();
    let mut last_print = start;
    loop {
        let (done, of) = progress();
        if done >= of {
            return true;
        }
        if start.elapsed() >= limit {
            eprintln!("loadgen:   {what}: only {done} of {of} within {limit:?}");
            return false;
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            last_print = Instant::now();
            eprintln!(
                "loadgen:   t={:.0}s {what}: {done} of {of}",
                start.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET path` from `addr` (≤ 10 s), and what its `<script data-tether-…>` tag says.
async fn fetch_page(addr: SocketAddr, path: &str) -> Result<PageInfo, String> {
    let html = tokio::time::timeout(FETCH_TIMEOUT, http_get(addr, path, "Accept: text/html\r\n"))
        .await
        .map_err(|_| format!("GET {path}: no response within {FETCH_TIMEOUT:?}"))??;
    let attribute = |name: &str| {
        html_attribute(&html, name)
            .ok_or_else(|| format!("GET {path}: no {name}=\"…\" in the page"))
    };
    let socket = attribute("data-tether-socket")?;
    let commander = attribute("data-tether-commander")?;
    let token = attribute("data-tether-token")?;
    if !socket.starts_with('/') || !socket.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("GET {path}: unexpected socket path {socket:?}"));
    }
    if commander.is_empty()
        || !commander
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!("GET {path}: unexpected commander {commander:?}"));
    }
    Ok(PageInfo {
        socket,
        commander,
        token,
        items: count_items(&html),
        html_bytes: html.len(),
    })
}

/// `<li ` elements inside `<ul id="items">…</ul>`.
fn count_items(html: &str) -> usize {
    let Some(start) = html.find(r#"<ul id="items">"#) else {
        return 0;
    };
    let list = &html[start..];
    let list = &list[..list.find("</ul>").unwrap_or(list.len())];
    list.matches("<li ").count()
}

/// A minimal HTTP/1.1 GET (`Connection: close`) with `headers` (each line ending in
/// `\r\n`): the body of a 200 response, de-chunked.
pub async fn http_get(addr: SocketAddr, path: &str, headers: &str) -> Result<String, String> {
    let fail = |what: String| format!("GET {path}: {what}");
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| fail(format!("connect: {}", e.kind())))?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| fail(format!("write: {}", e.kind())))?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(MAX_PAGE_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| fail(format!("read: {}", e.kind())))?;
    if raw.len() > MAX_PAGE_BYTES {
        return Err(fail(format!("response over {MAX_PAGE_BYTES} bytes")));
    }
    let head_end =
        memmem::find(&raw, b"\r\n\r\n").ok_or_else(|| fail("no end of headers".into()))?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        return Err(fail(format!("status {status:?}")));
    }
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = &raw[head_end + 4..];
    let body = if chunked {
        dechunk(body).map_err(fail)?
    } else {
        body.to_vec()
    };
    String::from_utf8(body).map_err(|_| fail("body is not UTF-8".into()))
}

/// The payload of a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = memmem::find(body, b"\r\n").ok_or("truncated chunk size")?;
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|line| line.split(';').next())
            .and_then(|hex| usize::from_str_radix(hex.trim(), 16).ok())
            .ok_or("bad chunk size")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// The value of the first `name="…"` in `html`, with its character references decoded.
fn html_attribute(html: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = html.find(&key)? + key.len();
    let end = start + html[start..].find('"')?;
    Some(unescape_html(&html[start..end]))
}

/// Decodes `&quot; &amp; &lt; &gt; &apos;` and numeric references (`&#34;`, `&#x22;`);
/// anything else is kept as it is.
fn unescape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let ch = match &rest[1..end] {
                "quot" => '"',
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "apos" => '\'',
                entity => {
                    let num = entity.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((ch, end + 1))
        });
        match decoded {
            Some((ch, len)) => {
                out.push(ch);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
