//! Limits that both HTTP APIs (the gateway's `api.rs`, central's `central/api.rs`) put in front
//! of their routes: a request-body limit (413), a request timeout (408) and a rate limit per
//! token (429 with `Retry-After`). Each refusal is counted in
//! `…_http_rejected_total{reason="too_large"|"timeout"|"rate_limited"}`.
//!
//! The rate limit is a token bucket per caller: the SHA-256 of the bearer token (or of central's
//! session cookie) when it is one the role knows, else the peer address (so made-up tokens do not open fresh buckets), else
//! one shared bucket.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;
use toml::Spanned;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::diag::Problem;
use crate::metrics::ReasonLabel;
pub use crate::metrics::{register_http_rejections as register, HttpRejections as Rejections};

/// An `http_limits` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpLimits {
    pub max_body_bytes: Option<Spanned<usize>>,
    pub request_timeout_s: Option<Spanned<f64>>,
    pub rate_per_s: Option<Spanned<u32>>,
    pub rate_burst: Option<Spanned<u32>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// A request still unanswered after this time gets 408.
    pub request_timeout: Duration,
    /// Sustained requests per second allowed per caller.
    pub rate_per_s: u32,
    /// Requests a caller may make at once before the rate applies.
    pub rate_burst: u32,
}

impl HttpLimits {
    /// The defaults, with the body limit of the role.
    pub fn with_max_body(max_body_bytes: usize) -> Self {
        HttpLimits {
            max_body_bytes,
            request_timeout: Duration::from_secs(30),
            rate_per_s: 50,
            rate_burst: 100,
        }
    }
}

impl RawHttpLimits {
    /// Validates the table; absent keys take the defaults of [`HttpLimits::with_max_body`].
    pub fn validate(&self, default_max_body: usize) -> Result<HttpLimits, Vec<Problem>> {
        let mut limits = HttpLimits::with_max_body(default_max_body);
        let mut problems = Vec::new();
        let mut above_zero = |value: f64, span: std::ops::Range<usize>, key: &str| {
            if !(value.is_finite() && value > 0.0) {
                problems.push(
                    Problem::new(span, format!("{key} must be above 0"))
                        .hint("leave the key out for the default"),
                );
            }
        };
        if let Some(v) = &self.max_body_bytes {
            above_zero(*v.get_ref() as f64, v.span(), "max_body_bytes");
            limits.max_body_bytes = *v.get_ref();
        }
        if let Some(v) = &self.request_timeout_s {
            above_zero(*v.get_ref(), v.span(), "request_timeout_s");
            if v.get_ref().is_finite() && *v.get_ref() > 0.0 {
                limits.request_timeout = Duration::from_secs_f64(*v.get_ref());
            }
        }
        if let Some(v) = &self.rate_per_s {
            above_zero(f64::from(*v.get_ref()), v.span(), "rate_per_s");
            limits.rate_per_s = *v.get_ref();
        }
        if let Some(v) = &self.rate_burst {
            above_zero(f64::from(*v.get_ref()), v.span(), "rate_burst");
            limits.rate_burst = *v.get_ref();
        }
        if problems.is_empty() {
            Ok(limits)
        } else {
            Err(problems)
        }
    }
}

#[derive(Clone)]
struct Guard {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    /// SHA-256 (hex) of the tokens that get a bucket of their own.
    known_tokens: Arc<HashSet<String>>,
    rejected: Rejections,
}

/// Callers remembered before idle buckets are forgotten.
const MAX_TRACKED_CALLERS: usize = 10_000;

/// Wraps `router` in the body limit, the timeout and the rate limit; `known_tokens` are the
/// SHA-256 (hex) of the bearer tokens that are rate-limited on their own.
pub fn apply(
    router: Router,
    limits: &HttpLimits,
    known_tokens: HashSet<String>,
    rejected: Rejections,
) -> Router {
    let per_s = std::num::NonZeroU32::new(limits.rate_per_s).unwrap_or(std::num::NonZeroU32::MIN);
    let burst = std::num::NonZeroU32::new(limits.rate_burst).unwrap_or(per_s);
    let guard = Guard {
        limiter: Arc::new(governor::RateLimiter::keyed(
            Quota::per_second(per_s).allow_burst(burst),
        )),
        known_tokens: Arc::new(known_tokens),
        rejected,
    };
    router
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(guard, check))
}

/// Who a request is counted against.
fn caller_key(request: &Request, known_tokens: &HashSet<String>) -> String {
    let token_hash =
        crate::auth::request_token(request.headers()).map(|token| crate::auth::token_hash(&token));
    if let Some(hash) = token_hash.filter(|h| known_tokens.contains(h)) {
        return format!("token:{hash}");
    }
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => format!("peer:{}", peer.ip()),
        None => "anonymous".to_owned(),
    }
}

async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let key = caller_key(&request, &guard.known_tokens);
    if guard.limiter.len() > MAX_TRACKED_CALLERS {
        guard.limiter.retain_recent();
    }
    if let Err(not_until) = guard.limiter.check_key(&key) {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let retry_after_s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        count(&guard.rejected, "rate_limited", request.uri().path());
        let mut response = crate::http_error::error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests: retry after the time in Retry-After",
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(retry_after_s.max(1)),
        );
        return response;
    }
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => count(&guard.rejected, "too_large", &path),
        StatusCode::REQUEST_TIMEOUT => count(&guard.rejected, "timeout", &path),
        _ => {}
    }
    response
}

fn count(rejected: &Rejections, reason: &'static str, path: &str) {
    rejected.get_or_create(&ReasonLabel { reason }).inc();
    tracing::debug!(reason, path, "HTTP request refused");
}
