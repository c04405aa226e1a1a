//! The error body every endpoint answers with, and why the gateway could not start.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The machine-readable code of an error answer (`errorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the request body is not a well-formed event envelope (not JSON, a missing or
    /// mistyped field, a bad timestamp, id or traceparent).
    InvalidRequest,
    /// 400: `data` does not match the event's JSON Schema; `details` lists every violation.
    SchemaValidationError,
    /// 404: the catalog has no such event type.
    UnknownEventType,
    /// 404: the event type has no such version.
    UnknownVersion,
    /// 413: the body, or the encoded event, is over the limit.
    PayloadTooLarge,
    /// 401: no credential, or one the gateway does not accept.
    Unauthorized,
    /// 403: the caller may not do this (publish a type it does not own, speak for another
    /// source, follow events it may not read).
    Forbidden,
    /// 503: NATS did not store the event (not connected, no answer in time, no stream).
    Unavailable,
    /// 404: no such endpoint.
    NotFound,
    /// 500: an unexpected failure; the message says what.
    Internal,
}

/// One violation of the event's schema: `{field: "data.email", error: "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field, dotted below the body (`data.email`, `data.items.0.qty`).
    pub field: String,
    /// What is wrong with it.
    pub error: String,
}

/// An error answer: `{status: "error", errorCode, message, details?}` with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The code.
    pub code: ErrorCode,
    /// A sentence for humans.
    pub message: String,
    /// Per-field violations (schema errors only).
    pub details: Vec<FieldError>,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error with `code` and the status that goes with it.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = match code {
            ErrorCode::InvalidRequest | ErrorCode::SchemaValidationError => StatusCode::BAD_REQUEST,
            ErrorCode::UnknownEventType | ErrorCode::UnknownVersion | ErrorCode::NotFound => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: (code == ErrorCode::Unavailable).then_some(1),
        }
    }

    /// Shorthand for [`ErrorCode::Unauthorized`].
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// Shorthand for [`ErrorCode::Forbidden`].
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// Shorthand for [`ErrorCode::InvalidRequest`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    status: &'static str,
    #[serde(rename = "errorCode")]
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    details: &'a [FieldError],
}

impl ApiError {
    /// The JSON body this error answers with.
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(Body {
            status: "error",
            code: self.code,
            message: &self.message,
            details: &self.details,
        })
        .unwrap_or_default()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            status: "error",
            code: self.code,
            message: &self.message,
            details: &self.details,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"eventhub\""),
            );
        }
        response
    }
}

/// Why [`Gateway::start`](crate::Gateway::start) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The declaration of services could not be read or is invalid.
    #[error("cannot load the declaration of services from {dir}: {message}")]
    Services {
        /// The catalog directory.
        dir: String,
        /// What is wrong.
        message: String,
    },
    /// The API keys or the JWT settings are invalid.
    #[error("invalid credentials configuration: {0}")]
    Credentials(String),
    /// NATS could not be reached or refused the gateway.
    #[error("cannot connect to NATS: {0}")]
    Connect(#[from] eventhub::error::ConnectError),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}
