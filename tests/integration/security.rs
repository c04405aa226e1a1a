//! Connecting securely: TLS, mutual TLS and nkeys, with a CA and certificates made here; and
//! every SDK feature under the permissions generated from `schemas/services.json` (the
//! repository's `nats.conf`), each service connected as its own user.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventhub::Client;
use eventhub::ConnectOptions;
use eventhub::HandlerError;
use eventhub::Sweeper;
use eventhub::dlq::DeadLetterFilter;
use eventhub::dlq::DeadLetterReason;
use eventhub::error::ConnectErrorKind;
use eventhub::error::ConsumeErrorKind;
use eventhub::error::PublishErrorKind;
use eventhub::health::HealthOptions;
use eventhub::wire::headers;
use eventhub_catalog::events::{payment, user};
use eventhub_codegen::services::Services;
use eventhub_codegen::services::nats::{Auth, NatsConfig};
use eventhub_testkit::{NatsServer, STORE_DIR_PLACEHOLDER};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::sync::mpsc;

use crate::support::{DlqWatch, next, quick, user_created_v1, user_created_v2};

/// PEM files of a test PKI: a CA, a server certificate for 127.0.0.1 and a client certificate.
struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "eventhub test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "payments");
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        server_cert: write("server.pem", server_cert.pem()),
        server_key: write("server-key.pem", server_key.serialize_pem()),
        client_cert: write("client.pem", client_cert.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
        _dir: dir,
    }
}

fn tls_server(pki: &Pki, verify_clients: bool) -> NatsServer {
    let p = |path: &Path| path.display().to_string();
    NatsServer::builder()
        .config(format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: {verify_clients}\n  timeout: 2\n}}\n",
            p(&pki.server_cert),
            p(&pki.server_key),
            p(&pki.ca)
        ))
        .start()
        .expect("a TLS server")
}

async fn provision_and_publish(client: &Client) {
    client.provision(&eventhub_catalog::TOPOLOGY).await.unwrap();
    let receipt = client
        .publisher()
        .publish(&user_created_v2("tls@example.com"))
        .await
        .unwrap();
    assert_eq!(receipt.sequence, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_connects_with_the_ca_and_refuses_an_untrusted_server() {
    let pki = pki();
    let server = tls_server(&pki, false);
    let client = Client::connect(
        ConnectOptions::new("payments")
            .url(server.client_url())
            .tls_ca(&pki.ca),
    )
    .await
    .expect("TLS with the test CA");
    provision_and_publish(&client).await;

    // Without the CA the server's certificate is not trusted.
    let err = Client::connect(
        ConnectOptions::new("payments").url(server.client_url().replace("nats://", "tls://")),
    )
    .await
    .expect_err("untrusted certificate");
    assert_eq!(err.kind(), ConnectErrorKind::Tls, "{err}");
    assert!(err.to_string().contains("TLS with NATS at"), "{err}");

    // A missing CA file is named.
    let err = Client::connect(
        ConnectOptions::new("payments")
            .url(server.client_url())
            .tls_ca("/nonexistent/ca.pem"),
    )
    .await
    .expect_err("missing file");
    assert_eq!(err.kind(), ConnectErrorKind::InvalidOptions);
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_requires_a_client_certificate() {
    let pki = pki();
    let server = tls_server(&pki, true);
    let client = Client::connect(
        ConnectOptions::new("payments")
            .url(server.client_url())
            .tls_ca(&pki.ca)
            .tls_client_cert(&pki.client_cert, &pki.client_key),
    )
    .await
    .expect("mTLS with a client certificate");
    provision_and_publish(&client).await;

    let err = Client::connect(
        ConnectOptions::new("payments")
            .url(server.client_url())
            .tls_ca(&pki.ca),
    )
    .await
    .expect_err("a client without a certificate is refused");
    assert!(
        matches!(
            err.kind(),
            ConnectErrorKind::Tls | ConnectErrorKind::Unreachable
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nkey_authentication() {
    let user = nkeys::KeyPair::new_user();
    let server = NatsServer::builder()
        .config(format!(
            "authorization {{ users: [ {{ nkey: \"{}\" }} ] }}\n",
            user.public_key()
        ))
        .start()
        .unwrap();
    let client = Client::connect(
        ConnectOptions::new("payments")
            .url(server.client_url())
            .nkey_seed(user.seed().unwrap()),
    )
    .await
    .expect("the nkey signs the challenge");
    provision_and_publish(&client).await;

    let stranger = nkeys::KeyPair::new_user();
    let err = Client::connect(
        ConnectOptions::new("payments")
            .url(server.client_url())
            .nkey_seed(stranger.seed().unwrap()),
    )
    .await
    .expect_err("an unknown nkey is refused");
    assert_eq!(err.kind(), ConnectErrorKind::Authentication, "{err}");

    let err = Client::connect(
        ConnectOptions::new("payments")
            .url(server.client_url())
            .nkey_seed("not-a-seed"),
    )
    .await
    .expect_err("a malformed seed");
    assert_eq!(err.kind(), ConnectErrorKind::InvalidOptions, "{err}");
}

/// A server where `auth` may publish only `user.*` events, `profile` may not consume, and `ops`
/// may do anything.
fn permissioned_server() -> NatsServer {
    NatsServer::builder()
        .config(
            r#"authorization {
  users: [
    { user: ops, password: ops-pw }
    { user: auth, password: auth-pw, permissions: {
        publish: { allow: ["events.user.>", "$JS.API.STREAM.INFO.>"] }
        subscribe: { allow: ["_INBOX_auth.>"] } } }
    { user: profile, password: profile-pw, permissions: {
        publish: { allow: ["$JS.API.STREAM.INFO.>"] }
        subscribe: { allow: ["_INBOX_profile.>"] } } }
  ]
}
"#,
        )
        .start()
        .unwrap()
}

async fn as_user(server: &NatsServer, service: &str, user: &str) -> Client {
    Client::connect(
        ConnectOptions::new(service)
            .url(server.client_url())
            .user_password(user, format!("{user}-pw")),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_publish_and_denied_consume_fail_fast_naming_subject_and_user() {
    let server = permissioned_server();
    as_user(&server, "ops", "ops")
        .await
        .provision(&eventhub_catalog::TOPOLOGY)
        .await
        .unwrap();

    let auth = as_user(&server, "auth", "auth").await;
    auth.publisher()
        .publish(&user_created_v2("allowed@example.com"))
        .await
        .expect("auth may publish user events");
    let started = std::time::Instant::now();
    let payment: eventhub_catalog::events::payment::CreatedV1 =
        serde_json::from_value(serde_json::json!({
            "payment_id": uuid::Uuid::now_v7(),
            "user_id": uuid::Uuid::now_v7(),
            "amount": { "amount_minor": 100, "currency": "EUR" },
            "method": "card",
            "created_at": "2026-11-23T10:00:00Z"
        }))
        .unwrap();
    let err = auth
        .publisher()
        .publish(&payment)
        .await
        .expect_err("auth may not publish payment events");
    assert_eq!(
        err.kind(),
        eventhub::error::PublishErrorKind::PermissionDenied,
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("`events.payment.created.v1`"), "{text}");
    assert!(text.contains("user `auth`"), "{text}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "not a timeout"
    );

    let profile = as_user(&server, "profile", "profile").await;
    let started = std::time::Instant::now();
    let err = profile
        .consumer::<eventhub_catalog::events::user::Created>(eventhub::ConsumerOptions::default())
        .await
        .expect_err("profile may not create consumers");
    assert_eq!(
        err.kind(),
        eventhub::error::ConsumeErrorKind::PermissionDenied,
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("$JS.API.CONSUMER.CREATE.IDENTITY"), "{text}");
    assert!(text.contains("user `profile`"), "{text}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "not a timeout"
    );
}

// --- The generated configuration -----------------------------------------------------------

/// The repository's declaration of services.
pub(crate) fn declaration() -> Services {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let catalog = eventhub_codegen::Catalog::load(&dir).expect("the catalog");
    Services::load(&dir, &catalog)
        .expect("a valid declaration")
        .expect("schemas/services.json")
}

/// The password the tests give `user`.
pub(crate) fn password(user: &str) -> String {
    format!("{user}-secret")
}

/// A nats-server running the repository's `nats.conf` (generated from the declaration; a
/// codegen test keeps the two equal), with every `$EVENTHUB_<USER>_PASSWORD` set to
/// [`password`].
pub(crate) struct Secured {
    pub(crate) server: NatsServer,
    pub(crate) services: Services,
}

impl Secured {
    pub(crate) fn start() -> Secured {
        let services = declaration();
        let conf =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../nats.conf")).unwrap();
        Self::run(services, conf)
    }

    /// A server running the configuration generated (as `eventhub config nats` does) from
    /// `doc`, a declaration of services over the repository's catalog.
    pub(crate) fn declared(doc: serde_json::Value) -> Secured {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        let catalog = eventhub_codegen::Catalog::load(&dir).expect("the catalog");
        let services = Services::parse(Path::new("services.json"), &doc, &catalog)
            .unwrap_or_else(|e| panic!("a valid declaration: {e}"));
        let conf = NatsConfig::new(&services).render().unwrap();
        Self::run(services, conf)
    }

    fn run(services: Services, conf: String) -> Secured {
        let mut conf = conf.replace(".nats-data", STORE_DIR_PLACEHOLDER);
        for user in services.users() {
            let var = format!("${}", eventhub::client::service_password_var(&user.name));
            assert!(conf.contains(&var), "nats.conf reads {var}");
            conf = conf.replace(&var, &format!("\"{}\"", password(&user.name)));
        }
        let server = NatsServer::builder().config(conf).start().unwrap();
        Secured { server, services }
    }

    /// `user` connected as itself (its service name is its user name).
    pub(crate) async fn connect(&self, user: &str) -> Client {
        Client::connect(
            ConnectOptions::new(user)
                .url(self.server.client_url())
                .user_password(user, password(user))
                .request_timeout(Duration::from_secs(3)),
        )
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"))
    }

    /// `ops`, after provisioning the streams and creating the declared idempotency buckets
    /// (what `eventhub topology apply` and `eventhub config apply` do).
    pub(crate) async fn ops(&self) -> Client {
        let ops = self.connect("ops").await;
        ops.provision(&eventhub_catalog::TOPOLOGY)
            .await
            .expect("ops provisions");
        for service in &self.services.services {
            for c in &service.consumes {
                if let Some(window) = c.idempotency {
                    ops.jetstream()
                        .create_key_value(eventhub::consume::idempotency_bucket_config(
                            &c.durable, window,
                        ))
                        .await
                        .expect("ops creates the idempotency bucket");
                }
            }
        }
        ops
    }
}

#[tokio::test]
async fn the_repository_nats_conf_is_valid() {
    let s = Secured::start();
    let client = s.connect("ops").await;
    // JetStream is on (the configuration's block, not the harness's flags)...
    client
        .provision(&eventhub_catalog::TOPOLOGY)
        .await
        .expect("JetStream enabled by nats.conf");
    // ...with the explicit limits it declares.
    assert_eq!(client.nats().server_info().max_payload, 1024 * 1024);
    assert!(s.server.monitor_url().is_some(), "monitoring is enabled");
    let log = s.server.log();
    assert!(
        log.contains(&format!("{}/jetstream", s.server.store_dir().display())),
        "{log}"
    );

    // Services publish what they own, and nothing else.
    let auth = s.connect("auth").await;
    auth.publisher()
        .publish(&user_created_v1("a@example.com"))
        .await
        .expect("auth publishes user events");
    let payments = s.connect("payments").await;
    let err = payments
        .publisher()
        .publish(&user_created_v1("b@example.com"))
        .await
        .expect_err("payments does not own user events");
    assert_eq!(err.kind(), PublishErrorKind::PermissionDenied, "{err}");
    // They run the consumers they are declared, and no others.
    let consumer = payments
        .consumer::<user::Created>(eventhub::ConsumerOptions::default())
        .await
        .expect("payments consumes user.created");
    assert_eq!(consumer.name(), "payments__user_created");
    let profile = s.connect("profile").await;
    let err = profile
        .consumer::<payment::Created>(eventhub::ConsumerOptions::default())
        .await
        .expect_err("profile does not consume payment.created");
    assert_eq!(err.kind(), ConsumeErrorKind::PermissionDenied, "{err}");
    assert!(
        err.to_string().contains("do not declare this consumer"),
        "{err}"
    );
    // profile is declared for user.created v2 only: the family's filter is refused.
    let err = profile
        .consumer::<user::Created>(eventhub::ConsumerOptions::default())
        .await
        .expect_err("profile's durable is pinned to v2");
    assert!(
        err.to_string().contains(
            "$JS.API.CONSUMER.CREATE.IDENTITY.profile__user_created.events.user.created.*"
        ),
        "{err}"
    );
    profile
        .consumer::<user::CreatedV2>(eventhub::ConsumerOptions::default())
        .await
        .expect("profile consumes user.created v2");
    // Only operators provision; a service is refused at once, with the subject and its user.
    let started = Instant::now();
    let err = auth
        .provision(&eventhub_catalog::TOPOLOGY)
        .await
        .expect_err("services cannot change streams");
    assert_eq!(
        err.kind(),
        eventhub::error::ProvisionErrorKind::Rejected,
        "{err}"
    );
    assert!(err.to_string().contains("$JS.API.STREAM"), "{err}");
    assert!(err.to_string().contains("user `auth`"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "not a timeout: {err}"
    );
}

#[tokio::test]
async fn each_service_gets_its_own_inbox_prefix() {
    let server = NatsServer::start();
    let connect = |options: ConnectOptions| Client::connect(options.url(server.client_url()));
    let auth = connect(ConnectOptions::new("auth")).await.unwrap();
    assert!(auth.nats().new_inbox().starts_with("_INBOX_auth."));
    assert_eq!(
        eventhub::client::service_inbox_prefix("auth"),
        "_INBOX_auth"
    );
    assert_eq!(
        eventhub::client::service_inbox_prefix("auth"),
        eventhub_codegen::services::inbox_prefix("auth"),
        "the SDK and the generated permissions agree"
    );
    let legacy = connect(ConnectOptions::new("auth").inbox_prefix("_INBOX"))
        .await
        .unwrap();
    assert!(legacy.nats().new_inbox().starts_with("_INBOX."));
    let err = connect(ConnectOptions::new("auth").inbox_prefix("_INBOX.*"))
        .await
        .expect_err("a wildcard is no prefix");
    assert_eq!(err.kind(), ConnectErrorKind::InvalidOptions, "{err}");
}

/// The future of a boxed handler.
type Handled = std::pin::Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// A retryable failure on the first delivery of emails starting with `retry`, a rejection of
/// those starting with `reject` unless replayed; reports `(email, delivery)`.
fn profile_handler(
    tx: mpsc::UnboundedSender<(String, u64)>,
) -> impl Fn(eventhub::Envelope<user::CreatedV2>) -> Handled + Send + Sync + 'static {
    move |env| {
        let tx = tx.clone();
        Box::pin(async move {
            let email = env.event().email.to_string();
            let delivered = env.meta().delivered;
            let replayed = env.meta().headers.get(headers::REPLAY_OF).is_some();
            if email.starts_with("retry") && delivered == 1 {
                return Err(HandlerError::retry("the profile store is busy"));
            }
            if email.starts_with("reject") && !replayed {
                return Err(HandlerError::reject("no profile for this one"));
            }
            tx.send((email, delivered)).unwrap();
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn publish_consume_retry_dead_letter_and_replay_under_the_generated_config() {
    let s = Secured::start();
    let ops = s.ops().await;
    let mut dlq = DlqWatch::start(&ops).await;
    let (auth, payments, profile, admin) = (
        s.connect("auth").await,
        s.connect("payments").await,
        s.connect("profile").await,
        s.connect("admin").await,
    );

    // payments opens an account per user (every version) and publishes payment.created from
    // its handler; admin audits the payments; profile reads v2 only.
    let (ptx, mut prx) = mpsc::unbounded_channel();
    let paying = payments
        .consumer::<user::Created>(quick())
        .await
        .expect("payments' durable under the generated config")
        .spawn(move |env| {
            let ptx = ptx.clone();
            async move {
                let user_id = match env.event() {
                    user::Created::V1(e) => e.user_id.clone(),
                    user::Created::V2(e) => e.user_id.clone(),
                };
                let created: payment::CreatedV1 = serde_json::from_value(serde_json::json!({
                    "payment_id": uuid::Uuid::now_v7(),
                    "user_id": user_id,
                    "amount": { "amount_minor": 0, "currency": "EUR" },
                    "method": "card",
                    "created_at": "2026-11-23T10:00:00Z"
                }))
                .unwrap();
                env.publisher()
                    .publish(&created)
                    .await
                    .map_err(HandlerError::retry)?;
                ptx.send(env.meta().id.clone()).unwrap();
                Ok(())
            }
        });
    let (atx, mut arx) = mpsc::unbounded_channel();
    let auditing = admin
        .consumer::<payment::Created>(quick())
        .await
        .expect("admin's durable")
        .spawn(move |env| {
            let _ = atx.send(env.meta().correlation_id.clone());
            async { Ok(()) }
        });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let profiles = profile
        .consumer::<user::CreatedV2>(quick())
        .await
        .expect("profile's durable")
        .spawn(profile_handler(tx));

    let publisher = auth.publisher();
    publisher
        .publish(&user_created_v1("v1@example.com"))
        .await
        .unwrap();
    for email in ["ok@example.com", "retry@example.com", "reject@example.com"] {
        publisher.publish(&user_created_v2(email)).await.unwrap();
    }
    for _ in 0..4 {
        next(&mut prx, 10).await;
        assert!(
            next(&mut arx, 10).await.is_some(),
            "follow-ups keep the correlation id"
        );
    }
    let mut handled = vec![next(&mut rx, 10).await, next(&mut rx, 10).await];
    handled.sort();
    assert_eq!(
        handled,
        [
            ("ok@example.com".to_string(), 1),
            ("retry@example.com".to_string(), 2)
        ],
        "handled, one after a retry"
    );
    // The rejection is a dead letter, written by profile itself.
    let entry = dlq.next(10).await;
    assert_eq!(
        entry.subject.as_str(),
        "dlq.profile__user_created.events.user.created.v2"
    );
    let entries = ops
        .dead_letters()
        .list(&DeadLetterFilter::default())
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].reason, DeadLetterReason::Rejected);
    assert_eq!(entries[0].consumer, "profile__user_created");
    // ops replays it; only profile handles the replay.
    ops.dead_letters().replay(entries[0].id).await.unwrap();
    assert_eq!(next(&mut rx, 10).await.0, "reject@example.com");
    // An event published after the replay: once payments handled it, it had passed the replay.
    let after = publisher
        .publish(&user_created_v2("after@example.com"))
        .await
        .unwrap();
    assert_eq!(next(&mut prx, 10).await, after.id);
    assert_eq!(next(&mut rx, 10).await.0, "after@example.com");
    let stats = paying.shutdown().await;
    assert_eq!(stats.replays_skipped, 1, "{stats:?}");
    assert_eq!(stats.handled, 5, "{stats:?}");
    auditing.shutdown().await;
    let stats = profiles.shutdown().await;
    assert_eq!(
        (stats.handled, stats.retried, stats.dead_lettered),
        (4, 1, 1),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_consumers_use_the_bucket_an_operator_created() {
    let s = Secured::start();
    let ops = s.ops().await;
    let window = s.services.service("payments").unwrap().consumes[0]
        .idempotency
        .expect("payments is declared idempotent");
    let payments = s.connect("payments").await;
    // A window other than the declared one would need the bucket changed: refused at once,
    // saying what happened.
    let started = Instant::now();
    let err = payments
        .consumer::<user::Created>(quick().idempotent(window / 2))
        .await
        .expect_err("services may not change buckets");
    assert_eq!(err.kind(), ConsumeErrorKind::PermissionDenied, "{err}");
    assert!(
        err.to_string()
            .contains("may not create its idempotency bucket"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "not a timeout");

    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = payments
        .consumer::<user::Created>(quick().idempotent(window))
        .await
        .expect("the declared window opens the operator's bucket")
        .spawn(move |env| {
            let _ = tx.send(env.meta().id.clone());
            async { Ok(()) }
        });
    let kv = ops
        .jetstream()
        .get_key_value("EVENTHUB_IDEMPOTENCY_payments__user_created")
        .await
        .unwrap();
    let event = user_created_v2("once@example.com");
    let receipt = s
        .connect("auth")
        .await
        .publisher()
        .publish(&event)
        .await
        .unwrap();
    assert_eq!(next(&mut rx, 10).await, receipt.id);
    // Once its id is recorded (before its ack), store it again.
    let mut recorded = kv.watch_with_history(receipt.id.as_str()).await.unwrap();
    futures::StreamExt::next(&mut recorded)
        .await
        .unwrap()
        .unwrap();
    // The same event id stored again (a late retry past the duplicate window, by ops).
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::ID, receipt.id.as_str());
    h.insert(headers::TYPE, "user.created");
    h.insert(headers::SOURCE, "auth");
    h.insert(headers::CONTENT_TYPE, "application/json");
    h.insert(headers::MSG_ID, format!("{}-late", receipt.id).as_str());
    ops.jetstream()
        .publish_with_headers(
            <user::CreatedV2 as eventhub::Event>::SUBJECT,
            h,
            serde_json::to_vec(&event).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let last = s
        .connect("auth")
        .await
        .publisher()
        .publish(&user_created_v2("last@example.com"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx, 10).await,
        last.id,
        "the duplicate was skipped"
    );
    let stats = handle.shutdown().await;
    assert_eq!(stats.duplicates_skipped, 1, "{stats:?}");
    assert!(
        kv.get(receipt.id.as_str()).await.unwrap().is_some(),
        "recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_under_the_generated_config() {
    let s = Secured::start();
    let _ops = s.ops().await;
    let payments = s.connect("payments").await;
    let handle = payments
        .consumer::<user::Created>(quick())
        .await
        .unwrap()
        .spawn(|_| async { Ok(()) });
    let started = Instant::now();
    let health = payments.health(&HealthOptions::default()).await;
    assert!(health.healthy, "{health:?}");
    assert!(
        health
            .consumers
            .iter()
            .any(|c| c.name == "payments__user_created" && c.alive)
    );
    let metrics = payments.metrics().render().await;
    for line in [
        "eventhub_consumer_pending{consumer=\"payments__user_created\",stream=\"IDENTITY\"} 0",
        "eventhub_consumer_ack_pending{consumer=\"payments__user_created\",stream=\"IDENTITY\"} 0",
        "eventhub_consumer_dlq_depth{consumer=\"payments__user_created\"} 0",
        "eventhub_dlq_depth 0",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no lookup waited for a timeout: {:?}",
        started.elapsed()
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweeper_runs_as_its_own_user() {
    let s = Secured::start();
    let ops = s.ops().await;
    let mut dlq = DlqWatch::start(&ops).await;
    let sweeper_client = s.connect("sweeper").await;
    let sweeper = Sweeper::new(&sweeper_client)
        .spawn()
        .await
        .expect("the sweeper's durable");
    let profile = s.connect("profile").await;
    let options = quick().max_deliver(2).ack_wait(Duration::from_secs(1));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let dying = profile
        .consumer::<user::CreatedV2>(options.clone())
        .await
        .unwrap()
        .spawn(move |env| {
            let tx = tx.clone();
            async move {
                let delivered = env.meta().delivered;
                tx.send(delivered).unwrap();
                if delivered == 1 {
                    return Err(HandlerError::retry("transient"));
                }
                // The last attempt never ends: the process is about to die.
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    let receipt = s
        .connect("auth")
        .await
        .publisher()
        .publish(&user_created_v2("dies@example.com"))
        .await
        .unwrap();
    assert_eq!(next(&mut rx, 10).await, 1);
    assert_eq!(next(&mut rx, 10).await, 2);
    dying.abort();
    let stopped = Arc::new(AtomicBool::new(false));
    let seen = stopped.clone();
    let restarted = profile
        .consumer::<user::CreatedV2>(options)
        .await
        .unwrap()
        .spawn(move |_| {
            seen.store(true, Ordering::SeqCst);
            async { Ok(()) }
        });
    let m = dlq.next(20).await;
    let h = m.headers.clone().unwrap();
    assert_eq!(h.get(headers::DLQ_REASON).unwrap().as_str(), "max-deliver");
    assert_eq!(
        h.get(headers::DLQ_SEQUENCE).unwrap().as_str(),
        receipt.sequence.to_string()
    );
    assert_eq!(sweeper.shutdown().await.swept, 1);
    restarted.shutdown().await;
    assert!(
        !stopped.load(Ordering::SeqCst),
        "the exhausted event is not delivered again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_generated_config_with_nkeys_admits_each_user_by_its_seed() {
    let services = declaration();
    let pairs: std::collections::BTreeMap<String, nkeys::KeyPair> = services
        .users()
        .into_iter()
        .map(|u| (u.name, nkeys::KeyPair::new_user()))
        .collect();
    let keys = pairs
        .iter()
        .map(|(u, k)| (u.clone(), vec![k.public_key()]))
        .collect();
    let conf = NatsConfig::new(&services)
        .auth(Auth::Nkey(keys))
        .render()
        .unwrap()
        .replace(".nats-data", STORE_DIR_PLACEHOLDER);
    assert!(!conf.contains("password"), "{conf}");
    let server = NatsServer::builder().config(conf).start().unwrap();
    let connect = |user: &str| {
        Client::connect(
            ConnectOptions::new(user)
                .url(server.client_url())
                .nkey_seed(pairs[user].seed().unwrap()),
        )
    };
    connect("ops")
        .await
        .unwrap()
        .provision(&eventhub_catalog::TOPOLOGY)
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let profile = connect("profile").await.expect("profile's seed");
    let handle = profile
        .consumer::<user::CreatedV2>(quick())
        .await
        .unwrap()
        .spawn(move |env| {
            let _ = tx.send(env.meta().id.clone());
            async { Ok(()) }
        });
    let auth = connect("auth").await.expect("auth's seed");
    let receipt = auth
        .publisher()
        .publish(&user_created_v2("n@example.com"))
        .await
        .unwrap();
    assert_eq!(next(&mut rx, 10).await, receipt.id);
    handle.shutdown().await;
    // auth's key is auth: it cannot consume as profile does.
    let err = Client::connect(
        ConnectOptions::new("profile")
            .url(server.client_url())
            .nkey_seed(pairs["auth"].seed().unwrap()),
    )
    .await
    .unwrap()
    .consumer::<user::CreatedV2>(quick())
    .await
    .expect_err("auth's key carries auth's permissions");
    assert_eq!(err.kind(), ConsumeErrorKind::PermissionDenied, "{err}");
}

// --- Scheduled events under the generated permissions ---------------------------------------

/// `shop` owns ORDERS (a stream with schedules), `auth` consumes its orders.
fn shop_and_auth() -> Secured {
    Secured::declared(serde_json::json!({
        "operators": ["ops"],
        "services": {
            "shop": { "publishes": ["order.placed"] },
            "auth": {
                "publishes": ["user.created"],
                "consumes": [{ "event": "order.placed" }]
            }
        }
    }))
}

fn order_placed(id: u8) -> eventhub_catalog::events::order::PlacedV1 {
    let money = serde_json::json!({"amount_minor": 100, "currency": "EUR"});
    serde_json::from_value(serde_json::json!({
        "order_id": format!("0190a000-0000-7000-8000-0000000000{id:02}"),
        "user_id": "0190a000-0000-7000-8000-000000000001",
        "line_items": [{"sku": "s", "name": "n", "quantity": 1, "unit_price": money, "total": money}],
        "subtotal": money, "tax": money, "shipping": money, "total": money,
        "shipping_address": {"line1": "1 Main St", "city": "Utrecht", "country": "NL"},
        "placed_at": "2026-12-04T10:00:00Z",
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_schedules_and_cancels_its_own_events_under_the_generated_config() {
    use eventhub_catalog::events::order;
    let s = shop_and_auth();
    let _ops = s.ops().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let auth = s.connect("auth").await;
    let handle = auth
        .consumer::<order::Placed>(quick())
        .await
        .expect("auth consumes orders")
        .spawn(move |env| {
            let _ = tx.send(env.meta().clone());
            async { Ok(()) }
        });
    let shop = s.connect("shop").await;
    let publisher = shop.publisher();
    let cancelled = publisher
        .publish_after(&order_placed(1), Duration::from_secs(1))
        .await
        .expect("shop schedules under its own name");
    assert_eq!(
        cancelled.subject,
        format!("schedules.ORDERS.shop.{}", cancelled.receipt.id)
    );
    assert!(
        publisher
            .cancel_schedule("ORDERS", &cancelled.key)
            .await
            .expect("shop cancels its own schedule without the purge API"),
        "it was pending"
    );
    assert!(
        !publisher
            .cancel_schedule("ORDERS", &cancelled.key)
            .await
            .unwrap(),
        "nothing left to cancel"
    );
    // Due after the cancelled one would have fired.
    let kept = publisher
        .publish_after(&order_placed(2), Duration::from_secs(2))
        .await
        .unwrap();
    let meta = next(&mut rx, 10).await;
    // Delivered with its envelope: id, type, source, the scheduler mark.
    assert_eq!(meta.id, kept.receipt.id);
    assert_eq!(meta.event_type, "order.placed");
    assert_eq!(meta.source.as_deref(), Some("shop"));
    assert_eq!(meta.scheduler.as_deref(), Some(kept.subject.as_str()));
    assert_eq!(meta.occurrence, None, "a one-shot schedule");
    let stats = handle.shutdown().await;
    assert_eq!(stats.handled, 1, "the cancelled one never fired: {stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_can_neither_schedule_nor_cancel_in_another_services_name() {
    use eventhub_catalog::events::order;
    let s = shop_and_auth();
    let ops = s.ops().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handle = s
        .connect("auth")
        .await
        .consumer::<order::Placed>(quick())
        .await
        .unwrap()
        .spawn(move |env| {
            let _ = tx.send(env.meta().id.clone());
            async { Ok(()) }
        });
    let shop = s.connect("shop").await;
    let victim = shop
        .publisher()
        .schedule(
            &order_placed(3),
            eventhub::publish::Schedule::after(Duration::from_secs(3)).key("reminder"),
            eventhub::PublishOptions::default(),
        )
        .await
        .unwrap();

    // auth, posing as shop (its SDK then writes in shop's namespace): denied.
    let posing = Client::connect(
        ConnectOptions::new("shop")
            .url(s.server.client_url())
            .user_password("auth", password("auth"))
            .inbox_prefix("_INBOX_auth")
            .request_timeout(Duration::from_secs(3)),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let err = posing
        .publisher()
        .schedule(
            &order_placed(4),
            eventhub::publish::Schedule::after(Duration::from_secs(1)).key("reminder"),
            eventhub::PublishOptions::default(),
        )
        .await
        .expect_err("replacing shop's schedule");
    assert_eq!(err.kind(), PublishErrorKind::PermissionDenied, "{err}");
    assert!(
        err.to_string().contains("`schedules.ORDERS.shop.reminder`"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "not a timeout");
    // shop, posing as another service: its grant is its own name only.
    let elsewhere = Client::connect(
        ConnectOptions::new("billing")
            .url(s.server.client_url())
            .user_password("shop", password("shop"))
            .inbox_prefix("_INBOX_shop"),
    )
    .await
    .unwrap();
    let err = elsewhere
        .publisher()
        .publish_after(&order_placed(5), Duration::from_secs(1))
        .await
        .expect_err("outside shop's namespace");
    assert_eq!(err.kind(), PublishErrorKind::PermissionDenied, "{err}");

    // auth cancelling shop's schedule: the marker is outside its grant...
    let err = s
        .connect("auth")
        .await
        .publisher()
        .cancel_schedule_subject("ORDERS", &victim.subject)
        .await
        .expect_err("cancelling shop's schedule");
    assert_eq!(err.kind(), PublishErrorKind::PermissionDenied, "{err}");
    assert!(
        err.to_string()
            .contains("`schedules.ORDERS.shop.reminder.cancelled`"),
        "{err}"
    );
    // ...and so is the purge API.
    let purge = s
        .connect("auth")
        .await
        .jetstream()
        .get_stream_no_info("ORDERS")
        .await
        .unwrap()
        .purge()
        .filter(victim.subject.clone())
        .await;
    assert!(purge.is_err(), "{purge:?}");

    // shop's schedule is intact: its event arrives, and only it.
    assert_eq!(next(&mut rx, 15).await, victim.receipt.id);
    let stats = handle.shutdown().await;
    assert_eq!(stats.handled, 1, "{stats:?}");
    // Nothing but the fired event is left in ORDERS (the one-shot schedule was purged by the
    // server when it fired; no attacker's message was stored).
    let mut orders = ops.jetstream().get_stream("ORDERS").await.unwrap();
    assert_eq!(orders.info().await.unwrap().state.messages, 1);
}
