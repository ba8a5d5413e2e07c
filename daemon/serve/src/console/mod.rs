//! The Weir console (docs/console.md): HTML pages that `weir serve` serves
//! on its HTTP listener under `/console/`, built on the `/v1` API.
//!
//! Pages are rendered on the server with maud (templates are Rust macros,
//! checked at compile time, escaping every interpolation). One small
//! script of ours (`assets/console.js`) does what needs a browser: the
//! live event stream, the charts (uPlot, vendored in `assets/uplot/`), and
//! the requests that change something, which go to the `/v1` API with the
//! session's CSRF token. Assets are embedded with `include_bytes!`:
//! nothing is fetched at build or run time.
//!
//! Invariants: every page answers with a strict Content-Security-Policy
//! (scripts and styles from our own origin only, no inline ones, nothing
//! loaded from elsewhere); a page needs a session (else it redirects to
//! the login); the controls of a mutation are rendered for the admin role
//! only, and the API refuses a read-only caller anyway (`access.rs`).

pub mod api;
mod assets;
mod explain;
pub mod history;
mod layout;
mod pages;
mod pages_more;
mod playground;
mod quarantine;
mod stats;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::access::{self, Caller};
use crate::http::{Api, query_pairs};

/// The Content-Security-Policy of every console page.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's pages, login and assets.
pub fn routes() -> Router<Api> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/assets/{name}", get(assets::asset))
        .route("/console/", get(pages::overview))
        .route("/console/live", get(pages::live))
        .route("/console/message/{id}", get(pages::message))
        .route("/console/search", get(pages_more::search))
        .route("/console/quarantine", get(pages::quarantine_list))
        .route("/console/quarantine/{id}", get(pages::quarantine_one))
        .route("/console/quarantine/{id}/body", get(pages::quarantine_body))
        .route("/console/rules", get(pages_more::rules))
        .route("/console/playground", get(pages_more::playground))
        .route("/console/outbox", get(pages_more::outbox))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Adds the security headers to every console answer (a page that set
/// its own CSP keeps it).
async fn security_headers(request: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A page's caller: a live session, else a redirect to the login page.
pub struct Session(pub Caller);

impl FromRequestParts<Api> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Self::Rejection> {
        access::session_cookie(&parts.headers)
            .and_then(|id| api.access.session(&id))
            .map(Session)
            .ok_or_else(|| Redirect::to("/console/login").into_response())
    }
}

async fn login_form() -> Response {
    layout::login_page(None).into_response()
}

/// Logs in with a token from the form: a session cookie and the Overview,
/// or the form again with 401.
async fn login(State(api): State<Api>, headers: axum::http::HeaderMap, body: String) -> Response {
    let token = query_pairs(Some(&body))
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let Some((id, caller)) = api.access.login(token.trim()) else {
        tracing::info!("console: a login with a wrong token");
        let page = layout::login_page(Some("That token is not valid."));
        return (StatusCode::UNAUTHORIZED, page).into_response();
    };
    tracing::info!("console: {} logged in", caller.role.as_str());
    let cookie = access::session_set_cookie(&id, access::behind_tls(&headers));
    let mut response = Redirect::to("/console/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Ends the session (the form carries its CSRF token).
async fn logout(State(api): State<Api>, headers: axum::http::HeaderMap, body: String) -> Response {
    let given = query_pairs(Some(&body))
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v)
        .unwrap_or_default();
    if let Some(id) = access::session_cookie(&headers)
        && let Some(caller) = api.access.session(&id)
    {
        let expected = caller.csrf.unwrap_or_default();
        if !access::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return (
                StatusCode::FORBIDDEN,
                "a logout needs the session's CSRF token",
            )
                .into_response();
        }
        api.access.logout(&id);
    }
    let mut response = Redirect::to("/console/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&access::session_clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
