//! The web dashboard: plain HTML, CSS and JavaScript modules from
//! `assets/dashboard/`, compiled into the binary like GraphiQL
//! ([`crate::graphiql`]). No framework, no build step, no CDN; it talks to
//! `POST /graphql` (and the `sessionEvents` subscription when the server
//! has it) with the token it keeps in `sessionStorage`.

use axum::{
    Router,
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};

/// The page's policy: only this server's scripts and style sheets, no
/// inline script or style at all, no `eval`, DOM sinks locked by Trusted
/// Types (the code builds elements and sets `textContent`, never HTML),
/// network to this origin only (`'self'` covers its `ws:`/`wss:` too).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; manifest-src 'none'; \
frame-ancestors 'none'; base-uri 'none'; form-action 'none'; \
require-trusted-types-for 'script'; trusted-types 'none'";

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/dashboard/app.css"),
    ),
    ("app.js", JS, include_bytes!("../assets/dashboard/app.js")),
    ("api.js", JS, include_bytes!("../assets/dashboard/api.js")),
    ("dom.js", JS, include_bytes!("../assets/dashboard/dom.js")),
    ("live.js", JS, include_bytes!("../assets/dashboard/live.js")),
    (
        "account.js",
        JS,
        include_bytes!("../assets/dashboard/account.js"),
    ),
    (
        "session-list.js",
        JS,
        include_bytes!("../assets/dashboard/session-list.js"),
    ),
    (
        "sessions.js",
        JS,
        include_bytes!("../assets/dashboard/sessions.js"),
    ),
    (
        "admin.js",
        JS,
        include_bytes!("../assets/dashboard/admin.js"),
    ),
    (
        "audit.js",
        JS,
        include_bytes!("../assets/dashboard/audit.js"),
    ),
    (
        "webhooks.js",
        JS,
        include_bytes!("../assets/dashboard/webhooks.js"),
    ),
];

const PAGE: &str = include_str!("../assets/dashboard/index.html");

/// `GET /` and `GET /app/{file}`. Always served: the dashboard is the
/// product's UI and holds no secret (everything it shows needs a token).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/app/{file}", get(asset))
}

fn common_headers() -> [(header::HeaderName, HeaderValue); 3] {
    [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        // Modules import each other: after an upgrade they must not mix
        // versions from the cache.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ]
}

/// The dashboard page.
pub async fn page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
        ],
        common_headers(),
        PAGE,
    )
        .into_response()
}

/// `GET /app/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            common_headers(),
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
