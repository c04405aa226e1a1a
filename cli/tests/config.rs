//! `eventhub config`: the declaration of services, the nats.conf generated from it, nkeys and
//! their rotation, and the operator's CLI under the generated permissions.

mod common;

use common::Run;
use std::path::{Path, PathBuf};

use eventhub::Client;
use eventhub::ConnectOptions;
use eventhub::ConsumerOptions;
use eventhub::HandlerError;
use eventhub::error::ConnectErrorKind;
use eventhub_catalog::events::user;
use eventhub_testkit::{NatsServer, STORE_DIR_PLACEHOLDER};
use futures::StreamExt;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `eventhub` in `dir` with only the environment it is given.
fn eventhub_in(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = common::eventhub();
    cmd.current_dir(dir).args(args).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.envs(env.iter().copied());
    Run::of(&mut cmd)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A temp dir holding a copy of the repository's `schemas/`.
fn schemas_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("schemas"), &dir.path().join("schemas"));
    dir
}

#[test]
fn config_services_shows_the_flows_and_refuses_a_bad_declaration() {
    let dir = schemas_copy();
    let run = eventhub_in(dir.path(), &[], &["config", "services", "--json"]).ok();
    let flows = run.json()["flows"].clone();
    let created = flows
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["event_type"] == "user.created")
        .unwrap();
    assert_eq!(created["publisher"], "auth");
    let durables: Vec<&str> = created["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["durable"].as_str().unwrap())
        .collect();
    assert_eq!(
        durables,
        ["payments__user_created", "profile__user_created"]
    );
    let table = eventhub_in(dir.path(), &[], &["config", "services"]).ok();
    assert!(table.stdout.contains("payment.created"), "{}", table.stdout);
    assert!(
        table.stdout.contains("admin (admin__payment_created)"),
        "{}",
        table.stdout
    );

    let path = dir.path().join("schemas/services.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"auth.logout\"", "\"auth.logut\"")).unwrap();
    for command in ["services", "nats"] {
        eventhub_in(dir.path(), &[], &["config", command]).fails(
            1,
            "schemas/services.json#/services/auth/publishes/4: unknown event type `auth.logut` \
             (did you mean `auth.logout`?)",
        );
    }
    eventhub_in(dir.path(), &[], &["config", "nats", "--keys", "k"])
        .fails(2, "--keys goes with --auth nkey");
}

#[test]
fn config_nats_regenerates_the_checked_in_file() {
    let dir = schemas_copy();
    let run = eventhub_in(dir.path(), &[], &["config", "nats", "--out", "nats.conf"]).ok();
    assert!(run.stderr.contains("wrote nats.conf"), "{}", run.stderr);
    let generated = std::fs::read_to_string(dir.path().join("nats.conf")).unwrap();
    let checked_in = std::fs::read_to_string(repo().join("nats.conf")).unwrap();
    assert!(
        generated == checked_in,
        "the checked-in nats.conf is what `eventhub config nats --out nats.conf` writes"
    );
    let again = eventhub_in(dir.path(), &[], &["config", "nats", "--out", "nats.conf"]).ok();
    assert!(
        again.stderr.contains("nats.conf is up to date"),
        "{}",
        again.stderr
    );
    let accounts = eventhub_in(dir.path(), &[], &["config", "nats", "--accounts-only"]).ok();
    assert!(accounts.stdout.contains("accounts {"));
    assert!(!accounts.stdout.contains("listen:"), "{}", accounts.stdout);
}

/// A server with `conf` (the development store path replaced by the harness's).
fn server(conf: &str) -> NatsServer {
    NatsServer::builder()
        .config(conf.replace(".nats-data", STORE_DIR_PLACEHOLDER))
        .start()
        .unwrap()
}

async fn with_seed(
    server: &NatsServer,
    service: &str,
    seed_file: &Path,
) -> Result<Client, eventhub::error::ConnectError> {
    let seed = std::fs::read_to_string(seed_file).unwrap();
    Client::connect(
        ConnectOptions::new(service)
            .url(server.client_url())
            .nkey_seed(seed.trim()),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn nkeys_are_generated_rotated_and_retired() {
    let dir = schemas_copy();
    let keys = dir.path().join("keys");
    let made = eventhub_in(
        dir.path(),
        &[],
        &["config", "nkeys", "--out", "keys", "--json"],
    )
    .ok();
    let made = made.json();
    assert!(
        made.as_array()
            .unwrap()
            .iter()
            .all(|k| k["action"] == "created"),
        "{made}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.join("payments.nk"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "seeds are readable by their owner only");
    }
    let render = || {
        eventhub_in(
            dir.path(),
            &[],
            &["config", "nats", "--auth", "nkey", "--keys", "keys"],
        )
        .ok()
        .stdout
    };
    let conf = render();
    for entry in std::fs::read_dir(&keys).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "nk") {
            let seed = std::fs::read_to_string(&path).unwrap();
            assert!(seed.starts_with("SU"), "{}", path.display());
            assert!(!conf.contains(seed.trim()), "no seed in the configuration");
        }
    }
    let old_seed = dir.path().join("payments-old.nk");
    std::fs::copy(keys.join("payments.nk"), &old_seed).unwrap();
    {
        let server = server(&conf);
        with_seed(&server, "ops", &keys.join("ops.nk"))
            .await
            .unwrap()
            .provision(&eventhub_catalog::TOPOLOGY)
            .await
            .unwrap();
        let payments = with_seed(&server, "payments", &keys.join("payments.nk"))
            .await
            .unwrap();
        payments
            .consumer::<user::Created>(ConsumerOptions::default())
            .await
            .expect("payments' own key carries its permissions");
    }

    // Kept on a second run; rotated on demand, the old key still accepted until retired.
    let again = eventhub_in(
        dir.path(),
        &[],
        &[
            "config", "nkeys", "--out", "keys", "--rotate", "payments", "--json",
        ],
    )
    .ok()
    .json();
    let payments = again
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["user"] == "payments")
        .unwrap();
    assert_eq!(payments["action"], "rotated");
    assert_eq!(payments["accepted_keys"], 2);
    let auth = again
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["user"] == "auth")
        .unwrap();
    assert_eq!(auth["action"], "kept");
    {
        let server = server(&render());
        with_seed(&server, "payments", &keys.join("payments.nk"))
            .await
            .expect("the new key");
        with_seed(&server, "payments", &old_seed)
            .await
            .expect("the old key, during the rollout");
    }
    eventhub_in(
        dir.path(),
        &[],
        &["config", "nkeys", "--out", "keys", "--retire", "payments"],
    )
    .ok();
    let server = server(&render());
    with_seed(&server, "payments", &keys.join("payments.nk"))
        .await
        .expect("the new key");
    let err = with_seed(&server, "payments", &old_seed)
        .await
        .expect_err("the retired key");
    assert_eq!(err.kind(), ConnectErrorKind::Authentication, "{err}");
    eventhub_in(
        dir.path(),
        &[],
        &["config", "nkeys", "--out", "keys", "--rotate", "nobody"],
    )
    .fails(2, "`nobody` is not a declared user");
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_run_the_cli_under_the_generated_config() {
    let server = NatsServer::with_generated_conf(repo().join("nats.conf"));
    let url = server.client_url();
    let ops_env = [("EVENTHUB_OPS_PASSWORD", "ops-secret")];
    let cli = |args: &[&str]| {
        let mut all = vec!["--server", url.as_str()];
        all.extend_from_slice(args);
        eventhub_in(&repo(), &ops_env, &all)
    };
    cli(&["topology", "apply"]).ok();
    let applied = cli(&["config", "apply", "--json"]).ok().json();
    assert_eq!(
        applied[0]["bucket"],
        "EVENTHUB_IDEMPOTENCY_payments__user_created"
    );
    assert_eq!(applied[0]["action"], "created");
    // The declared sagas and aggregates, which their services may not create either.
    let entry = |kind: &str, name: &str| {
        applied
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == kind && e["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} in {applied}"))
            .clone()
    };
    assert_eq!(entry("saga", "registration")["service"], "onboarding");
    assert_eq!(entry("saga", "gdpr_erasure")["action"], "created");
    assert_eq!(entry("aggregate", "user")["service"], "auth");
    assert_eq!(entry("aggregate", "user")["action"], "created");
    let again = cli(&["config", "apply", "--json"]).ok().json();
    assert_eq!(again[0]["action"], "unchanged");
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] != "idempotency")
            .all(|e| e["action"] == "updated"),
        "{again}"
    );

    // A dead letter written by profile under its own user.
    let connect = |user: &'static str| {
        Client::connect(
            ConnectOptions::new(user)
                .url(server.client_url())
                .user_password(user, format!("{user}-secret")),
        )
    };
    let ops = connect("ops").await.unwrap();
    let mut durable = ops
        .jetstream()
        .get_stream("IDENTITY")
        .await
        .unwrap()
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("saga_registration")
        .await
        .expect("apply created the saga's input durable");
    let filters = durable.info().await.unwrap().config.filter_subjects.clone();
    assert!(
        filters.contains(&"events.onboarding.welcome-failed.v1".to_string()),
        "{filters:?}"
    );
    for stream in [
        "SAGA_REGISTRATION",
        "KV_SAGA_GDPR_ERASURE",
        "ES_USER",
        "KV_ES_SNAPSHOTS_USER",
    ] {
        ops.jetstream()
            .get_stream(stream)
            .await
            .unwrap_or_else(|e| panic!("apply created {stream}: {e}"));
    }
    let dlq = ops
        .jetstream()
        .get_stream(eventhub::topology::DLQ_STREAM)
        .await
        .unwrap();
    let watch = dlq
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut stored = watch.messages().await.unwrap();
    let profile = connect("profile").await.unwrap();
    let (handled, mut replays) = tokio::sync::mpsc::unbounded_channel();
    let handle = profile
        .consumer::<user::CreatedV2>(
            ConsumerOptions::default().fetch_expires(std::time::Duration::from_millis(300)),
        )
        .await
        .unwrap()
        .spawn(move |env| {
            let replayed = env
                .meta()
                .headers
                .get(eventhub::wire::headers::REPLAY_OF)
                .is_some();
            if replayed {
                let _ = handled.send(());
            }
            async move {
                if replayed {
                    Ok(())
                } else {
                    Err(HandlerError::reject("no profile yet"))
                }
            }
        });
    let payload = serde_json::json!({
        "user_id": "0190a000-0000-7000-8000-000000000001", "email": "ops@example.com",
        "display_name": "Ada", "locale": "en-GB", "created_at": "2026-11-23T10:00:00Z",
    })
    .to_string();
    // ops publishes (operators may publish anything), profile dead-letters it.
    cli(&["publish", "user.created@v2", &payload]).ok();
    tokio::time::timeout(std::time::Duration::from_secs(10), stored.next())
        .await
        .expect("the dead letter is stored")
        .unwrap()
        .unwrap();
    let list = cli(&["dlq", "list", "--json"]).ok().json();
    let id = list[0]["id"].to_string();
    assert_eq!(list[0]["consumer"], "profile__user_created");
    cli(&["dlq", "show", &id]).ok();
    cli(&["dlq", "replay", &id]).ok();
    tokio::time::timeout(std::time::Duration::from_secs(10), replays.recv())
        .await
        .expect("profile gets the replay");
    let stats = handle.shutdown().await;
    assert_eq!(stats.handled, 1, "profile handled the replay: {stats:?}");
    let consumers = cli(&["consumers", "IDENTITY", "--json"]).ok().json();
    let durable = consumers
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "profile__user_created")
        .unwrap();
    assert_eq!(
        durable["filter_subjects"],
        serde_json::json!(["events.user.created.v2"])
    );
    cli(&["streams"]).ok();
    cli(&[
        "tail",
        "user.created",
        "--since",
        "1h",
        "--count",
        "1",
        "--json",
    ])
    .ok();
    cli(&["health"]).ok();

    // A service's credentials do not run operator commands: refused at once, not a timeout.
    let started = std::time::Instant::now();
    eventhub_in(
        &repo(),
        &[
            ("NATS_USER", "payments"),
            ("NATS_PASSWORD", "payments-secret"),
        ],
        &[
            "--server",
            &url,
            "--service",
            "payments",
            "topology",
            "apply",
        ],
    )
    .fails(1, "user `payments`");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}
