//! `eventhub config services|nats|nkeys|apply`: the declaration of services
//! (`schemas/services.json`) and what is generated from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use eventhub_codegen::Catalog;
use eventhub_codegen::services::nats::{Auth, NatsConfig};
use eventhub_codegen::services::{Role, Services};
use eventhub_patterns::StoreOptions;
use eventhub_patterns::saga::SagaOptions;
use serde_json::json;

use crate::connect::ServerArgs;
use crate::output::{Table, print_json, say};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Checks the declaration against the catalog and shows the event flows: who publishes
    /// each event type and which durables consume it.
    Services(Source),
    /// Renders the nats-server configuration (accounts, users, permissions) from the
    /// declaration.
    Nats(NatsArgs),
    /// Makes an nkey pair per declared user in DIR (`<user>.nk` seed, `<user>.pub` public
    /// key), keeping existing ones; `--rotate` adds a new key next to the old one, `--retire`
    /// drops the old one.
    Nkeys(NkeysArgs),
    /// As an operator, creates what services may not create themselves: the idempotency
    /// buckets of the declared idempotent consumers, the buckets, timer streams and durables
    /// of the declared sagas, the streams and snapshot buckets of the declared aggregates.
    Apply(Source),
}

/// Where the declaration is.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Source {
    /// The catalog directory, holding services.json.
    #[arg(long, env = "EVENTHUB_SCHEMAS_DIR", default_value = "schemas")]
    dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AuthMode {
    /// `password: $EVENTHUB_<USER>_PASSWORD`, read from the server's environment (development).
    Password,
    /// `nkey: "U…"`: public keys from the declaration's `nkeys` and `--keys DIR` (production).
    Nkey,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct NatsArgs {
    #[command(flatten)]
    source: Source,
    /// How users authenticate.
    #[arg(long, value_enum, default_value = "password")]
    auth: AuthMode,
    /// With `--auth nkey`: a directory of `<user>.pub` files (one public key per line), as
    /// `eventhub config nkeys` writes them.
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Only `accounts { … }` and `system_account`, to `include` in a server's own configuration.
    #[arg(long)]
    accounts_only: bool,
    /// Write here (only if the content changed) instead of printing.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct NkeysArgs {
    #[command(flatten)]
    source: Source,
    /// The directory to keep the keys in (created; seeds are written readable by the owner only).
    #[arg(long)]
    out: PathBuf,
    /// Make a new key for this user; its old public key stays in `<user>.pub` until retired.
    #[arg(long, value_name = "USER")]
    rotate: Vec<String>,
    /// Drop every public key of this user but the one of its current seed.
    #[arg(long, value_name = "USER")]
    retire: Vec<String>,
}

fn load(dir: &Path) -> anyhow::Result<Services> {
    if !dir.is_dir() {
        anyhow::bail!("{}: no such catalog directory", dir.display());
    }
    let catalog = Catalog::load(dir)?;
    Services::load(dir, &catalog)?.with_context(|| {
        format!(
            "{}: no declaration of services (services.json) in the catalog directory",
            dir.join(eventhub_codegen::SERVICES_FILE).display()
        )
    })
}

pub(crate) async fn run(server: &ServerArgs, command: Command, json: bool) -> anyhow::Result<()> {
    match command {
        Command::Services(source) => services(&load(&source.dir)?, json),
        Command::Nats(args) => nats(&args),
        Command::Nkeys(args) => nkeys(&args, json),
        Command::Apply(source) => apply(server, &load(&source.dir)?, json).await,
    }
}

fn services(s: &Services, json: bool) -> anyhow::Result<()> {
    let mut types: Vec<&str> = Vec::new();
    for svc in &s.services {
        for p in &svc.publishes {
            types.push(&p.event_type);
        }
    }
    let consumers_of = |ty: &str| -> Vec<(String, String)> {
        s.services
            .iter()
            .flat_map(|svc| {
                svc.consumes
                    .iter()
                    .filter(move |c| c.event_type == ty)
                    .map(move |c| (svc.name.clone(), c.durable.clone()))
            })
            .collect()
    };
    if json {
        let flows: Vec<_> = types
            .iter()
            .map(|ty| {
                json!({
                    "event_type": ty,
                    "publisher": s.publisher_of(ty).map(|p| p.name.clone()),
                    "consumers": consumers_of(ty).into_iter()
                        .map(|(service, durable)| json!({ "service": service, "durable": durable }))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let users: Vec<_> = s
            .users()
            .into_iter()
            .map(|u| json!({ "user": u.name, "role": role(u.role), "account": u.account, "summary": u.summary }))
            .collect();
        print_json(&json!({ "file": s.file, "flows": flows, "users": users }));
        return Ok(());
    }
    let mut table = Table::new(&["EVENT TYPE", "PUBLISHER", "CONSUMERS (DURABLE)"]);
    for ty in &types {
        let consumers: Vec<String> = consumers_of(ty)
            .into_iter()
            .map(|(service, durable)| format!("{service} ({durable})"))
            .collect();
        table.row(vec![
            ty.to_string(),
            s.publisher_of(ty)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
            if consumers.is_empty() {
                "-".into()
            } else {
                consumers.join(", ")
            },
        ]);
    }
    table.print();
    say!();
    let mut users = Table::new(&["USER", "ROLE", "MAY"]);
    for u in s.users() {
        users.row(vec![u.name, role(u.role).into(), u.summary]);
    }
    users.print();
    Ok(())
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Operator => "operator",
        Role::Service => "service",
        Role::Sweeper => "sweeper",
        Role::Gateway => "gateway",
        Role::System => "system",
        _ => "other",
    }
}

fn nats(args: &NatsArgs) -> anyhow::Result<()> {
    if args.keys.is_some() && args.auth != AuthMode::Nkey {
        return Err(crate::connect::Usage("--keys goes with --auth nkey".into()).into());
    }
    let s = load(&args.source.dir)?;
    let mut command = String::from("eventhub config nats");
    if args.source.dir != Path::new("schemas") {
        command.push_str(&format!(" --dir {}", args.source.dir.display()));
    }
    let auth = match args.auth {
        AuthMode::Password => Auth::Password,
        AuthMode::Nkey => {
            command.push_str(" --auth nkey");
            let keys = match &args.keys {
                Some(dir) => {
                    command.push_str(&format!(" --keys {}", dir.display()));
                    read_keys(dir)?
                }
                None => BTreeMap::new(),
            };
            Auth::Nkey(keys)
        }
    };
    if args.accounts_only {
        command.push_str(" --accounts-only");
    }
    if let Some(out) = &args.out {
        command.push_str(&format!(" --out {}", out.display()));
    }
    let mut config = NatsConfig::new(&s).auth(auth).command(command);
    if args.accounts_only {
        config = config.accounts_only();
    }
    let text = config.render()?;
    match &args.out {
        None => print!("{text}"),
        Some(out) => {
            if eventhub_codegen::write_if_changed(out, &text)? {
                eprintln!("wrote {}", out.display());
            } else {
                eprintln!("{} is up to date", out.display());
            }
        }
    }
    Ok(())
}

/// `<user>.pub` files of `dir`: user -> public keys (one per line).
fn read_keys(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut keys = BTreeMap::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read keys directory {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let Some(user) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pub"))
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let list: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        keys.insert(user.to_string(), list);
    }
    Ok(keys)
}

fn nkeys(args: &NkeysArgs, json: bool) -> anyhow::Result<()> {
    let s = load(&args.source.dir)?;
    let users: Vec<String> = s.users().into_iter().map(|u| u.name).collect();
    for name in args.rotate.iter().chain(&args.retire) {
        if !users.contains(name) {
            return Err(crate::connect::Usage(format!(
                "`{name}` is not a declared user (users: {})",
                users.join(", ")
            ))
            .into());
        }
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut report = Vec::new();
    for user in &users {
        let seed_path = args.out.join(format!("{user}.nk"));
        let pub_path = args.out.join(format!("{user}.pub"));
        let mut publics: Vec<String> = match std::fs::read_to_string(&pub_path) {
            Ok(text) => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
            Err(_) => Vec::new(),
        };
        let existing = match std::fs::read_to_string(&seed_path) {
            Ok(seed) => Some(nkeys::KeyPair::from_seed(seed.trim()).with_context(|| {
                format!("{} does not hold a valid nkey seed", seed_path.display())
            })?),
            Err(_) => None,
        };
        let rotate = args.rotate.contains(user);
        let (pair, action) = match existing {
            Some(pair) if !rotate => (pair, "kept"),
            Some(_) => (nkeys::KeyPair::new_user(), "rotated"),
            None => (nkeys::KeyPair::new_user(), "created"),
        };
        let public = pair.public_key();
        if action != "kept" {
            write_secret(&seed_path, &format!("{}\n", pair.seed()?))?;
        }
        // The current key first; older ones stay accepted until retired.
        publics.retain(|k| k != &public);
        publics.insert(0, public.clone());
        let action = if args.retire.contains(user) && publics.len() > 1 {
            publics.truncate(1);
            "retired old keys"
        } else {
            action
        };
        std::fs::write(&pub_path, format!("{}\n", publics.join("\n")))
            .with_context(|| format!("cannot write {}", pub_path.display()))?;
        report.push((user.clone(), action, public, publics.len()));
    }
    if json {
        print_json(&json!(
            report
                .iter()
                .map(|(user, action, public, n)| json!({
                    "user": user, "action": action, "public_key": public, "accepted_keys": n,
                }))
                .collect::<Vec<_>>()
        ));
    } else {
        let mut table = Table::new(&["USER", "KEY", "PUBLIC KEY", "ACCEPTED"]);
        for (user, action, public, n) in report {
            table.row(vec![user, action.into(), public, n.to_string()]);
        }
        table.print();
        say!();
        say!(
            "seeds: {}/<user>.nk (give each service its own: NATS_NKEY_SEED); then render the \
             server's users with `eventhub config nats --auth nkey --keys {}`",
            args.out.display(),
            args.out.display()
        );
    }
    Ok(())
}

/// Writes a secret readable by its owner only.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

async fn apply(server: &ServerArgs, s: &Services, json: bool) -> anyhow::Result<()> {
    let client = server.connect().await?;
    let js = client.jetstream();
    let mut done = Vec::new();
    for svc in &s.services {
        for c in &svc.consumes {
            let Some(window) = c.idempotency else {
                continue;
            };
            let bucket = c.idempotency_bucket();
            let stream = format!("KV_{bucket}");
            let before = js.get_stream(&stream).await.ok();
            let action = match before.as_ref().map(|s| s.cached_info().config.max_age) {
                Some(age) if age == window => "unchanged",
                Some(_) => "updated",
                None => "created",
            };
            if action != "unchanged" {
                js.create_or_update_key_value(eventhub::consume::idempotency_bucket_config(
                    &c.durable, window,
                ))
                .await
                .with_context(|| format!("cannot create or update bucket {bucket}"))?;
            }
            done.push(Applied {
                kind: "idempotency",
                name: bucket,
                service: svc.name.clone(),
                detail: format!("window {window:?}"),
                window: Some(window),
                action,
            });
        }
    }
    // Then what the patterns need, after every bucket above (the JSON output lists them first).
    for svc in &s.services {
        for saga in &svc.sagas {
            let existed = js.get_stream(saga.store()).await.is_ok();
            let options = SagaOptions::new(&saga.stream, &saga.filters);
            eventhub_patterns::saga::provision(&client, &saga.name, &options).await?;
            done.push(Applied {
                kind: "saga",
                name: saga.name.clone(),
                service: svc.name.clone(),
                detail: format!(
                    "bucket and timer stream {}, durables {} on {} and {}",
                    saga.store(),
                    saga.durable(),
                    saga.stream,
                    saga.timeouts_durable()
                ),
                window: None,
                action: if existed { "updated" } else { "created" },
            });
        }
        for a in &svc.aggregates {
            let existed = js.get_stream(a.stream()).await.is_ok();
            eventhub_patterns::aggregate::provision(
                &client,
                &a.aggregate_type,
                &StoreOptions::default(),
            )
            .await?;
            done.push(Applied {
                kind: "aggregate",
                name: a.aggregate_type.clone(),
                service: svc.name.clone(),
                detail: format!(
                    "stream {} on {}, bucket {}",
                    a.stream(),
                    a.subjects(),
                    a.snapshot_bucket()
                ),
                window: None,
                action: if existed { "updated" } else { "created" },
            });
        }
    }
    if json {
        print_json(&json!(done.iter().map(|a| {
            let mut entry = json!({
                "kind": a.kind, "service": a.service, "detail": a.detail, "action": a.action,
            });
            match a.window {
                Some(window) => {
                    entry["bucket"] = json!(a.name);
                    entry["window_secs"] = json!(window.as_secs_f64());
                }
                None => entry["name"] = json!(a.name),
            }
            entry
        }).collect::<Vec<_>>()));
    } else if done.is_empty() {
        say!("nothing to create: no idempotent consumer, saga or aggregate is declared");
    } else {
        let mut table = Table::new(&["KIND", "NAME", "SERVICE", "WHAT", "ACTION"]);
        for a in done {
            table.row(vec![
                a.kind.into(),
                a.name,
                a.service,
                a.detail,
                a.action.into(),
            ]);
        }
        table.print();
    }
    Ok(())
}

/// One thing `config apply` provisioned.
struct Applied {
    kind: &'static str,
    name: String,
    service: String,
    detail: String,
    window: Option<std::time::Duration>,
    action: &'static str,
}
