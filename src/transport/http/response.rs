//! How a GraphQL-over-HTTP answer is written: the media type the client
//! accepts, the status, and the body shapes that differ between
//! `application/json` and `application/graphql-response+json`.

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{error::AppError, graphql::limits, transport::is_request_error};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
pub(super) const JSON: &str = "application/json";

/// The media type a response is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MediaType {
    GraphqlResponse,
    Json,
}

impl MediaType {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            MediaType::GraphqlResponse => GRAPHQL_RESPONSE_JSON,
            MediaType::Json => "application/json; charset=utf-8",
        })
    }
}

/// The GraphQL response type when the client names it; `application/json`
/// when it names that, accepts anything (`*/*`, `application/*`) or sends
/// no `Accept` at all (GraphQL over HTTP: legacy clients get what they
/// always had). `None` when the client accepts neither (406).
pub(super) fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(MediaType::Json);
    };
    let types: Vec<&str> = accept
        .split(',')
        .filter(|part| {
            // `q=0` means "not acceptable".
            !part.split(';').skip(1).any(|p| {
                let p = p.trim().replace(' ', "");
                p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
            })
        })
        .map(|part| part.split(';').next().unwrap_or("").trim())
        .collect();
    let has = |t: &str| types.iter().any(|x| x.eq_ignore_ascii_case(t));
    if has(GRAPHQL_RESPONSE_JSON) {
        Some(MediaType::GraphqlResponse)
    } else if has(JSON) || has("*/*") || has("application/*") || accept.trim().is_empty() {
        Some(MediaType::Json)
    } else {
        None
    }
}

/// A response made of errors only, with a status.
pub(super) fn error_response(
    status: StatusCode,
    media: MediaType,
    code: &str,
    message: &str,
) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, media.header());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) fn not_acceptable() -> Response {
    let mut response = error_response(
        StatusCode::NOT_ACCEPTABLE,
        MediaType::Json,
        "BAD_USER_INPUT",
        "the response can be sent as application/graphql-response+json or application/json only",
    );
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

pub(super) fn too_deep_response(media: MediaType, too_deep: limits::TooDeep) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        media,
        "BAD_USER_INPUT",
        &too_deep.to_string(),
    )
}

pub(super) fn too_large(media: MediaType, limit: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        media,
        "BAD_USER_INPUT",
        &format!("the request body is over the limit of {limit} bytes"),
    )
}

/// A response with the GraphQL response type: one that could not run at
/// all (it did not parse or validate, or was refused before execution)
/// has no `data` entry, not even `null`, as GraphQL over HTTP asks.
pub(super) fn graphql_response_body(response: async_graphql::Response) -> serde_json::Value {
    let request_error = is_request_error(&response);
    let mut body = serde_json::to_value(response).unwrap_or_else(|err| {
        let err = AppError::internal(err);
        json!({ "errors": [{ "message": err.to_string(), "extensions": { "code": err.code() } }] })
    });
    if request_error && let Some(object) = body.as_object_mut() {
        object.remove("data");
    }
    body
}

pub(super) fn send_response(
    status: StatusCode,
    media: MediaType,
    response: async_graphql::Response,
) -> Response {
    if media == MediaType::GraphqlResponse && is_request_error(&response) {
        send(status, media, &graphql_response_body(response))
    } else {
        send(status, media, &response)
    }
}

pub(super) fn send(status: StatusCode, media: MediaType, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => send_bytes(status, media, bytes),
        Err(err) => {
            let err = AppError::internal(err);
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                media,
                err.code(),
                &err.to_string(),
            )
        }
    }
}

/// A body already written as JSON.
pub(super) fn send_bytes(status: StatusCode, media: MediaType, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, media.header());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Option<MediaType> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        negotiate(&headers)
    }

    #[test]
    fn the_response_type_follows_accept() {
        assert_eq!(
            negotiate(&HeaderMap::new()),
            Some(MediaType::Json),
            "no Accept"
        );
        assert_eq!(accept("application/json"), Some(MediaType::Json));
        assert_eq!(
            accept("application/json; charset=utf-8"),
            Some(MediaType::Json)
        );
        assert_eq!(
            accept("application/graphql-response+json"),
            Some(MediaType::GraphqlResponse)
        );
        assert_eq!(
            accept("application/graphql-response+json, application/json;q=0.9"),
            Some(MediaType::GraphqlResponse)
        );
        assert_eq!(accept("*/*"), Some(MediaType::Json));
        assert_eq!(accept("application/*"), Some(MediaType::Json));
        assert_eq!(
            accept("*/*, application/graphql-response+json"),
            Some(MediaType::GraphqlResponse)
        );
        assert_eq!(
            accept("application/graphql-response+json;q=0, application/json"),
            Some(MediaType::Json)
        );
        assert_eq!(accept("text/html"), None);
        assert_eq!(accept("image/png, text/plain"), None);
    }
}
