//! `eventhub schemas list|show|check|diff|release|export`, and finding catalog events by
//! `TYPE[@vN]`.

use std::path::{Path, PathBuf};

use eventhub::EventInfo;
use eventhub_catalog::events::CATALOG;
use eventhub_codegen::Catalog;
use eventhub_codegen::export::{self, Format, Options, Server};
use eventhub_codegen::release::{self, Lock, Report, Status};
use serde_json::json;

use crate::output::say;
use crate::output::{Table, print_json};

/// Which catalogs the commands read, when not the one compiled in.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CatalogArgs {
    /// A catalog directory laid out like `schemas/` (repeatable: catalogs are merged), read at
    /// run time by publish, tail, dlq and schemas. Default: the directories in
    /// `EVENTHUB_SCHEMAS` (separated like PATH), else the catalog this binary was built with
    /// (`schemas export`: `EVENTHUB_SCHEMAS_DIR`, else `./schemas`).
    #[arg(long = "schemas", value_name = "DIR", global = true)]
    dirs: Vec<PathBuf>,
}

/// Makes the catalogs given (if any) the ones `find`, `events` and the decoders use.
pub(crate) fn activate(args: &CatalogArgs) -> anyhow::Result<()> {
    let catalogs = args.load()?;
    if catalogs.is_empty() {
        return Ok(());
    }
    let mut infos = Vec::new();
    for catalog in &catalogs {
        for entry in catalog.events() {
            infos.push(runtime_info(catalog, &entry)?);
        }
    }
    crate::runtime::set(infos);
    Ok(())
}

/// An [`EventInfo`] for an event of a catalog read at run time. The strings live as long as
/// the process (a command's run). Its protobuf message is empty: payloads of such an event are
/// published and shown as JSON only.
fn runtime_info(
    catalog: &Catalog,
    entry: &eventhub_codegen::EventEntry,
) -> anyhow::Result<EventInfo> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let schema = catalog
        .bundled_schema(&entry.event_type, entry.version)
        .ok_or_else(|| anyhow::anyhow!("{} v{} has no schema", entry.event_type, entry.version))?;
    // Encryption must not be lost: an event whose sensitive fields cannot be listed is refused.
    let sensitive = catalog
        .sensitive_fields(&entry.event_type, entry.version)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} v{}: its x-sensitive fields cannot be listed",
                entry.event_type,
                entry.version
            )
        })?;
    let sensitive: Vec<&'static str> = sensitive.into_iter().map(leak).collect();
    let name = leak(format!("{}.v{}", entry.event_type, entry.version));
    let proto: &'static eventhub::wire::proto::Message =
        Box::leak(Box::new(eventhub::wire::proto::Message {
            name,
            pointer: "",
            shape: eventhub::wire::proto::Shape::Object,
            fields: &[],
            reserved: &[],
        }));
    Ok(EventInfo {
        event_type: leak(entry.event_type.clone()),
        version: entry.version,
        subject: leak(entry.subject.clone()),
        stream: leak(entry.stream.clone()),
        schema_id: leak(schema["$id"].as_str().unwrap_or_default().to_string()),
        rust_type: leak(entry.rust_type.clone()),
        schema: leak(schema.to_string()),
        proto,
        sensitive: Box::leak(sensitive.into_boxed_slice()),
    })
}

impl CatalogArgs {
    /// The directories given, by flag or environment; empty for the default.
    fn given(&self) -> Vec<PathBuf> {
        if !self.dirs.is_empty() {
            return self.dirs.clone();
        }
        std::env::var_os("EVENTHUB_SCHEMAS")
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The catalogs given, loaded and validated; empty for the default.
    fn load(&self) -> anyhow::Result<Vec<Catalog>> {
        self.given().iter().map(|d| load(d)).collect()
    }
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Every event type and version of the catalog (by default the one this binary knows).
    List,
    /// The JSON Schema of an event (references bundled): `TYPE` (latest version) or
    /// `TYPE@vN`.
    Show {
        /// e.g. `user.created` or `user.created@v1`.
        event: String,
    },
    /// Compares the catalog with its released state (`released.lock`): exit 0 when every
    /// change to a released version is compatible, 1 when any is breaking.
    Check {
        /// The catalog directory.
        #[arg(long, env = "EVENTHUB_SCHEMAS_DIR", default_value = "schemas")]
        dir: PathBuf,
    },
    /// Compares two schema trees laid out like `schemas/`, every version in OLD counting as
    /// released: exit 0 when every change is compatible, 1 when any is breaking.
    Diff {
        /// The old tree.
        old: PathBuf,
        /// The new tree.
        new: PathBuf,
    },
    /// Records a release: writes every event version of the catalog into `released.lock`
    /// (refused while a change to a released version is breaking).
    Release {
        /// The catalog directory.
        #[arg(long, env = "EVENTHUB_SCHEMAS_DIR", default_value = "schemas")]
        dir: PathBuf,
    },
    /// Writes the catalog for other languages and tools: TypeScript types, an AsyncAPI 3.0
    /// document, the `.proto` file, self-contained JSON Schemas, a static HTML page.
    Export(ExportArgs),
}

/// `eventhub schemas export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// typescript, asyncapi, proto, jsonschema, html, or all (each in its own subdirectory).
    #[arg(long, value_parser = parse_format, default_value = "all")]
    format: Formats,
    /// The output directory (created if needed; files are written only when they change).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Example payloads to show (HTML, AsyncAPI): `<type>.v<N>.json` files holding one payload
    /// or an array, like `tests/fixtures/events/`. Each is validated against its schema.
    #[arg(long, value_name = "DIR")]
    examples: Option<PathBuf>,
    /// Title of the AsyncAPI document and the HTML page.
    #[arg(long, default_value = "eventhub events")]
    title: String,
    /// Version label of the catalog (AsyncAPI `info.version`).
    #[arg(long, value_name = "VERSION", default_value = "0.0.0")]
    doc_version: String,
    /// A NATS server of the AsyncAPI document, `[nats://]host:port` (repeatable; no
    /// credentials). Default: a placeholder, localhost:4222.
    #[arg(long = "asyncapi-server", value_name = "URL")]
    servers: Vec<String>,
}

/// What `--format` asks for.
#[derive(Debug, Clone, Copy)]
enum Formats {
    One(Format),
    All,
}

fn parse_format(s: &str) -> Result<Formats, String> {
    if s == "all" {
        return Ok(Formats::All);
    }
    s.parse::<Format>()
        .map(Formats::One)
        .map_err(|e| format!("{e}, all"))
}

/// A breaking change was found (exit 1); the report is already printed.
#[derive(Debug)]
struct Breaking(usize);

impl std::fmt::Display for Breaking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} breaking change{}: a released version may only change compatibly",
            self.0,
            if self.0 == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Breaking {}

fn load(dir: &Path) -> anyhow::Result<Catalog> {
    if !dir.is_dir() {
        anyhow::bail!("{}: no such catalog directory", dir.display());
    }
    Ok(Catalog::load(dir)?)
}

fn verdict(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        let events: Vec<serde_json::Value> = report
            .events
            .iter()
            .filter(|e| e.status != Status::Unchanged)
            .map(|e| {
                json!({
                    "event_type": e.event_type,
                    "version": e.version,
                    "file": e.file,
                    "status": format!("{:?}", e.status).to_lowercase(),
                    "breaking": e.is_breaking(),
                    "next_version": e.next_version,
                    "changes": e.changes.iter().map(|c| json!({
                        "pointer": c.pointer,
                        "via": c.via,
                        "what": c.what,
                        "breaks_old_consumers": c.breaks.old_consumers,
                        "breaks_new_consumers": c.breaks.new_consumers,
                        "why": c.why,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&json!({ "breaking": report.is_breaking(), "events": events }));
    } else {
        for line in report.to_string().lines() {
            say!("{line}");
        }
    }
    let n = report.breaking().count()
        + report
            .events
            .iter()
            .filter(|e| e.status == Status::Removed)
            .count();
    if n > 0 {
        return Err(Breaking(n).into());
    }
    Ok(())
}

pub(crate) fn run(command: Command, catalogs: &CatalogArgs, json: bool) -> anyhow::Result<()> {
    match command {
        Command::List if !catalogs.given().is_empty() => {
            list_loaded(&catalogs.load()?, json)?;
        }
        Command::Show { event } if !catalogs.given().is_empty() => {
            show_loaded(&catalogs.load()?, &event, json)?;
        }
        Command::Export(args) => export_files(args, catalogs, json)?,
        Command::List => {
            if json {
                print_json(&json!(
                    CATALOG
                        .iter()
                        .map(|e| json!({
                            "event_type": e.event_type,
                            "version": e.version,
                            "subject": e.subject,
                            "stream": e.stream,
                            "schema_id": e.schema_id,
                            "rust_type": e.rust_type,
                        }))
                        .collect::<Vec<_>>()
                ));
                return Ok(());
            }
            let mut table = Table::new(&["TYPE", "VERSION", "SUBJECT", "STREAM", "RUST TYPE"]);
            for e in CATALOG {
                table.row(vec![
                    e.event_type.to_string(),
                    format!("v{}", e.version),
                    e.subject.to_string(),
                    e.stream.to_string(),
                    format!("eventhub_catalog::events::{}", e.rust_type),
                ]);
            }
            table.print();
        }
        Command::Show { event, .. } => {
            let info = find(&event)?;
            let schema: serde_json::Value = serde_json::from_str(info.schema)?;
            if json {
                print_json(&schema);
            } else {
                say!(
                    "# {} v{} on {} (stream {}, eventhub_catalog::events::{})",
                    info.event_type,
                    info.version,
                    info.subject,
                    info.stream,
                    info.rust_type
                );
                print_json(&schema);
            }
        }
        Command::Check { dir } => {
            let catalog = load(&dir)?;
            let Some(lock) = Lock::load(&dir)? else {
                say!(
                    "nothing released yet ({} has no {}); `eventhub schemas release` records a release",
                    dir.display(),
                    release::LOCK_FILE
                );
                return Ok(());
            };
            verdict(&release::check(&catalog, &lock), json)?;
        }
        Command::Diff { old, new } => {
            let (old, new) = (load(&old)?, load(&new)?);
            verdict(&release::diff(&old, &new), json)?;
        }
        Command::Release { dir } => {
            let catalog = load(&dir)?;
            let previous = Lock::load(&dir)?;
            let lock = Lock::record(&catalog, previous.as_ref())?;
            let before = previous.as_ref().map(Lock::versions).unwrap_or_default();
            let written = lock.save(&dir)?;
            let added: Vec<String> = lock
                .versions()
                .into_iter()
                .filter(|v| !before.contains(v))
                .map(|(t, v)| format!("{t}@v{v}"))
                .collect();
            if json {
                print_json(&json!({ "written": written, "newly_released": added }));
            } else if !written {
                say!("{} is up to date", dir.join(release::LOCK_FILE).display());
            } else {
                say!(
                    "wrote {}: {} released version(s){}",
                    dir.join(release::LOCK_FILE).display(),
                    lock.versions().len(),
                    if added.is_empty() {
                        String::new()
                    } else {
                        format!(", newly released: {}", added.join(", "))
                    }
                );
            }
        }
    }
    Ok(())
}

/// `schemas list` of catalogs read at run time.
fn list_loaded(catalogs: &[Catalog], json: bool) -> anyhow::Result<()> {
    let mut events: Vec<(eventhub_codegen::EventEntry, String)> = Vec::new();
    for c in catalogs {
        for e in c.events() {
            let id = c
                .bundled_schema(&e.event_type, e.version)
                .and_then(|s| s["$id"].as_str().map(str::to_string))
                .unwrap_or_default();
            events.push((e, id));
        }
    }
    events.sort_by(|(a, _), (b, _)| (&a.event_type, a.version).cmp(&(&b.event_type, b.version)));
    if json {
        print_json(&json!(
            events
                .iter()
                .map(|(e, id)| json!({
                    "event_type": e.event_type,
                    "version": e.version,
                    "subject": e.subject,
                    "stream": e.stream,
                    "schema_id": id,
                    "rust_type": e.rust_type,
                    "file": e.file,
                }))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    let mut table = Table::new(&["TYPE", "VERSION", "SUBJECT", "STREAM", "FILE"]);
    for (e, _) in &events {
        table.row(vec![
            e.event_type.clone(),
            format!("v{}", e.version),
            e.subject.clone(),
            e.stream.clone(),
            e.file.display().to_string(),
        ]);
    }
    table.print();
    Ok(())
}

/// `schemas show` of catalogs read at run time.
fn show_loaded(catalogs: &[Catalog], spec: &str, json: bool) -> anyhow::Result<()> {
    let (ty, version) = parse(spec)?;
    let mut versions: Vec<(&Catalog, eventhub_codegen::EventEntry)> = catalogs
        .iter()
        .flat_map(|c| c.events().into_iter().map(move |e| (c, e)))
        .filter(|(_, e)| e.event_type == ty)
        .collect();
    versions.sort_by_key(|(_, e)| e.version);
    let (catalog, entry) = match version {
        None => versions.pop(),
        Some(v) => versions.into_iter().find(|(_, e)| e.version == v),
    }
    .ok_or_else(|| {
        anyhow::anyhow!(
            "no event `{spec}` in the catalog(s) given; `eventhub schemas list --schemas DIR` \
             shows them"
        )
    })?;
    let schema = catalog
        .bundled_schema(&entry.event_type, entry.version)
        .expect("listed events have a schema");
    if !json {
        say!(
            "# {} v{} on {} (stream {}, {})",
            entry.event_type,
            entry.version,
            entry.subject,
            entry.stream,
            entry.file.display()
        );
    }
    print_json(&schema);
    Ok(())
}

/// `schemas export`: renders with `eventhub_codegen::export`, writes what changed.
fn export_files(args: ExportArgs, given: &CatalogArgs, json: bool) -> anyhow::Result<()> {
    let mut catalogs = given.load()?;
    if catalogs.is_empty() {
        let dir = std::env::var_os("EVENTHUB_SCHEMAS_DIR")
            .map_or_else(|| PathBuf::from("schemas"), PathBuf::from);
        if !dir.is_dir() {
            anyhow::bail!(
                "no catalog directory {} here: pass --schemas DIR (or set EVENTHUB_SCHEMAS)",
                dir.display()
            );
        }
        catalogs.push(load(&dir)?);
    }
    let mut options = Options {
        title: args.title,
        version: args.doc_version,
        envelope_headers: Some(eventhub::metadata::envelope_headers_schema()),
        ..Options::default()
    };
    if !args.servers.is_empty() {
        options.servers = args
            .servers
            .iter()
            .enumerate()
            .map(|(i, url)| server(i, url))
            .collect::<anyhow::Result<_>>()?;
    }
    if let Some(dir) = &args.examples {
        options.examples = examples(&catalogs, dir)?;
    }
    let files = match args.format {
        Formats::One(format) => export::export(&catalogs, format, &options)?,
        Formats::All => export::export_all(&catalogs, &options)?,
    };
    let mut written = Vec::new();
    for f in &files {
        // The paths come from validated event names; refuse anything that would leave --out.
        if f.path.is_absolute()
            || f.path
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            anyhow::bail!(
                "refusing to write {} outside the output directory",
                f.path.display()
            );
        }
        let path = args.out.join(&f.path);
        if eventhub_codegen::write_if_changed(&path, &f.content)? {
            written.push(path);
        }
    }
    if json {
        print_json(&json!({
            "out": args.out,
            "files": files.iter().map(|f| &f.path).collect::<Vec<_>>(),
            "written": written,
        }));
    } else {
        for f in &files {
            say!("{}", args.out.join(&f.path).display());
        }
        say!(
            "{} file(s) in {}, {} written, {} unchanged",
            files.len(),
            args.out.display(),
            written.len(),
            files.len() - written.len()
        );
    }
    Ok(())
}

/// `[nats://]host:port` as an AsyncAPI server. Credentials would end up in a published
/// document, so they are refused.
fn server(i: usize, url: &str) -> anyhow::Result<Server> {
    let host = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tls://"))
        .unwrap_or(url)
        .trim_end_matches('/');
    if host.contains('@') {
        anyhow::bail!(
            "--asyncapi-server {url}: leave credentials out of the document (it is meant to be shared)"
        );
    }
    if host.is_empty() || host.contains(['/', ' ', '?', '#']) {
        anyhow::bail!("--asyncapi-server {url}: expected [nats://]host:port");
    }
    Ok(Server {
        name: if i == 0 {
            "nats".into()
        } else {
            format!("nats-{}", i + 1)
        },
        host: host.to_string(),
        description: format!("NATS server {url}"),
    })
}

/// Example payloads from `dir`, each checked against its event's schema.
fn examples(
    catalogs: &[Catalog],
    dir: &Path,
) -> anyhow::Result<std::collections::BTreeMap<(String, u32), Vec<serde_json::Value>>> {
    let mut examples = export::load_examples(dir)?;
    // Exports leave request/response pairs out, so their fixtures are no examples of anything
    // exported (the request tests check them against their schemas).
    let request_sides: std::collections::BTreeSet<(String, u32)> = catalogs
        .iter()
        .flat_map(|c| c.requests())
        .flat_map(|r| {
            ["request", "response"].map(|side| (format!("{}.{side}", r.request_type), r.version))
        })
        .collect();
    examples.retain(|key, _| !request_sides.contains(key));
    for ((event_type, version), payloads) in &examples {
        let file = dir.join(format!("{event_type}.v{version}.json"));
        let schema = catalogs
            .iter()
            .find_map(|c| c.bundled_schema(event_type, *version))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no event {event_type} v{version} in the catalog",
                    file.display()
                )
            })?;
        let validator = jsonschema::validator_for(&schema).map_err(|e| {
            anyhow::anyhow!("{event_type} v{version}: schema does not compile: {e}")
        })?;
        for (i, payload) in payloads.iter().enumerate() {
            if let Err(e) = validator.validate(payload) {
                anyhow::bail!(
                    "{} #{i}: not a valid {event_type} v{version} at `{}`: {e}",
                    file.display(),
                    e.instance_path()
                );
            }
        }
    }
    Ok(examples)
}

/// The catalog entry of `TYPE` (its latest version) or `TYPE@vN`.
pub(crate) fn find(spec: &str) -> anyhow::Result<&'static EventInfo> {
    let (ty, version) = parse(spec)?;
    let versions: Vec<&EventInfo> = crate::runtime::events()
        .iter()
        .filter(|e| e.event_type == ty)
        .collect();
    if versions.is_empty() {
        let mut known: Vec<&str> = crate::runtime::events()
            .iter()
            .map(|e| e.event_type)
            .collect();
        known.dedup();
        let hint = known
            .iter()
            .min_by_key(|k| edit_distance(k, ty))
            .filter(|k| edit_distance(k, ty) <= 3)
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        anyhow::bail!("unknown event type `{ty}`{hint}; `eventhub schemas list` shows the catalog");
    }
    match version {
        None => Ok(versions
            .iter()
            .max_by_key(|e| e.version)
            .copied()
            .unwrap_or(versions[0])),
        Some(v) => versions
            .iter()
            .find(|e| e.version == v)
            .copied()
            .ok_or_else(|| {
                let have: Vec<String> =
                    versions.iter().map(|e| format!("v{}", e.version)).collect();
                anyhow::anyhow!("{ty} has no version v{v}; it has {}", have.join(", "))
            }),
    }
}

/// Splits `TYPE[@vN]`.
pub(crate) fn parse(spec: &str) -> anyhow::Result<(&str, Option<u32>)> {
    match spec.split_once('@') {
        None => Ok((spec, None)),
        Some((ty, v)) => {
            let n = v
                .strip_prefix('v')
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| {
                    anyhow::Error::new(crate::connect::Usage(format!(
                        "`{spec}`: write the version as TYPE@vN, e.g. user.created@v2"
                    )))
                })?;
            Ok((ty, Some(n)))
        }
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
