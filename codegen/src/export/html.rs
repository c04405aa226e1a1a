//! HTML: `index.html`, one static page, no external assets (inline CSS and JS only).
//!
//! Events are grouped by domain; each version shows its subject, stream, schema id, fields
//! (path, type, required, description, constraints, `x-sensitive`), examples, publishers and
//! consumers when services are declared, and its full schema. A filter box narrows the list.
//!
//! Everything that comes from the schemas (descriptions, property names, enum values, examples)
//! is untrusted: it is HTML-escaped wherever it lands, and the page's Content-Security-Policy
//! allows only its own inline style and script (by hash), so markup that slipped through could
//! still not run.

use std::fmt::Write;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::fields::{Field, fields};
use super::model::{Ev, View};
use super::options::Options;

const STYLE: &str = r#"
:root { color-scheme: light dark; --muted: #6b7280; --line: #d1d5db; --accent: #2563eb; --warn: #b45309; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; display: grid; grid-template-columns: 15rem 1fr; }
header { grid-column: 1 / -1; padding: 1rem 1.5rem; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 .25rem; font-size: 1.4rem; }
header p { margin: 0 0 .5rem; color: var(--muted); }
#filter { width: 100%; max-width: 30rem; padding: .4rem .6rem; font: inherit; }
nav { padding: 1rem 1.5rem; border-right: 1px solid var(--line); }
nav ul { list-style: none; margin: 0; padding: 0; }
nav a { color: var(--accent); text-decoration: none; }
main { padding: 1rem 1.5rem; min-width: 0; }
section.domain > h2 { border-bottom: 2px solid var(--line); padding-bottom: .2rem; }
article.event { border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; margin: 0 0 1rem; }
article.event h3 { margin: 0 0 .4rem; }
.version { font-size: .8em; background: var(--accent); color: #fff; border-radius: 4px; padding: 0 .4em; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: .5rem 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-size: .9em; }
th, td { text-align: left; vertical-align: top; border-top: 1px solid var(--line); padding: .25rem .5rem; }
td.path code { white-space: nowrap; }
.sensitive { color: var(--warn); font-weight: 600; font-size: .8em; margin-left: .3em; }
.undeclared { color: var(--muted); }
pre { overflow: auto; background: rgba(127,127,127,.12); padding: .5rem; border-radius: 4px; }
ul.constraints { margin: 0; padding-left: 1rem; }
"#;

const SCRIPT: &str = r#"
"use strict";
(function () {
  var input = document.getElementById("filter");
  var events = Array.prototype.slice.call(document.querySelectorAll("article.event"));
  var domains = Array.prototype.slice.call(document.querySelectorAll("section.domain"));
  function apply() {
    var q = input.value.trim().toLowerCase();
    events.forEach(function (e) {
      e.hidden = q !== "" && e.getAttribute("data-search").indexOf(q) < 0;
    });
    domains.forEach(function (d) {
      d.hidden = d.querySelector("article.event:not([hidden])") === null;
    });
  }
  input.addEventListener("input", apply);
  apply();
})();
"#;

pub(super) fn render(view: &View<'_>, options: &Options) -> String {
    let mut out = String::new();
    let csp = format!(
        "default-src 'none'; style-src '{}'; script-src '{}'; img-src data:; base-uri 'none'; \
         form-action 'none'",
        hash(STYLE),
        hash(SCRIPT)
    );
    let domains = view.domains();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"eventhub schemas export\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(&csp),
        esc(&options.title)
    );
    let _ = write!(
        out,
        "<header>\n<h1>{}</h1>\n<p>{} event version(s) in {} domain(s), stored in {} stream(s). \
         Subjects are <code>events.&lt;type&gt;.v&lt;N&gt;</code>; payloads are JSON with \
         CloudEvents headers.</p>\n\
         <input id=\"filter\" type=\"search\" placeholder=\"Filter by type, subject, stream or field\" \
         aria-label=\"Filter events\">\n</header>\n",
        esc(&options.title),
        view.events.len(),
        domains.len(),
        view.streams.len()
    );

    out.push_str("<nav>\n<ul>\n");
    for (domain, events) in &domains {
        let _ = writeln!(
            out,
            "<li><a href=\"#{}\">{}</a> ({})</li>",
            esc(&domain_id(domain)),
            esc(domain),
            events.len()
        );
    }
    out.push_str("<li><a href=\"#streams\">streams</a></li>\n");
    if options.services.is_some() {
        out.push_str("<li><a href=\"#services\">services</a></li>\n");
    }
    out.push_str("</ul>\n</nav>\n<main>\n");

    for (domain, events) in &domains {
        let _ = writeln!(
            out,
            "<section class=\"domain\" id=\"{}\">\n<h2>{}</h2>",
            esc(&domain_id(domain)),
            esc(domain)
        );
        for e in events {
            event(&mut out, e, view, options);
        }
        out.push_str("</section>\n");
    }

    streams(&mut out, view);
    if let Some(services) = &options.services {
        out.push_str(
            "<section id=\"services\">\n<h2>Services</h2>\n<table>\n<thead><tr><th>Service</th>\
             <th>Publishes</th><th>Consumes</th></tr></thead>\n<tbody>\n",
        );
        for s in services {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.service),
                code_list(&s.publishes),
                code_list(&s.consumes)
            );
        }
        out.push_str("</tbody>\n</table>\n</section>\n");
    }
    let _ = write!(
        out,
        "</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    );
    out
}

fn event(out: &mut String, e: &Ev<'_>, view: &View<'_>, options: &Options) {
    let rows = fields(&e.root, &view.defs);
    let mut search = format!(
        "{} v{} {} {} {}",
        e.event_type(),
        e.version(),
        e.subject,
        e.stream(),
        e.name
    );
    for f in &rows {
        search.push(' ');
        search.push_str(&f.path);
    }
    let _ = writeln!(
        out,
        "<article class=\"event\" id=\"{}\" data-event-type=\"{}\" data-version=\"{}\" data-search=\"{}\">",
        esc(&format!("{}@v{}", e.event_type(), e.version())),
        esc(e.event_type()),
        e.version(),
        esc(&search.to_lowercase())
    );
    let _ = writeln!(
        out,
        "<h3><code>{}</code> <span class=\"version\">v{}</span></h3>",
        esc(e.event_type()),
        e.version()
    );
    if !e.description().is_empty() {
        let _ = writeln!(out, "<p class=\"description\">{}</p>", esc(e.description()));
    }
    let _ = writeln!(
        out,
        "<dl class=\"meta\">\n<dt>Subject</dt><dd><code class=\"subject\">{}</code></dd>\n\
         <dt>Stream</dt><dd class=\"stream\">{}</dd>\n<dt>Schema id</dt><dd><code>{}</code></dd>\n\
         <dt>Types</dt><dd>TypeScript and protobuf <code>{}</code>, union <code>{}</code></dd>\n\
         <dt>Source</dt><dd><code>{}</code></dd>\n</dl>",
        esc(&e.subject),
        esc(e.stream()),
        esc(e.schema_id()),
        esc(&e.name),
        esc(&e.family),
        esc(&e.schema.file.display().to_string())
    );

    // Hook: which services publish and consume this event, from `Options::services` (the
    // declaration of services). Not declared: the page says so rather than show nothing.
    out.push_str("<!-- eventhub:services -->\n");
    match &options.services {
        Some(_) => {
            let _ = writeln!(
                out,
                "<dl class=\"meta services\">\n<dt>Published by</dt><dd class=\"publishers\">{}</dd>\n\
                 <dt>Consumed by</dt><dd class=\"consumers\">{}</dd>\n</dl>",
                names(&e.publishers),
                names(&e.consumers)
            );
        }
        None => out.push_str(
            "<p class=\"services undeclared\">Publishers and consumers: not declared.</p>\n",
        ),
    }

    field_table(out, &rows);

    for (i, example) in e.examples.iter().enumerate() {
        let _ = writeln!(
            out,
            "<details class=\"example\"{}><summary>Example {}</summary>\n<pre>{}</pre>\n</details>",
            if i == 0 { " open" } else { "" },
            i + 1,
            esc(&serde_json::to_string_pretty(example).expect("values serialize"))
        );
    }
    let _ = writeln!(
        out,
        "<details class=\"schema\"><summary>JSON Schema</summary>\n<pre>{}</pre>\n</details>\n</article>",
        esc(&serde_json::to_string_pretty(&e.bundled).expect("values serialize"))
    );
}

fn field_table(out: &mut String, rows: &[Field]) {
    if rows.is_empty() {
        out.push_str("<p class=\"undeclared\">No fields.</p>\n");
        return;
    }
    out.push_str(
        "<table class=\"fields\">\n<thead><tr><th>Field</th><th>Type</th><th>Required</th>\
         <th>Description</th><th>Constraints</th></tr></thead>\n<tbody>\n",
    );
    for f in rows {
        let sensitive = if f.sensitive {
            "<span class=\"sensitive\" title=\"x-sensitive: encrypted on the wire\">sensitive</span>"
        } else {
            ""
        };
        let constraints = if f.constraints.is_empty() {
            String::new()
        } else {
            let items: Vec<String> = f
                .constraints
                .iter()
                .map(|c| format!("<li>{}</li>", esc(c)))
                .collect();
            format!("<ul class=\"constraints\">{}</ul>", items.concat())
        };
        let _ = writeln!(
            out,
            "<tr data-field=\"{}\"><td class=\"path\"><code>{}</code>{sensitive}</td><td><code>{}</code></td>\
             <td>{}</td><td>{}</td><td>{constraints}</td></tr>",
            esc(&f.path),
            esc(&f.path),
            esc(&f.ty),
            if f.required { "yes" } else { "no" },
            esc(&f.description)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn streams(out: &mut String, view: &View<'_>) {
    out.push_str(
        "<section id=\"streams\">\n<h2>Streams</h2>\n<table>\n<thead><tr><th>Stream</th>\
         <th>Subjects</th><th>Description</th></tr></thead>\n<tbody>\n",
    );
    for s in &view.streams {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            code_list(&s.subjects),
            esc(s.description.as_deref().unwrap_or_default())
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        "<span class=\"undeclared\">none declared</span>".into()
    } else {
        list.iter().map(|s| esc(s)).collect::<Vec<_>>().join(", ")
    }
}

fn code_list(list: &[String]) -> String {
    list.iter()
        .map(|s| format!("<code>{}</code>", esc(s)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn domain_id(domain: &str) -> String {
    format!("domain-{domain}")
}

/// `'sha256-…'` of an inline script or style, for the Content-Security-Policy.
fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Escapes text for HTML element content and quoted attribute values (the gateway's dashboard
/// uses it too).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn inline_script_and_style_hold_no_closing_tag() {
        assert!(!SCRIPT.contains("</"));
        assert!(!STYLE.contains("</"));
    }
}
