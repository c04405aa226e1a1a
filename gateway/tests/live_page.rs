//! `/live.html` in headless Chromium (tools/js/check-live.js): the page shows `photo.*` events
//! published through the SDK, the gateway restarts under it (the connection is cut while
//! events keep being stored), and the page resumes with every event once.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use eventhub_gateway::Gateway;
use serde_json::Value;
use support::*;

/// The page's driver: commands on stdin, one JSON line per answer on stdout.
struct Page {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Page {
    fn answer(&mut self) -> Value {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("read the driver");
        if line.trim().is_empty() {
            let status = self.child.wait().expect("the driver exits");
            let mut err = String::new();
            std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err).ok();
            panic!("check-live.js stopped ({status}):\n{err}");
        }
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    fn ask(&mut self, command: &str) -> Value {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        self.answer()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn publish(hub: &Hub, n: usize) -> Vec<u64> {
    let info = eventhub_catalog::CATALOG
        .iter()
        .find(|e| e.event_type == "photo.uploaded")
        .unwrap();
    let mut seqs = Vec::new();
    for _ in 0..n {
        let receipt = hub
            .client
            .publisher()
            .publish_json(info, &photo_uploaded(&uuid()), Default::default())
            .await
            .unwrap();
        seqs.push(receipt.sequence);
    }
    seqs
}

#[tokio::test]
async fn the_live_page_shows_events_and_resumes_after_the_gateway_restarts() {
    let node = require_js(&["playwright-core"]);
    assert!(
        std::path::Path::new("/usr/bin/chromium").is_file(),
        "Debian's chromium is not installed: run `{INSTALL}` (as root), or `apt-get update && \
         apt-get install -y chromium`"
    );
    let mut hub = start().await;
    let base = format!("http://{}", hub.addr);
    let token = jwt("photo", None, JWT_SECRET);
    let mut page = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(node)
            .arg(js_dir().join("check-live.js"))
            .arg(&base)
            .arg(&token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run node");
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut page = Page { child, out };
        assert_eq!(page.answer()["ready"], true);
        page
    })
    .await
    .unwrap();

    let mut want = publish(&hub, 3).await;
    let (seen, mut page) = tokio::task::spawn_blocking(move || (page.ask("wait 3"), page))
        .await
        .unwrap();
    assert_eq!(seen["status"], "live", "{seen}");

    // Cut: the gateway stops (its sockets close), events are stored meanwhile, then a new
    // gateway listens on the same address.
    hub.gateway.take().unwrap().shutdown().await.unwrap();
    let (closed, mut page) = tokio::task::spawn_blocking(move || (page.ask("closed"), page))
        .await
        .unwrap();
    assert!(
        closed["status"]
            .as_str()
            .unwrap()
            .starts_with("reconnecting"),
        "{closed}"
    );
    want.extend(publish(&hub, 4).await);
    let gateway = Gateway::start(config(&hub.server.client_url()), hub.addr)
        .await
        .expect("a new gateway on the same address");
    want.extend(publish(&hub, 2).await);

    let n = want.len();
    let (seen, _page) = tokio::task::spawn_blocking(move || (page.ask(&format!("wait {n}")), page))
        .await
        .unwrap();
    let shown: Vec<u64> = seen["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["stream"], "PHOTOS");
            assert_eq!(e["type"], "photo.uploaded");
            e["sequence"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(shown, want, "every event once, in order: {seen}");
    assert_eq!(seen["status"], "live", "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    gateway.shutdown().await.unwrap();
}
