//! Measuring (CPU time, peak RSS, percentiles) and the report.

use std::time::Duration;

use serde_json::json;

/// The nats-server this run started, if it started one: its CPU time is measured too.
pub(crate) static SERVER_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// Client (and server) CPU time and client peak RSS over one phase.
pub(crate) struct Meter {
    cpu: Duration,
    server_cpu: Option<Duration>,
}

/// What a [`Meter`] saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Usage {
    /// CPU time (user + system) of this process.
    pub(crate) cpu: Duration,
    /// Peak resident set size during the phase, in KiB.
    pub(crate) peak_rss_kib: u64,
    /// CPU time of the nats-server this run started (none with `NATS_URL`).
    pub(crate) server_cpu: Option<Duration>,
}

/// CPU time (user + system) of the nats-server this run started, from `/proc/<pid>/stat`
/// (ticks of 10 ms).
fn server_cpu_now() -> Option<Duration> {
    let pid = SERVER_PID.get()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state, field 3;
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports them in USER_HZ, which is 100 on every architecture it exposes to users.
    Some(Duration::from_millis(ticks * 10))
}

fn cpu_now() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec().max(0) as u64)
                    + Duration::from_micros(t.tv_usec().max(0) as u64)
            };
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// Peak RSS since the last reset (`VmHWM`), in KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

impl Meter {
    /// Starts measuring; resets the peak RSS to the current RSS (Linux `clear_refs`).
    pub(crate) fn start() -> Self {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        Self {
            cpu: cpu_now(),
            server_cpu: server_cpu_now(),
        }
    }

    pub(crate) fn stop(self) -> Usage {
        Usage {
            cpu: cpu_now().saturating_sub(self.cpu),
            peak_rss_kib: peak_rss_kib(),
            server_cpu: match (self.server_cpu, server_cpu_now()) {
                (Some(before), Some(now)) => Some(now.saturating_sub(before)),
                _ => None,
            },
        }
    }
}

/// Throughput and resource use of one run.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) per_sec: f64,
    pub(crate) usage: Usage,
    pub(crate) events: usize,
}

impl Run {
    pub(crate) fn cpu_micros_per_event(&self) -> f64 {
        self.usage.cpu.as_secs_f64() * 1e6 / self.events as f64
    }

    /// Server CPU time per event, µs (NaN when the server is not ours to measure).
    pub(crate) fn server_micros_per_event(&self) -> f64 {
        self.usage
            .server_cpu
            .map_or(f64::NAN, |c| c.as_secs_f64() * 1e6 / self.events as f64)
    }
}

/// The `q`-quantile (0..=1) of sorted samples.
pub(crate) fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// What a figure must reach.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// No target: informational.
    None,
    /// The ratio (or value) must be at least this.
    AtLeast(f64),
    /// The ratio (or value) must be at most this.
    AtMost(f64),
}

/// Which table a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// eventhub beside raw async-nats, tiny and typical event.
    Core,
    /// eventhub beside what a user would pick instead (Python peers).
    Peers,
    /// Many consumers, a big backlog, a cluster, event sizes: each beside raw async-nats.
    Scale,
}

impl Section {
    pub(crate) const ALL: [Section; 3] = [Section::Core, Section::Peers, Section::Scale];

    pub(crate) fn key(self) -> &'static str {
        match self {
            Section::Core => "core",
            Section::Peers => "peers",
            Section::Scale => "scale",
        }
    }

    /// The name of the column eventhub is compared with.
    pub(crate) fn baseline(self) -> &'static str {
        match self {
            Section::Peers => "peer",
            Section::Core | Section::Scale => "raw",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) name: &'static str,
    pub(crate) size: &'static str,
    pub(crate) raw: f64,
    pub(crate) sdk: f64,
    pub(crate) target: Target,
    /// Whether the target applies to `sdk / raw` (else to `sdk`).
    pub(crate) ratio_target: bool,
    pub(crate) section: Section,
}

impl Row {
    pub(crate) fn new(name: &'static str, raw: f64, sdk: f64, target: Target) -> Self {
        Self {
            name,
            size: "",
            raw,
            sdk,
            target,
            ratio_target: true,
            section: Section::Core,
        }
    }

    /// A row of `section`, for event (or size) `size`.
    pub(crate) fn of(
        section: Section,
        size: &'static str,
        name: &'static str,
        raw: f64,
        sdk: f64,
    ) -> Self {
        Self {
            size,
            section,
            ..Self::new(name, raw, sdk, Target::None)
        }
    }

    /// With a target on `sdk / raw`.
    pub(crate) fn target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    /// With a target on eventhub's own value (not the ratio).
    pub(crate) fn value_target(mut self, target: Target) -> Self {
        self.target = target;
        self.ratio_target = false;
        self
    }

    fn ratio(&self) -> f64 {
        self.sdk / self.raw
    }

    /// What the target applies to: the ratio, or eventhub's value.
    fn judged(&self) -> f64 {
        if self.ratio_target {
            self.ratio()
        } else {
            self.sdk
        }
    }

    fn verdict(&self) -> Option<bool> {
        let v = self.judged();
        match self.target {
            Target::None => None,
            Target::AtLeast(t) => Some(v >= t),
            Target::AtMost(t) => Some(v <= t),
        }
    }

    fn target_text(&self) -> String {
        match (self.target, self.ratio_target) {
            (Target::None, _) => String::new(),
            (Target::AtLeast(t), true) => format!("ratio ≥ {t}"),
            (Target::AtMost(t), true) => format!("ratio ≤ {t}"),
            (Target::AtLeast(t), false) => format!("≥ {t}"),
            (Target::AtMost(t), false) => format!("≤ {t}"),
        }
    }
}

/// Everything measured.
pub(crate) struct Report {
    url: String,
    pub(crate) rows: Vec<Row>,
    pub(crate) codegen: Vec<(usize, f64)>,
    /// Lines printed under a section's table (what a peer is, what could not be measured).
    pub(crate) notes: Vec<(Section, String)>,
    /// How the run was made (counts, rounds, versions): kept in the JSON output.
    pub(crate) meta: serde_json::Map<String, serde_json::Value>,
}

pub(crate) fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        return "-".to_string();
    }
    if v >= 1000.0 {
        let n = v.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 10.0 || v.fract() == 0.0 {
        // Counts (events lost) read as counts.
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A ratio as printed: two decimals, `-` when there is no baseline.
pub(crate) fn fmt_ratio(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or("-".to_string(), |v| format!("{v:.2}"))
}

impl Report {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            rows: Vec::new(),
            codegen: Vec::new(),
            notes: Vec::new(),
            meta: serde_json::Map::new(),
        }
    }

    fn title(&self, section: Section) -> String {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        match section {
            Section::Core => format!(
                "eventhub vs raw async-nats 0.51 — nats-server at {}, {cores} cores, same run",
                self.url
            ),
            Section::Peers => {
                "eventhub vs what a user would pick instead — Python peers on the same server, \
                 typical event; ratio = eventhub / peer"
                    .to_string()
            }
            Section::Scale => {
                "at scale — many consumers, a big backlog, a cluster, event sizes; each beside raw \
                 async-nats in the same run"
                    .to_string()
            }
        }
    }

    pub(crate) fn print(&self) {
        let mut first = true;
        for section in Section::ALL {
            let rows: Vec<&Row> = self.rows.iter().filter(|r| r.section == section).collect();
            let notes: Vec<&String> = self
                .notes
                .iter()
                .filter(|(s, _)| *s == section)
                .map(|(_, n)| n)
                .collect();
            let codegen = section == Section::Core && !self.codegen.is_empty();
            if rows.is_empty() && notes.is_empty() && !codegen {
                continue;
            }
            if !first {
                println!();
            }
            first = false;
            println!("{}\n", self.title(section));
            if !rows.is_empty() {
                println!(
                    "{:<44} {:<8} {:>12} {:>12} {:>7}  target",
                    "benchmark",
                    if section == Section::Scale {
                        "size"
                    } else {
                        "event"
                    },
                    section.baseline(),
                    "eventhub",
                    "ratio"
                );
            }
            for r in rows {
                let verdict = match r.verdict() {
                    None => "",
                    Some(true) => "  ok",
                    Some(false) => "  MISSED",
                };
                let ratio = fmt_ratio(Some(r.ratio()));
                println!(
                    "{:<44} {:<8} {:>12} {:>12} {:>7}  {}{verdict}",
                    r.name,
                    r.size,
                    fmt_num(r.raw),
                    fmt_num(r.sdk),
                    ratio,
                    r.target_text()
                );
            }
            for n in notes {
                println!("{n}");
            }
            if section == Section::Core && !self.codegen.is_empty() {
                println!("\ncodegen (load, validate, bundle, typify, format):");
                for (n, secs) in &self.codegen {
                    println!(
                        "  {n:>5} schemas  {secs:>7.3} s  {:>6.2} ms/schema",
                        secs * 1000.0 / *n as f64
                    );
                }
            }
        }
        println!("\n{}", self.summary_line());
    }

    /// The rows that have a target.
    fn targeted(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.verdict().is_some())
    }

    /// One line: targets met, the misses, eventhub's ratios over the peers, the scale ratios.
    pub(crate) fn summary_line(&self) -> String {
        let total = self.targeted().count();
        let missed: Vec<String> = self
            .targeted()
            .filter(|r| r.verdict() == Some(false))
            .map(|r| {
                format!(
                    "{}{} {} ({})",
                    r.name.trim(),
                    if r.size.is_empty() || r.size == "-" {
                        String::new()
                    } else {
                        format!(", {}", r.size)
                    },
                    fmt_ratio(Some(r.judged())),
                    r.target_text()
                )
            })
            .collect();
        let mut parts = vec![if total == 0 {
            "no targeted row ran".to_string()
        } else if missed.is_empty() {
            format!("{total} of {total} targets met")
        } else {
            format!(
                "{} of {total} targets met; missed: {}",
                total - missed.len(),
                missed.join("; ")
            )
        }];
        let range = |rows: Vec<f64>| -> Option<String> {
            let rows: Vec<f64> = rows.into_iter().filter(|v| v.is_finite()).collect();
            let lo = rows.iter().copied().reduce(f64::min)?;
            let hi = rows.iter().copied().reduce(f64::max)?;
            Some(if (hi - lo).abs() < 0.005 {
                format!("{lo:.2}×")
            } else {
                format!("{lo:.2}–{hi:.2}×")
            })
        };
        let mut peers = Vec::new();
        for peer in ["nats-py", "FastStream"] {
            let ratios = self
                .rows
                .iter()
                .filter(|r| {
                    r.section == Section::Peers
                        && r.name.starts_with(peer)
                        && r.name.ends_with("(ev/s)")
                })
                .map(Row::ratio)
                .collect();
            if let Some(r) = range(ratios) {
                peers.push(format!("{peer} {r}"));
            }
        }
        if !peers.is_empty() {
            parts.push(format!("eventhub over {}", peers.join(", ")));
        }
        let scale: Vec<f64> = self
            .rows
            .iter()
            .filter(|r| r.section == Section::Scale && r.name.ends_with("(ev/s)"))
            .map(Row::ratio)
            .collect();
        let n = scale.len();
        if let Some(r) = range(scale) {
            parts.push(format!("scale throughput vs raw {r} ({n} rows)"));
        }
        format!("summary: {}", parts.join(" · "))
    }

    fn summary_json(&self) -> serde_json::Value {
        let targets: Vec<serde_json::Value> = self
            .targeted()
            .map(|r| {
                let (op, value) = match r.target {
                    Target::AtLeast(t) => (">=", t),
                    Target::AtMost(t) => ("<=", t),
                    Target::None => unreachable!("targeted rows have a target"),
                };
                json!({
                    "section": r.section.key(),
                    "benchmark": r.name.trim(),
                    "event": r.size,
                    "of": if r.ratio_target { "ratio" } else { "eventhub" },
                    "value": finite(r.judged()),
                    "target": {"op": op, "value": value},
                    "met": r.verdict(),
                })
            })
            .collect();
        let met = targets.iter().filter(|t| t["met"] == json!(true)).count();
        json!({
            "line": self.summary_line(),
            "targets_met": met,
            "targets_missed": targets.len() - met,
            "all_met": met == targets.len(),
            "targets": targets,
        })
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        json!({
            "server": self.url,
            "meta": self.meta,
            "rows": self.rows.iter().map(|r| json!({
                "section": r.section.key(),
                "benchmark": r.name,
                "event": r.size,
                "baseline": r.section.baseline(),
                "raw": finite(r.raw),
                "eventhub": finite(r.sdk),
                "ratio": if r.raw.is_nan() { None } else { finite(r.ratio()) },
                "target": r.target_text(),
                "met": r.verdict(),
            })).collect::<Vec<_>>(),
            "notes": self.notes.iter().map(|(s, n)| json!({"section": s.key(), "text": n})).collect::<Vec<_>>(),
            "codegen": self.codegen.iter().map(|(n, s)| json!({"schemas": n, "seconds": s})).collect::<Vec<_>>(),
            "summary": self.summary_json(),
        })
    }
}

/// JSON has no NaN or infinity: such a figure is `null`.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_numbers() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(quantile(&v, 0.5), 501);
        assert_eq!(quantile(&v, 0.99), 990);
        assert_eq!(quantile(&v, 0.999), 999);
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(fmt_num(1234567.0), "1,234,567");
        assert_eq!(fmt_num(2.5), "2.50");
        assert_eq!(fmt_num(0.0), "0");
        let r = Row::new("x", 100.0, 95.0, Target::AtLeast(0.9));
        assert_eq!(r.verdict(), Some(true));
        let r = Row::new("x", 100.0, 130.0, Target::AtMost(1.2));
        assert_eq!(r.verdict(), Some(false));
    }

    #[test]
    fn the_summary_names_every_miss_and_the_peer_ratios() {
        let mut report = Report::new("nats://x");
        report.rows.push(Row::new(
            "publish (ev/s)",
            100.0,
            95.0,
            Target::AtLeast(0.9),
        ));
        report.rows.push(Row::new(
            "latency p99 (µs)",
            100.0,
            130.0,
            Target::AtMost(1.2),
        ));
        report.rows.push(Row::of(
            Section::Peers,
            "typical",
            "nats-py: consume (ev/s)",
            10.0,
            40.0,
        ));
        report.rows.push(
            Row::of(Section::Scale, "1M", "backlog: events lost", 0.0, 0.0)
                .value_target(Target::AtMost(0.0)),
        );
        let line = report.summary_line();
        assert!(
            line.starts_with(
                "summary: 2 of 3 targets met; missed: latency p99 (µs) 1.30 (ratio ≤ 1.2)"
            ),
            "{line}"
        );
        assert!(line.contains("eventhub over nats-py 4.00×"), "{line}");
        let json = report.to_json();
        assert_eq!(json["summary"]["targets_met"], 2);
        assert_eq!(json["summary"]["all_met"], false);
        assert_eq!(json["summary"]["targets"][1]["target"]["op"], "<=");
        assert_eq!(json["summary"]["targets"][2]["of"], "eventhub");
    }
}
