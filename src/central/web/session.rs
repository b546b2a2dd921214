//! Signing in to the dashboard. A `?token=` link (what `seguard demo` prints, what a regulator
//! is handed) is exchanged on first use for an HttpOnly, SameSite=Strict cookie, and the browser
//! is sent to the same page without the token, so it leaves the address bar, the history and
//! every `Referer`. Page scripts never see the token. `POST /signout` clears the cookie.
//!
//! The cookie holds the role token itself (percent-encoded): the API checks it as it checks a
//! bearer header ([`crate::auth::request_token`]), and SameSite=Strict keeps other sites'
//! requests from carrying it.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

use crate::auth::SESSION_COOKIE;
use crate::central::api::AppState;

/// Serves one page; with `?token=` in the address, answers instead with a redirect to the same
/// address without it, setting the session cookie when the token is a role token.
pub async fn page(state: &AppState, uri: &Uri, html: &'static str) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let Some((_, token)) = pairs.iter().find(|(k, _)| k == "token") else {
        return Html(html).into_response();
    };
    let rest: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "token").collect();
    let mut location = uri.path().to_owned();
    if !rest.is_empty() {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in rest {
            query.append_pair(k, v);
        }
        location = format!("{location}?{}", query.finish());
    }
    let known = state
        .config
        .tokens
        .iter()
        .any(|t| t.sha256 == crate::auth::token_hash(token));
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    if known {
        let value: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
        let cookie = format!(
            "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{}",
            secure(state)
        );
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
    } else {
        tracing::info!(path = uri.path(), "sign-in link with an unknown token");
    }
    response
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
