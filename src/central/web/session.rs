//! Signing in to the dashboard. A `?token=` link (what `seguard demo` prints, what a regulator
//! is handed) is exchanged on first use for an HttpOnly, SameSite=Strict cookie, and the browser
//! is sent to the same page without the token, so it leaves the address bar, the history and
//! every `Referer`. Page scripts never see the token. `POST /signout` clears the cookie.
//!
//! The cookie holds the role token itself (percent-encoded): the API checks it as it checks a
//! bearer header ([`crate::auth::request_token`]), and SameSite=Strict keeps other sites'
//! requests from carrying it.
//!
//! A rescue-page link `/rescue/{dispatch}?t=<link token>` is exchanged the same way, for a
//! cookie [`LINK_COOKIE`] whose `Path` is that dispatch's API (`/api/v1/dispatches/{dispatch}`):
//! two dispatches' links on one phone are two cookies, each sent only with its own dispatch's
//! requests. It lasts [`LINK_COOKIE_MAX_AGE_S`], so steps the page queued offline are still
//! sent after the browser was closed; central decides on each request what the link may do.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

use crate::auth::{LINK_COOKIE, SESSION_COOKIE};
use crate::central::api::AppState;

/// How long a rescue link's cookie lasts: longer than any rescue.
pub const LINK_COOKIE_MAX_AGE_S: u32 = 7 * 24 * 3600;

/// Serves one page; with `?token=` in the address (or `?t=` on the rescue page of `dispatch`),
/// answers instead with a redirect to the same address without it, setting the session cookie
/// when the token is a role token, and the link cookie when `t` is a link of that dispatch.
pub async fn page(
    state: &AppState,
    uri: &Uri,
    html: &'static str,
    dispatch: Option<&str>,
) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let taken = |k: &str| k == "token" || (dispatch.is_some() && k == "t");
    if !pairs.iter().any(|(k, _)| taken(k)) {
        return Html(html).into_response();
    }
    let value = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let rest: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| !taken(k)).collect();
    let mut location = uri.path().to_owned();
    if !rest.is_empty() {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in rest {
            query.append_pair(k, v);
        }
        location = format!("{location}?{}", query.finish());
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    let mut set = |cookie: String| {
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    };
    if let Some(token) = value("token") {
        let known = state
            .config
            .tokens
            .iter()
            .any(|t| t.sha256 == crate::auth::token_hash(token));
        if known {
            set(format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{}",
                encoded(token),
                secure(state)
            ));
        } else {
            tracing::info!(path = uri.path(), "sign-in link with an unknown token");
        }
    }
    if let (Some(id), Some(link)) = (dispatch, value("t")) {
        // Only a link of this dispatch: then `id` is a dispatch's own (hex) id, safe in a path.
        match state.store.dispatch_link_unit(id, link).await {
            Ok(Some(_)) => set(format!(
                "{LINK_COOKIE}={}; Path=/api/v1/dispatches/{id}; Max-Age={LINK_COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Strict{}",
                encoded(link),
                secure(state)
            )),
            Ok(None) => tracing::info!(path = uri.path(), "rescue link with an unknown token"),
            Err(e) => tracing::warn!(error = %e, "cannot check a rescue link"),
        }
    }
    response
}

fn encoded(token: &str) -> String {
    url::form_urlencoded::byte_serialize(token.as_bytes()).collect()
}

/// `POST /signout`: clears the session cookie (and what older pages kept in local storage),
/// then shows the map, signed out.
pub async fn sign_out(State(state): State<AppState>) -> Response {
    let cookie = format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(&state)
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_owned()),
            (header::SET_COOKIE, cookie),
            // Storage only: "cookies" would clear every cookie of the registrable domain,
            // other services' included; our own cookie goes by the Set-Cookie above.
            (
                header::HeaderName::from_static("clear-site-data"),
                "\"storage\"".to_owned(),
            ),
        ],
    )
        .into_response()
}

/// `; Secure` when central serves HTTPS, or is reached through HTTPS (`public_url`, as behind
/// a TLS-terminating proxy): the cookie then never travels in clear.
fn secure(state: &AppState) -> &'static str {
    if state.config.https.is_some() || state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}
