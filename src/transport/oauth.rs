//! The OAuth endpoints a client or resource server speaks without
//! GraphQL: `POST /oauth/revoke` (RFC 7009). Token introspection (RFC
//! 7662) belongs beside it and shares its request form ([`TokenForm`]) and
//! error answer ([`invalid_request`]).

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{auth, error::AppError, metrics::Metrics, service};

use super::{HttpState, request_meta};

/// Largest accepted form body. The form holds a 47-character token and a
/// short hint; anything near this is not a revocation request.
const MAX_FORM_BYTES: usize = 4 * 1024;

const FORM: &str = "application/x-www-form-urlencoded";

/// `POST /oauth/revoke`: ends the session of the form's `token`, audited
/// as a sign-out by its holder. Holding the token is all the
/// authentication it needs (RFC 7009 §2.1 leaves client authentication to
/// confidential clients; ours are public). The answer is 200 whether or
/// not the token named a session (§2.2): an unknown, malformed, expired
/// or already ended token costs at most one indexed read and writes
/// nothing, so a flood of guesses costs what the same flood of bearer
/// tokens on `/graphql` does.
pub async fn revoke(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match TokenForm::read(&headers, body).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    // `token_type_hint` is only a hint (§2.1): there is one kind of token.
    if !auth::is_well_formed_token(&form.token) {
        return revoked();
    }
    let caller =
        match service::session::authenticate(&http.app.db, &http.app.config, &form.token).await {
            Ok(caller) => caller,
            Err(AppError::Unauthenticated(_)) => return revoked(),
            Err(err) => return unavailable(&err),
        };
    let meta = request_meta(&http, peer, &headers);
    match service::session::sign_out(&http.app.db, &http.app.metrics, &caller, &meta).await {
        Ok(()) => {
            Metrics::inc(&http.app.metrics.sessions_revoked);
            revoked()
        }
        // Ended meanwhile by a concurrent revocation: ended all the same.
        Err(AppError::Unauthenticated(_)) => revoked(),
        Err(err) => unavailable(&err),
    }
}

/// The request of both token endpoints: an
/// `application/x-www-form-urlencoded` body with one `token` parameter
/// (RFC 7009 §2.1, RFC 7662 §2.1).
pub struct TokenForm {
    pub token: String,
    pub token_type_hint: Option<String>,
}

impl TokenForm {
    /// The form, or the `invalid_request` answer (RFC 6749 §5.2) for a
    /// wrong content type, an oversized or unreadable body, or a missing
    /// or repeated parameter (§3.1: parameters appear at most once).
    pub async fn read(headers: &HeaderMap, body: Body) -> Result<Self, Response> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case(FORM) {
            return Err(invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_FORM_BYTES) {
            return Err(too_large());
        }
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return Err(too_large());
        };
        let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes) else {
            return Err(invalid_request("the body is not a readable form"));
        };
        let mut token = None;
        let mut hint = None;
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "token" => &mut token,
                "token_type_hint" => &mut hint,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(invalid_request(&format!(
                    "`{name}` is given more than once"
                )));
            }
        }
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid_request("the `token` parameter is required"))?;
        Ok(Self {
            token,
            token_type_hint: hint,
        })
    }
}

/// RFC 6749 §5.2's error answer, as both token endpoints give it.
pub fn invalid_request(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        no_store(),
        axum::Json(json!({ "error": "invalid_request", "error_description": description })),
    )
        .into_response()
}

fn too_large() -> Response {
    invalid_request(&format!("the body may hold at most {MAX_FORM_BYTES} bytes"))
}

/// RFC 7009 §2.2: 200, and the body is ignored by the client.
fn revoked() -> Response {
    (StatusCode::OK, no_store()).into_response()
}

/// RFC 7009 §2.2.1: with 503 the client assumes the token still works and
/// may try again.
fn unavailable(err: &AppError) -> Response {
    tracing::error!(error = %err, "token revocation failed");
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        no_store(),
        axum::Json(json!({ "error": "temporarily_unavailable" })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}
