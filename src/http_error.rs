//! The one shape in which both HTTP APIs (the gateway's `api.rs`, central's `central/api.rs`)
//! and their limits (`http_limits.rs`) answer a refused request: the status, and the body
//! `{"error": "…", "reason": "…"}`. `error` says what went wrong for a person (the pages show
//! it); `reason` is one stable snake_case word for a program (`not_found`, `unauthorized`,
//! `bad_signature`…).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub reason: String,
}

/// An error answer: `status` with an [`ErrorBody`].
pub fn error_response(status: StatusCode, reason: &str, error: impl ToString) -> Response {
    let body = ErrorBody {
        error: error.to_string(),
        reason: reason.to_owned(),
    };
    (status, Json(body)).into_response()
}
