//! The ledger: each input with what the oracle decided, judged against what the parties did,
//! and the table.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::{self, Write as _};

use eventhub::DeadLetter;

use super::inputs::{Class, Input, Via, short};
use super::oracle::{self, Publish, Reading};
use super::rig::{Entries, Entry, IDEMPOTENT, PLAIN, Runs, STALLED, Stats};

/// A header line: name and value.
pub(crate) type Header = (String, String);

/// One input and what came of its publish.
pub(crate) struct Sent {
    pub(crate) n: usize,
    pub(crate) input: Input,
    /// The oracle's publish verdict.
    pub(crate) expected: Publish,
    /// The stream sequence, if stored.
    pub(crate) sequence: Option<u64>,
    /// Headers as consumers receive them (raw inputs).
    pub(crate) received: Vec<Header>,
    /// What a consumer must make of it, if stored.
    pub(crate) reading: Reading,
    /// The event id, as idempotency counts copies.
    pub(crate) key: String,
    /// Where its replay mark points, if it has one.
    pub(crate) replay_for: Option<String>,
    /// A replay the replay record vouches for: the idempotent consumer (not its target) must
    /// acknowledge it without running its handler.
    pub(crate) vouched: bool,
    /// Whether dead letters must give back exactly `received` (not for eventhub's own
    /// replays, whose headers eventhub chose).
    pub(crate) check_headers: bool,
}

/// A disagreement between the oracle and what happened: about input `n` (of `class`, `what`),
/// or about a count of the whole run (`n` is `None`).
#[derive(Debug)]
pub(crate) struct Disagreement {
    pub(crate) n: Option<usize>,
    pub(crate) class: Class,
    pub(crate) what: String,
    pub(crate) detail: String,
}

impl Disagreement {
    pub(crate) fn about(s: &Sent, detail: String) -> Self {
        Self {
            n: Some(s.n),
            class: s.input.class,
            what: s.input.what.clone(),
            detail,
        }
    }

    fn count(what: &str, detail: String) -> Self {
        Self {
            n: None,
            class: Class::Fuzz,
            what: what.into(),
            detail,
        }
    }
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.n {
            Some(n) => write!(
                f,
                "input {n} [{}] {}: {}",
                self.class,
                short(&self.what),
                self.detail
            ),
            None => write!(f, "{}: {}", self.what, self.detail),
        }
    }
}

/// Per class: what was sent and what came of it.
#[derive(Default, Clone, Copy)]
pub(crate) struct Tally {
    inputs: usize,
    refused: usize,
    duplicate: usize,
    valid: usize,
    invalid: usize,
    plain_handled: usize,
    idempotent_once: usize,
    skipped: usize,
    dead_lettered: usize,
    swept: usize,
    disagreements: usize,
}

impl Tally {
    fn add(&mut self, t: &Tally) {
        self.inputs += t.inputs;
        self.refused += t.refused;
        self.duplicate += t.duplicate;
        self.valid += t.valid;
        self.invalid += t.invalid;
        self.plain_handled += t.plain_handled;
        self.idempotent_once += t.idempotent_once;
        self.skipped += t.skipped;
        self.dead_lettered += t.dead_lettered;
        self.swept += t.swept;
        self.disagreements += t.disagreements;
    }
}

/// Whether every stored input was handled or dead-lettered by each consumer it reached, and
/// dead-lettered by the sweeper for the consumer that died on it.
pub(crate) fn settled(
    sent: &[Sent],
    plain: &Runs,
    idempotent: &Runs,
    dead_lettered: impl Fn(&str, u64) -> bool,
) -> bool {
    sent.iter().all(|s| {
        let Some(seq) = s.sequence else { return true };
        let consumers = match &s.reading {
            Ok(()) => plain.at(seq) > 0 && (s.vouched || idempotent.of(&s.key) > 0),
            Err(_) => dead_lettered(PLAIN, seq) && (s.vouched || dead_lettered(IDEMPOTENT, seq)),
        };
        consumers && dead_lettered(STALLED, seq)
    })
}

/// What the parties did, gathered once they stopped.
pub(crate) struct Observed<'a> {
    pub(crate) plain: &'a Runs,
    pub(crate) idempotent: &'a Runs,
    pub(crate) entries: &'a Entries,
    /// Every dead letter, as the SDK's reader gives it back.
    pub(crate) letters: &'a [DeadLetter],
    pub(crate) stats: &'a Stats,
    /// Durables still holding messages at the end.
    pub(crate) left: &'a [String],
}

/// Judges every input and the run's counts; the tally per class.
pub(crate) fn judge(
    sent: &[Sent],
    seen: &Observed<'_>,
    disagreements: &mut Vec<Disagreement>,
) -> BTreeMap<Class, Tally> {
    let mut letters: HashMap<(&str, u64), Vec<&DeadLetter>> = HashMap::new();
    for l in seen.letters {
        letters
            .entry((l.consumer.as_str(), l.sequence))
            .or_default()
            .push(l);
    }
    let mut tally: BTreeMap<Class, Tally> = BTreeMap::new();
    for s in sent {
        let t = tally.entry(s.input.class).or_default();
        let before = disagreements.len();
        judge_one(s, seen, &letters, t, disagreements);
        t.disagreements += disagreements.len() - before;
    }
    judge_counts(sent, seen, disagreements);
    tally
}

fn judge_one(
    s: &Sent,
    seen: &Observed<'_>,
    letters: &HashMap<(&str, u64), Vec<&DeadLetter>>,
    t: &mut Tally,
    disagreements: &mut Vec<Disagreement>,
) {
    let mut disagree = |detail: String| disagreements.push(Disagreement::about(s, detail));
    t.inputs += 1;
    match &s.expected {
        Publish::Refused(_) => t.refused += 1,
        Publish::Duplicate => t.duplicate += 1,
        Publish::Stored => {}
    }
    let Some(seq) = s.sequence else { return };
    let found = |consumer: &str| -> Vec<Entry> {
        let key = (consumer.to_string(), seq);
        seen.entries.get(&key).cloned().unwrap_or_default()
    };
    match &s.reading {
        Ok(()) => {
            t.valid += 1;
            if seen.plain.at(seq) > 0 {
                t.plain_handled += 1;
            } else {
                disagree(format!("#{seq}: valid, never handled by {PLAIN}"));
            }
            match seen.idempotent.of(&s.key) {
                1 => t.idempotent_once += 1,
                n => disagree(format!(
                    "#{seq}: valid, id {}: {n} handler runs at {IDEMPOTENT} (copies included), \
                     not exactly 1",
                    short(&s.key)
                )),
            }
            for consumer in [PLAIN, IDEMPOTENT] {
                if let [e, ..] = found(consumer).as_slice() {
                    disagree(format!("#{seq}: valid, dead-lettered by {consumer}: {e:?}"));
                }
            }
        }
        Err(words) => {
            t.invalid += 1;
            let mut ok = true;
            for (consumer, runs) in [(PLAIN, seen.plain), (IDEMPOTENT, seen.idempotent)] {
                let runs = runs.at(seq);
                if consumer == IDEMPOTENT && s.vouched {
                    // A replay for another consumer: acknowledged, neither handled nor
                    // dead-lettered.
                    if runs == 0 && found(consumer).is_empty() {
                        t.skipped += 1;
                    } else {
                        ok = false;
                        disagree(format!(
                            "#{seq}: a replay for {PLAIN}, handled ({runs}) or dead-lettered \
                             ({:?}) by {consumer}",
                            found(consumer)
                        ));
                    }
                    continue;
                }
                if runs > 0 {
                    ok = false;
                    disagree(format!("#{seq}: invalid, handled by {consumer}"));
                }
                match found(consumer).as_slice() {
                    [e] if e.reason == "poison" && oracle::explains(&e.error, words) => {}
                    [] => {
                        ok = false;
                        disagree(format!("#{seq}: invalid, not dead-lettered by {consumer}"));
                    }
                    other => {
                        ok = false;
                        disagree(format!(
                            "#{seq}: {consumer}'s dead letter(s) {other:?} do not say poison \
                             with {words:?}"
                        ));
                    }
                }
            }
            if ok {
                t.dead_lettered += 1;
            }
        }
    }
    match found(STALLED).as_slice() {
        [e] if e.reason == "max-deliver" && e.error.contains("without an ack") => t.swept += 1,
        other => disagree(format!(
            "#{seq}: the sweeper's dead letters for {STALLED}: {other:?}, expected one \
             (max-deliver)"
        )),
    }
    // Every dead letter gives back the payload and the original headers.
    if !matches!(s.input.via, Via::Raw(_)) || !s.check_headers {
        return;
    }
    for consumer in [PLAIN, IDEMPOTENT, STALLED] {
        let omitted = found(consumer).iter().any(|e| e.omitted);
        for l in letters.get(&(consumer, seq)).into_iter().flatten() {
            if l.payload != s.input.data.bytes {
                disagree(format!(
                    "#{seq}: {consumer}'s dead letter {} does not give the payload back ({:?}, \
                     {} bytes of {})",
                    l.id,
                    l.payload_storage,
                    l.payload.len(),
                    s.input.data.bytes.len()
                ));
            }
            let mut got: Vec<Header> = l
                .headers
                .iter()
                .flat_map(|(n, vs)| {
                    vs.iter()
                        .map(move |v| (AsRef::<str>::as_ref(n).to_string(), v.to_string()))
                })
                .collect();
            let mut want = s.received.clone();
            got.sort();
            want.sort();
            let kept = if omitted {
                // Only some of those eventhub reads, when all did not fit.
                got.iter().all(|g| want.contains(g))
            } else {
                got == want
            };
            if !kept {
                let (missing, extra) = difference(&want, &got);
                disagree(format!(
                    "#{seq}: {consumer}'s dead letter {} does not keep the original headers: \
                     missing {}, extra {}",
                    l.id,
                    short(&format!("{missing:?}")),
                    short(&format!("{extra:?}"))
                ));
            }
        }
    }
}

/// The consumers' and the sweeper's own counts agree with the ledger.
fn judge_counts(sent: &[Sent], seen: &Observed<'_>, disagreements: &mut Vec<Disagreement>) {
    let stored: Vec<&Sent> = sent.iter().filter(|s| s.sequence.is_some()).collect();
    let invalid = stored.iter().filter(|s| s.reading.is_err()).count() as u64;
    let vouched = stored.iter().filter(|s| s.vouched).count() as u64;
    let valid_ids: HashSet<&str> = stored
        .iter()
        .filter(|s| s.reading.is_ok())
        .map(|s| s.key.as_str())
        .collect();
    let forged_at_plain = stored
        .iter()
        .filter(|s| !s.vouched && s.replay_for.as_deref().is_some_and(|t| t != PLAIN))
        .count() as u64;
    let mut check = |what: &str, ok: bool, detail: String| {
        if !ok {
            disagreements.push(Disagreement::count(what, detail));
        }
    };
    let Stats {
        plain,
        idempotent: [ia, ib],
        sweeper,
    } = seen.stats;
    // Every message a consumer received was handled, dead-lettered, retried, given back, or
    // (idempotent) skipped as a copy or a replay for another consumer: nothing else.
    for st in [plain, ia, ib] {
        let accounted = st.handled
            + st.dead_lettered
            + st.retried
            + st.returned
            + st.duplicates_skipped
            + st.replays_skipped;
        check(
            "consumer accounting",
            accounted == st.received,
            format!(
                "{st:?}: {accounted} accounted for, {} received",
                st.received
            ),
        );
    }
    check(
        "plain consumer counts",
        plain.duplicates_skipped == 0
            && plain.poison == invalid
            && plain.dead_lettered == invalid
            && plain.replays_skipped == 0
            && plain.forged_replay_marks >= forged_at_plain,
        format!("{plain:?}; expected {invalid} poison, {forged_at_plain} forged marks"),
    );
    check(
        "idempotent consumer counts",
        ia.poison + ib.poison == invalid - vouched
            && ia.handled + ib.handled == valid_ids.len() as u64
            && ia.replays_skipped + ib.replays_skipped == vouched,
        format!(
            "{ia:?} {ib:?}; expected {} poison, {} handled, {vouched} replays skipped",
            invalid - vouched,
            valid_ids.len()
        ),
    );
    check(
        "sweeper counts",
        sweeper.swept == stored.len() as u64 && sweeper.gone == 0,
        format!("{sweeper:?}; expected {} swept", stored.len()),
    );
    check(
        "in flight at the end",
        seen.left.is_empty(),
        format!("{:?}", seen.left),
    );
}

/// What `want` has that `got` lacks, and the reverse, counting repeats.
fn difference<'a>(want: &'a [Header], got: &'a [Header]) -> (Vec<&'a Header>, Vec<&'a Header>) {
    let mut rest: Vec<&Header> = got.iter().collect();
    let mut missing = Vec::new();
    for w in want {
        match rest.iter().position(|g| *g == w) {
            Some(i) => {
                rest.swap_remove(i);
            }
            None => missing.push(w),
        }
    }
    (missing, rest)
}

/// The per-class table.
pub(crate) fn render(tally: &BTreeMap<Class, Tally>, seed: u64, count: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "adversarial ledger (seed {seed}, {count} inputs and the replays): per input, what the \
         oracle decided before sending and what happened"
    );
    let header = [
        "class",
        "inputs",
        "refused",
        "dup",
        "valid",
        "invalid",
        "handled",
        "once(idem)",
        "skipped",
        "dlq(why)",
        "swept",
        "wrong",
    ];
    line(&mut out, header.map(str::to_string));
    let mut total = Tally::default();
    for (class, t) in tally {
        line(&mut out, cells(class.name(), t));
        total.add(t);
    }
    line(&mut out, cells("total", &total));
    let _ = writeln!(
        out,
        "refused: at publish, with the error the oracle expected (max_payload, no stream, a \
         JetStream error code); dup: dropped by the stream as a repeated Nats-Msg-Id; handled: \
         valid, handled at least once by the plain consumer; once(idem): exactly one handler \
         run per event id at the idempotent consumer (2 instances); skipped: replays for the \
         plain consumer (and byte-for-byte copies of them) the idempotent one acked unhandled, \
         as the replay record vouches; dlq(why): invalid, dead-lettered as poison by each \
         consumer it reached, with an error naming the fault; swept: stored, dead-lettered by \
         the sweeper for the consumer that died on it; wrong: disagreements with the oracle \
         (must be 0)"
    );
    out
}

fn cells(name: &str, t: &Tally) -> [String; 12] {
    [
        name.to_string(),
        t.inputs.to_string(),
        t.refused.to_string(),
        t.duplicate.to_string(),
        t.valid.to_string(),
        t.invalid.to_string(),
        t.plain_handled.to_string(),
        t.idempotent_once.to_string(),
        t.skipped.to_string(),
        t.dead_lettered.to_string(),
        t.swept.to_string(),
        t.disagreements.to_string(),
    ]
}

fn line(out: &mut String, c: [String; 12]) {
    let _ = writeln!(
        out,
        "{:<30} {:>6} {:>7} {:>4} {:>6} {:>7} {:>7} {:>10} {:>7} {:>8} {:>6} {:>5}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]
    );
}

#[cfg(test)]
mod tests {
    use super::difference;

    #[test]
    fn differences_count_repeats() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        let want = h(&[("a", "1"), ("a", "1"), ("b", "2")]);
        let got = h(&[("a", "1"), ("c", "3")]);
        let (missing, extra) = difference(&want, &got);
        assert_eq!(missing, [&want[1], &want[2]]);
        assert_eq!(extra, [&got[1]]);
    }
}
