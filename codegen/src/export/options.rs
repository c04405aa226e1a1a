//! What an export is asked for (formats, options) and what it produces (files).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde_json::Value;

/// One exported artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Where it goes, relative to the output directory (`/`-separated, no `..`).
    pub path: PathBuf,
    /// Its content (UTF-8 text).
    pub content: String,
}

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Format {
    /// TypeScript types: an interface per event version, a union per family, subjects, the
    /// catalog and the envelope headers.
    TypeScript,
    /// An AsyncAPI 3.0 document: a channel per subject, a message per event version, send and
    /// receive operations with NATS bindings.
    AsyncApi,
    /// The protobuf (proto3) messages of every event version.
    Proto,
    /// The self-contained JSON Schema of every event version, and an index.
    JsonSchema,
    /// One static HTML page describing the catalog.
    Html,
}

impl Format {
    /// Every format, in the order `all` exports them.
    pub const ALL: [Format; 5] = [
        Format::TypeScript,
        Format::AsyncApi,
        Format::Proto,
        Format::JsonSchema,
        Format::Html,
    ];

    /// The format's name on the command line, and its directory when several are exported.
    pub fn name(self) -> &'static str {
        match self {
            Format::TypeScript => "typescript",
            Format::AsyncApi => "asyncapi",
            Format::Proto => "proto",
            Format::JsonSchema => "jsonschema",
            Format::Html => "html",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
        write!(
            f,
            "unknown export format `{}`; expected one of {}",
            self.0,
            names.join(", ")
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// A server of the AsyncAPI document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Its name in the document (`production`); letters, digits, `_` and `-`.
    pub name: String,
    /// `host:port`, without credentials.
    pub host: String,
    /// What it is.
    pub description: String,
}

/// What one service publishes and consumes: the hook for the declaration of services. Each
/// entry is an event type (`user.created`, every version), one version (`user.created@v2`), or
/// a NATS subject pattern (`events.photo.>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRole {
    /// The service's name (`auth`).
    pub service: String,
    /// The events it publishes.
    pub publishes: Vec<String>,
    /// The events it consumes.
    pub consumes: Vec<String>,
}

/// Settings of an export. Plain data: build with `..Default::default()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The document title (AsyncAPI `info.title`, the HTML page's title).
    pub title: String,
    /// The catalog's version label (AsyncAPI `info.version`).
    pub version: String,
    /// The JSON Schema of the headers eventhub writes on every event
    /// (`eventhub::metadata::envelope_headers_schema()`, shipped as
    /// `sdk/metadata/envelope-headers.schema.json`). It types the headers in TypeScript and
    /// AsyncAPI and is exported with the JSON Schemas. Without it, headers are described as
    /// what they are on the wire: string values by name.
    pub envelope_headers: Option<Value>,
    /// The servers of the AsyncAPI document. Default: one placeholder, `localhost:4222`.
    pub servers: Vec<Server>,
    /// Example payloads by event type and version (see [`load_examples`](super::load_examples)), shown on the HTML
    /// page and in the AsyncAPI messages, after the `examples` of the schema itself.
    pub examples: BTreeMap<(String, u32), Vec<Value>>,
    /// Which services publish and consume each event. `None`: not declared (the HTML page says
    /// so); `Some` renders them on the HTML page and in the AsyncAPI channels.
    pub services: Option<Vec<ServiceRole>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            title: "eventhub events".into(),
            version: "0.0.0".into(),
            envelope_headers: None,
            servers: vec![Server {
                name: "local".into(),
                host: "localhost:4222".into(),
                description: "Placeholder: a local nats-server with JetStream.".into(),
            }],
            examples: BTreeMap::new(),
            services: None,
        }
    }
}

pub(super) fn file(path: &str, content: String) -> File {
    File {
        path: PathBuf::from(path),
        content,
    }
}
