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
fn peak_rss_kib() -> u64 {
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
        }
    }

    fn ratio(&self) -> f64 {
        self.sdk / self.raw
    }

    fn verdict(&self) -> Option<bool> {
        let v = if self.ratio_target {
            self.ratio()
        } else {
            self.sdk
        };
        match self.target {
            Target::None => None,
            Target::AtLeast(t) => Some(v >= t),
            Target::AtMost(t) => Some(v <= t),
        }
    }
}

/// Everything measured.
pub(crate) struct Report {
    url: String,
    pub(crate) rows: Vec<Row>,
    pub(crate) codegen: Vec<(usize, f64)>,
}

fn fmt_num(v: f64) -> String {
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
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl Report {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            rows: Vec::new(),
            codegen: Vec::new(),
        }
    }

    pub(crate) fn print(&self) {
        println!(
            "eventhub vs raw async-nats 0.51 — nats-server at {}, {} cores, same run\n",
            self.url,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!(
            "{:<44} {:<8} {:>12} {:>12} {:>7}  target",
            "benchmark", "event", "raw", "eventhub", "ratio"
        );
        let mut failed = 0;
        for r in &self.rows {
            let target = match (r.target, r.ratio_target) {
                (Target::None, _) => String::new(),
                (Target::AtLeast(t), true) => format!("ratio ≥ {t}"),
                (Target::AtMost(t), true) => format!("ratio ≤ {t}"),
                (Target::AtLeast(t), false) => format!("≥ {t}"),
                (Target::AtMost(t), false) => format!("≤ {t}"),
            };
            let verdict = match r.verdict() {
                None => "",
                Some(true) => "  ok",
                Some(false) => {
                    failed += 1;
                    "  MISSED"
                }
            };
            let ratio = if r.raw.is_nan() {
                "-".to_string()
            } else {
                format!("{:.2}", r.ratio())
            };
            println!(
                "{:<44} {:<8} {:>12} {:>12} {:>7}  {target}{verdict}",
                r.name,
                r.size,
                fmt_num(r.raw),
                fmt_num(r.sdk),
                ratio
            );
        }
        if !self.codegen.is_empty() {
            println!("\ncodegen (load, validate, bundle, typify, format):");
            for (n, secs) in &self.codegen {
                println!(
                    "  {n:>5} schemas  {secs:>7.3} s  {:>6.2} ms/schema",
                    secs * 1000.0 / *n as f64
                );
            }
        }
        println!(
            "\n{}",
            if failed == 0 {
                "every target met".to_string()
            } else {
                format!("{failed} target(s) missed")
            }
        );
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        json!({
            "server": self.url,
            "rows": self.rows.iter().map(|r| json!({
                "benchmark": r.name,
                "event": r.size,
                "raw": if r.raw.is_nan() { None } else { Some(r.raw) },
                "eventhub": r.sdk,
                "ratio": if r.raw.is_nan() { None } else { Some(r.ratio()) },
                "met": r.verdict(),
            })).collect::<Vec<_>>(),
            "codegen": self.codegen.iter().map(|(n, s)| json!({"schemas": n, "seconds": s})).collect::<Vec<_>>(),
        })
    }
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
        let r = Row::new("x", 100.0, 95.0, Target::AtLeast(0.9));
        assert_eq!(r.verdict(), Some(true));
        let r = Row::new("x", 100.0, 130.0, Target::AtMost(1.2));
        assert_eq!(r.verdict(), Some(false));
    }
}
