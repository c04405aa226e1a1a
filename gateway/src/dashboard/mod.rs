//! The operators' dashboard, server-rendered HTML (no script, no CDN):
//!
//! - `/dashboard`: streams and durable consumers (pending, ack pending, redelivered),
//!   refreshed every 5 s, and the event flows of the declaration of services.
//! - `/dashboard/dlq`: dead letters, filtered by consumer, type, reason and time; one entry
//!   with its headers and payload (escaped); replay and purge it. Failure groups (same
//!   consumer, event type, reason and first line of the error), counted, and replay or purge
//!   of a group or of everything a filter shows, in the background with its progress on
//!   `/dashboard/jobs/{id}`.
//!
//! Sign-in takes an operator's API key (an operator of services.json) and sets a session
//! cookie (`HttpOnly`, `SameSite=Strict`, 8 h). Every action is a `POST` form carrying the
//! session's CSRF token, checked against the session: a page on another origin can neither
//! send the cookie (`SameSite`) nor know the token.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use eventhub::Client;
use eventhub::dlq::{DeadLetter, DeadLetterFilter};
use futures::TryStreamExt;
use serde::Deserialize;

use crate::auth::{API_KEY_HEADER, Role};
use crate::state::Shared;

use self::state::{COOKIE, Job, SESSION_TTL, Session, random_token};

pub(crate) mod state;

/// Escapes text for HTML element content and attribute values (the catalog export's escaper).
pub fn escape(text: &str) -> String {
    eventhub_codegen::export::html_escape(text)
}

/// Percent-encodes a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/dashboard", get(overview))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/dlq", get(dlq_list))
        .route("/dashboard/dlq/{id}", get(dlq_entry))
        .route("/dashboard/dlq/{id}/replay", post(dlq_replay))
        .route("/dashboard/dlq/{id}/purge", post(dlq_purge))
        .route("/dashboard/dlq/group", post(group_action))
        .route("/dashboard/jobs/{id}", get(job_page))
}

fn page(title: &str, refresh: Option<u32>, body: &str, session: Option<&Session>) -> Response {
    let refresh = refresh
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    let nav = match session {
        Some(s) => format!(
            "<nav><a href=\"/dashboard\">Overview</a> · <a href=\"/dashboard/dlq\">Dead letters</a> \
             <form method=\"post\" action=\"/dashboard/logout\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\">Sign out {}</button></form></nav>",
            escape(&s.csrf),
            escape(&s.operator)
        ),
        None => String::new(),
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <title>{title} · eventhub</title><style>{STYLE}</style></head><body>\
         <header><h1>eventhub · {title}</h1>{nav}</header><main>{body}</main></body></html>",
        title = escape(title)
    );
    let mut response = Html(html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}\
th{background:#f3f3f3}.num{text-align:right}.warn{color:#a40}.ok{color:#070}pre{background:#f6f6f6;padding:.6rem;overflow:auto}\
.inline{display:inline}nav{margin:.5rem 0}.flash{background:#eef7ee;border:1px solid #9c9;padding:.5rem}";

/// The signed-in operator's session, or a redirect to sign in.
// The error is the handler's own answer, returned at once: boxing it buys nothing.
#[allow(clippy::result_large_err)]
fn require(state: &Shared, headers: &HeaderMap) -> Result<(String, Session), Response> {
    state
        .sessions
        .get(headers)
        .ok_or_else(|| Redirect::to("/dashboard/login").into_response())
}

/// A POST must carry the session's token.
#[allow(clippy::result_large_err)]
fn require_csrf(
    state: &Shared,
    headers: &HeaderMap,
    token: &str,
) -> Result<(String, Session), Response> {
    let (id, session) = require(state, headers)?;
    if token.is_empty() || !constant_time_eq(token.as_bytes(), session.csrf.as_bytes()) {
        return Err((StatusCode::FORBIDDEN, "missing or wrong CSRF token").into_response());
    }
    Ok((id, session))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn login_page() -> Response {
    page(
        "sign in",
        None,
        "<form method=\"post\" action=\"/dashboard/login\">\
         <label>Operator API key <input type=\"password\" name=\"key\" autocomplete=\"off\" autofocus></label> \
         <button type=\"submit\">Sign in</button></form>",
        None,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
}

async fn login(State(state): State<Shared>, Form(form): Form<LoginForm>) -> Response {
    let mut headers = HeaderMap::new();
    let caller = HeaderValue::from_str(form.key.trim())
        .ok()
        .and_then(|v| {
            headers.insert(API_KEY_HEADER, v);
            state.auth.authenticate(&headers, None).ok()
        })
        .filter(|c| c.role == Role::Operator);
    let Some(caller) = caller else {
        tracing::warn!("dashboard sign-in refused");
        let mut r = page(
            "sign in",
            None,
            "<p class=\"warn\">That is not an operator's API key.</p>\
             <p><a href=\"/dashboard/login\">Try again</a></p>",
            None,
        );
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    let (id, _) = state.sessions.create(&caller.name);
    tracing::info!(operator = caller.name, "dashboard sign-in");
    let mut r = Redirect::to("/dashboard").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{COOKIE}={id}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}",
            SESSION_TTL.as_secs()
        ))
        .expect("a cookie of hex digits"),
    );
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    match require_csrf(&state, &headers, &form.csrf) {
        Ok((id, _)) => {
            state.sessions.remove(&id);
            let mut r = Redirect::to("/dashboard/login").into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_static("eventhub_session=; Path=/dashboard; Max-Age=0"),
            );
            r
        }
        Err(r) => r,
    }
}

/// The connection the dashboard reads and acts with.
fn operator_client(state: &Shared) -> &Client {
    state.operator.as_ref().unwrap_or(&state.client)
}

async fn overview(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let (_, session) = match require(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let client = operator_client(&state);
    let mut body = String::new();
    body.push_str("<h2>Streams</h2>");
    let streams: Result<Vec<_>, _> = client.jetstream().streams().try_collect().await;
    match streams {
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"warn\">Cannot list streams: {}</p>",
                escape(&e.to_string())
            );
        }
        Ok(mut streams) => {
            streams.sort_by(|a, b| a.config.name.cmp(&b.config.name));
            body.push_str(
                "<table id=\"streams\"><tr><th>stream</th><th>messages</th><th>bytes</th>\
                 <th>first seq</th><th>last seq</th><th>consumers</th></tr>",
            );
            for s in &streams {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                     <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                    escape(&s.config.name),
                    s.state.messages,
                    s.state.bytes,
                    s.state.first_sequence,
                    s.state.last_sequence,
                    s.state.consumer_count
                );
            }
            body.push_str("</table><h2>Durable consumers</h2>");
            body.push_str(
                "<table id=\"consumers\"><tr><th>stream</th><th>consumer</th><th>pending</th>\
                 <th>ack pending</th><th>redelivered</th><th>waiting</th></tr>",
            );
            for s in &streams {
                let Ok(stream) = client.jetstream().get_stream(&s.config.name).await else {
                    continue;
                };
                let consumers: Vec<_> = stream.consumers().try_collect().await.unwrap_or_default();
                for c in consumers.iter().filter(|c| c.config.durable_name.is_some()) {
                    let lag = c.num_pending + c.num_ack_pending as u64;
                    let _ = write!(
                        body,
                        "<tr><td>{}</td><td>{}</td><td class=\"num{}\">{}</td><td class=\"num\">{}</td>\
                         <td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                        escape(&s.config.name),
                        escape(&c.name),
                        if lag > 1000 { " warn" } else { "" },
                        c.num_pending,
                        c.num_ack_pending,
                        c.num_redelivered,
                        c.num_waiting
                    );
                }
            }
            body.push_str("</table>");
        }
    }
    body.push_str(
        "<h2>Event flows (services.json)</h2><table id=\"flows\"><tr><th>event type</th>\
         <th>published by</th><th>consumed by (durable)</th></tr>",
    );
    let mut types: Vec<&str> = eventhub_catalog::CATALOG
        .iter()
        .map(|e| e.event_type)
        .collect();
    types.dedup();
    for t in types {
        let publisher = state
            .services
            .publisher_of(t)
            .map_or("—".to_string(), |s| s.name.clone());
        let consumers: Vec<String> = state
            .services
            .services
            .iter()
            .flat_map(|s| {
                s.consumes
                    .iter()
                    .filter(|c| c.event_type == t)
                    .map(move |c| format!("{} ({})", s.name, c.durable))
            })
            .collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(t),
            escape(&publisher),
            escape(&consumers.join(", "))
        );
    }
    body.push_str("</table>");
    page("overview", Some(5), &body, Some(&session))
}

#[derive(Debug, Default, Deserialize)]
struct DlqQuery {
    consumer: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    reason: Option<String>,
    since: Option<String>,
    /// A failure group's error (its first line, as grouped).
    error: Option<String>,
    done: Option<String>,
}

/// What a failure group has in common: consumer, event, reason and error.
type GroupKey = (String, String, String, String);

/// The failure group of a dead letter.
fn group_key(e: &DeadLetter) -> GroupKey {
    (
        e.consumer.clone(),
        event_key(e),
        e.reason.as_str().to_string(),
        error_key(&e.error),
    )
}

/// The event type (or, for an event outside the catalog, its subject).
fn event_key(e: &DeadLetter) -> String {
    e.event_type
        .as_ref()
        .map_or_else(|| e.subject.clone(), |(t, _)| t.clone())
}

/// The first line of an error, at most 160 characters: what makes failures "the same".
fn error_key(error: &str) -> String {
    error
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(160)
        .collect()
}

/// The dead letters a query selects (the newest 500 the filter matches), or why the query is
/// not valid.
async fn select(state: &Shared, q: &DlqQuery) -> Result<Vec<DeadLetter>, String> {
    let mut filter = DeadLetterFilter::default().limit(500);
    // The filter becomes a subject: only subject-safe tokens go in.
    let token_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    if let Some(c) = non_empty(&q.consumer) {
        if !token_ok(c) || c.contains('.') {
            return Err("Not a consumer name.".into());
        }
        filter = filter.consumer(c);
    }
    let event_type = non_empty(&q.event_type);
    if let Some(t) = event_type {
        if !token_ok(t) {
            return Err("Not an event type.".into());
        }
        // A catalog type narrows the listing at the store; a subject (an event outside the
        // catalog, as failure groups name it) is matched below.
        if eventhub_catalog::CATALOG.iter().any(|e| e.event_type == t) {
            filter = filter.event_type(t);
        }
    }
    match non_empty(&q.since).map(DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => filter = filter.since(t.with_timezone(&Utc)),
        Some(Err(_)) => return Err("`since` is not an RFC 3339 time.".into()),
        None => {}
    }
    let entries = operator_client(state)
        .dead_letters()
        .list(&filter)
        .await
        .map_err(|e| format!("Cannot read dead letters: {e}"))?;
    let reason = non_empty(&q.reason);
    let error = non_empty(&q.error);
    Ok(entries
        .into_iter()
        .filter(|e| event_type.is_none_or(|t| event_key(e) == t))
        .filter(|e| reason.is_none_or(|r| e.reason.as_str() == r))
        .filter(|e| error.is_none_or(|x| error_key(&e.error) == x))
        .collect())
}

/// The hidden fields that carry a selection into a group action.
fn selection_fields(consumer: &str, event: &str, reason: &str, since: &str, error: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"consumer\" value=\"{}\">\
         <input type=\"hidden\" name=\"type\" value=\"{}\">\
         <input type=\"hidden\" name=\"reason\" value=\"{}\">\
         <input type=\"hidden\" name=\"since\" value=\"{}\">\
         <input type=\"hidden\" name=\"error\" value=\"{}\">",
        escape(consumer),
        escape(event),
        escape(reason),
        escape(since),
        escape(error)
    )
}

/// Replay and purge buttons for a selection.
fn group_buttons(csrf: &str, fields: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/dashboard/dlq/group\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{fields}\
         <input type=\"hidden\" name=\"action\" value=\"replay\">\
         <button type=\"submit\" class=\"replay-group\">Replay {label}</button></form> \
         <form method=\"post\" action=\"/dashboard/dlq/group\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{fields}\
         <input type=\"hidden\" name=\"action\" value=\"purge\">\
         <button type=\"submit\" class=\"purge-group\">Purge {label}</button></form>",
        csrf = escape(csrf),
    )
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

async fn dlq_list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<DlqQuery>,
) -> Response {
    let (_, session) = match require(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut body = String::new();
    if let Some(done) = non_empty(&q.done) {
        let _ = write!(body, "<p class=\"flash\" id=\"flash\">{}</p>", escape(done));
    }
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/dashboard/dlq\" id=\"filter\">\
         <label>consumer <input name=\"consumer\" value=\"{}\"></label> \
         <label>type <input name=\"type\" value=\"{}\"></label> \
         <label>reason <input name=\"reason\" value=\"{}\"></label> \
         <label>since (RFC 3339) <input name=\"since\" value=\"{}\"></label> \
         <button type=\"submit\">Filter</button></form>",
        escape(non_empty(&q.consumer).unwrap_or("")),
        escape(non_empty(&q.event_type).unwrap_or("")),
        escape(non_empty(&q.reason).unwrap_or("")),
        escape(non_empty(&q.since).unwrap_or("")),
    );
    match select(&state, &q).await {
        Err(e) => {
            let _ = write!(body, "<p class=\"warn\">{}</p>", escape(&e));
            return page("dead letters", None, &body, Some(&session));
        }
        Ok(entries) => {
            // Failure groups, largest first: the same consumer failing the same way on the
            // same event type is usually one bug, fixed once and replayed together.
            // Per group: how many, and the latest failure.
            let mut groups: HashMap<GroupKey, (usize, DateTime<Utc>)> = HashMap::new();
            for e in &entries {
                let g = groups.entry(group_key(e)).or_insert((0, e.failed_at));
                g.0 += 1;
                g.1 = g.1.max(e.failed_at);
            }
            let mut groups: Vec<_> = groups.into_iter().collect();
            groups.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(b.1.1.cmp(&a.1.1)));
            let since = non_empty(&q.since).unwrap_or("");
            if !entries.is_empty() {
                let fields = selection_fields(
                    non_empty(&q.consumer).unwrap_or(""),
                    non_empty(&q.event_type).unwrap_or(""),
                    non_empty(&q.reason).unwrap_or(""),
                    since,
                    non_empty(&q.error).unwrap_or(""),
                );
                let _ = write!(
                    body,
                    "<p id=\"selection\">{}</p>",
                    group_buttons(
                        &session.csrf,
                        &fields,
                        &format!("all {} shown", entries.len())
                    )
                );
            }
            body.push_str(
                "<h2>Failure groups</h2><table id=\"groups\"><tr><th>count</th><th>consumer</th>\
                 <th>event</th><th>reason</th><th>error</th><th>last failed</th><th></th></tr>",
            );
            for ((consumer, event, reason, error), (count, last)) in &groups {
                let fields = selection_fields(consumer, event, reason, since, error);
                let _ = write!(
                    body,
                    "<tr><td class=\"num\">{count}</td><td>{}</td><td>{}</td><td>{}</td>\
                     <td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(consumer),
                    escape(event),
                    escape(reason),
                    escape(error),
                    last.to_rfc3339(),
                    group_buttons(&session.csrf, &fields, "group"),
                );
            }
            body.push_str("</table><h2>Entries</h2>");
            let _ = write!(
                body,
                "<p>{} entr{}</p><table id=\"dead-letters\"><tr><th>id</th><th>failed at</th>\
                 <th>consumer</th><th>event</th><th>reason</th><th>deliveries</th><th>error</th></tr>",
                entries.len(),
                if entries.len() == 1 { "y" } else { "ies" }
            );
            for e in &entries {
                let event = e
                    .event_type
                    .as_ref()
                    .map_or_else(|| e.subject.clone(), |(t, v)| format!("{t} v{v}"));
                let _ = write!(
                    body,
                    "<tr><td><a href=\"/dashboard/dlq/{id}\">{id}</a></td><td>{}</td><td>{}</td>\
                     <td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                    e.failed_at.to_rfc3339(),
                    escape(&e.consumer),
                    escape(&event),
                    escape(e.reason.as_str()),
                    e.deliveries,
                    escape(&e.error.chars().take(160).collect::<String>()),
                    id = e.id,
                );
            }
            body.push_str("</table>");
        }
    }
    page("dead letters", Some(10), &body, Some(&session))
}

async fn dlq_entry(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Response {
    let (_, session) = match require(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let entry = match operator_client(&state).dead_letters().get(id).await {
        Ok(e) => e,
        Err(e) => {
            let body = format!(
                "<p class=\"warn\">Dead letter {id}: {}</p><p><a href=\"/dashboard/dlq\">All dead letters</a></p>",
                escape(&e.to_string())
            );
            let mut r = page("dead letter", None, &body, Some(&session));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
    };
    let mut body = String::new();
    let _ = write!(
        body,
        "<table id=\"entry\"><tr><th>id</th><td>{}</td></tr><tr><th>consumer</th><td>{}</td></tr>\
         <tr><th>reason</th><td>{}</td></tr><tr><th>error</th><td>{}</td></tr>\
         <tr><th>deliveries</th><td>{}</td></tr><tr><th>original</th><td>{} #{} ({})</td></tr>\
         <tr><th>failed at</th><td>{}</td></tr><tr><th>event id</th><td>{}</td></tr></table>",
        entry.id,
        escape(&entry.consumer),
        escape(entry.reason.as_str()),
        escape(&entry.error),
        entry.deliveries,
        escape(&entry.stream),
        entry.sequence,
        escape(&entry.subject),
        entry.failed_at.to_rfc3339(),
        escape(entry.event_id.as_deref().unwrap_or("—")),
    );
    body.push_str("<h2>Headers</h2><table id=\"headers\">");
    for (name, values) in entry.headers.iter() {
        for v in values {
            let _ = write!(
                body,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(name.as_ref()),
                escape(v.as_str())
            );
        }
    }
    body.push_str("</table><h2>Payload</h2>");
    let payload = match serde_json::from_slice::<serde_json::Value>(&entry.payload) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(&entry.payload).into_owned(),
    };
    let _ = write!(body, "<pre id=\"payload\">{}</pre>", escape(&payload));
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/dashboard/dlq/{id}/replay\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"replay\">Replay to {consumer}</button></form> \
         <form method=\"post\" action=\"/dashboard/dlq/{id}/purge\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"purge\">Purge</button></form>",
        id = entry.id,
        csrf = escape(&session.csrf),
        consumer = escape(&entry.consumer),
    );
    page(&format!("dead letter {id}"), None, &body, Some(&session))
}

async fn dlq_replay(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (_, session) = match require_csrf(&state, &headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let done = match operator_client(&state).dead_letters().replay(id).await {
        Ok(r) => {
            tracing::info!(
                operator = session.operator,
                id,
                stream = r.stream,
                sequence = r.sequence,
                "dead letter replayed"
            );
            format!("Replayed dead letter {id} to {} #{}.", r.stream, r.sequence)
        }
        Err(e) => format!("Dead letter {id} was not replayed: {e}"),
    };
    Redirect::to(&format!("/dashboard/dlq?done={}", encode(&done))).into_response()
}

async fn dlq_purge(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (_, session) = match require_csrf(&state, &headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let done = match operator_client(&state).dead_letters().delete(id).await {
        Ok(()) => {
            tracing::info!(operator = session.operator, id, "dead letter purged");
            format!("Purged dead letter {id}.")
        }
        Err(e) => format!("Dead letter {id} was not purged: {e}"),
    };
    Redirect::to(&format!("/dashboard/dlq?done={}", encode(&done))).into_response()
}

/// The form of a group action: a selection (as on the list page) and what to do with it.
#[derive(Debug, Deserialize)]
struct GroupForm {
    #[serde(default)]
    csrf: String,
    action: String,
    #[serde(flatten)]
    selection: DlqQuery,
}

/// Replays or purges every dead letter of a selection, in the background; the operator
/// follows its progress on `/dashboard/jobs/{id}`.
async fn group_action(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<GroupForm>,
) -> Response {
    let (_, session) = match require_csrf(&state, &headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let replay = match form.action.as_str() {
        "replay" => true,
        "purge" => false,
        _ => return (StatusCode::BAD_REQUEST, "action is replay or purge").into_response(),
    };
    let entries = match select(&state, &form.selection).await {
        Ok(e) => e,
        Err(e) => {
            return Redirect::to(&format!("/dashboard/dlq?done={}", encode(&e))).into_response();
        }
    };
    let id = random_token();
    let job = Arc::new(Job {
        replay,
        total: entries.len(),
        done: AtomicUsize::new(0),
        failed: Mutex::new(Vec::new()),
        finished: AtomicBool::new(false),
    });
    state.jobs.insert(id.clone(), job.clone());
    tracing::info!(
        operator = session.operator,
        job = id,
        replay,
        count = entries.len(),
        "dead letter group action"
    );
    let state = state.clone();
    tokio::spawn(async move {
        let dlq = operator_client(&state).dead_letters();
        for e in entries {
            let result = if replay {
                dlq.replay(e.id).await.map(|_| ())
            } else {
                dlq.delete(e.id).await
            };
            if let Err(err) = result {
                job.failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("{}: {err}", e.id));
            }
            job.done.fetch_add(1, AtomicOrdering::Release);
        }
        job.finished.store(true, AtomicOrdering::Release);
    });
    Redirect::to(&format!("/dashboard/jobs/{id}")).into_response()
}

async fn job_page(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (_, session) = match require(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(job) = state.jobs.get(&id) else {
        let mut r = page(
            "job",
            None,
            "<p class=\"warn\">No such job (jobs are kept for an hour).</p>",
            Some(&session),
        );
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let finished = job.finished.load(AtomicOrdering::Acquire);
    let done = job.done.load(AtomicOrdering::Acquire);
    let failed = job.failed.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let verb = if job.replay { "Replayed" } else { "Purged" };
    let mut body = format!(
        "<div id=\"job\" data-finished=\"{finished}\" data-done=\"{done}\" data-total=\"{total}\" \
         data-failed=\"{nfailed}\"><p><progress value=\"{done}\" max=\"{total}\"></progress></p>\
         <p id=\"progress\">{verb} {ok} of {total}{state}{fail}</p></div>",
        total = job.total,
        nfailed = failed.len(),
        ok = done - failed.len(),
        state = if finished {
            ": finished."
        } else {
            " so far…"
        },
        fail = if failed.is_empty() {
            String::new()
        } else {
            format!(" ({} failed)", failed.len())
        },
    );
    if !failed.is_empty() {
        body.push_str("<ul id=\"failures\">");
        for f in &failed {
            let _ = write!(body, "<li>{}</li>", escape(f));
        }
        body.push_str("</ul>");
    }
    body.push_str("<p><a href=\"/dashboard/dlq\">Dead letters</a></p>");
    let refresh = (!finished).then_some(1);
    page("dead letter job", refresh, &body, Some(&session))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn reads_the_session_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; eventhub_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(state::cookie(&h, COOKIE).as_deref(), Some("abc"));
    }
}
