//! The compatibility gate: may a released event version change this way?
//!
//! A released version is a contract in both directions (FULL compatibility): consumers built
//! from the old schema must read events written with the new one (*old consumers*), and
//! consumers built from the new schema must read events stored with the old one (*new
//! consumers*: streams keep history and are replayed). A change that fails either direction is
//! breaking; it belongs in a new version file.
//!
//! Think of a schema as the set of events it accepts. A change that lets the schema accept
//! events it rejected before (a wider type, a new enum value, a looser bound, a property that
//! became optional) breaks old consumers, which were built for the narrower set. A change that
//! rejects events it accepted before (a narrower type, a removed enum value, a tighter bound, a
//! property that became required) breaks new consumers, which meet stored events of the old
//! set. The rules, construct by construct:
//!
//! | edit | verdict |
//! |---|---|
//! | title, description, examples, `$comment`, deprecated, readOnly, writeOnly | compatible |
//! | optional property added, content model open | compatible (old consumers ignore it) |
//! | optional property added, `additionalProperties: false` | breaks old consumers |
//! | required property added | breaks new consumers (stored events lack it) |
//! | optional property removed, content model open | compatible |
//! | optional property removed, `additionalProperties: false` | breaks new consumers |
//! | required property removed | breaks old consumers |
//! | optional → required / required → optional | breaks new / old consumers |
//! | `additionalProperties` opened / closed | compatible / breaks new consumers |
//! | enum value added / removed | breaks old / new consumers |
//! | type widened (`integer` → `number`, string → string or null) / narrowed | breaks old / new |
//! | bound loosened / tightened (minimum, maxLength, minItems, pattern or format removed / added) | breaks old / new |
//! | pattern, format, const or multipleOf changed | breaks both |
//! | default changed or removed | breaks both (an event without the property means the default) |
//! | default added | compatible |
//! | nested objects, array items, map values, oneOf/anyOf/allOf branches | compared recursively |
//! | shared definition (`$ref`) changed | judged as if inlined, for every event that uses it |
//! | `x-sensitive` added / removed | breaks old / new consumers (they would read ciphertext as the value) |
//!
//! One assumption is made explicit: a property no schema version declares is never written by
//! a producer (generated producers write exactly the declared properties). Without it, no
//! property could ever be added to an open schema, since some producer might have written that
//! name with another type.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use crate::diagnostic::pointer_push;

/// Keywords that document a schema without changing which events it accepts.
const DOC_KEYWORDS: &[&str] = &[
    "title",
    "description",
    "$comment",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    // Identity of the document, not of the events.
    "$schema",
    "$id",
];

/// Whom a change breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Breaks {
    /// Consumers built from the old schema cannot read events written with the new one.
    pub old_consumers: bool,
    /// Consumers built from the new schema cannot read events stored with the old one.
    pub new_consumers: bool,
}

impl Breaks {
    /// Breaks nobody.
    pub const NONE: Breaks = Breaks {
        old_consumers: false,
        new_consumers: false,
    };
    /// Breaks old consumers.
    pub const OLD: Breaks = Breaks {
        old_consumers: true,
        new_consumers: false,
    };
    /// Breaks new consumers.
    pub const NEW: Breaks = Breaks {
        old_consumers: false,
        new_consumers: true,
    };
    /// Breaks both.
    pub const BOTH: Breaks = Breaks {
        old_consumers: true,
        new_consumers: true,
    };

    /// Whether anybody is broken.
    pub fn is_breaking(self) -> bool {
        self.old_consumers || self.new_consumers
    }
}

impl fmt::Display for Breaks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.old_consumers, self.new_consumers) {
            (false, false) => "compatible",
            (true, false) => "breaks old consumers",
            (false, true) => "breaks new consumers",
            (true, true) => "breaks old and new consumers",
        })
    }
}

/// One difference between two schemas of the same event version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// JSON pointer into the event's schema, following references as if they were inlined
    /// (`/properties/amount/properties/currency`).
    pub pointer: String,
    /// The shared or local definition the change is in, when it is behind a `$ref` (`Money`).
    pub via: Option<String>,
    /// What changed: "property `locale` became required".
    pub what: String,
    /// Whom it breaks.
    pub breaks: Breaks,
    /// Why, in terms of events and consumers.
    pub why: String,
}

impl Change {
    /// Whether the change breaks anybody.
    pub fn is_breaking(&self) -> bool {
        self.breaks.is_breaking()
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        write!(f, "{pointer}: {}", self.what)?;
        if let Some(via) = &self.via {
            write!(f, " (in definition {via})")?;
        }
        write!(f, " — {}", self.breaks)?;
        if !self.why.is_empty() {
            write!(f, ": {}", self.why)?;
        }
        Ok(())
    }
}

/// Compares two self-contained schemas of one event version (references into their own
/// `$defs`, as `Catalog::bundled_schema` returns them) and lists every difference with its
/// verdict. Compatible differences are listed too.
pub fn compare(old: &Value, new: &Value) -> Vec<Change> {
    let mut cx = Cx {
        old_root: old,
        new_root: new,
        out: Vec::new(),
        stack: Vec::new(),
    };
    cx.node(old, new, "", None);
    cx.out
}

struct Cx<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    out: Vec<Change>,
    /// Pairs of definitions being compared, outermost first (a recursive definition ends the
    /// descent when it meets itself).
    stack: Vec<(String, String)>,
}

/// A schema node with its `$ref` resolved and `anyOf: [X, {type: null}]` unwrapped.
struct Node {
    map: Map<String, Value>,
    /// Nullable through a `[X, null]` union.
    null_union: bool,
    /// The definition it was reached through.
    def: Option<String>,
}

fn def_name(r: &str) -> Option<&str> {
    r.strip_prefix("#/$defs/")
        .or_else(|| r.strip_prefix("#/definitions/"))
}

impl<'a> Cx<'a> {
    fn push(
        &mut self,
        pointer: &str,
        via: Option<&str>,
        what: impl Into<String>,
        breaks: Breaks,
        why: impl Into<String>,
    ) {
        self.out.push(Change {
            pointer: pointer.to_string(),
            via: via.map(str::to_string),
            what: what.into(),
            breaks,
            why: why.into(),
        });
    }

    fn resolve(&self, root: &Value, schema: &Value) -> (Value, Option<String>) {
        let mut s = schema;
        let mut def = None;
        for _ in 0..32 {
            let Some(r) = s.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let Some(name) = def_name(r) else { break };
            let Some(target) = root
                .get("$defs")
                .or_else(|| root.get("definitions"))
                .and_then(|d| d.get(name))
            else {
                break;
            };
            def = Some(name.to_string());
            s = target;
        }
        (s.clone(), def)
    }

    fn normalize(&self, root: &Value, schema: &Value) -> Node {
        let (s, def) = self.resolve(root, schema);
        let mut map = match s {
            Value::Object(m) => m.clone(),
            // `true` accepts anything, `false` nothing; neither occurs in validated catalogs
            // except as `additionalProperties`, handled by the caller.
            _ => Map::new(),
        };
        // A `$ref` with sibling keywords: the siblings apply too.
        if let Some(sib) = schema.as_object().filter(|_| def.is_some()) {
            for (k, v) in sib {
                if k != "$ref" {
                    map.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        let mut null_union = false;
        for key in ["anyOf", "oneOf"] {
            let Some(Value::Array(branches)) = map.get(key) else {
                continue;
            };
            if branches.len() != 2 {
                continue;
            }
            let is_null = |b: &Value| b.get("type").and_then(Value::as_str) == Some("null");
            let other = match (is_null(&branches[0]), is_null(&branches[1])) {
                (true, false) => branches[1].clone(),
                (false, true) => branches[0].clone(),
                _ => continue,
            };
            map.remove(key);
            null_union = true;
            let (inner, inner_def) = self.resolve(root, &other);
            if let Value::Object(m) = inner {
                for (k, v) in m {
                    map.entry(k).or_insert(v);
                }
            }
            return Node {
                map,
                null_union,
                def: inner_def.or(def),
            };
        }
        Node {
            map,
            null_union,
            def,
        }
    }

    fn node(&mut self, old: &Value, new: &Value, ptr: &str, via: Option<&str>) {
        let o = self.normalize(self.old_root, old);
        let n = self.normalize(self.new_root, new);
        let pair = o.def.clone().zip(n.def.clone());
        if let Some(pair) = pair.clone() {
            if self.stack.contains(&pair) {
                return;
            }
            self.stack.push(pair);
        }
        let via_owned = n.def.clone().or(o.def.clone()).or(via.map(str::to_string));
        let via = via_owned.as_deref();

        self.docs(&o.map, &n.map, ptr, via);
        self.types(&o, &n, ptr, via);
        self.enums(&o.map, &n.map, ptr, via);
        self.bounds(&o.map, &n.map, ptr, via);
        self.default(&o.map, &n.map, ptr, via);
        self.sensitive(&o.map, &n.map, ptr, via);
        self.object(&o.map, &n.map, ptr, via);
        self.array(&o.map, &n.map, ptr, via);
        self.unions(&o.map, &n.map, ptr, via);
        if pair.is_some() {
            self.stack.pop();
        }
    }

    fn docs(
        &mut self,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
        ptr: &str,
        via: Option<&str>,
    ) {
        let changed: Vec<&str> = DOC_KEYWORDS
            .iter()
            .copied()
            .filter(|k| !matches!(*k, "$schema" | "$id"))
            .filter(|k| o.get(*k) != n.get(*k))
            .collect();
        if !changed.is_empty() {
            self.push(
                ptr,
                via,
                format!("documentation changed ({})", changed.join(", ")),
                Breaks::NONE,
                "annotations do not change which events are accepted",
            );
        }
    }

    fn types(&mut self, o: &Node, n: &Node, ptr: &str, via: Option<&str>) {
        let ot = type_set(&o.map, o.null_union);
        let nt = type_set(&n.map, n.null_union);
        match (ot, nt) {
            (None, None) => {}
            (Some(ot), None) => self.push(
                ptr,
                via,
                format!("type constraint {} removed", show_types(&ot)),
                Breaks::OLD,
                "new events may carry values of any type",
            ),
            (None, Some(nt)) => self.push(
                ptr,
                via,
                format!("type constrained to {}", show_types(&nt)),
                Breaks::NEW,
                "stored events may carry values of other types",
            ),
            (Some(ot), Some(nt)) => {
                let covers = |set: &BTreeSet<String>, t: &str| {
                    set.contains(t) || (t == "integer" && set.contains("number"))
                };
                let added: Vec<&str> = nt
                    .iter()
                    .map(String::as_str)
                    .filter(|t| !covers(&ot, t))
                    .collect();
                let removed: Vec<&str> = ot
                    .iter()
                    .map(String::as_str)
                    .filter(|t| !covers(&nt, t))
                    .collect();
                if added == ["null"] {
                    self.push(
                        ptr,
                        via,
                        "became nullable",
                        Breaks::OLD,
                        "new events may carry null where old consumers expect a value",
                    );
                } else if !added.is_empty() {
                    self.push(
                        ptr,
                        via,
                        format!(
                            "type widened from {} to {}",
                            show_types(&ot),
                            show_types(&nt)
                        ),
                        Breaks::OLD,
                        format!("new events may carry {}", added.join(" or ")),
                    );
                }
                if removed == ["null"] {
                    self.push(
                        ptr,
                        via,
                        "is no longer nullable",
                        Breaks::NEW,
                        "stored events may carry null",
                    );
                } else if !removed.is_empty() {
                    self.push(
                        ptr,
                        via,
                        format!(
                            "type narrowed from {} to {}",
                            show_types(&ot),
                            show_types(&nt)
                        ),
                        Breaks::NEW,
                        format!("stored events may carry {}", removed.join(" or ")),
                    );
                }
            }
        }
    }

    fn enums(
        &mut self,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
        ptr: &str,
        via: Option<&str>,
    ) {
        match (o.get("enum"), n.get("enum")) {
            (Some(Value::Array(ov)), Some(Value::Array(nv))) => {
                let added: Vec<String> = nv
                    .iter()
                    .filter(|v| !ov.contains(v))
                    .map(Value::to_string)
                    .collect();
                let removed: Vec<String> = ov
                    .iter()
                    .filter(|v| !nv.contains(v))
                    .map(Value::to_string)
                    .collect();
                if !added.is_empty() {
                    self.push(
                        ptr,
                        via,
                        format!("enum value(s) {} added", added.join(", ")),
                        Breaks::OLD,
                        "old consumers do not know the new value(s)",
                    );
                }
                if !removed.is_empty() {
                    self.push(
                        ptr,
                        via,
                        format!("enum value(s) {} removed", removed.join(", ")),
                        Breaks::NEW,
                        "stored events may carry the removed value(s)",
                    );
                }
            }
            (None, Some(_)) => self.push(
                ptr,
                via,
                "restricted to an enum",
                Breaks::NEW,
                "stored events may carry other values",
            ),
            (Some(_), None) => self.push(
                ptr,
                via,
                "enum restriction removed",
                Breaks::OLD,
                "new events may carry values old consumers do not know",
            ),
            _ => {}
        }
        match (o.get("const"), n.get("const")) {
            (Some(a), Some(b)) if a != b => self.push(
                ptr,
                via,
                format!("const changed from {a} to {b}"),
                Breaks::BOTH,
                "no event satisfies both versions",
            ),
            (None, Some(b)) => self.push(
                ptr,
                via,
                format!("restricted to const {b}"),
                Breaks::NEW,
                "stored events may carry other values",
            ),
            (Some(a), None) => self.push(
                ptr,
                via,
                format!("const {a} removed"),
                Breaks::OLD,
                "new events may carry other values",
            ),
            _ => {}
        }
    }

    fn bounds(
        &mut self,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
        ptr: &str,
        via: Option<&str>,
    ) {
        // Lower bounds: raising one rejects stored events; lowering one admits new events.
        const LOWER: &[&str] = &[
            "minimum",
            "exclusiveMinimum",
            "minLength",
            "minItems",
            "minProperties",
        ];
        const UPPER: &[&str] = &[
            "maximum",
            "exclusiveMaximum",
            "maxLength",
            "maxItems",
            "maxProperties",
        ];
        for (keys, tighter_when_greater) in [(LOWER, true), (UPPER, false)] {
            for &k in keys {
                let (a, b) = (
                    o.get(k).and_then(Value::as_f64),
                    n.get(k).and_then(Value::as_f64),
                );
                let tighter = match (a, b) {
                    (None, None) => continue,
                    (Some(a), Some(b)) if a == b => continue,
                    (None, Some(_)) => true,
                    (Some(_), None) => false,
                    (Some(a), Some(b)) => (b > a) == tighter_when_greater,
                };
                let what = match (o.get(k), n.get(k)) {
                    (None, Some(b)) => format!("{k} {b} added"),
                    (Some(a), None) => format!("{k} {a} removed"),
                    (Some(a), Some(b)) => format!("{k} changed from {a} to {b}"),
                    (None, None) => unreachable!(),
                };
                if tighter {
                    self.push(
                        ptr,
                        via,
                        what,
                        Breaks::NEW,
                        "stored events may fall outside the new bound",
                    );
                } else {
                    self.push(
                        ptr,
                        via,
                        what,
                        Breaks::OLD,
                        "new events may fall outside the old bound",
                    );
                }
            }
        }
        // Keywords whose change cannot be ordered: adding restricts, removing relaxes,
        // changing does both.
        for k in ["pattern", "format", "multipleOf"] {
            match (o.get(k), n.get(k)) {
                (a, b) if a == b => {}
                (None, Some(b)) => self.push(
                    ptr,
                    via,
                    format!("{k} {b} added"),
                    Breaks::NEW,
                    "stored events may not match it",
                ),
                (Some(a), None) => self.push(
                    ptr,
                    via,
                    format!("{k} {a} removed"),
                    Breaks::OLD,
                    "new events may not match what old consumers check",
                ),
                (Some(a), Some(b)) => self.push(
                    ptr,
                    via,
                    format!("{k} changed from {a} to {b}"),
                    Breaks::BOTH,
                    "values valid under one may be invalid under the other",
                ),
                (None, None) => {}
            }
        }
        let unique =
            |m: &Map<String, Value>| m.get("uniqueItems").and_then(Value::as_bool) == Some(true);
        match (unique(o), unique(n)) {
            (false, true) => self.push(
                ptr,
                via,
                "uniqueItems added",
                Breaks::NEW,
                "stored events may hold duplicates",
            ),
            (true, false) => self.push(
                ptr,
                via,
                "uniqueItems removed",
                Breaks::OLD,
                "new events may hold duplicates",
            ),
            _ => {}
        }
    }

    fn default(
        &mut self,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
        ptr: &str,
        via: Option<&str>,
    ) {
        match (o.get("default"), n.get("default")) {
            (a, b) if a == b => {}
            (None, Some(b)) => self.push(
                ptr,
                via,
                format!("default {b} added"),
                Breaks::NONE,
                "events that omit the property are read with the default",
            ),
            (Some(a), None) => self.push(
                ptr,
                via,
                format!("default {a} removed"),
                Breaks::BOTH,
                "an event that omits the property would mean the default to one side and nothing to the other",
            ),
            (Some(a), Some(b)) => self.push(
                ptr,
                via,
                format!("default changed from {a} to {b}"),
                Breaks::BOTH,
                "an event that omits the property would mean different values to old and new consumers",
            ),
            (None, None) => {}
        }
    }

    /// `x-sensitive` decides what travels on the wire: the value, or its ciphertext. A consumer
    /// decrypts only the fields its schema marks, so both sides must agree.
    fn sensitive(
        &mut self,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
        ptr: &str,
        via: Option<&str>,
    ) {
        let marked =
            |m: &Map<String, Value>| m.get(crate::sensitive::KEYWORD) == Some(&Value::Bool(true));
        match (marked(o), marked(n)) {
            (false, true) => self.push(
                ptr,
                via,
                "marked x-sensitive",
                Breaks::OLD,
                "new events carry the field encrypted (`enc:v1:…`); consumers built from the old \
                 schema do not decrypt it and would take the ciphertext for the value",
            ),
            (true, false) => self.push(
                ptr,
                via,
                "x-sensitive mark removed",
                Breaks::NEW,
                "stored events carry the field encrypted (`enc:v1:…`); consumers built from the \
                 new schema do not decrypt it and would take the ciphertext for the value",
            ),
            _ => {}
        }
    }

    fn object(
        &mut self,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
        ptr: &str,
        via: Option<&str>,
    ) {
        let empty = Map::new();
        let op = o
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty)
            .clone();
        let np = n
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty)
            .clone();
        let required = |m: &Map<String, Value>| -> BTreeSet<String> {
            m.get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (or, nr) = (required(o), required(n));
        let o_closed = o.get("additionalProperties") == Some(&Value::Bool(false));
        let n_closed = n.get("additionalProperties") == Some(&Value::Bool(false));
        let props_ptr = pointer_push(ptr, "properties");

        let names: BTreeSet<&String> = op.keys().chain(np.keys()).collect();
        for name in names {
            let p = pointer_push(&props_ptr, name);
            match (op.get(name), np.get(name)) {
                (Some(a), Some(b)) => {
                    match (or.contains(name), nr.contains(name)) {
                        (false, true) => self.push(
                            &p,
                            via,
                            format!("property `{name}` became required"),
                            Breaks::NEW,
                            format!("stored events may lack `{name}`"),
                        ),
                        (true, false) => self.push(
                            &p,
                            via,
                            format!("property `{name}` became optional"),
                            Breaks::OLD,
                            format!("new events may omit `{name}`, which old consumers require"),
                        ),
                        _ => {}
                    }
                    self.node(a, b, &p, via);
                }
                (None, Some(_)) => {
                    let req = nr.contains(name);
                    let mut breaks = Breaks::NONE;
                    let mut why = Vec::new();
                    if req {
                        breaks.new_consumers = true;
                        why.push(format!("stored events lack `{name}`"));
                    }
                    if o_closed {
                        breaks.old_consumers = true;
                        why.push(
                            "old consumers reject properties they do not declare (additionalProperties: false)"
                                .to_string(),
                        );
                    }
                    if why.is_empty() {
                        why.push("old consumers ignore it; stored events simply lack it".into());
                    }
                    let kind = if req { "required" } else { "optional" };
                    self.push(
                        &p,
                        via,
                        format!("{kind} property `{name}` added"),
                        breaks,
                        why.join("; "),
                    );
                }
                (Some(_), None) => {
                    let req = or.contains(name);
                    let mut breaks = Breaks::NONE;
                    let mut why = Vec::new();
                    if req {
                        breaks.old_consumers = true;
                        why.push(format!(
                            "old consumers require `{name}`, new events lack it"
                        ));
                    }
                    if n_closed {
                        breaks.new_consumers = true;
                        why.push(format!(
                            "stored events carry `{name}`, which the new schema rejects (additionalProperties: false)"
                        ));
                    }
                    if why.is_empty() {
                        why.push(
                            "it was optional; new consumers ignore it in stored events".into(),
                        );
                    }
                    let kind = if req { "required" } else { "optional" };
                    self.push(
                        &p,
                        via,
                        format!("{kind} property `{name}` removed"),
                        breaks,
                        why.join("; "),
                    );
                }
                (None, None) => unreachable!(),
            }
        }

        let ap_ptr = pointer_push(ptr, "additionalProperties");
        match (o.get("additionalProperties"), n.get("additionalProperties")) {
            (a, b) if a == b => {}
            (Some(Value::Bool(false)), None | Some(Value::Bool(true))) => self.push(
                &ap_ptr,
                via,
                "content model opened (additionalProperties: false removed)",
                Breaks::NONE,
                "producers still write only declared properties; consumers accept more",
            ),
            (None | Some(Value::Bool(true)), Some(Value::Bool(false))) => self.push(
                &ap_ptr,
                via,
                "content model closed (additionalProperties: false)",
                Breaks::NEW,
                "stored events written under the open schema may carry undeclared properties",
            ),
            (Some(a @ Value::Object(_)), Some(b @ Value::Object(_))) => {
                self.node(a, b, &ap_ptr, via)
            }
            (Some(Value::Object(_)), _) => self.push(
                &ap_ptr,
                via,
                "map value schema removed",
                Breaks::BOTH,
                "map entries change meaning",
            ),
            (_, Some(Value::Object(_))) => self.push(
                &ap_ptr,
                via,
                "map value schema added",
                Breaks::BOTH,
                "map entries change meaning",
            ),
            _ => {}
        }
    }

    fn array(
        &mut self,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
        ptr: &str,
        via: Option<&str>,
    ) {
        let p = pointer_push(ptr, "items");
        match (o.get("items"), n.get("items")) {
            (Some(a), Some(b)) => self.node(a, b, &p, via),
            (None, Some(_)) => self.push(
                &p,
                via,
                "items schema added",
                Breaks::NEW,
                "stored events may hold items it rejects",
            ),
            (Some(_), None) => self.push(
                &p,
                via,
                "items schema removed",
                Breaks::OLD,
                "new events may hold items old consumers reject",
            ),
            (None, None) => {}
        }
    }

    fn unions(
        &mut self,
        o: &Map<String, Value>,
        n: &Map<String, Value>,
        ptr: &str,
        via: Option<&str>,
    ) {
        for key in ["oneOf", "anyOf", "allOf"] {
            let p = pointer_push(ptr, key);
            match (
                o.get(key).and_then(Value::as_array),
                n.get(key).and_then(Value::as_array),
            ) {
                (Some(a), Some(b)) => {
                    for (i, (x, y)) in a.iter().zip(b).enumerate() {
                        self.node(x, y, &pointer_push(&p, &i.to_string()), via);
                    }
                    let (more, fewer) = if key == "allOf" {
                        (Breaks::NEW, Breaks::OLD)
                    } else {
                        (Breaks::OLD, Breaks::NEW)
                    };
                    if b.len() > a.len() {
                        self.push(
                            &p,
                            via,
                            format!("{} {key} branch(es) added", b.len() - a.len()),
                            more,
                            if key == "allOf" {
                                "stored events may not satisfy the added schema"
                            } else {
                                "new events may take a shape old consumers do not know"
                            },
                        );
                    } else if b.len() < a.len() {
                        self.push(
                            &p,
                            via,
                            format!("{} {key} branch(es) removed", a.len() - b.len()),
                            fewer,
                            if key == "allOf" {
                                "new events may not satisfy the removed schema"
                            } else {
                                "stored events may take the removed shape"
                            },
                        );
                    }
                }
                (None, Some(_)) => self.push(
                    &p,
                    via,
                    format!("{key} added"),
                    Breaks::BOTH,
                    "the value's shape changed",
                ),
                (Some(_), None) => self.push(
                    &p,
                    via,
                    format!("{key} removed"),
                    Breaks::BOTH,
                    "the value's shape changed",
                ),
                (None, None) => {}
            }
        }
    }
}

/// The set of JSON types a node admits, `None` when unconstrained.
fn type_set(m: &Map<String, Value>, null_union: bool) -> Option<BTreeSet<String>> {
    let mut set: BTreeSet<String> = match m.get("type") {
        Some(Value::String(t)) => [t.clone()].into(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => {
            if let Some(Value::Array(vals)) = m.get("enum") {
                vals.iter().map(json_type).map(str::to_string).collect()
            } else if let Some(c) = m.get("const") {
                [json_type(c).to_string()].into()
            } else if m.contains_key("properties") {
                ["object".to_string()].into()
            } else if m.contains_key("items") {
                ["array".to_string()].into()
            } else if null_union {
                BTreeSet::new()
            } else {
                return None;
            }
        }
    };
    if null_union {
        set.insert("null".into());
    }
    Some(set)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn show_types(set: &BTreeSet<String>) -> String {
    let v: Vec<&str> = set.iter().map(String::as_str).collect();
    match v.as_slice() {
        [one] => one.to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Canonical form of a schema for the lock file: object keys sorted, so the file does not
/// change when a schema's keys are merely reordered.
pub(crate) fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}
