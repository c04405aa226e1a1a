//! What the CLI test files share: one run of the `eventhub` binary and its assertions.
// Each test file uses the part it needs.
#![allow(dead_code)]

use serde_json::Value;

/// What one run of the binary printed.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// The run's stdout as one JSON document.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Exit 0, or fail showing what it printed.
    #[track_caller]
    pub(crate) fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stderr: {}\nstdout: {}",
            self.stderr, self.stdout
        );
        self
    }

    /// Exit `code` with `says` on stderr.
    #[track_caller]
    pub(crate) fn fails(self, code: i32, says: &str) -> Self {
        assert_eq!(
            self.code, code,
            "stderr: {}\nstdout: {}",
            self.stderr, self.stdout
        );
        assert!(
            self.stderr.contains(says),
            "stderr should say {says:?}:\n{}",
            self.stderr
        );
        self
    }
}
