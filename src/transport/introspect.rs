//! `POST /oauth/introspect`: OAuth 2.0 Token Introspection (RFC 7662),
//! so a backend can check a session token without speaking GraphQL.
//!
//! The caller authenticates with an API key holding `SESSIONS_CHECK`
//! (`Authorization: Bearer smk_…`; RFC 7662 §2.1 requires the endpoint to
//! be protected). A missing, malformed, unknown or revoked key is 401 and
//! a key without the scope 403, answered as RFC 6750 §3.1 says for a
//! protected resource (`invalid_token`, `insufficient_scope`). The form
//! field `token` is checked as every request's token is (revocation is
//! immediate; use slides the idle expiry, written at most once per
//! `ACTIVITY_WRITE_INTERVAL`): a live session answers `active: true` with
//! its claims, anything else — revoked, expired, unknown, malformed, an
//! API key — `{"active": false}` and nothing more (§2.2).

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use entity::api_key::ApiScope;
use serde_json::{Value, json};

use super::{HttpState, request_meta};
use crate::{
    auth::{self, Credential, KeyCaller},
    error::AppError,
    service::{self, access, denials},
};

/// `POST /oauth/introspect`.
pub async fn introspect(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let app = &http.app;
    let key = match headers
        .get(header::AUTHORIZATION)
        .map(|v| auth::bearer_credential(v.as_bytes()))
    {
        Some(Ok(Credential::ApiKey(key))) => {
            service::api_key::authenticate(&app.db, &app.config, key).await
        }
        // No header, a session token, or something unreadable: this
        // endpoint takes API keys only.
        _ => Err(AppError::Unauthenticated(auth::BAD_API_KEY)),
    };
    let key = match key {
        Ok(key) => KeyCaller { key },
        Err(AppError::Unauthenticated(_)) => {
            return challenge(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "an API key with the scope sessions:check is required",
            );
        }
        Err(_) => return server_error(),
    };
    if !key.has(ApiScope::SessionsCheck) {
        let denials = denials::Denials::default();
        let error = denials::deny_as(
            &app.denials,
            &denials,
            denials::Refused::Key(&key),
            &request_meta(&http, peer, &headers),
            access::Action::KeyOperation,
            None,
            None,
            AppError::Forbidden(
                "introspection needs an API key with the scope sessions:check".into(),
            ),
        );
        denials::write_denials(&app.db, denials.take()).await;
        if let AppError::RateLimited { retry_after_secs } = error {
            let mut response = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "slow_down",
                &error.to_string(),
            );
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        return challenge(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the API key lacks the scope sessions:check",
        );
    }

    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded with a `token` field",
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, app.config.max_body_bytes).await else {
        return oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the body is too large",
        );
    };
    let fields: Vec<(String, String)> = match serde_urlencoded::from_bytes(&bytes) {
        Ok(fields) => fields,
        Err(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body is not a readable form",
            );
        }
    };
    let mut tokens = fields
        .iter()
        .filter(|(name, _)| name == "token")
        .map(|(_, v)| v.as_str());
    let (Some(token), None) = (tokens.next(), tokens.next()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the form needs exactly one `token` field",
        );
    };

    let claims = if auth::is_well_formed_token(token) {
        match service::session::authenticate(&app.db, &app.config, token).await {
            Ok(caller) => Some(active(&caller)),
            Err(AppError::Unauthenticated(_)) => None,
            Err(_) => return server_error(),
        }
    } else {
        None
    };
    let body = claims.unwrap_or_else(|| json!({ "active": false }));
    no_store((StatusCode::OK, axum::Json(body)).into_response())
}

/// The claims of a live session (RFC 7662 §2.2; `act` from RFC 8693
/// §4.1 names the admin behind an impersonation session).
fn active(caller: &auth::Caller) -> Value {
    let mut claims = json!({
        "active": true,
        "sub": caller.user.id.to_string(),
        "sid": caller.session.id.to_string(),
        "username": caller.user.email,
        "exp": caller.session.expires_at.timestamp(),
        "iat": caller.session.created_at.timestamp(),
        "token_type": "session",
    });
    if let Some(admin) = caller.session.impersonator_id {
        claims["act"] = json!({ "sub": admin.to_string() });
    }
    claims
}

/// An answer about the token must not be cached (RFC 7662 §4).
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    no_store(
        (
            status,
            axum::Json(json!({ "error": error, "error_description": description })),
        )
            .into_response(),
    )
}

/// 401 or 403 with the RFC 6750 challenge.
fn challenge(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = oauth_error(status, error, description);
    let value = format!("Bearer error=\"{error}\", scope=\"sessions:check\"");
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn server_error() -> Response {
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the check failed; try again",
    )
}
