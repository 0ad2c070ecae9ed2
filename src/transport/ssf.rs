//! The Shared Signals documents over HTTP: `GET
//! /.well-known/ssf-configuration` (the transmitter's metadata, SSF 1.0
//! §7.1) and `GET /jwks.json` (the keys its SETs are signed with). Both are
//! public, as a receiver reads them before it holds any credential.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};

use super::{HttpState, ssf_issuer as issuer};
use crate::service::ssf;

/// `GET /.well-known/ssf-configuration`.
pub async fn configuration(State(http): State<HttpState>, headers: HeaderMap) -> Response {
    let issuer = issuer(&http, &headers);
    cached(Json(ssf::configuration(&issuer)).into_response())
}

/// `GET /jwks.json`.
pub async fn jwks(State(http): State<HttpState>) -> Response {
    let mut response = Json(http.app.ssf_keys.jwks()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    cached(response)
}

/// Receivers may keep the documents a few minutes (a rotation restarts the
/// server and keeps the old key published meanwhile).
fn cached(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
