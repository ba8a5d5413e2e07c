//! Who may use the HTTP API and the console (docs/serve.md "Access").
//!
//! Two roles, as rspamd's `password` and `enable_password`: the admin token
//! (`[http] token_file`) may do everything, the read-only token
//! (`[http] readonly_token_file`) may only read. A caller proves a role with
//! `Authorization: Bearer TOKEN`, or with the session cookie the console's
//! login gives for a token. A session's mutations also carry its CSRF token
//! in `X-CSRF-Token` (or the form field `csrf`), so a page elsewhere cannot
//! make the browser act.
//!
//! Invariants: a read-only caller never reaches a mutating handler (the
//! answer is 403 before it runs); tokens and session ids are compared in
//! constant time and never logged; sessions live in memory only (a restart
//! logs everyone out).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, header};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "weir_session";
/// The header a session's mutation carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts from its login.
const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// The most sessions kept; past it the oldest is dropped.
const MAX_SESSIONS: usize = 1024;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read, release, delete, retry, reload, deploy.
    Admin,
    /// Read only.
    Readonly,
}

impl Role {
    /// `admin` or `readonly`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Readonly => "readonly",
        }
    }
}

/// How a caller proved its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// `Authorization: Bearer`.
    Token,
    /// The console's session cookie.
    Session,
}

/// The authenticated caller of one request (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Its role.
    pub role: Role,
    /// Token or session.
    pub via: Via,
    /// The session's CSRF token (sessions only).
    pub csrf: Option<String>,
}

impl Caller {
    /// Who did an act, as its audit entry records it.
    pub fn audit_json(&self) -> serde_json::Value {
        serde_json::json!({"role": self.role, "via": self.via})
    }
}

/// One logged-in console session.
#[derive(Debug, Clone)]
struct Session {
    role: Role,
    csrf: String,
    expires: Instant,
}

/// The tokens and the live sessions.
#[derive(Debug)]
pub struct Access {
    admin: String,
    readonly: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No valid credentials: 401.
    Unauthenticated,
    /// A read-only caller asked for a mutation: 403.
    ReadOnly,
    /// A session's mutation without its CSRF token: 403.
    Csrf,
}

impl Access {
    /// The admin token and, if configured, the read-only one. A read-only
    /// token equal to the admin token would make the roles ambiguous and
    /// is ignored (the caller is then admin).
    pub fn new(admin: String, readonly: Option<String>) -> Access {
        let readonly = readonly.filter(|r| r != &admin);
        Access {
            admin,
            readonly,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The role a token gives, if any.
    pub fn role_of_token(&self, token: &str) -> Option<Role> {
        if constant_time_eq(token.as_bytes(), self.admin.as_bytes()) {
            return Some(Role::Admin);
        }
        let readonly = self.readonly.as_deref()?;
        constant_time_eq(token.as_bytes(), readonly.as_bytes()).then_some(Role::Readonly)
    }

    /// Starts a session for a token: its id and CSRF token, or `None` for
    /// a wrong token.
    pub fn login(&self, token: &str) -> Option<(String, Caller)> {
        let role = self.role_of_token(token)?;
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        let session = Session {
            role,
            csrf: csrf.clone(),
            expires: now + SESSION_LIFETIME,
        };
        sessions.insert(id.clone(), session);
        let caller = Caller {
            role,
            via: Via::Session,
            csrf: Some(csrf),
        };
        Some((id, caller))
    }

    /// Ends the session `id` (logout).
    pub fn logout(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The caller of a live session.
    pub fn session(&self, id: &str) -> Option<Caller> {
        let sessions = self.lock();
        // A map lookup by id: the id is 256 random bits, so the time a
        // lookup takes tells nothing useful about other ids.
        let s = sessions.get(id)?;
        (s.expires > Instant::now()).then(|| Caller {
            role: s.role,
            via: Via::Session,
            csrf: Some(s.csrf.clone()),
        })
    }

    /// The caller of a request: a bearer token first, else the session
    /// cookie.
    pub fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_credentials);
        if let Some(token) = bearer {
            return self.role_of_token(token).map(|role| Caller {
                role,
                via: Via::Token,
                csrf: None,
            });
        }
        self.session(&session_cookie(headers)?)
    }

    /// Decides an API request: the caller, or why it is refused. Every
    /// method but GET and HEAD needs the admin role unless the endpoint
    /// only computes (`dry_run_endpoint`); a session's POST, DELETE and
    /// PUT need its CSRF token in the [`CSRF_HEADER`] header.
    pub fn authorize(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Caller, Refusal> {
        let caller = self.caller(headers).ok_or(Refusal::Unauthenticated)?;
        if method == Method::GET || method == Method::HEAD {
            return Ok(caller);
        }
        if caller.via == Via::Session {
            let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let expected = caller.csrf.as_deref().unwrap_or_default();
            if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
                return Err(Refusal::Csrf);
            }
        }
        if caller.role == Role::Readonly && !dry_run_endpoint(path) {
            return Err(Refusal::ReadOnly);
        }
        Ok(caller)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The POST endpoints that change nothing (they evaluate or compile a
/// copy): a read-only caller may use them. Every other mutation is the
/// admin's.
pub fn dry_run_endpoint(path: &str) -> bool {
    matches!(
        path,
        "/v1/check" | "/v1/playground/check" | "/v1/playground/run" | "/v1/playground/backtest"
    )
}

/// The `Set-Cookie` value of a new session: `HttpOnly`, `SameSite=Strict`,
/// and `Secure` when the request came over TLS (a proxy in front says so
/// with `X-Forwarded-Proto: https`).
pub fn session_set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn session_clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether the request reached the daemon over TLS (through a proxy).
pub fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// The session id in the request's `Cookie` header(s).
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The credentials of an `Authorization` value in the `Bearer` scheme,
/// whose name is case-insensitive (RFC 7235 §2.1).
pub fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim_start().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` random bytes from the kernel as hex, or `None` when it gives none.
pub fn random_hex(n: usize) -> Option<String> {
    use std::io::Read;
    let mut random = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .ok()?;
    Some(random.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn access() -> Access {
        Access::new("admin-token-123".into(), Some("reader-token-456".into()))
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        h.insert(header::AUTHORIZATION, value);
        h
    }

    #[test]
    fn tokens_give_their_roles() {
        let a = access();
        assert_eq!(a.role_of_token("admin-token-123"), Some(Role::Admin));
        assert_eq!(a.role_of_token("reader-token-456"), Some(Role::Readonly));
        assert_eq!(a.role_of_token("reader-token-45"), None);
        assert_eq!(a.role_of_token(""), None);
    }

    #[test]
    fn read_only_callers_may_read_and_dry_run_only() {
        let a = access();
        let h = bearer("reader-token-456");
        assert!(a.authorize(&Method::GET, "/v1/actions", &h).is_ok());
        assert!(a.authorize(&Method::POST, "/v1/check", &h).is_ok());
        assert_eq!(
            a.authorize(&Method::POST, "/v1/quarantine/L1/release", &h),
            Err(Refusal::ReadOnly)
        );
        assert_eq!(
            a.authorize(&Method::DELETE, "/v1/quarantine/L1", &h),
            Err(Refusal::ReadOnly)
        );
        assert_eq!(
            a.authorize(&Method::POST, "/v1/reload", &h),
            Err(Refusal::ReadOnly)
        );
        let admin = bearer("admin-token-123");
        assert!(a.authorize(&Method::POST, "/v1/reload", &admin).is_ok());
        assert_eq!(
            a.authorize(&Method::GET, "/v1/actions", &bearer("nope-nope-nope")),
            Err(Refusal::Unauthenticated)
        );
    }

    #[test]
    fn session_mutations_need_the_csrf_token() {
        let a = access();
        let (id, caller) = a.login("admin-token-123").unwrap();
        let mut h = HeaderMap::new();
        let cookie = format!("other=1; {SESSION_COOKIE}={id}");
        h.insert(header::COOKIE, HeaderValue::from_str(&cookie).unwrap());
        assert_eq!(
            a.authorize(&Method::GET, "/v1/actions", &h),
            Ok(caller.clone())
        );
        assert_eq!(
            a.authorize(&Method::POST, "/v1/reload", &h),
            Err(Refusal::Csrf)
        );
        h.insert(CSRF_HEADER, HeaderValue::from_static("wrong"));
        assert_eq!(
            a.authorize(&Method::POST, "/v1/reload", &h),
            Err(Refusal::Csrf)
        );
        let csrf = caller.csrf.clone().unwrap();
        h.insert(CSRF_HEADER, HeaderValue::from_str(&csrf).unwrap());
        assert!(a.authorize(&Method::POST, "/v1/reload", &h).is_ok());
        a.logout(&id);
        assert_eq!(
            a.authorize(&Method::GET, "/v1/actions", &h),
            Err(Refusal::Unauthenticated)
        );
    }

    #[test]
    fn a_wrong_token_starts_no_session() {
        assert!(access().login("admin-token-12").is_none());
    }

    #[test]
    fn cookies_are_strict_and_http_only() {
        let c = session_set_cookie("abc", false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"));
        assert!(!c.contains("Secure"));
        assert!(session_set_cookie("abc", true).ends_with("; Secure"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_credentials("Bearer abc"), Some("abc"));
        assert_eq!(bearer_credentials("bearer abc"), Some("abc"));
        assert_eq!(bearer_credentials("BEARER   abc "), Some("abc"));
        assert_eq!(bearer_credentials("Basic abc"), None);
        assert_eq!(bearer_credentials("Bearerabc"), None);
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
