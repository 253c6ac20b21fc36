//! Who may look: any credential whose role may read (viewer, user, the
//! shared token), as a bearer header (scripts) or as the cookie that
//! `/login?token=...` sets (browsers: an event stream cannot send headers,
//! and a token in every URL would land in logs and history). A coordinator
//! without credentials (loopback) shows everything. Nothing here writes:
//! the dashboard has no route that could.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::query::query_param;
use crate::service::{Credentials, Permission, TokenTable};

const COOKIE: &str = "widesweep_token";

/// The coordinator's own token table: a token admits whom its role lets read.
#[derive(Clone)]
pub(super) struct Access {
    tokens: TokenTable,
    /// Served over HTTPS: the cookie is then never sent in clear.
    secure: bool,
}

impl Access {
    pub(super) fn new(credentials: &Credentials, secure: bool) -> Self {
        Self { tokens: TokenTable::new(credentials), secure }
    }

    fn is_open(&self) -> bool {
        self.tokens.is_open()
    }

    fn admits(&self, given: &[u8]) -> bool {
        self.is_open() || self.tokens.role_of(given).is_some_and(|role| role.allows(Permission::Read))
    }
}

/// Headers on every response: no framing, no sniffing, no referrer (the
/// login URL holds a token), and scripts, styles and images only from the
/// coordinator itself (the pages set inline styles for bars and colours).
pub(super) async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'",
        ),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

/// The credential a request carries: `Authorization: Bearer`, else the cookie.
fn presented(headers: &HeaderMap) -> Option<Vec<u8>> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some(token.trim().as_bytes().to_vec());
    }
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then(|| value.as_bytes().to_vec())
    })
}

/// Lets readers through; others get 401 (the API) or the login page.
pub(super) async fn require_reader(State(access): State<Access>, request: Request, next: Next) -> Response {
    if access.is_open() || presented(request.headers()).is_some_and(|token| access.admits(&token)) {
        return next.run(request).await;
    }
    if request.uri().path().starts_with("/api/") {
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong credential: send `Authorization: Bearer <viewer token>`, or log in at /login",
        )
            .into_response();
    }
    (StatusCode::UNAUTHORIZED, Html(login_page(None))).into_response()
}

/// `/login?token=...[&next=/sweeps/NAME]`: checks the token, keeps it in
/// an HttpOnly cookie and goes on to `next` (a path of this site) or `/`.
pub(super) async fn login(State(access): State<Access>, uri: Uri) -> Response {
    let Some(token) = query_param(&uri, "token") else {
        return Html(login_page(None)).into_response();
    };
    if access.admits(token.as_bytes()) {
        let secure = if access.secure { "; Secure" } else { "" };
        let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
        // Only a path here: never a redirect to another site.
        let next = query_param(&uri, "next").filter(|n| local_path(n));
        return ([(header::SET_COOKIE, cookie)], Redirect::to(next.as_deref().unwrap_or("/"))).into_response();
    }
    (StatusCode::UNAUTHORIZED, Html(login_page(Some("That token does not give read access.")))).into_response()
}

/// Whether `next` can only mean a path of this site. Browsers read `//host`,
/// `/\\host` and `/<TAB>/host` (they drop tabs and newlines, and treat a
/// backslash as a slash) as another site: none of those, nor any control
/// character or backslash, passes.
fn local_path(next: &str) -> bool {
    next.starts_with('/') && !next[1..].starts_with('/') && !next.contains(|c: char| c.is_control() || c == '\\')
}

fn login_page(message: Option<&str>) -> String {
    let message = message.map(|m| format!("<p class=\"error\" role=\"alert\">{m}</p>")).unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>widesweep: log in</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\"><link rel=\"icon\" href=\"/assets/favicon.svg\" type=\"image/svg+xml\"></head><body><main class=\"login\">\
         <h1>widesweep</h1>{message}<form method=\"get\" action=\"/login\"><label for=\"token\">Viewer token \
         (or your user token)</label><input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" \
         required><button type=\"submit\">Open the dashboard</button></form></main></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_goes_on_only_to_paths_of_this_site() {
        for local in ["/", "/sweeps/quickstart", "/sweeps/a?cols=width"] {
            assert!(local_path(local), "{local}");
        }
        for elsewhere in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "https://evil.example",
            "evil",
        ] {
            assert!(!local_path(elsewhere), "{elsewhere:?}");
        }
    }

    #[test]
    fn readers_are_admitted_and_workers_are_not() {
        let credentials = Credentials {
            shared: None,
            user: Some("u".repeat(20)),
            worker: Some("w".repeat(20)),
            viewer: Some("v".repeat(20)),
        };
        let access = Access::new(&credentials, false);
        assert!(access.admits("v".repeat(20).as_bytes()));
        assert!(access.admits("u".repeat(20).as_bytes()));
        assert!(!access.admits("w".repeat(20).as_bytes()), "a worker token does not read");
        assert!(!access.admits(b""));
        assert!(Access::new(&Credentials::default(), false).admits(b"anything"));
    }

    #[test]
    fn the_credential_comes_from_the_header_or_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=b; widesweep_token=xyz".parse().unwrap());
        assert_eq!(presented(&headers), Some(b"xyz".to_vec()));
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented(&headers), Some(b"abc".to_vec()));
        assert_eq!(presented(&HeaderMap::new()), None);
    }
}
