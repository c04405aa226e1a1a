//! Loading the catalog: read every file of its schema folders, validate it, resolve `$ref`s.
//!
//! typify cannot follow references across files, so the loader bundles: every reference is
//! rewritten to `#/$defs/<Name>` in one shared namespace. Shared definitions keep their name
//! (`Money`); an event's local definitions are prefixed with the event's struct name
//! (`PlacedV1LineItem`) so two events can both define a `LineItem`; a definition of another
//! catalog is prefixed with that catalog's name (`org:shared/money.json#/$defs/Money` is
//! `OrgMoney`), and generated code names it by its own crate's path instead of defining it.
//!
//! Several folders make one catalog, as if their trees were laid over each other: a path may
//! be in one folder only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use crate::diagnostic::{Diagnostic, Diagnostics, Error};
use crate::externs::ExternCatalog;
use crate::files::{self, SourceFile};
use crate::lock::{LOCK_FILE, Lock};
use crate::naming::{
    EventName, SERVICES_FILE, SHARED_DIR, TOPOLOGY_FILE, parse_event_path, pascal,
};
use crate::proto::FieldNumbers;
use crate::topology::{self, StreamDecl, subject_matches};
use crate::validate::{DocKind, RefSite, check_document};

/// A validated event catalog: every event schema, shared definition and stream.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) events: Vec<EventSchema>,
    /// The request/response pairs (`<name>.request.v<N>.json` + `<name>.response.v<N>.json`):
    /// typed request-reply, not events (no stream, not exported as events).
    pub(crate) requests: Vec<RequestPair>,
    pub(crate) shared: BTreeMap<String, SharedDef>,
    pub(crate) streams: Vec<StreamDecl>,
    /// The catalog's name (`catalog` in `streams.json`).
    pub(crate) name: String,
    files: Vec<PathBuf>,
    /// The schema folders it was read from.
    folders: Vec<PathBuf>,
    /// Its own schema files, (path relative to the root, content): what another catalog needs
    /// to build on this one (the generated `SCHEMA_FILES`).
    pub(crate) sources: Vec<(String, String)>,
    /// Protobuf field numbers of released event versions, by (event type, version): kept by
    /// generation so numbers never change or get reused. Empty until releases are recorded.
    pub(crate) released: BTreeMap<(String, u32), FieldNumbers>,
}

/// One event version as the catalog knows it.
#[derive(Debug, Clone)]
pub(crate) struct EventSchema {
    pub(crate) name: EventName,
    pub(crate) file: PathBuf,
    /// Path relative to the catalog root.
    pub(crate) rel: Vec<String>,
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

/// One request version and its response, paired by file name.
#[derive(Debug, Clone)]
pub(crate) struct RequestPair {
    /// `<name>.request.v<N>.json`, named like an event `user.lookup.request` v`N`.
    pub(crate) request: EventSchema,
    /// `<name>.response.v<N>.json`.
    pub(crate) response: EventSchema,
}

impl RequestPair {
    /// `user.lookup`
    pub(crate) fn request_type(&self) -> &str {
        self.request
            .name
            .event_type
            .strip_suffix(".request")
            .unwrap_or(&self.request.name.event_type)
    }

    /// `rpc.user.lookup.v1`
    pub(crate) fn subject(&self) -> String {
        format!("rpc.{}.v{}", self.request_type(), self.request.name.version)
    }
}

/// A definition from `schemas/shared/`, or one of another catalog's that this one uses.
#[derive(Debug, Clone)]
pub(crate) struct SharedDef {
    pub(crate) file: PathBuf,
    /// Path of its file relative to its catalog's root.
    pub(crate) rel: Vec<String>,
    /// Its name in its own catalog (`Money`, also for the imported `OrgMoney`).
    pub(crate) name: String,
    pub(crate) schema: Value,
    pub(crate) deps: BTreeSet<String>,
    /// Set for a definition of another catalog: generated code names its type there.
    pub(crate) origin: Option<Origin>,
}

/// Where a definition of another catalog lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The catalog's name (`org`).
    pub(crate) catalog: String,
    /// The module its catalog's types were generated into (`::org_events::events`), when
    /// the catalog was given one; the type is `<module>::shared::<name>`.
    pub(crate) rust_path: Option<String>,
}

/// A loaded catalog that another builds on.
#[derive(Debug)]
struct Extern {
    catalog: Catalog,
    rust_path: Option<String>,
}

/// One event version in the shape of the runtime's `EventInfo`, for tools that read a catalog
/// at run time (the `eventhub` CLI's `--schemas`): the runtime's entries hold `&'static`
/// strings, which such a tool makes from these. Protobuf descriptors are not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInfoData {
    /// `user.created`
    pub event_type: String,
    /// `1`
    pub version: u32,
    /// `events.user.created.v1`
    pub subject: String,
    /// The stream that captures the subject.
    pub stream: String,
    /// The schema id (`ce-dataschema`).
    pub schema_id: String,
    /// The generated Rust type, relative to the `events` module: `user::CreatedV1`.
    pub rust_type: String,
    /// The self-contained JSON Schema (references bundled into `$defs`), as JSON text.
    pub schema: String,
    /// The fields marked `x-sensitive`, as JSON pointers (`*` for every array item).
    pub sensitive: Vec<String>,
}

/// One request version of a catalog (`<name>.request.v<N>.json` with its response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEntry {
    /// `user.lookup`
    pub request_type: String,
    /// `1`
    pub version: u32,
    /// `rpc.user.lookup.v1`
    pub subject: String,
    /// The generated Rust type of the request, relative to the `events` module:
    /// `user::LookupRequestV1` (its response: `user::LookupResponseV1`).
    pub rust_type: String,
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

/// Parses the files as JSON; a file that is not JSON becomes a diagnostic.
fn parse_files(files: &[SourceFile], diags: &mut Diagnostics) -> Vec<RawFile> {
    files
        .iter()
        .filter_map(|f| match serde_json::from_str::<Value>(&f.text) {
            Ok(doc) => Some(RawFile {
                rel: f.rel.clone(),
                shown: f.shown.clone(),
                doc,
            }),
            Err(e) => {
                diags.push(&f.shown, "", format!("not valid JSON: {e}"));
                None
            }
        })
        .collect()
}

impl Catalog {
    /// Reads, validates and bundles every schema under `dir`.
    pub fn load(dir: &Path) -> Result<Catalog, Error> {
        Self::load_with(&[dir], &[])
    }

    /// Reads, validates and bundles the catalog made of the schema folders `dirs` (laid over
    /// each other: a path may be in one of them only), whose schemas may refer to the shared
    /// definitions of the `externs` catalogs (`org:shared/money.json#/$defs/Money`) and
    /// declare their streams `"external": true`.
    pub fn load_with<P: AsRef<Path>>(
        dirs: &[P],
        externs: &[ExternCatalog],
    ) -> Result<Catalog, Error> {
        let Some(first) = dirs.first() else {
            return Err(Error::Invalid(vec![Diagnostic::new(
                Path::new("codegen config"),
                "",
                "no schema folder given",
            )]));
        };
        let label = files::folder_label(first.as_ref());
        let externs = load_externs(externs)?;
        let mut diags = Diagnostics::default();
        let mut sources: Vec<SourceFile> = Vec::new();
        let mut seen: BTreeMap<Vec<String>, PathBuf> = BTreeMap::new();
        let mut lock: Option<(PathBuf, Lock)> = None;
        for dir in dirs {
            let dir = dir.as_ref();
            for f in files::read_folder(dir)? {
                if let Some(prev) = seen.get(&f.rel) {
                    diags.push(
                        &f.shown,
                        "",
                        format!(
                            "{} is in two schema folders (also {}): the folders make one \
                             catalog, where a path names one file",
                            f.rel_path(),
                            prev.display()
                        ),
                    );
                    continue;
                }
                seen.insert(f.rel.clone(), f.shown.clone());
                sources.push(f);
            }
            if let Some(found) = Lock::load(dir)? {
                if let Some((prev, _)) = &lock {
                    diags.push(
                        &files::folder_label(dir).join(LOCK_FILE),
                        "",
                        format!(
                            "a second {LOCK_FILE} (also in {}): one catalog has one released state",
                            prev.display()
                        ),
                    );
                }
                lock = Some((dir.to_path_buf(), found));
            }
        }
        let raw = parse_files(&sources, &mut diags);
        let loader = Loader::new(label.display().to_string(), &externs);
        let catalog = loader.run(raw, &label, &mut diags);
        diags.check()?;
        let mut catalog = catalog.expect("a catalog without diagnostics is complete");
        catalog.files = sources.iter().filter_map(|f| f.path.clone()).collect();
        catalog.folders = dirs.iter().map(|d| d.as_ref().to_path_buf()).collect();
        catalog.sources = sources
            .iter()
            .filter(|f| f.rel != [SERVICES_FILE])
            .map(|f| (f.rel_path(), f.text.clone()))
            .collect();
        // Released protobuf field numbers stay what they were released as.
        if let Some((_, lock)) = lock {
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

    /// The catalog's name (`catalog` in `streams.json`; `default` when it names none).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema folders it was read from (empty for a catalog of another one's files).
    pub fn folders(&self) -> &[PathBuf] {
        &self.folders
    }

    /// The names of its streams, owned and external, in declaration order.
    pub fn stream_names(&self) -> Vec<String> {
        self.streams.iter().map(|s| s.name.clone()).collect()
    }

    /// Every event version in the shape of the runtime's `EventInfo` (see
    /// [`EventInfoData`]), sorted by type and version.
    pub fn event_infos(&self) -> Result<Vec<EventInfoData>, Error> {
        let mut diags = Diagnostics::default();
        let out = self
            .events
            .iter()
            .map(|e| {
                let bundled = self.bundle(e);
                let sensitive = crate::sensitive::paths(&bundled).unwrap_or_else(|problems| {
                    for p in problems {
                        diags.push(&e.file, p.pointer, p.message);
                    }
                    Vec::new()
                });
                EventInfoData {
                    event_type: e.name.event_type.clone(),
                    version: e.name.version,
                    subject: e.name.subject(),
                    stream: e.stream.clone(),
                    schema_id: e.schema_id.clone(),
                    rust_type: format!("{}::{}", e.name.module(), e.name.struct_ident()),
                    schema: serde_json::to_string(&bundled).expect("values serialize"),
                    sensitive,
                }
            })
            .collect();
        diags.check()?;
        Ok(out)
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

    /// Every versioned schema the compatibility gate covers: the events, then both sides of
    /// each request (named `user.lookup.request` and `user.lookup.response` in the lock).
    pub(crate) fn versioned(&self) -> impl Iterator<Item = &EventSchema> {
        self.events
            .iter()
            .chain(self.requests.iter().flat_map(|r| [&r.request, &r.response]))
    }

    /// Every request version of the catalog, by request type and version.
    pub fn requests(&self) -> Vec<RequestEntry> {
        self.requests
            .iter()
            .map(|r| RequestEntry {
                request_type: r.request_type().to_string(),
                version: r.request.name.version,
                subject: r.subject(),
                rust_type: format!(
                    "{}::{}",
                    r.request.name.module(),
                    r.request.name.struct_ident()
                ),
            })
            .collect()
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

struct Loader<'e> {
    /// How the catalog directory is shown (`schemas`).
    label: String,
    /// Shared file (relative path) -> its definition names.
    shared_files: BTreeMap<Vec<String>, BTreeSet<String>>,
    /// Own shared definitions by name, and those of other catalogs by their name here.
    shared: BTreeMap<String, SharedDef>,
    event_files: BTreeSet<Vec<String>>,
    /// The catalogs this one may refer to, by name.
    externs: &'e BTreeMap<String, Extern>,
}

impl<'e> Loader<'e> {
    fn new(label: String, externs: &'e BTreeMap<String, Extern>) -> Self {
        Self {
            label,
            shared_files: BTreeMap::new(),
            shared: BTreeMap::new(),
            event_files: BTreeSet::new(),
            externs,
        }
    }

    fn run(mut self, raw: Vec<RawFile>, label: &Path, diags: &mut Diagnostics) -> Option<Catalog> {
        self.import_externs();
        let mut topology_doc = None;
        let mut shared_docs = Vec::new();
        let mut event_docs = Vec::new();
        let mut rpc_docs = Vec::new();
        for f in raw {
            match f.rel.first().map(String::as_str) {
                Some(TOPOLOGY_FILE) if f.rel.len() == 1 => topology_doc = Some(f),
                // Read by `services::Services::load`, against the loaded catalog.
                Some(SERVICES_FILE) if f.rel.len() == 1 => {}
                Some(SHARED_DIR) if f.rel.len() > 1 => shared_docs.push(f),
                _ => {
                    match parse_event_path(&f.rel.iter().map(String::as_str).collect::<Vec<_>>()) {
                        Ok(name) if rpc_side(&name).is_some() => {
                            self.event_files.insert(f.rel.clone());
                            rpc_docs.push((name, f));
                        }
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
                if let Some(prev) = self.shared.get(&name)
                    && let Some(origin) = &prev.origin
                {
                    diags.push(
                        &f.shown,
                        format!("/$defs/{name}"),
                        format!(
                            "shared definition `{name}` clashes with `{}` of catalog `{}` ({}), \
                             which is named `{name}` here (definitions of another catalog are \
                             named <Catalog><Name>); rename yours",
                            prev.name,
                            origin.catalog,
                            prev.file.display()
                        ),
                    );
                    continue;
                }
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
                    name.clone(),
                    SharedDef {
                        file: f.shown.clone(),
                        rel: f.rel.clone(),
                        name,
                        schema,
                        deps: BTreeSet::new(),
                        origin: None,
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
        self.check_extern_events(&events, diags);
        let requests = self.pair_requests(rpc_docs, &events, diags);

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
        if let Some(f) = &topology_doc {
            self.check_extern_topology(&f.shown, &name, &streams, diags);
        }
        if diags.len() > 0 {
            return None;
        }
        self.drop_unused_imports(&events);
        Some(Catalog {
            events,
            requests,
            shared: self.shared,
            streams,
            name,
            files: Vec::new(),
            folders: Vec::new(),
            sources: Vec::new(),
            released: BTreeMap::new(),
        })
    }

    /// Takes in the shared definitions of every other catalog, named `<Catalog><Name>`, with
    /// their references renamed alike. (Definitions such a catalog took from a third one are
    /// taken from that one directly: this build knows it too.)
    fn import_externs(&mut self) {
        for (alias, ext) in self.externs {
            let prefix = pascal(alias);
            let own: BTreeSet<&str> = ext
                .catalog
                .shared
                .iter()
                .filter(|(_, d)| d.origin.is_none())
                .map(|(n, _)| n.as_str())
                .collect();
            let rename = |n: &str| {
                if own.contains(n) {
                    format!("{prefix}{n}")
                } else {
                    n.to_string()
                }
            };
            for (name, def) in &ext.catalog.shared {
                if def.origin.is_some() {
                    continue;
                }
                let mut schema = def.schema.clone();
                rename_refs(&mut schema, &rename);
                self.shared.insert(
                    rename(name),
                    SharedDef {
                        file: def.file.clone(),
                        rel: def.rel.clone(),
                        name: name.clone(),
                        schema,
                        deps: def.deps.iter().map(|d| rename(d)).collect(),
                        origin: Some(Origin {
                            catalog: alias.clone(),
                            rust_path: ext.rust_path.clone(),
                        }),
                    },
                );
            }
        }
    }

    /// Keeps the definitions of other catalogs that this one uses, directly or through others.
    fn drop_unused_imports(&mut self, events: &[EventSchema]) {
        let mut used: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = events
            .iter()
            .flat_map(|e| e.shared_used.iter().cloned())
            .chain(
                self.shared
                    .values()
                    .filter(|d| d.origin.is_none())
                    .flat_map(|d| d.deps.iter().cloned()),
            )
            .collect();
        while let Some(n) = todo.pop() {
            if used.insert(n.clone())
                && let Some(def) = self.shared.get(&n)
            {
                todo.extend(def.deps.iter().cloned());
            }
        }
        self.shared
            .retain(|name, def| def.origin.is_none() || used.contains(name));
    }

    /// An event type belongs to one catalog.
    fn check_extern_events(&self, events: &[EventSchema], diags: &mut Diagnostics) {
        for e in events {
            for (alias, ext) in self.externs {
                if let Some(theirs) = ext
                    .catalog
                    .events
                    .iter()
                    .find(|o| o.name.event_type == e.name.event_type)
                {
                    diags.push(
                        &e.file,
                        "",
                        format!(
                            "event type `{}` belongs to catalog `{alias}` ({}): an event type has \
                             one owning catalog; give this one another name",
                            e.name.event_type,
                            theirs.file.display()
                        ),
                    );
                }
            }
        }
    }

    /// A stream another catalog owns is declared `external` here, and the catalogs have
    /// different names (provisioning records ownership by name).
    fn check_extern_topology(
        &self,
        file: &Path,
        name: &str,
        streams: &[StreamDecl],
        diags: &mut Diagnostics,
    ) {
        if self.externs.contains_key(name) {
            diags.push(
                file,
                "/catalog",
                format!(
                    "this catalog is named `{name}` like a catalog it builds on: catalogs used \
                     together need their own names (provisioning records which stream subjects \
                     belong to which catalog by name)"
                ),
            );
        }
        for s in streams.iter().filter(|s| !s.external) {
            for (alias, ext) in self.externs {
                if ext
                    .catalog
                    .streams
                    .iter()
                    .any(|t| t.name == s.name && !t.external)
                {
                    diags.push(
                        file,
                        &s.pointer,
                        format!(
                            "stream `{}` is owned by catalog `{alias}` ({alias}:{TOPOLOGY_FILE}): \
                             declare it here as {{\"external\": true, \"subjects\": [...]}}, so \
                             provisioning adds this catalog's subjects to it and leaves its \
                             settings to its owner",
                            s.name
                        ),
                    );
                }
            }
        }
    }

    /// Bundles the request and response schemas and pairs them by name and version: each
    /// request needs its response and each response its request.
    fn pair_requests(
        &self,
        docs: Vec<(EventName, RawFile)>,
        events: &[EventSchema],
        diags: &mut Diagnostics,
    ) -> Vec<RequestPair> {
        // (request type, version) -> (request, response)
        type Sides = (Option<EventSchema>, Option<EventSchema>);
        let mut sides: BTreeMap<(String, u32), Sides> = BTreeMap::new();
        for (name, f) in docs {
            let Some((base, side)) = rpc_side(&name) else {
                continue;
            };
            let key = (base.to_string(), name.version);
            let Some(schema) = self.event(name, &f, diags) else {
                continue;
            };
            let slot = sides.entry(key).or_default();
            match side {
                RpcSide::Request => slot.0 = Some(schema),
                RpcSide::Response => slot.1 = Some(schema),
            }
        }
        let mut out = Vec::new();
        for ((base, version), pair) in sides {
            let file_name = |side: &str| {
                let (_, name) = base.split_once('.').unwrap_or(("", &base));
                format!("{}.{side}.v{version}.json", name.replace('.', "/"))
            };
            match pair {
                (Some(request), Some(response)) => {
                    if let Some(clash) = events.iter().find(|e| {
                        e.name.module() == request.name.module()
                            && (e.name.family_ident == request.name.family_ident
                                || e.name.family_ident == response.name.family_ident)
                    }) {
                        diags.push(
                            &request.file,
                            "",
                            format!(
                                "request `{base}` v{version} clashes with event {} ({}): its \
                                 generated type has the same name; rename one",
                                clash.name.event_type,
                                clash.file.display()
                            ),
                        );
                    }
                    out.push(RequestPair { request, response })
                }
                (Some(request), None) => diags.push(
                    &request.file,
                    "",
                    format!(
                        "request `{base}` v{version} has no response: add `{}` next to it \
                         (a request is answered with the response of the same name and version)",
                        file_name("response")
                    ),
                ),
                (None, Some(response)) => diags.push(
                    &response.file,
                    "",
                    format!(
                        "response `{base}` v{version} has no request: add `{}` next to it \
                         (a response answers the request of the same name and version)",
                        file_name("request")
                    ),
                ),
                (None, None) => {}
            }
        }
        out
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
        // `retain` keeps the order of the others (`remove` may not).
        obj.retain(|k, _| !matches!(k.as_str(), "$defs" | "definitions" | "$schema" | "$id"));
        let mut shared_used = BTreeSet::new();
        let mut todo: Vec<String> = direct.into_iter().collect();
        while let Some(n) = todo.pop() {
            if shared_used.insert(n.clone())
                && let Some(def) = self.shared.get(&n)
            {
                todo.extend(def.deps.iter().cloned());
            }
        }
        Some(EventSchema {
            name,
            file: f.shown.clone(),
            rel: f.rel.clone(),
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
                 need the network); copy the definition into {}/{SHARED_DIR}/, or refer to a \
                 shared definition of another catalog this build knows as \
                 `<catalog>:{SHARED_DIR}/<file>.json#/$defs/<Name>`",
                self.label
            ));
        }
        if let Some((catalog, ext_path)) = extern_ref(path) {
            return self.resolve_extern(target, catalog, ext_path, &def);
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

/// `org:shared/money.json` -> (`org`, `shared/money.json`): a path into another catalog.
fn extern_ref(path: &str) -> Option<(&str, &str)> {
    let (catalog, rest) = path.split_once(':')?;
    let named = catalog
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_lowercase)
        && catalog
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    named.then_some((catalog, rest))
}

impl Loader<'_> {
    /// Resolves `<catalog>:<path>#/$defs/<def>` to the definition's name here.
    fn resolve_extern(
        &self,
        target: &str,
        catalog: &str,
        path: &str,
        def: &str,
    ) -> Result<(String, Option<String>), String> {
        let Some(ext) = self.externs.get(catalog) else {
            let known: Vec<&str> = self.externs.keys().map(String::as_str).collect();
            return Err(format!(
                "`{target}`: unknown catalog `{catalog}`; {}",
                if known.is_empty() {
                    format!(
                        "this build knows no other catalog: give it in build.rs with \
                         `Config::extern_catalog(\"{catalog}\", …)`"
                    )
                } else {
                    format!(
                        "this build knows {} (add others with `Config::extern_catalog`)",
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
        };
        let mut rel: Vec<String> = Vec::new();
        for c in Path::new(path).components() {
            match c {
                Component::Normal(s) => rel.push(s.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => {
                    return Err(format!(
                        "`{target}`: a path into catalog `{catalog}` starts at its root, like \
                         `{catalog}:{SHARED_DIR}/money.json#/$defs/Money`"
                    ));
                }
            }
        }
        if let Some((name, _)) = self.shared.iter().find(|(_, d)| {
            d.origin.as_ref().is_some_and(|o| o.catalog == catalog) && d.rel == rel && d.name == def
        }) {
            return Ok((format!("#/$defs/{name}"), Some(name.clone())));
        }
        if ext.catalog.events.iter().any(|e| e.rel == rel) {
            return Err(format!(
                "`{target}` points into an event schema of catalog `{catalog}`; refer to its \
                 shared definitions ({catalog}:{SHARED_DIR}/…)"
            ));
        }
        let in_file: Vec<&String> = ext
            .catalog
            .shared
            .values()
            .filter(|d| d.origin.is_none() && d.rel == rel)
            .map(|d| &d.name)
            .collect();
        if in_file.is_empty() {
            let files: BTreeSet<String> = ext
                .catalog
                .shared
                .values()
                .filter(|d| d.origin.is_none())
                .map(|d| d.rel.join("/"))
                .collect();
            return Err(format!(
                "`{target}`: catalog `{catalog}` has no shared-definitions file `{path}` (it has: \
                 {})",
                if files.is_empty() {
                    "none".to_string()
                } else {
                    files.into_iter().collect::<Vec<_>>().join(", ")
                }
            ));
        }
        Err(missing_def(
            target,
            def,
            &format!("{catalog}:{path}"),
            in_file.into_iter(),
        ))
    }
}

/// Renames the local references (`#/$defs/<Name>`) of a bundled schema. Values of data
/// keywords (`enum`, `const`, `default`, `examples`) are data, left alone.
fn rename_refs(v: &mut Value, rename: &dyn Fn(&str) -> String) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "$ref" {
                    if let Some(name) = child.as_str().and_then(|s| s.strip_prefix("#/$defs/")) {
                        *child = Value::String(format!("#/$defs/{}", rename(name)));
                    }
                } else if !matches!(k.as_str(), "enum" | "const" | "default" | "examples") {
                    rename_refs(child, rename);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rename_refs(i, rename)),
        _ => {}
    }
}

/// Loads the other catalogs, each after those it refers to; a cycle among them is an error.
fn load_externs(externs: &[ExternCatalog]) -> Result<BTreeMap<String, Extern>, Error> {
    let mut diags = Diagnostics::default();
    let mut pending: BTreeMap<&str, (&ExternCatalog, Vec<RawFile>, BTreeSet<String>)> =
        BTreeMap::new();
    for ext in externs {
        let shown = PathBuf::from(format!("{}:", ext.name));
        if pending.contains_key(ext.name.as_str()) {
            diags.push(&shown, "", format!("catalog `{}` is given twice", ext.name));
            continue;
        }
        let raw = parse_files(&ext.read()?, &mut diags);
        let mut refers_to = BTreeSet::new();
        for f in &raw {
            collect_extern_refs(&f.doc, &mut refers_to);
        }
        refers_to.remove(&ext.name);
        pending.insert(&ext.name, (ext, raw, refers_to));
    }
    diags.check()?;
    let mut loaded: BTreeMap<String, Extern> = BTreeMap::new();
    let names: Vec<&str> = pending.keys().copied().collect();
    for name in names {
        visit_extern(name, &mut pending, &mut loaded, &mut Vec::new())?;
    }
    Ok(loaded)
}

fn visit_extern(
    name: &str,
    pending: &mut BTreeMap<&str, (&ExternCatalog, Vec<RawFile>, BTreeSet<String>)>,
    loaded: &mut BTreeMap<String, Extern>,
    path: &mut Vec<String>,
) -> Result<(), Error> {
    if loaded.contains_key(name) {
        return Ok(());
    }
    if let Some(at) = path.iter().position(|p| p == name) {
        let mut cycle = path[at..].to_vec();
        cycle.push(name.to_string());
        return Err(Error::invalid(
            &PathBuf::from(format!("{name}:")),
            "",
            format!(
                "catalogs refer to each other in a cycle: {}; a catalog can build only on \
                 catalogs that do not build on it (move the shared definitions both need into \
                 one of them)",
                cycle.join(" -> ")
            ),
        ));
    }
    let Some((_, _, refers_to)) = pending.get(name) else {
        // Not given: the reference is reported where it is made.
        return Ok(());
    };
    path.push(name.to_string());
    for dep in refers_to.clone() {
        visit_extern(&dep, pending, loaded, path)?;
    }
    path.pop();
    let (ext, raw, _) = pending.remove(name).expect("pending until loaded");
    let mut diags = Diagnostics::default();
    let label = PathBuf::from(format!("{name}:"));
    let catalog = Loader::new(format!("{name}:"), loaded).run(raw, &label, &mut diags);
    diags.check()?;
    let catalog = catalog.expect("a catalog without diagnostics is complete");
    if catalog.name != name {
        return Err(Error::invalid(
            &PathBuf::from(format!("{name}:{TOPOLOGY_FILE}")),
            "/catalog",
            format!(
                "the catalog given as `{name}` names itself `{}`: give it as `{}` (schemas refer \
                 to a catalog by the name its {TOPOLOGY_FILE} declares)",
                catalog.name, catalog.name
            ),
        ));
    }
    loaded.insert(
        name.to_string(),
        Extern {
            catalog,
            rust_path: ext.rust_path.clone(),
        },
    );
    Ok(())
}

/// The catalog names in the `$ref`s of a document (`org` of `org:shared/money.json#/…`).
fn collect_extern_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref"
                    && let Some(target) = child.as_str()
                {
                    let path = target.split('#').next().unwrap_or_default();
                    if !path.contains("://")
                        && let Some((catalog, _)) = extern_ref(path)
                    {
                        out.insert(catalog.to_string());
                    }
                } else if !matches!(k.as_str(), "enum" | "const" | "default" | "examples") {
                    collect_extern_refs(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_extern_refs(i, out)),
        _ => {}
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
/// Which side of a request-reply pair a schema is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RpcSide {
    /// `<name>.request.v<N>.json`
    Request,
    /// `<name>.response.v<N>.json`
    Response,
}

/// For a schema named `<domain>/<name>.request.v<N>` or `.response.v<N>`: the request type
/// (`user.lookup`) and the side. `None` for an event.
pub(crate) fn rpc_side(name: &EventName) -> Option<(&str, RpcSide)> {
    if let Some(base) = name.event_type.strip_suffix(".request") {
        Some((base, RpcSide::Request))
    } else {
        name.event_type
            .strip_suffix(".response")
            .map(|base| (base, RpcSide::Response))
    }
}

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
