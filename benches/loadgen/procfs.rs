//! What the kernel says about the processes of a run and the machine: VmRSS and VmHWM
//! (peak RSS) from `/proc/<pid>/status`, CPU time from `/proc/<pid>/stat`, `/proc/stat` and
//! this process's CPU clock, the machine summary line, and the CPU figures of a phase.
//!
//! It only reads: it must never write to `/proc`, signal a process or wait; a reading that
//! fails is `None` (or 0), never a panic.

use std::time::Instant;

/// CPU seconds (user + system) used by this process.
pub fn self_cpu_secs() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat` and `/proc/stat` CPU times.
fn clock_ticks() -> f64 {
    rustix::param::clock_ticks_per_second().max(1) as f64
}

/// CPU seconds (user + system) used by process `pid`, from /proc/<pid>/stat.
pub fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Busy CPU seconds of the whole machine (all CPUs), from /proc/stat.
pub fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
    Some(busy / clock_ticks())
}

/// VmRSS of process `pid` ("self" for this one) in KiB.
pub fn rss_kib(pid: &str) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// A `kB` field of /proc/<pid>/status (`VmRSS:`, `VmHWM:` = peak RSS, …).
pub fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, field)
}

/// The number of a `<field> <n> kB` line (as in /proc/<pid>/status and /proc/meminfo).
fn kib_field<T: std::str::FromStr>(text: &str, field: &str) -> Option<T> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `<cores> cores (<cpu model>), <memory> GiB RAM, Linux <kernel release>`.
pub fn machine_summary() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| kib_field::<f64>(&m, "MemTotal:"))
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem_gib:.1} GiB RAM, Linux {kernel}")
}

/// The processes a run measures: the servers (empty with `--url`) and redis-server.
#[derive(Debug, Clone, Default)]
pub struct Procs {
    pub servers: Vec<u32>,
    pub redis: Option<u32>,
}

impl Procs {
    /// A `/proc/<pid>/status` field of every server, in KiB; `None` if any is unreadable
    /// or there are no servers.
    pub fn status_kib(&self, field: &str) -> Option<Vec<u64>> {
        if self.servers.is_empty() {
            return None;
        }
        self.servers
            .iter()
            .map(|pid| proc_status_kib(&pid.to_string(), field))
            .collect()
    }

    pub fn rss(&self) -> Option<Vec<u64>> {
        self.status_kib("VmRSS:")
    }
}

/// CPU used during one phase of the run (the report describes it).
#[derive(Debug, Default, Clone)]
pub struct PhaseCpu {
    pub wall: f64,
    pub generator: f64,
    /// Sum over the servers.
    pub server: Option<f64>,
    /// Each server, when there are several.
    pub server_each: Vec<f64>,
    pub redis: Option<f64>,
    /// Busy time of all CPUs (every process, interrupts included).
    pub machine: Option<f64>,
}

/// CPU times at the start of a phase; [`CpuMark::since`] gives the phase's [`PhaseCpu`].
pub struct CpuMark {
    at: Instant,
    generator: f64,
    /// Each server (`None` if one was unreadable or there are none).
    servers: Option<Vec<f64>>,
    redis: Option<f64>,
    machine: Option<f64>,
}

impl CpuMark {
    pub fn now(procs: &Procs) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            generator: self_cpu_secs(),
            servers: if procs.servers.is_empty() {
                None
            } else {
                procs.servers.iter().map(|&p| proc_cpu_secs(p)).collect()
            },
            redis: procs.redis.and_then(proc_cpu_secs),
            machine: machine_busy_secs(),
        }
    }

    pub fn since(&self, procs: &Procs) -> PhaseCpu {
        let end = CpuMark::now(procs);
        let each: Option<Vec<f64>> = match (&end.servers, &self.servers) {
            (Some(a), Some(b)) if a.len() == b.len() => {
                Some(a.iter().zip(b).map(|(a, b)| a - b).collect())
            }
            _ => None,
        };
        let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        PhaseCpu {
            wall: end.at.duration_since(self.at).as_secs_f64(),
            generator: end.generator - self.generator,
            server: each.as_ref().map(|e| e.iter().sum()),
            server_each: each.unwrap_or_default(),
            redis: diff(end.redis, self.redis),
            machine: diff(end.machine, self.machine),
        }
    }
}
