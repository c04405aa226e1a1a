//! Tables, JSON, and the small parsers shared by the commands.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// `println!` that ends the process quietly when stdout is closed (`eventhub … | head`).
macro_rules! say {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use say;

/// Writes one line to stdout; a closed pipe ends the process with success. Control characters
/// other than the line breaks the commands put there themselves never reach the terminal: what
/// is printed comes partly from producers (headers, payloads, errors), and an escape sequence in
/// it would drive the operator's terminal (clear the screen, set the window title, hide text).
pub(crate) fn line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let text = args.to_string();
    let text = escape(&text, true);
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// Untrusted text made safe to print on one line: control characters (line breaks included),
/// DEL, C1 controls and the Unicode bidirectional overrides that reorder what a terminal shows
/// become visible escapes (`\x1b`, `\n`, `\u{202e}`).
pub(crate) fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    escape(text, false)
}

fn escape(text: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && !(keep_newlines && c == '\n'))
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !unsafe_char(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A payload as JSON for display, decoded by its content type: JSON as it is; protobuf with the
/// event's message from the catalog (`event`: type and version); anything else (or what does
/// not decode) as text, or for bytes that are not UTF-8, as `{"bytes": N, "base64": "…"}`.
pub(crate) fn payload_json(
    event: Option<(&str, u32)>,
    content_type: Option<&str>,
    payload: &[u8],
) -> serde_json::Value {
    let media = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let proto = media == eventhub::wire::codec::PROTOBUF || media == "application/x-protobuf";
    // A catalog read at run time has no protobuf descriptors: such payloads show as bytes.
    if proto
        && !crate::runtime::is_runtime()
        && let Some((t, v)) = event
        && let Some(info) = crate::runtime::events()
            .iter()
            .find(|i| i.event_type == t && i.version == v)
        && let Ok(value) = eventhub::wire::proto::decode_value(info.proto, payload)
    {
        return value;
    }
    if !proto && let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) {
        return value;
    }
    match std::str::from_utf8(payload) {
        Ok(text) => serde_json::Value::String(text.to_string()),
        Err(_) => {
            use base64::Engine;
            serde_json::json!({
                "bytes": payload.len(),
                "base64": base64::engine::general_purpose::STANDARD.encode(payload),
            })
        }
    }
}

/// An error and its causes on one line, each said once: a cause whose text the message
/// already holds (async-nats repeats its source's) is left out.
pub(crate) fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    clean(&out).into_owned()
}

/// A plain-text table: a header row and left-aligned columns.
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub(crate) fn print(&self) {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let line = |cells: Vec<&str>| {
            let last = cells.len().saturating_sub(1);
            let mut out = String::new();
            for (i, cell) in cells.into_iter().enumerate() {
                if i == last {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                }
            }
            say!("{}", out.trim_end());
        };
        line(self.header.clone());
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect());
        }
    }
}

/// Prints a value as pretty JSON.
pub(crate) fn print_json(value: &serde_json::Value) {
    say!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// `1.5 MiB`-style sizes.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// RFC 3339 to the second, or `-` for the zero time JetStream reports for "never".
pub(crate) fn time(t: DateTime<Utc>) -> String {
    if t.timestamp() <= 0 {
        "-".to_string()
    } else {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

/// `90d`, `2h30m`, `45s`-style durations.
pub(crate) fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return if d.is_zero() {
            "0s".to_string()
        } else {
            format!("{}ms", d.as_millis())
        };
    }
    let (days, hours, mins, secs) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(days, "d"), (hours, "h"), (mins, "m"), (secs, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// Parses `--since`: a duration before now (`90s`, `15m`, `2h`, `7d`) or an RFC 3339 time.
pub(crate) fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{s}` is neither a duration (15m, 2h, 7d) nor an RFC 3339 time"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use s, m, h or d, e.g. 15m)"
            ));
        }
    };
    Ok(Utc::now() - chrono::Duration::seconds(secs))
}

/// Parses a position in a stream (`--from`, `--to`): a stream sequence (`1042`), a duration
/// before now (`2h`) or an RFC 3339 time.
pub(crate) fn parse_position(s: &str) -> Result<eventhub::StartFrom, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("sequences start at 1".into()),
        Ok(n) => Ok(eventhub::StartFrom::Sequence(n)),
        Err(_) => parse_since(s).map(eventhub::StartFrom::Time).map_err(|_| {
            format!(
                "`{s}` is neither a stream sequence (1042), a duration before now (15m, 2h, \
                     7d) nor an RFC 3339 time"
            )
        }),
    }
}

/// Cuts `s` to `max` characters, marking the cut.
pub(crate) fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_controls_become_visible_escapes() {
        use super::clean;
        assert_eq!(clean("plain é text"), "plain é text");
        assert_eq!(
            clean("\x1b[2J\x1b]0;owned\x07"),
            "\\x1b[2J\\x1b]0;owned\\x07"
        );
        assert_eq!(clean("a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(clean("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(clean("evil\u{202e}gpj.exe"), "evil\\u{202e}gpj.exe");
        assert_eq!(super::escape("two\nlines\x1b", true), "two\nlines\\x1b");
    }

    #[test]
    fn repeated_causes_are_said_once() {
        let io = std::io::Error::other("Connection refused (os error 111)");
        let e = anyhow::Error::new(io)
            .context("IO error: Connection refused (os error 111)")
            .context("cannot reach NATS at nats://127.0.0.1:1");
        assert_eq!(
            super::error_chain(&e),
            "cannot reach NATS at nats://127.0.0.1:1: IO error: Connection refused (os error 111)"
        );
    }

    use super::*;

    #[test]
    fn sizes_durations_and_since() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(duration(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(duration(Duration::from_secs(3725)), "1h2m5s");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        let t = parse_since("15m").unwrap();
        assert!((Utc::now() - t).num_seconds() - 900 < 5);
        assert!(parse_since("2026-11-23T10:00:00Z").is_ok());
        assert!(
            parse_since("15 minutes")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_since("soon").unwrap_err().contains("neither"));
        assert_eq!(cut("abcdef", 4), "abc…");
    }
}
