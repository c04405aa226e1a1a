//! Loading the catalog: read every file under `schemas/`, validate it, resolve `$ref`s.
//!
//! typify cannot follow references across files, so the loader bundles: every reference is
//! rewritten to `#/$defs/<Name>` in one shared namespace. Shared definitions keep their name
//! (`Money`); an event's local definitions are prefixed with the event's struct name
//! (`PlacedV1LineItem`) so two events can both define a `LineItem`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use crate::diagnostic::{Diagnostics, Error};
use crate::naming::{EventName, SERVICES_FILE, SHARED_DIR, TOPOLOGY_FILE, parse_event_path};
use crate::proto::FieldNumbers;
use crate::topology::{self, StreamDecl, subject_matches};
use crate::validate::{DocKind, RefSite, check_document};

/// A validated event catalog: every event schema, shared definition and stream.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) events: Vec<EventSchema>,
    pub(crate) shared: BTreeMap<String, SharedDef>,
    pub(crate) streams: Vec<StreamDecl>,
    /// The catalog's name (`catalog` in `streams.json`).
    pub(crate) name: String,
    files: Vec<PathBuf>,
    /// Protobuf field numbers of released event versions, by (event type, version): kept by
    /// generation so numbers never change or get reused. Empty until releases are recorded.
    pub(crate) released: BTreeMap<(String, u32), FieldNumbers>,
}

/// One event version as the catalog knows it.
#[derive(Debug, Clone)]
pub(crate) struct EventSchema {
    pub(crate) name: EventName,
    pub(crate) file: PathBuf,
    pub(crate) schema_id: String,
    pub(crate) description: String,
    /// Root schema with references rewritten, without `$defs`, `$schema` and `$id`.
    pub(crate) root: Value,
    /// Local definitions keyed by their bundled (prefixed) name, references rewritten.
    pub(crate) locals: BTreeMap<String, Value>,
    /// Shared definitions this event needs, directly or through other definitions.
    pub(crate) shared_used: BTreeSet<String>,
    pub(crate) stream: String,
}

/// A definition from `schemas/shared/`.
#[derive(Debug, Clone)]
pub(crate) struct SharedDef {
    pub(crate) file: PathBuf,
    pub(crate) schema: Value,
    pub(crate) deps: BTreeSet<String>,
}

/// A summary of one event version, for tools (the CLI's `schemas list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEntry {
    /// `user.created`
    pub event_type: String,
    /// `1`
    pub version: u32,
    /// `events.user.created.v1`
    pub subject: String,
    /// The stream that captures the subject.
    pub stream: String,
    /// The schema file, relative to the catalog's parent directory.
    pub file: PathBuf,
    /// The generated Rust type, relative to the `events` module: `user::CreatedV1`.
    pub rust_type: String,
}

struct RawFile {
    /// Path relative to the catalog root, `/`-separated components.
    rel: Vec<String>,
    /// Path shown to the user: `schemas/user/created.v1.json`.
    shown: PathBuf,
    doc: Value,
}

impl Catalog {
    /// Reads, validates and bundles every schema under `dir`.
    pub fn load(dir: &Path) -> Result<Catalog, Error> {
        let label = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("schemas"));
        let mut diags = Diagnostics::default();
        let mut files = Vec::new();
        let mut raw = Vec::new();
        walk(dir, &mut files)?;
        files.sort();
        for path in &files {
            let rel_path = path.strip_prefix(dir).unwrap_or(path);
            let rel: Vec<String> = rel_path
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let shown = label.join(rel_path);
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(doc) => raw.push(RawFile { rel, shown, doc }),
                Err(e) => diags.push(&shown, "", format!("not valid JSON: {e}")),
            }
        }
        let loader = Loader {
            label: label.display().to_string(),
            ..Loader::default()
        };
        let catalog = loader.run(raw, &label, &mut diags);
        diags.check()?;
        let mut catalog = catalog.expect("a catalog without diagnostics is complete");
        catalog.files = files;
        // Released protobuf field numbers stay what they were released as.
        if let Some(lock) = crate::release::Lock::load(dir)? {
            for (event_type, version) in lock.versions() {
                if let Some(numbers) = lock.field_numbers(&event_type, version) {
                    catalog
                        .released
                        .insert((event_type, version), numbers.clone());
                }
            }
        }
        Ok(catalog)
    }

    /// Every schema file that was read (for `cargo:rerun-if-changed`).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The protobuf field numbers released for one event version, if it was released: generation
    /// keeps them (see [`assign_field_numbers`](crate::assign_field_numbers)).
    pub fn released_field_numbers(&self, event_type: &str, version: u32) -> Option<&FieldNumbers> {
        self.released.get(&(event_type.to_string(), version))
    }

    /// Every event version, sorted by type and version.
    pub fn events(&self) -> Vec<EventEntry> {
        self.events
            .iter()
            .map(|e| EventEntry {
                event_type: e.name.event_type.clone(),
                version: e.name.version,
                subject: e.name.subject(),
                stream: e.stream.clone(),
                file: e.file.clone(),
                rust_type: format!("{}::{}", e.name.module(), e.name.struct_ident()),
            })
            .collect()
    }

    /// The fields of one event version marked `x-sensitive` (JSON pointers into the payload, as
    /// the generated `SENSITIVE`); `None` for an unknown event.
    pub fn sensitive_fields(&self, event_type: &str, version: u32) -> Option<Vec<String>> {
        crate::sensitive::paths(&self.bundled_schema(event_type, version)?).ok()
    }

    /// The self-contained JSON Schema of one event version: references point into its own
    /// `$defs`, which carry every shared definition it uses. Tools in other languages can
    /// validate payloads with it.
    pub fn bundled_schema(&self, event_type: &str, version: u32) -> Option<Value> {
        let e = self
            .events
            .iter()
            .find(|e| e.name.event_type == event_type && e.name.version == version)?;
        Some(self.bundle(e))
    }

    pub(crate) fn bundle(&self, e: &EventSchema) -> Value {
        let mut root = e.root.clone();
        let mut defs = serde_json::Map::new();
        for name in &e.shared_used {
            defs.insert(name.clone(), self.shared[name].schema.clone());
        }
        for (name, schema) in &e.locals {
            defs.insert(name.clone(), schema.clone());
        }
        let obj = root.as_object_mut().expect("event roots are objects");
        let mut out = serde_json::Map::new();
        out.insert(
            "$schema".into(),
            "https://json-schema.org/draft/2020-12/schema".into(),
        );
        out.insert("$id".into(), e.schema_id.clone().into());
        out.insert("title".into(), e.name.event_type.clone().into());
        out.append(obj);
        if !defs.is_empty() {
            out.insert("$defs".into(), Value::Object(defs));
        }
        Value::Object(out)
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let ty = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if ty.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
    Ok(())
}

#[derive(Default)]
struct Loader {
    /// How the catalog directory is shown (`schemas`).
    label: String,
    /// Shared file (relative path) -> its definition names.
    shared_files: BTreeMap<Vec<String>, BTreeSet<String>>,
    shared: BTreeMap<String, SharedDef>,
    event_files: BTreeSet<Vec<String>>,
}

impl Loader {
    fn run(mut self, raw: Vec<RawFile>, label: &Path, diags: &mut Diagnostics) -> Option<Catalog> {
        let mut topology_doc = None;
        let mut shared_docs = Vec::new();
        let mut event_docs = Vec::new();
        for f in raw {
            match f.rel.first().map(String::as_str) {
                Some(TOPOLOGY_FILE) if f.rel.len() == 1 => topology_doc = Some(f),
                // Read by `services::Services::load`, against the loaded catalog.
                Some(SERVICES_FILE) if f.rel.len() == 1 => {}
                Some(SHARED_DIR) if f.rel.len() > 1 => shared_docs.push(f),
                _ => {
                    match parse_event_path(&f.rel.iter().map(String::as_str).collect::<Vec<_>>()) {
                        Ok(name) => {
                            self.event_files.insert(f.rel.clone());
                            event_docs.push((name, f));
                        }
                        Err(why) => diags.push(&f.shown, "", why),
                    }
                }
            }
        }

        // Shared definitions first: events refer to them.
        let mut shared_refs = Vec::new();
        for f in &shared_docs {
            let (refs, defs) = check_document(&f.shown, &f.doc, DocKind::Shared, diags);
            for (name, schema) in defs {
                if let Some(prev) = self.shared.get(&name) {
                    diags.push(
                        &f.shown,
                        format!("/$defs/{name}"),
                        format!(
                            "duplicate shared definition `{name}`: also defined in {}; shared \
                             definition names are global (each becomes one Rust type)",
                            prev.file.display()
                        ),
                    );
                    continue;
                }
                self.shared_files
                    .entry(f.rel.clone())
                    .or_default()
                    .insert(name.clone());
                self.shared.insert(
                    name,
                    SharedDef {
                        file: f.shown.clone(),
                        schema,
                        deps: BTreeSet::new(),
                    },
                );
            }
            shared_refs.push((f, refs));
        }
        for (f, refs) in shared_refs {
            let mut doc = f.doc.clone();
            for site in &refs {
                match self.resolve(&f.rel, &site.target, None) {
                    Ok((bundled, dep)) => {
                        rewrite(&mut doc, site, &bundled);
                        if let (Some(dep), Some(owner)) = (dep, def_of(&site.pointer))
                            && let Some(def) = self.shared.get_mut(&owner)
                        {
                            def.deps.insert(dep);
                        }
                    }
                    Err(why) => diags.push(&f.shown, &site.pointer, why),
                }
            }
            for (name, schema) in defs_of(&doc) {
                if let Some(def) = self.shared.get_mut(&name)
                    && def.file == f.shown
                {
                    def.schema = schema;
                }
            }
        }

        let mut events = Vec::new();
        for (name, f) in event_docs {
            if let Some(e) = self.event(name, &f, diags) {
                events.push(e);
            }
        }
        events.sort_by(|a, b| {
            (&a.name.event_type, a.name.version).cmp(&(&b.name.event_type, b.name.version))
        });
        check_duplicates(&events, diags);

        let topo_path = label.join(TOPOLOGY_FILE);
        let name = match &topology_doc {
            Some(f) => topology::catalog_name(&f.shown, &f.doc, diags),
            None => topology::DEFAULT_CATALOG.to_string(),
        };
        let streams = match &topology_doc {
            Some(f) => topology::parse(&f.shown, &f.doc, diags),
            None => {
                diags.push(
                    &topo_path,
                    "",
                    "missing: declare the streams that capture event subjects in \
                     schemas/streams.json",
                );
                Vec::new()
            }
        };
        if topology_doc.is_some() {
            for e in &mut events {
                let subject = e.name.subject();
                let owners: Vec<&StreamDecl> = streams
                    .iter()
                    .filter(|s| s.subjects.iter().any(|p| subject_matches(p, &subject)))
                    .collect();
                match owners.as_slice() {
                    [one] => e.stream = one.name.clone(),
                    [] => diags.push(
                        &e.file,
                        "",
                        format!(
                            "no stream captures subject `{subject}`: add a matching subject \
                             (e.g. `events.{}.>`) to a stream in {}",
                            e.name.domain,
                            topo_path.display()
                        ),
                    ),
                    _ => {}
                }
            }
        }
        if diags.len() > 0 {
            return None;
        }
        Some(Catalog {
            events,
            shared: self.shared,
            streams,
            name,
            files: Vec::new(),
            released: BTreeMap::new(),
        })
    }

    fn event(&self, name: EventName, f: &RawFile, diags: &mut Diagnostics) -> Option<EventSchema> {
        let before = diags.len();
        let (refs, local_defs) = check_document(&f.shown, &f.doc, DocKind::Event, diags);
        let prefix = name.struct_ident();
        let mut doc = f.doc.clone();
        let mut direct = BTreeSet::new();
        for site in &refs {
            match self.resolve(&f.rel, &site.target, Some((&prefix, &local_defs))) {
                Ok((bundled, dep)) => {
                    rewrite(&mut doc, site, &bundled);
                    direct.extend(dep);
                }
                Err(why) => diags.push(&f.shown, &site.pointer, why),
            }
        }
        if diags.len() != before {
            return None;
        }
        let locals = defs_of(&doc)
            .into_iter()
            .map(|(n, s)| (format!("{prefix}{n}"), s))
            .collect();
        let schema_id = doc
            .get("$id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!("urn:eventhub:schema:{}:v{}", name.event_type, name.version)
            });
        let description = doc["description"].as_str().unwrap_or_default().to_string();
        let obj = doc.as_object_mut().expect("validated as object");
        for k in ["$defs", "definitions", "$schema", "$id"] {
            obj.shift_remove(k);
        }
        let mut shared_used = BTreeSet::new();
        let mut todo: Vec<String> = direct.into_iter().collect();
        while let Some(n) = todo.pop() {
            if shared_used.insert(n.clone()) {
                todo.extend(self.shared[&n].deps.iter().cloned());
            }
        }
        Some(EventSchema {
            name,
            file: f.shown.clone(),
            schema_id,
            description,
            root: doc,
            locals,
            shared_used,
            stream: String::new(),
        })
    }

    /// Resolves one `$ref` of the file at `rel`. Returns the bundled reference and the shared
    /// definition it points to, if any. `local` is `(prefix, definitions)` for event files.
    fn resolve(
        &self,
        rel: &[String],
        target: &str,
        local: Option<(&str, &BTreeMap<String, Value>)>,
    ) -> Result<(String, Option<String>), String> {
        let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
        let def = fragment
            .strip_prefix("/$defs/")
            .or_else(|| fragment.strip_prefix("/definitions/"))
            .filter(|n| !n.contains('/'))
            .map(|n| n.replace("~1", "/").replace("~0", "~"))
            .ok_or_else(|| {
                format!(
                    "`{target}`: a reference must point at a definition, like \
                     `#/$defs/Name` or `../shared/money.json#/$defs/Money`"
                )
            })?;
        if path.is_empty() {
            return match local {
                Some((prefix, defs)) if defs.contains_key(&def) => {
                    Ok((format!("#/$defs/{prefix}{def}"), None))
                }
                Some((_, defs)) => Err(missing_def(target, &def, "this file", defs.keys())),
                None => {
                    let names = self.shared_files.get(rel).cloned().unwrap_or_default();
                    if names.contains(&def) {
                        Ok((format!("#/$defs/{def}"), Some(def)))
                    } else {
                        Err(missing_def(target, &def, "this file", names.iter()))
                    }
                }
            };
        }
        if path.contains("://") || path.starts_with("urn:") || path.starts_with('/') {
            return Err(format!(
                "`{target}`: remote and absolute references are not supported (builds must not \
                 need the network); copy the definition into {}/{SHARED_DIR}/",
                self.label
            ));
        }
        let mut resolved: Vec<String> = rel[..rel.len() - 1].to_vec();
        for c in Path::new(path).components() {
            match c {
                Component::Normal(s) => resolved.push(s.to_string_lossy().into_owned()),
                Component::ParentDir if resolved.pop().is_none() => {
                    return Err(format!("`{target}` points outside the schemas directory"));
                }
                _ => {}
            }
        }
        let label = &self.label;
        let shown = format!("{label}/{}", resolved.join("/"));
        if self.event_files.contains(&resolved) {
            return Err(format!(
                "`{target}` points into another event's schema ({shown}); share types by moving \
                 them to {label}/{SHARED_DIR}/"
            ));
        }
        let Some(names) = self.shared_files.get(&resolved) else {
            return Err(format!(
                "`{target}`: no shared-definitions file {shown} (shared definitions live in \
                 {label}/{SHARED_DIR}/*.json)"
            ));
        };
        if !names.contains(&def) {
            return Err(missing_def(target, &def, &shown, names.iter()));
        }
        Ok((format!("#/$defs/{def}"), Some(def)))
    }
}

fn missing_def<'a>(
    target: &str,
    def: &str,
    where_: &str,
    have: impl Iterator<Item = &'a String>,
) -> String {
    let have: Vec<&str> = have.map(String::as_str).collect();
    let hint = crate::diagnostic::suggest(def, have.iter().copied())
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    format!(
        "`{target}` does not resolve: no definition `{def}` in {where_}{hint}; it defines: {}",
        if have.is_empty() {
            "nothing".to_string()
        } else {
            have.join(", ")
        }
    )
}

fn rewrite(doc: &mut Value, site: &RefSite, bundled: &str) {
    if let Some(v) = doc.pointer_mut(&site.pointer) {
        *v = Value::String(bundled.to_string());
    }
}

/// `/$defs/Money/properties/x/$ref` -> `Money`
fn def_of(pointer: &str) -> Option<String> {
    let rest = pointer
        .strip_prefix("/$defs/")
        .or_else(|| pointer.strip_prefix("/definitions/"))?;
    Some(
        rest.split('/')
            .next()?
            .replace("~1", "/")
            .replace("~0", "~"),
    )
}

fn defs_of(doc: &Value) -> Vec<(String, Value)> {
    ["$defs", "definitions"]
        .iter()
        .filter_map(|k| doc.get(*k).and_then(Value::as_object))
        .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())))
        .collect()
}

/// Same event type and version twice, or two events that would get the same Rust name.
fn check_duplicates(events: &[EventSchema], diags: &mut Diagnostics) {
    let mut by_version: BTreeMap<(&str, u32), &EventSchema> = BTreeMap::new();
    let mut by_ident: BTreeMap<(String, String), &EventSchema> = BTreeMap::new();
    let mut family_of: BTreeMap<(String, String), &str> = BTreeMap::new();
    for e in events {
        let key = (e.name.event_type.as_str(), e.name.version);
        if let Some(prev) = by_version.insert(key, e) {
            for (here, there) in [(e, prev), (prev, e)] {
                diags.push(
                    &here.file,
                    "",
                    format!(
                        "duplicate event {} v{}: {} defines it too; an event type and version \
                         is defined by exactly one file",
                        e.name.event_type,
                        e.name.version,
                        there.file.display()
                    ),
                );
            }
            continue;
        }
        let ident = (e.name.module(), e.name.struct_ident());
        if let Some(prev) = by_ident.insert(ident.clone(), e) {
            diags.push(
                &e.file,
                "",
                format!(
                    "{} and {} would both become the Rust type {}::{}; rename one",
                    e.name.event_type, prev.name.event_type, ident.0, ident.1
                ),
            );
        }
        let fam = (e.name.module(), e.name.family_ident.clone());
        if let Some(prev) = family_of.insert(fam.clone(), &e.name.event_type)
            && prev != e.name.event_type
        {
            diags.push(
                &e.file,
                "",
                format!(
                    "{} and {prev} would both become the Rust enum {}::{}; rename one",
                    e.name.event_type, fam.0, fam.1
                ),
            );
        }
    }
    // A family enum must not collide with a struct or local definition of the same module.
    let mut taken: BTreeMap<(String, String), &Path> = BTreeMap::new();
    for e in events {
        let m = e.name.module();
        taken.insert((m.clone(), e.name.struct_ident()), &e.file);
        for local in e.locals.keys() {
            taken.insert((m.clone(), local.clone()), &e.file);
        }
    }
    for ((m, fam), ty) in &family_of {
        if let Some(file) = taken.get(&(m.clone(), fam.clone())) {
            diags.push(
                file,
                "",
                format!("the enum for {ty} would be named {m}::{fam}, which is already a type; rename one"),
            );
        }
    }
}
