//! Connecting securely: TLS, mutual TLS and nkeys, with a CA and certificates made here.

use std::path::{Path, PathBuf};

use eventhub::testing::NatsServer;
use eventhub::{Client, ConnectErrorKind, ConnectOptions};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::support::user_created_v2;

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
    client.provision().await.unwrap();
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
        subscribe: { allow: ["_INBOX.>"] } } }
    { user: profile, password: profile-pw, permissions: {
        publish: { allow: ["$JS.API.STREAM.INFO.>"] }
        subscribe: { allow: ["_INBOX.>"] } } }
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
        .provision()
        .await
        .unwrap();

    let auth = as_user(&server, "auth", "auth").await;
    auth.publisher()
        .publish(&user_created_v2("allowed@example.com"))
        .await
        .expect("auth may publish user events");
    let started = std::time::Instant::now();
    let payment: eventhub::events::payment::CreatedV1 = serde_json::from_value(serde_json::json!({
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
        eventhub::PublishErrorKind::PermissionDenied,
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
        .consumer::<eventhub::events::user::Created>(eventhub::ConsumerOptions::default())
        .await
        .expect_err("profile may not create consumers");
    assert_eq!(
        err.kind(),
        eventhub::ConsumeErrorKind::PermissionDenied,
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
