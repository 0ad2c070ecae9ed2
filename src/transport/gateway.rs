//! `GET /auth/check`: forward authentication for a gateway in front of
//! another application (nginx `auth_request`, Traefik `forwardAuth`, Caddy
//! `forward_auth`, Envoy `ext_authz` over HTTP). The gateway sends the
//! client's headers; the answer is 200 with the caller in `X-Auth-*`
//! headers, or 401.
//!
//! It sits in front of every request of the protected application, so it
//! does the token check of every GraphQL request
//! ([`service::session::authenticate`]: one indexed read, the throttled
//! activity write, revocation effective at once) and nothing else: no
//! GraphQL, no audit event, no body, and the headers built straight from
//! the row that was read.
//!
//! The answer depends on the credentials only, never on the method, path
//! or `X-Forwarded-*` headers of the original request: nginx and Envoy
//! send the subrequest with the original method (a `POST` to the protected
//! app reaches us as `POST /auth/check`, without its body), so every method
//! is answered alike and `HEAD` gets the same status and headers. Nothing
//! is recorded about the client here (the activity write stores a time
//! only), so the client address and `TRUST_FORWARDED_FOR` play no part.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use uuid::Uuid;

use crate::{
    auth::{self, Caller},
    error::AppError,
    service,
};

use super::HttpState;

/// The headers of a 200 answer, for the gateway to pass upstream.
pub const USER_ID: HeaderName = HeaderName::from_static("x-auth-user-id");
pub const SESSION_ID: HeaderName = HeaderName::from_static("x-auth-session-id");
pub const EMAIL: HeaderName = HeaderName::from_static("x-auth-email");
pub const ROLE: HeaderName = HeaderName::from_static("x-auth-role");
/// Only for a session opened by impersonation: the admin behind it.
pub const IMPERSONATOR_ID: HeaderName = HeaderName::from_static("x-auth-impersonator-id");

/// Longest `Cookie` header read. Browsers send at most a few kilobytes;
/// nginx itself refuses header lines over 8 KiB by default. Longer is
/// refused rather than scanned.
const MAX_COOKIE_HEADER: usize = 8 * 1024;

/// `GET /auth/check` (any method; see the module's comment).
pub async fn check(State(http): State<HttpState>, headers: HeaderMap) -> Response {
    // On the heap: the check's future is large, and every layer around
    // the handler would otherwise move it (a quarter of this endpoint's
    // instructions were those copies, measured).
    Box::pin(answer(&http, &headers)).await
}

async fn answer(http: &HttpState, headers: &HeaderMap) -> Response {
    let Some(token) = token(headers, &http.app.config.session_cookie) else {
        return unauthorized();
    };
    match service::session::authenticate(&http.app.db, &http.app.config, token).await {
        Ok(caller) => authorized(&caller),
        Err(AppError::Unauthenticated(_)) => unauthorized(),
        // Fail closed: the gateway refuses the request (nginx answers 500
        // for any status other than 2xx, 401 and 403).
        Err(err) => {
            tracing::error!(error = %err, "auth check failed");
            (StatusCode::INTERNAL_SERVER_ERROR, no_store()).into_response()
        }
    }
}

/// The token of the request: from `Authorization: Bearer` when that header
/// is sent (a malformed one is refused, never passed over for the cookie:
/// the client meant to be someone), otherwise from the session cookie.
fn token<'h>(headers: &'h HeaderMap, cookie_name: &str) -> Option<&'h str> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = authorization.next() {
        // Two `Authorization` headers: which one a gateway or the app
        // would read is anyone's guess.
        if authorization.next().is_some() {
            return None;
        }
        return auth::bearer_token(value.as_bytes()).ok();
    }
    session_cookie(headers, cookie_name)
}

/// The first cookie named `name` (browsers send the most specific path
/// first), if it is a well-formed token. HTTP/2 clients may split cookies
/// over several `Cookie` headers; they are read in order.
fn session_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut seen = 0;
    for value in headers.get_all(header::COOKIE) {
        seen += value.len();
        if seen > MAX_COOKIE_HEADER {
            return None;
        }
        let Ok(value) = value.to_str() else {
            return None;
        };
        for pair in value.split(';') {
            let Some((key, cookie)) = pair.split_once('=') else {
                continue;
            };
            if key.trim() != name {
                continue;
            }
            // RFC 6265 allows the value in double quotes.
            let cookie = cookie.trim();
            let cookie = cookie
                .strip_prefix('"')
                .and_then(|c| c.strip_suffix('"'))
                .unwrap_or(cookie);
            return auth::is_well_formed_token(cookie).then_some(cookie);
        }
    }
    None
}

fn authorized(caller: &Caller) -> Response {
    // Written straight into the answer's own map: no second map to merge.
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.reserve(6);
    headers.insert(USER_ID, uuid_value(caller.user.id));
    headers.insert(SESSION_ID, uuid_value(caller.session.id));
    // Emails are stored without whitespace or control characters, so this
    // only fails for a row written behind the service's back.
    if let Ok(email) = HeaderValue::from_bytes(caller.user.email.as_bytes()) {
        headers.insert(EMAIL, email);
    }
    headers.insert(ROLE, HeaderValue::from_static(caller.user.role.as_str()));
    if let Some(admin) = caller.session.impersonator_id {
        headers.insert(IMPERSONATOR_ID, uuid_value(admin));
    }
    headers.insert(header::CACHE_CONTROL, NO_STORE);
    response
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            (header::CACHE_CONTROL, NO_STORE),
        ],
    )
        .into_response()
}

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

fn no_store() -> [(HeaderName, HeaderValue); 1] {
    [(header::CACHE_CONTROL, NO_STORE)]
}

/// A UUID as a header value, formatted on the stack.
fn uuid_value(id: Uuid) -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).expect("a UUID is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// Header name and value pairs of a case.
    type Headers = Vec<(&'static str, String)>;

    #[test]
    fn the_token_comes_from_the_bearer_header_or_else_the_cookie() {
        let good = auth::generate_token().unwrap().plaintext;
        let other = auth::generate_token().unwrap().plaintext;
        let bearer = format!("Bearer {good}");
        let cookie = format!("sm_session={good}");
        let cases: Vec<(Headers, Option<&str>, &str)> = vec![
            (vec![], None, "nothing sent"),
            (
                vec![("authorization", bearer.clone())],
                Some(&good),
                "bearer",
            ),
            (vec![("cookie", cookie.clone())], Some(&good), "cookie"),
            (
                vec![("cookie", format!("a=1; sm_session={good}; b=2"))],
                Some(&good),
                "cookie among others",
            ),
            (
                vec![("cookie", "a=1".into()), ("cookie", cookie.clone())],
                Some(&good),
                "cookie in a second Cookie header",
            ),
            (
                vec![("cookie", format!("sm_session=\"{good}\""))],
                Some(&good),
                "quoted cookie",
            ),
            (
                vec![("cookie", format!("xsm_session={good}; sm_sessionx={good}"))],
                None,
                "similar names are other cookies",
            ),
            (
                vec![("cookie", format!("sm_session=junk; sm_session={good}"))],
                None,
                "only the first cookie of the name counts",
            ),
            (
                vec![
                    ("authorization", bearer.clone()),
                    ("cookie", format!("sm_session={other}")),
                ],
                Some(&good),
                "the header wins over the cookie",
            ),
            (
                vec![
                    ("authorization", "Bearer junk".into()),
                    ("cookie", cookie.clone()),
                ],
                None,
                "a malformed header is not passed over for the cookie",
            ),
            (
                vec![
                    ("authorization", bearer.clone()),
                    ("authorization", bearer.clone()),
                ],
                None,
                "two Authorization headers",
            ),
            (
                vec![(
                    "cookie",
                    format!("pad={}; {cookie}", "x".repeat(MAX_COOKIE_HEADER)),
                )],
                None,
                "an oversized Cookie header",
            ),
        ];
        for (pairs, expected, why) in cases {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let map = headers(&pairs);
            assert_eq!(token(&map, "sm_session"), expected, "{why}");
        }
    }

    #[test]
    fn uuids_are_written_hyphenated_in_lower_case() {
        let id = Uuid::new_v4();
        assert_eq!(uuid_value(id).to_str().unwrap(), id.to_string());
    }
}
