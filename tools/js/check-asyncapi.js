// Parses and validates an AsyncAPI document with @asyncapi/parser (its JSON Schema of the spec
// plus its Spectral rules) and prints, as one JSON line on stdout: the diagnostics by severity
// and what the parser understood (channels with their address, messages, operations).
// Exit 0 when there is no error-level diagnostic, 1 otherwise, 2 when it cannot run.
// Usage: node check-asyncapi.js asyncapi.json
"use strict";
const fs = require("fs");
const { Parser, DiagnosticSeverity } = require("@asyncapi/parser");

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error("usage: node check-asyncapi.js FILE");
    process.exit(2);
  }
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(fs.readFileSync(file, "utf8"), {
    source: file,
  });
  const shown = (d) => ({
    code: String(d.code),
    message: d.message,
    path: (d.path || []).join("/"),
  });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).map(shown);
  const warnings = diagnostics.filter((d) => d.severity !== DiagnosticSeverity.Error).map(shown);
  const summary = { errors, warnings };
  if (document) {
    summary.version = document.version();
    summary.channels = document.channels().all().map((c) => ({
      id: c.id(),
      address: c.address(),
      messages: c.messages().all().map((m) => ({
        id: m.id(),
        name: m.name(),
        headers: m.hasHeaders() ? Object.keys(m.headers().properties() || {}) : [],
        payload: m.hasPayload() ? Object.keys(m.payload().properties() || {}) : [],
        examples: m.examples().all().length,
      })),
    }));
    summary.operations = document.operations().all().map((o) => ({
      id: o.id(),
      action: o.action(),
      channels: o.channels().all().map((c) => c.address()),
      nats: o.bindings().has("nats"),
    }));
    summary.servers = document.servers().all().map((s) => ({ host: s.host(), protocol: s.protocol() }));
  }
  process.stdout.write(JSON.stringify(summary) + "\n");
  process.exit(errors.length === 0 && document ? 0 : 1);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(2);
});
