//! What every format renders: the events of one or more catalogs with the names other
//! languages know them by, and their definitions, each once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::options::{Options, ServiceRole};
use crate::catalog::{Catalog, EventSchema};
use crate::diagnostic::{Diagnostics, Error, pointer_push};
use crate::naming::pascal;
use crate::topology::{StreamDecl, subject_matches};

/// Names the formats define themselves; a definition or event may not take them.
pub(super) const RESERVED_NAMES: &[&str] = &[
    "Envelope",
    "EnvelopeHeaders",
    "EventsBySubject",
    "Subject",
    "EventType",
    "CatalogEntry",
];

/// Keywords whose values are data, not schemas: `$ref`s inside them are not references.
const DATA_KEYWORDS: &[&str] = &["enum", "const", "default", "examples"];

/// The merged catalogs.
#[derive(Debug)]
pub(super) struct View<'a> {
    /// Sorted by type and version.
    pub(super) events: Vec<Ev<'a>>,
    /// Every definition an event uses, by exported name; `$ref`s inside point to
    /// `#/$defs/<exported name>`.
    pub(super) defs: BTreeMap<String, Def>,
    pub(super) streams: Vec<&'a StreamDecl>,
}

/// One event version.
#[derive(Debug)]
pub(super) struct Ev<'a> {
    pub(super) schema: &'a EventSchema,
    /// `UserCreatedV1`
    pub(super) name: String,
    /// `UserCreated`
    pub(super) family: String,
    /// `events.user.created.v1`
    pub(super) subject: String,
    /// The self-contained schema, as `Catalog::bundled_schema` returns it.
    pub(super) bundled: Value,
    /// The root schema (no `$defs`, `$schema`, `$id`), `$ref`s pointing to
    /// `#/$defs/<exported name>`.
    pub(super) root: Value,
    /// The schema's own `examples`, then those of the options.
    pub(super) examples: Vec<Value>,
    /// Services declared to publish it (sorted), when services are declared.
    pub(super) publishers: Vec<String>,
    /// Services declared to consume it (sorted).
    pub(super) consumers: Vec<String>,
}

impl Ev<'_> {
    /// `user.created`
    pub(super) fn event_type(&self) -> &str {
        &self.schema.name.event_type
    }

    pub(super) fn version(&self) -> u32 {
        self.schema.name.version
    }

    /// `user`
    pub(super) fn domain(&self) -> &str {
        &self.schema.name.domain
    }

    pub(super) fn description(&self) -> &str {
        &self.schema.description
    }

    pub(super) fn schema_id(&self) -> &str {
        &self.schema.schema_id
    }

    pub(super) fn stream(&self) -> &str {
        &self.schema.stream
    }
}

/// A definition, shared or an event's own.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Def {
    pub(super) schema: Value,
    /// Where it is defined.
    pub(super) file: PathBuf,
    /// Its name where it is defined (`LineItem`, `Money`).
    pub(super) local_name: String,
    /// The exported name of the event that defines it, for an event's own definition.
    pub(super) owner: Option<String>,
}

impl<'a> View<'a> {
    pub(super) fn new(catalogs: &'a [Catalog], options: &Options) -> Result<View<'a>, Error> {
        let mut diags = Diagnostics::default();
        let mut events: Vec<Ev<'a>> = Vec::new();
        let mut defs: BTreeMap<String, Def> = BTreeMap::new();
        let mut streams = Vec::new();
        for catalog in catalogs {
            streams.extend(catalog.streams.iter());
            for e in &catalog.events {
                let (ev, own) = event(catalog, e, options);
                for (name, def) in own {
                    match defs.get(&name) {
                        Some(prev) if prev.schema != def.schema => diags.push(
                            &def.file,
                            format!("/$defs/{}", def.local_name),
                            format!(
                                "definition `{name}` differs from the one in {}; exported \
                                 together, catalogs must agree on a shared definition",
                                prev.file.display()
                            ),
                        ),
                        Some(_) => {}
                        None => {
                            defs.insert(name, def);
                        }
                    }
                }
                events.push(ev);
            }
        }
        events.sort_by(|a, b| (a.event_type(), a.version()).cmp(&(b.event_type(), b.version())));
        check_names(&events, &defs, &mut diags);
        if let Some(services) = &options.services {
            assign_services(&mut events, services, &mut diags);
        }
        diags.check()?;
        streams.sort_by(|a: &&StreamDecl, b| a.name.cmp(&b.name));
        streams.dedup_by(|a, b| a == b);
        Ok(View {
            events,
            defs,
            streams,
        })
    }

    /// The events by domain, domains sorted.
    pub(super) fn domains(&self) -> BTreeMap<&str, Vec<&Ev<'a>>> {
        let mut out: BTreeMap<&str, Vec<&Ev<'a>>> = BTreeMap::new();
        for e in &self.events {
            out.entry(e.domain()).or_default().push(e);
        }
        out
    }
}

/// One event and the definitions it brings, by exported name.
fn event<'a>(
    catalog: &Catalog,
    e: &'a EventSchema,
    options: &Options,
) -> (Ev<'a>, Vec<(String, Def)>) {
    let prefix = pascal(&e.name.domain);
    let rename = |bundled: &str| -> String {
        if e.locals.contains_key(bundled) {
            format!("{prefix}{bundled}")
        } else {
            bundled.to_string()
        }
    };
    let mut own = Vec::new();
    for name in &e.shared_used {
        let shared = &catalog.shared[name];
        let mut schema = shared.schema.clone();
        rewrite_refs(&mut schema, &rename);
        own.push((
            name.clone(),
            Def {
                schema,
                file: shared.file.clone(),
                local_name: name.clone(),
                owner: None,
            },
        ));
    }
    let struct_ident = e.name.struct_ident();
    for (bundled, schema) in &e.locals {
        let mut schema = schema.clone();
        rewrite_refs(&mut schema, &rename);
        let name = rename(bundled);
        own.push((
            name,
            Def {
                schema,
                file: e.file.clone(),
                local_name: bundled
                    .strip_prefix(&struct_ident)
                    .unwrap_or(bundled)
                    .to_string(),
                owner: Some(format!("{prefix}{struct_ident}")),
            },
        ));
    }
    let mut root = e.root.clone();
    rewrite_refs(&mut root, &rename);
    let mut examples: Vec<Value> = e
        .root
        .get("examples")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(more) = options
        .examples
        .get(&(e.name.event_type.clone(), e.name.version))
    {
        examples.extend(more.iter().cloned());
    }
    let ev = Ev {
        schema: e,
        name: format!("{prefix}{struct_ident}"),
        family: format!("{prefix}{}", e.name.family_ident),
        subject: e.name.subject(),
        bundled: catalog.bundle(e),
        root,
        examples,
        publishers: Vec::new(),
        consumers: Vec::new(),
    };
    (ev, own)
}

/// Replaces every `$ref` of a schema that `f` maps (`f` gets the reference, returns the new one).
pub(super) fn map_refs(schema: &mut Value, f: &dyn Fn(&str) -> Option<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(new) = f(r)
            {
                *r = new;
            }
            for (k, v) in map.iter_mut() {
                // `properties` maps names to schemas: a property may be called `enum`.
                if k == "properties" {
                    if let Value::Object(props) = v {
                        for p in props.values_mut() {
                            map_refs(p, f);
                        }
                    }
                } else if !DATA_KEYWORDS.contains(&k.as_str()) {
                    map_refs(v, f);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| map_refs(v, f)),
        _ => {}
    }
}

/// Rewrites every `$ref` `#/$defs/X` of a schema to `#/$defs/<rename(X)>`.
fn rewrite_refs(schema: &mut Value, rename: &dyn Fn(&str) -> String) {
    map_refs(schema, &|r| {
        ref_name(r).map(|n| format!("#/$defs/{}", rename(n)))
    });
}

/// The exported name of a `$ref` (`#/$defs/Money` -> `Money`).
pub(super) fn ref_name(r: &str) -> Option<&str> {
    r.strip_prefix("#/$defs/")
}

/// Two events of the same type and version, or two things with one exported name.
fn check_names(events: &[Ev<'_>], defs: &BTreeMap<String, Def>, diags: &mut Diagnostics) {
    for pair in events.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if (a.event_type(), a.version()) == (b.event_type(), b.version()) {
            diags.push(
                &b.schema.file,
                "",
                format!(
                    "{} v{} is also defined by {}; exported together, an event version is \
                     defined once",
                    b.event_type(),
                    b.version(),
                    a.schema.file.display()
                ),
            );
        }
    }
    let mut taken: BTreeMap<&str, (&Path, String)> = BTreeMap::new();
    for reserved in RESERVED_NAMES {
        taken.insert(
            reserved,
            (Path::new("eventhub"), "a name of the export".into()),
        );
    }
    let mut claims: Vec<(&str, &Path, String)> = Vec::new();
    let mut families = BTreeSet::new();
    for e in events {
        claims.push((
            &e.name,
            &e.schema.file,
            format!("the type of {} v{}", e.event_type(), e.version()),
        ));
        if families.insert(e.family.as_str()) {
            claims.push((
                &e.family,
                &e.schema.file,
                format!("the union of {}", e.event_type()),
            ));
        }
    }
    for (name, def) in defs {
        claims.push((
            name,
            &def.file,
            format!("the definition `{}`", def.local_name),
        ));
    }
    for (name, file, what) in claims {
        if let Some((other_file, other)) = taken.get(name) {
            diags.push(
                file,
                "",
                format!(
                    "{what} and {other} ({}) would both be named `{name}` in the export; rename one",
                    other_file.display()
                ),
            );
        } else {
            taken.insert(name, (file, what));
        }
    }
}

/// Fills each event's publishers and consumers from the declaration of services.
fn assign_services(events: &mut [Ev<'_>], services: &[ServiceRole], diags: &mut Diagnostics) {
    let origin = Path::new("services");
    for (i, s) in services.iter().enumerate() {
        let base = format!("/{i}");
        for (field, entries, consumes) in [
            ("publishes", &s.publishes, false),
            ("consumes", &s.consumes, true),
        ] {
            for (j, entry) in entries.iter().enumerate() {
                let mut hit = false;
                for e in events.iter_mut().filter(|e| matches(entry, e)) {
                    hit = true;
                    let list = if consumes {
                        &mut e.consumers
                    } else {
                        &mut e.publishers
                    };
                    if !list.contains(&s.service) {
                        list.push(s.service.clone());
                        list.sort();
                    }
                }
                if !hit {
                    diags.push(
                        origin,
                        format!("{}/{j}", pointer_push(&base, field)),
                        format!(
                            "service `{}` {field} `{entry}`, which matches no event of the \
                             catalog (write TYPE, TYPE@vN or a subject pattern like events.user.>)",
                            s.service
                        ),
                    );
                }
            }
        }
    }
}

/// Whether a service entry (`user.created`, `user.created@v2`, `events.user.>`) names `e`.
fn matches(entry: &str, e: &Ev<'_>) -> bool {
    if entry.starts_with(crate::naming::SUBJECT_PREFIX) && entry.contains(['*', '>']) {
        return subject_matches(entry, &e.subject);
    }
    if entry == e.subject {
        return true;
    }
    match entry.split_once("@v") {
        Some((t, v)) => t == e.event_type() && v.parse() == Ok(e.version()),
        None => entry == e.event_type(),
    }
}
