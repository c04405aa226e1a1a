//! What the CLI test files share: the `eventhub` binary (an `assert_cmd` command without the
//! connection and catalog variables of the shell running the tests) and one run's output with
//! its assertions.
// Each test file uses the part it needs.
#![allow(dead_code)]

use assert_cmd::assert::Assert;
use predicates::str::contains;
use serde_json::Value;

/// Variables the binary reads that a developer's shell may set: each test sets what it needs.
const INHERITED: &[&str] = &[
    "NATS_URL",
    "NATS_USER",
    "NATS_PASSWORD",
    "NATS_TOKEN",
    "NATS_CREDS",
    "NATS_NKEY_SEED",
    "NATS_CA",
    "NATS_CERT",
    "NATS_KEY",
    "EVENTHUB_SCHEMAS",
    "EVENTHUB_SCHEMAS_DIR",
];

/// The binary as a `std` command (for a child a test drives while it runs).
pub(crate) fn std_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_eventhub"));
    for var in INHERITED {
        cmd.env_remove(var);
    }
    cmd
}

/// The binary, to run to completion with [`Run::of`].
pub(crate) fn eventhub() -> assert_cmd::Command {
    assert_cmd::Command::from_std(std_command())
}

/// What one run of the binary printed.
pub(crate) struct Run {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    assert: Assert,
}

impl Run {
    /// Runs `cmd` to completion.
    pub(crate) fn of(cmd: &mut assert_cmd::Command) -> Self {
        let assert = cmd.assert();
        let out = assert.get_output();
        Self {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            assert,
        }
    }

    /// The run's stdout as one JSON document.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Exit 0, or fail showing what it printed.
    #[track_caller]
    pub(crate) fn ok(self) -> Self {
        Self {
            assert: self.assert.success(),
            ..self
        }
    }

    /// Exit `code` with `says` on stderr.
    #[track_caller]
    pub(crate) fn fails(self, code: i32, says: &str) -> Self {
        Self {
            assert: self.assert.code(code).stderr(contains(says)),
            ..self
        }
    }
}
