//! The README's dashboard screenshots, taken in headless Chromium against a real nats-server
//! with a few dead letters in two failure groups (tools/js/screenshot-dashboard.js). Written to
//! a temporary directory, or to `EVENTHUB_SCREENSHOTS_DIR` (e.g. `docs/img`, relative to the
//! workspace) to refresh the committed ones.

mod support;

use std::process::Command;
use std::time::Duration;

use eventhub::consume::HandlerError;
use eventhub::dlq::DeadLetterFilter;
use eventhub::{ConnectOptions, ConsumerOptions};
use eventhub_catalog::events::photo::UploadedV1;
use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn the_dashboard_screenshots_are_taken_in_chromium() {
    let node = require_js(&["playwright-core"]);
    assert!(
        std::path::Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is not installed: run `{INSTALL}` (as root), or `apt-get update && \
         apt-get install -y chromium`"
    );
    let hub = start().await;
    let photo =
        eventhub::Client::connect(ConnectOptions::new("photo").url(hub.server.client_url()))
            .await
            .unwrap();
    let consumer = photo
        .consumer::<UploadedV1>(ConsumerOptions::default())
        .await
        .unwrap()
        .spawn(|env: eventhub::Envelope<UploadedV1>| async move {
            if env.event().storage_key.as_str().starts_with("archive/") {
                return Err(HandlerError::reject("archive bucket is read-only"));
            }
            Err(HandlerError::reject("thumbnail service answered 500"))
        });
    for key in ["a", "b", "c", "archive/d", "e"] {
        let mut data = photo_uploaded(&uuid());
        data["storage_key"] = json!(format!("originals/{key}"));
        if key.starts_with("archive/") {
            data["storage_key"] = json!(key);
        }
        let resp = reqwest::Client::new()
            .post(hub.url("/v1/events"))
            .header("x-api-key", PHOTO_KEY)
            .json(&envelope("photo.uploaded", "photo", data))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
    }
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let n = hub
                .client
                .dead_letters()
                .list(&DeadLetterFilter::default())
                .await
                .map(|l| l.len())
                .unwrap_or(0);
            if n == 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("five dead letters within 20 s");

    let temp = tempfile::tempdir().unwrap();
    let out_dir = match std::env::var_os("EVENTHUB_SCREENSHOTS_DIR") {
        Some(dir) => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(dir),
        None => temp.path().to_path_buf(),
    };
    let base = format!("http://{}", hub.addr);
    let dir = out_dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(node)
            .arg(js_dir().join("screenshot-dashboard.js"))
            .arg(&base)
            .arg(OPS_KEY)
            .arg(&dir)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "screenshot-dashboard.js failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(seen["written"].as_array().unwrap().len(), 3, "{seen}");
    for name in [
        "dashboard-overview.png",
        "dashboard-dead-letters.png",
        "dashboard-dead-letter.png",
    ] {
        let bytes = std::fs::read(out_dir.join(name)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{name}: a PNG of a rendered page"
        );
    }
    consumer.shutdown().await;
}
