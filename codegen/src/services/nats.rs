//! Renders a nats-server configuration from the declaration of services: the accounts, users
//! and permissions of [`Services::users`], with passwords from the environment (development)
//! or nkeys (production), and optionally the settings of the development server around them.
//!
//! ```no_run
//! # fn demo(services: &eventhub_codegen::services::Services) -> Result<(), eventhub_codegen::Error> {
//! use eventhub_codegen::services::nats::NatsConfig;
//! let text = NatsConfig::new(services).render()?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::declaration::{ACCOUNT, SYSTEM_ACCOUNT, Services, password_var};
use super::permissions::{Permissions, User};
use crate::diagnostic::{Diagnostic, Error};

/// How users prove who they are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Auth {
    /// `password: $EVENTHUB_<USER>_PASSWORD`: read from the server's environment (development).
    #[default]
    Password,
    /// `nkey: "U…"`: the public keys of the declaration (`nkeys`), plus those given here, by
    /// user (production). A user with several keys (a rotation) gets one entry per key.
    Nkey(BTreeMap<String, Vec<String>>),
}

/// What to render. Plain data: build with [`NatsConfig::new`] and the setters.
#[derive(Debug, Clone)]
pub struct NatsConfig<'a> {
    services: &'a Services,
    auth: Auth,
    server: bool,
    command: String,
}

/// The development server's settings around the accounts (`listen`, monitoring, JetStream
/// store, explicit limits).
const DEV_SERVER: &str = r#"server_name: eventhub-dev
listen: 127.0.0.1:4222
# Monitoring endpoints (/varz, /jsz, /connz ...).
http: 127.0.0.1:8222

jetstream {
  # Relative to the directory the server starts in (the repository root).
  store_dir: ".nats-data"
  max_memory_store: 256MB
  max_file_store: 4GB
}
"#;

const DEV_LIMITS: &str = r#"
# Explicit limits rather than defaults, so nothing surprises in production.
# Largest message (payload + headers); eventhub refuses bigger events before sending.
max_payload: 1MB
max_connections: 1024
# Per-connection buffer before the server cuts a slow consumer.
max_pending: 64MB
max_control_line: 4KB
write_deadline: "10s"
ping_interval: "20s"
ping_max: 3
"#;

impl<'a> NatsConfig<'a> {
    /// The full development configuration with passwords from the environment.
    pub fn new(services: &'a Services) -> Self {
        Self {
            services,
            auth: Auth::Password,
            server: true,
            command: "eventhub config nats".into(),
        }
    }

    /// Sets how users authenticate.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Renders only `accounts { … }` and `system_account`, to `include` in a production
    /// server's own configuration.
    pub fn accounts_only(mut self) -> Self {
        self.server = false;
        self
    }

    /// The command line the header names as the way to regenerate the file.
    pub fn command(mut self, command: impl Into<String>) -> Self {
        self.command = command.into();
        self
    }

    /// The configuration text. Fails when a user has no public key in [`Auth::Nkey`] mode.
    pub fn render(&self) -> Result<String, Error> {
        let users = self.services.users();
        let keys = self.keys(&users)?;
        let mut out = String::new();
        self.header(&mut out, &users);
        if self.server {
            out.push_str(DEV_SERVER);
            out.push('\n');
        }
        out.push_str("accounts {\n");
        for (account, jetstream) in [(ACCOUNT, true), (SYSTEM_ACCOUNT, false)] {
            let _ = writeln!(out, "  {account}: {{");
            if jetstream {
                out.push_str("    jetstream: enabled\n");
            }
            out.push_str("    users: [\n");
            let mut first = true;
            for user in users.iter().filter(|u| u.account == account) {
                if !first {
                    out.push('\n');
                }
                first = false;
                comment(
                    &mut out,
                    "      # ",
                    &format!("{}: {}", user.name, user.summary),
                );
                match &keys {
                    None => {
                        let credential = format!(
                            "user: {}, password: ${}",
                            quote(&user.name),
                            password_var(&user.name)
                        );
                        entry(&mut out, &credential, user.permissions.as_ref());
                    }
                    Some(keys) => {
                        for key in &keys[&user.name] {
                            entry(
                                &mut out,
                                &format!("nkey: {}", quote(key)),
                                user.permissions.as_ref(),
                            );
                        }
                    }
                }
            }
            out.push_str("    ]\n  }\n");
        }
        out.push_str("}\n");
        let _ = writeln!(out, "system_account: {SYSTEM_ACCOUNT}");
        if self.server {
            out.push_str(DEV_LIMITS);
        }
        Ok(out)
    }

    /// The public keys by user in nkey mode (`None` for passwords).
    fn keys(&self, users: &[User]) -> Result<Option<BTreeMap<String, Vec<String>>>, Error> {
        let Auth::Nkey(given) = &self.auth else {
            return Ok(None);
        };
        let mut keys = self.services.nkeys.clone();
        for (user, list) in given {
            keys.insert(user.clone(), list.clone());
        }
        let mut problems = Vec::new();
        for user in users {
            if keys.get(&user.name).is_none_or(Vec::is_empty) {
                problems.push(Diagnostic::new(
                    &self.services.file,
                    "/nkeys",
                    format!(
                        "no public nkey for user `{}`: declare it under `nkeys`, or give a keys \
                         directory holding `{}.pub` (`eventhub config nkeys --out DIR` makes \
                         them)",
                        user.name, user.name
                    ),
                ));
            }
        }
        for (user, list) in &keys {
            if !users.iter().any(|u| &u.name == user) {
                continue;
            }
            for k in list {
                if !super::parse::is_user_public_key(k) {
                    problems.push(Diagnostic::new(
                        &self.services.file,
                        "/nkeys",
                        format!("`{k}` (user `{user}`) is not a user's public nkey (`U…`, 56 characters)"),
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(Some(keys))
        } else {
            Err(Error::InvalidServices(problems))
        }
    }

    fn header(&self, out: &mut String, users: &[User]) {
        let file = self.services.file.display();
        comment(
            out,
            "# ",
            &format!(
                "nats-server configuration GENERATED from {file} (and the event catalog beside \
                 it) by `{}`. Do not edit: change the declaration and run that command again.",
                self.command
            ),
        );
        out.push_str(
            "#\n\
             # The model (docs/security.md):\n\
             #   - account EVENTS holds the event system (JetStream on). Each service is one user,\n\
             #     named like it, that may publish only the events it owns, use only the JetStream\n\
             #     API of its own durables (created with their own filter subjects), write only its\n\
             #     durables' dead letters, open only its own idempotency buckets, and subscribe only\n\
             #     to its own inbox prefix `_INBOX_<service>`, where its replies and deliveries arrive.\n\
             #     No service may create, change, delete or purge streams or consumers.\n\
             #   - operators may do everything in EVENTS (the CLI, provisioning, replaying dead\n\
             #     letters); the sweeper has its own user; SYS is the system account.\n",
        );
        match &self.auth {
            Auth::Password => {
                out.push_str(
                    "#   - no password is written here: each comes from the server's environment:\n",
                );
                let vars: Vec<String> = users.iter().map(|u| format!("${}", password_var(&u.name))).collect();
                let mut line = String::from("#    ");
                for v in vars {
                    if line.len() + v.len() > 95 {
                        let _ = writeln!(out, "{line}");
                        line = String::from("#    ");
                    }
                    line.push(' ');
                    line.push_str(&v);
                }
                let _ = writeln!(out, "{line}");
                out.push_str("#     (production: `eventhub config nats --auth nkey`).\n");
            }
            Auth::Nkey(_) => out.push_str(
                "#   - users authenticate with nkeys: each service holds its seed (NATS_NKEY_SEED);\n\
                 #     only public keys are written here.\n",
            ),
        }
        out.push('\n');
    }
}

/// One user entry: credential and, if restricted, its permissions.
fn entry(out: &mut String, credential: &str, permissions: Option<&Permissions>) {
    let Some(p) = permissions else {
        let _ = writeln!(out, "      {{ {credential} }}");
        return;
    };
    let _ = writeln!(out, "      {{ {credential}, permissions: {{");
    out.push_str("          publish: {\n");
    if p.publish_allow.is_empty() {
        // Nothing to allow: an empty allow list would allow everything.
        list(out, "deny", &[">".to_string()]);
    } else {
        list(out, "allow", &p.publish_allow);
        list(out, "deny", &p.publish_deny);
    }
    out.push_str("          }\n");
    out.push_str("          subscribe: {\n");
    list(out, "allow", &p.subscribe_allow);
    out.push_str("          }\n");
    if p.allow_responses {
        // One reply per request received, within the server's default window.
        out.push_str("          allow_responses: true\n");
    }
    out.push_str("      } }\n");
}

/// `text` as comment lines of at most ~100 characters, each starting with `prefix`; wrapped
/// lines are indented by two more spaces.
fn comment(out: &mut String, prefix: &str, text: &str) {
    let mut line = prefix.to_string();
    for word in text.split_whitespace() {
        if line.len() > prefix.len() && line.len() + 1 + word.len() > 100 {
            let _ = writeln!(out, "{}", line.trim_end());
            line = format!("{prefix}  ");
        } else if line.len() > prefix.len() && !line.ends_with("  ") {
            line.push(' ');
        }
        line.push_str(word);
    }
    let _ = writeln!(out, "{line}");
}

fn list(out: &mut String, key: &str, items: &[String]) {
    match items {
        [] => return,
        [one] => {
            let _ = writeln!(out, "            {key}: [{}]", quote(one));
            return;
        }
        _ => {}
    }
    let _ = writeln!(out, "            {key}: [");
    for item in items {
        let _ = writeln!(out, "              {}", quote(item));
    }
    out.push_str("            ]\n");
}

/// A quoted string for the configuration (`$` inside quotes is not a variable).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_dollar_subjects_literal() {
        assert_eq!(quote("$JS.API.STREAM.NAMES"), "\"$JS.API.STREAM.NAMES\"");
    }
}
