//! The operators' dashboard in headless Chromium against a real nats-server: sign in, see a
//! dead letter (its hostile payload shown as text), click replay, and the consumer handles it.
//! A failure group replayed from the page, with its progress followed to the end. Also:
//! actions need the session's CSRF token, pages need a session.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eventhub::consume::HandlerError;
use eventhub::dlq::DeadLetterFilter;
use eventhub::{Client, ConnectOptions, ConsumerOptions};
use eventhub_catalog::events::photo::UploadedV1;
use serde_json::{Value, json};
use support::*;

const HOSTILE: &str = "<script>window.__pwned=1</script><b>bold</b>";

/// Waits until the dead letters hold `n` entries.
async fn dead_letters(client: &Client, n: usize) -> Vec<eventhub::DeadLetter> {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let list = client
                .dead_letters()
                .list(&DeadLetterFilter::default())
                .await
                .unwrap_or_default();
            if list.len() == n {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} dead letters within 20 s"))
}

#[tokio::test]
async fn an_operator_replays_a_dead_letter_from_the_dashboard_in_chromium() {
    let node = require_js(&["playwright-core"]);
    assert!(
        std::path::Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is not installed: run `{INSTALL}` (as root), or `apt-get update && \
         apt-get install -y chromium`"
    );
    let hub = start().await;

    // The photo service's consumer refuses the event until "fixed".
    let photo = Client::connect(ConnectOptions::new("photo").url(hub.server.client_url()))
        .await
        .unwrap();
    let fixed = Arc::new(AtomicBool::new(false));
    let (handled_tx, mut handled) = tokio::sync::mpsc::unbounded_channel::<String>();
    let consumer = photo
        .consumer::<UploadedV1>(ConsumerOptions::default())
        .await
        .unwrap()
        .spawn({
            let fixed = fixed.clone();
            move |env: eventhub::Envelope<UploadedV1>| {
                let fixed = fixed.clone();
                let handled_tx = handled_tx.clone();
                async move {
                    if !fixed.load(Ordering::SeqCst) {
                        return Err(HandlerError::reject("storage key <i>unreadable</i>"));
                    }
                    let _ = handled_tx.send(env.meta().id.clone());
                    Ok(())
                }
            }
        });

    let mut data = photo_uploaded(&uuid());
    data["storage_key"] = json!(HOSTILE);
    let id = uuid();
    let mut body = envelope("photo.uploaded", "photo", data);
    body["id"] = json!(id);
    let resp = reqwest::Client::new()
        .post(hub.url("/v1/events"))
        .header("x-api-key", PHOTO_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let entries = dead_letters(&hub.client, 1).await;
    fixed.store(true, Ordering::SeqCst);

    let base = format!("http://{}", hub.addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(node)
            .arg(js_dir().join("check-dashboard.js"))
            .arg(&base)
            .arg(OPS_KEY)
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check-dashboard.js failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        seen["loginUrl"]
            .as_str()
            .unwrap()
            .ends_with("/dashboard/login"),
        "{seen}"
    );
    let streams: Vec<&str> = seen["overview"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert!(
        streams.contains(&"PHOTOS") && streams.contains(&"EVENTHUB_DLQ"),
        "{seen}"
    );
    assert!(
        seen["overview"]["consumers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r[1] == "photo__photo_uploaded"),
        "{seen}"
    );
    assert!(
        seen["overview"]["flows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r[0] == "photo.uploaded" && r[1] == "photo"),
        "{seen}"
    );
    let rows = seen["deadLetters"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{seen}");
    assert_eq!(rows[0][0], entries[0].id.to_string());
    assert_eq!(rows[0][2], "photo__photo_uploaded");
    assert_eq!(rows[0][4], "rejected");
    assert!(
        rows[0][6].as_str().unwrap().contains("<i>unreadable</i>"),
        "{seen}"
    );
    // The hostile payload is shown as text, never run or rendered.
    assert!(
        seen["entry"]["payload"].as_str().unwrap().contains(HOSTILE),
        "{seen}"
    );
    assert_eq!(seen["entry"]["injected"], 0);
    assert_eq!(seen["entry"]["fields"]["event id"], id.as_str());
    assert_eq!(seen["pwned"], Value::Null);
    assert!(
        seen["afterReplay"]["flash"]
            .as_str()
            .unwrap()
            .starts_with("Replayed dead letter"),
        "{seen}"
    );
    assert_eq!(
        seen["afterReplay"]["deadLetters"].as_array().unwrap().len(),
        0,
        "{seen}"
    );
    assert_eq!(seen["foreignRequests"], json!([]));
    assert_eq!(seen["pageErrors"], json!([]));

    // The consumer handled the replayed event.
    let got = tokio::time::timeout(Duration::from_secs(20), handled.recv())
        .await
        .expect("handled within 20 s")
        .unwrap();
    assert_eq!(got, id);
    dead_letters(&hub.client, 0).await;
    consumer.shutdown().await;
}

#[tokio::test]
async fn an_operator_replays_a_failure_group_from_the_dashboard_in_chromium() {
    let node = require_js(&["playwright-core"]);
    assert!(
        std::path::Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is not installed: run `{INSTALL}` (as root), or `apt-get update && \
         apt-get install -y chromium`"
    );
    let hub = start().await;
    let photo = Client::connect(ConnectOptions::new("photo").url(hub.server.client_url()))
        .await
        .unwrap();
    // Until "fixed", three events fail one way and one another: two failure groups.
    let fixed = Arc::new(AtomicBool::new(false));
    let (handled_tx, mut handled) = tokio::sync::mpsc::unbounded_channel::<String>();
    let consumer = photo
        .consumer::<UploadedV1>(ConsumerOptions::default())
        .await
        .unwrap()
        .spawn({
            let fixed = fixed.clone();
            move |env: eventhub::Envelope<UploadedV1>| {
                let fixed = fixed.clone();
                let handled_tx = handled_tx.clone();
                async move {
                    if !fixed.load(Ordering::SeqCst) {
                        let why = if env.event().storage_key.as_str() == "other" {
                            "quota exceeded"
                        } else {
                            "storage key unreadable"
                        };
                        return Err(HandlerError::reject(why));
                    }
                    let _ = handled_tx.send(env.meta().id.clone());
                    Ok(())
                }
            }
        });
    let mut group = Vec::new();
    for key in ["a", "b", "other", "c"] {
        let mut data = photo_uploaded(&uuid());
        data["storage_key"] = json!(key);
        let id = uuid();
        let mut body = envelope("photo.uploaded", "photo", data);
        body["id"] = json!(id);
        let resp = reqwest::Client::new()
            .post(hub.url("/v1/events"))
            .header("x-api-key", PHOTO_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        if key != "other" {
            group.push(id);
        }
    }
    dead_letters(&hub.client, 4).await;
    fixed.store(true, Ordering::SeqCst);

    let base = format!("http://{}", hub.addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(node)
            .arg(js_dir().join("check-dashboard.js"))
            .arg(&base)
            .arg(OPS_KEY)
            .arg("group")
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check-dashboard.js failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    // count, consumer, event, reason, error — the largest group first.
    let groups = seen["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{seen}");
    assert_eq!(groups[0][0], "3", "{seen}");
    assert_eq!(groups[0][1], "photo__photo_uploaded");
    assert_eq!(groups[0][2], "photo.uploaded");
    assert_eq!(groups[0][3], "rejected");
    assert!(
        groups[0][4]
            .as_str()
            .unwrap()
            .contains("storage key unreadable")
    );
    assert_eq!(groups[1][0], "1");
    assert!(
        seen["jobUrl"]
            .as_str()
            .unwrap()
            .contains("/dashboard/jobs/"),
        "{seen}"
    );
    assert_eq!(seen["job"]["total"], 3, "{seen}");
    assert_eq!(seen["job"]["done"], 3, "{seen}");
    assert_eq!(seen["job"]["failed"], 0, "{seen}");
    assert!(
        seen["job"]["text"]
            .as_str()
            .unwrap()
            .contains("Replayed 3 of 3"),
        "{seen}"
    );
    // The other group is still there, alone.
    let after = seen["groupsAfter"].as_array().unwrap();
    assert_eq!(after.len(), 1, "{seen}");
    assert!(after[0][4].as_str().unwrap().contains("quota exceeded"));
    assert_eq!(seen["pageErrors"], json!([]));
    assert_eq!(seen["foreignRequests"], json!([]));

    // The consumer handled exactly the group's three events.
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            tokio::time::timeout(Duration::from_secs(20), handled.recv())
                .await
                .expect("handled within 20 s")
                .unwrap(),
        );
    }
    got.sort();
    group.sort();
    assert_eq!(got, group);
    let left = dead_letters(&hub.client, 1).await;
    assert!(left[0].error.contains("quota exceeded"), "{left:?}");
    consumer.shutdown().await;
}

#[tokio::test]
async fn dashboard_actions_need_a_session_and_its_csrf_token() {
    let hub = start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // No session: pages redirect to sign-in, actions too.
    let resp = http.get(hub.url("/dashboard/dlq")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/dashboard/login");
    // A service key is not an operator's.
    let resp = http
        .post(hub.url("/dashboard/login"))
        .form(&[("key", PHOTO_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http
        .post(hub.url("/dashboard/login"))
        .form(&[("key", OPS_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();
    let page = http
        .get(hub.url("/dashboard"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // Signed in, but without the token (as a forged cross-site form would be).
    for token in ["", "0000"] {
        let resp = http
            .post(hub.url("/dashboard/dlq/1/purge"))
            .header("cookie", &session)
            .form(&[("csrf", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        let resp = http
            .post(hub.url("/dashboard/dlq/group"))
            .header("cookie", &session)
            .form(&[("csrf", token), ("action", "purge")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "a group purge needs the token too");
    }
}
