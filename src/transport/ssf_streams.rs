//! The Shared Signals stream-management API (SSF 1.0 §8.1) and the poll
//! endpoints (RFC 8936) over HTTP. Every request authenticates with an
//! API key holding `ssf:manage` (`Authorization: Bearer smk_…`, RFC
//! 6750): a missing, malformed, unknown or revoked key is `401`, a key
//! without the scope `403` (audited as a denial). Bad input is `400`, an
//! unknown stream `404`, a second stream for one audience `409`; each
//! with a JSON body `{"err": …, "description": …}` (the shape RFC 8935
//! §2.3 gives errors).

use std::{collections::HashSet, net::SocketAddr, time::Duration};

use axum::{
    body::Body,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use entity::api_key::{self, ApiScope};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{HttpState, request_meta};
use crate::{
    auth::{self, Credential, KeyCaller, RequestMeta},
    error::AppError,
    service::{
        self, access, denials,
        ssf::{
            poll,
            stream::{self, StreamError},
        },
    },
};

/// Longest a poll waits for events when it may (`returnImmediately`
/// false).
pub const LONG_POLL_WAIT: Duration = Duration::from_secs(15);
/// Long polls waiting at once in one process; past it, a poll answers at
/// once.
pub const MAX_LONG_POLLS: usize = 32;
/// Most acknowledgements one poll carries.
pub const MAX_ACKS: usize = 1_000;

fn error(status: StatusCode, err: &str, description: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({ "err": err, "description": description })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn challenge(status: StatusCode, err: &str, description: &str) -> Response {
    let mut response = error(status, err, description);
    let value = format!("Bearer error=\"{err}\", scope=\"ssf:manage\"");
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn app_error(e: AppError) -> Response {
    match e {
        AppError::BadInput { field, message } => error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("{field}: {message}"),
        ),
        AppError::NotFound(message) => error(StatusCode::NOT_FOUND, "not_found", &message),
        AppError::Forbidden(message) => error(StatusCode::FORBIDDEN, "access_denied", &message),
        AppError::Unauthenticated(_) => challenge(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "an API key with the scope ssf:manage is required",
        ),
        AppError::RateLimited { .. } => error(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "too many refused requests; wait",
        ),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the request failed; try again",
        ),
    }
}

fn stream_error(e: StreamError) -> Response {
    match e {
        StreamError::Conflict(message) => error(StatusCode::CONFLICT, "conflict", &message),
        StreamError::App(e) => app_error(e),
    }
}

/// The API key of the request, holding `ssf:manage`; else the answer.
async fn manager(
    http: &HttpState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(api_key::Model, RequestMeta), Response> {
    let app = &http.app;
    let key = match headers
        .get(header::AUTHORIZATION)
        .map(|v| auth::bearer_credential(v.as_bytes()))
    {
        Some(Ok(Credential::ApiKey(key))) => {
            service::api_key::authenticate(&app.db, &app.config, key).await
        }
        _ => Err(AppError::Unauthenticated(auth::BAD_API_KEY)),
    };
    let key = match key {
        Ok(key) => KeyCaller { key },
        Err(e) => return Err(app_error(e)),
    };
    let meta = request_meta(http, peer, headers);
    if !key.has(ApiScope::SsfManage) {
        let denials = denials::Denials::default();
        let refused = denials::deny_as(
            &app.denials,
            &denials,
            denials::Refused::Key(&key),
            &meta,
            access::Action::KeyOperation,
            None,
            None,
            AppError::Forbidden("SSF stream management needs the scope ssf:manage".into()),
        );
        denials::write_denials(&app.db, denials.take()).await;
        if matches!(refused, AppError::RateLimited { .. }) {
            return Err(app_error(refused));
        }
        return Err(challenge(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the API key lacks the scope ssf:manage",
        ));
    }
    Ok((key.key, meta))
}

/// The JSON object of the body (an empty body is `{}`).
async fn json_body(http: &HttpState, body: Body) -> Result<Value, Response> {
    let Ok(bytes) = axum::body::to_bytes(body, http.app.config.max_body_bytes).await else {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "the body is too large",
        ));
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be a JSON object",
        )),
    }
}

fn json_ok(status: StatusCode, value: Value) -> Response {
    let mut response = (status, axum::Json(value)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn query_id(query: &std::collections::HashMap<String, String>) -> Result<Option<Uuid>, AppError> {
    match query.get("stream_id") {
        None => Ok(None),
        Some(id) => stream::stream_id(Some(&Value::String(id.clone()))).map(Some),
    }
}

/// `/ssf/stream`: `GET` (one with `?stream_id=`, else all), `POST`
/// (create), `PATCH` (update), `PUT` (replace), `DELETE` (`?stream_id=`).
pub async fn configuration(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (key, meta) = match manager(&http, peer, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let app = &http.app;
    match method {
        Method::GET => match query_id(&query) {
            Err(e) => app_error(e),
            Ok(Some(id)) => match stream::get(&app.db, id).await {
                Ok(found) => json_ok(StatusCode::OK, found.configuration()),
                Err(e) => app_error(e),
            },
            Ok(None) => match stream::list(&app.db).await {
                Ok(all) => json_ok(
                    StatusCode::OK,
                    Value::Array(all.iter().map(stream::Stream::configuration).collect()),
                ),
                Err(e) => app_error(e),
            },
        },
        Method::POST => {
            let body = match json_body(&http, body).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let issuer = super::ssf_issuer(&http, &headers);
            match stream::create(&app.db, &app.config, &key, &issuer, &body, &meta).await {
                Ok(made) => json_ok(StatusCode::CREATED, made.configuration()),
                Err(e) => stream_error(e),
            }
        }
        Method::PATCH | Method::PUT => {
            let body = match json_body(&http, body).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let id = match stream::stream_id(body.get("stream_id")) {
                Ok(id) => id,
                Err(e) => return app_error(e),
            };
            let replace = method == Method::PUT;
            match stream::update(&app.db, &app.config, &key, id, &body, replace, &meta).await {
                Ok(changed) => json_ok(StatusCode::OK, changed.configuration()),
                Err(e) => stream_error(e),
            }
        }
        Method::DELETE => match query_id(&query) {
            Err(e) => app_error(e),
            Ok(None) => app_error(AppError::bad_input("stream_id", "stream_id is required")),
            Ok(Some(id)) => match stream::delete(&app.db, &key, id, &meta).await {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => app_error(e),
            },
        },
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "GET, POST, PATCH, PUT or DELETE",
        ),
    }
}

fn status_body(found: &stream::Stream) -> Value {
    let (status, reason) = found.status();
    let mut body = json!({ "stream_id": found.stream.id.to_string(), "status": status });
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    body
}

/// `/ssf/status`: `GET ?stream_id=`, `POST {stream_id, status, reason}`.
pub async fn status(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (key, meta) = match manager(&http, peer, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let app = &http.app;
    match method {
        Method::GET => match query_id(&query) {
            Err(e) => app_error(e),
            Ok(None) => app_error(AppError::bad_input("stream_id", "stream_id is required")),
            Ok(Some(id)) => match stream::get(&app.db, id).await {
                Ok(found) => json_ok(StatusCode::OK, status_body(&found)),
                Err(e) => app_error(e),
            },
        },
        Method::POST => {
            let body = match json_body(&http, body).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let id = match stream::stream_id(body.get("stream_id")) {
                Ok(id) => id,
                Err(e) => return app_error(e),
            };
            let status = body.get("status").cloned().unwrap_or(Value::Null);
            match stream::set_status(&app.db, &key, id, &status, body.get("reason"), &meta).await {
                Ok(found) => json_ok(StatusCode::OK, status_body(&found)),
                Err(e) => stream_error(e),
            }
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "GET or POST",
        ),
    }
}

async fn subject(
    http: HttpState,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Body,
    add: bool,
) -> Response {
    let (key, meta) = match manager(&http, peer, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let body = match json_body(&http, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let id = match stream::stream_id(body.get("stream_id")) {
        Ok(id) => id,
        Err(e) => return app_error(e),
    };
    match stream::change_subject(&http.app.db, &key, id, body.get("subject"), add, &meta).await {
        // SSF 1.0 §8.1.3.2: 200 for an add, 204 for a remove.
        Ok(()) if add => StatusCode::OK.into_response(),
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => stream_error(e),
    }
}

/// `POST /ssf/subjects:add {stream_id, subject}`.
pub async fn add_subject(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    subject(http, peer, headers, body, true).await
}

/// `POST /ssf/subjects:remove {stream_id, subject}`.
pub async fn remove_subject(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    subject(http, peer, headers, body, false).await
}

/// `POST /ssf/verify {stream_id, state}`: 204, and a verification SET
/// follows through the stream.
pub async fn verify(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (key, meta) = match manager(&http, peer, &headers).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let body = match json_body(&http, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let id = match stream::stream_id(body.get("stream_id")) {
        Ok(id) => id,
        Err(e) => return app_error(e),
    };
    match stream::request_verification(&http.app.db, &key, id, body.get("state"), &meta).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => stream_error(e),
    }
}

/// What a poll request asks (RFC 8936 §2.4).
struct PollRequest {
    acked: HashSet<String>,
    max: u64,
    immediately: bool,
}

fn poll_request(body: &Value) -> Result<PollRequest, AppError> {
    let mut acked = HashSet::new();
    let jti = |v: &Value, field: &'static str| -> Result<String, AppError> {
        match v.as_str() {
            Some(s) if !s.is_empty() && s.len() <= 64 => Ok(s.to_owned()),
            _ => Err(AppError::bad_input(
                field,
                "each jti must be a short string",
            )),
        }
    };
    match body.get("ack") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) if list.len() <= MAX_ACKS => {
            for item in list {
                acked.insert(jti(item, "ack")?);
            }
        }
        Some(_) => {
            return Err(AppError::bad_input(
                "ack",
                format!("ack must be a list of at most {MAX_ACKS} jtis"),
            ));
        }
    }
    match body.get("setErrs") {
        None | Some(Value::Null) => {}
        Some(Value::Object(errs)) if errs.len() <= MAX_ACKS => {
            for (key, value) in errs {
                acked.insert(jti(&Value::String(key.clone()), "setErrs")?);
                if !value.is_object() {
                    return Err(AppError::bad_input(
                        "setErrs",
                        "each setErrs entry must be {err, description}",
                    ));
                }
                tracing::info!(jti = %key, error = %value, "ssf: a receiver could not process a SET");
            }
        }
        Some(_) => {
            return Err(AppError::bad_input(
                "setErrs",
                format!("setErrs must be an object of at most {MAX_ACKS} entries"),
            ));
        }
    }
    let max = match body.get("maxEvents") {
        None | Some(Value::Null) => poll::MAX_EVENTS,
        Some(v) => v.as_u64().ok_or_else(|| {
            AppError::bad_input("maxEvents", "maxEvents must be a whole number ≥ 0")
        })?,
    };
    let immediately = match body.get("returnImmediately") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(AppError::bad_input(
                "returnImmediately",
                "returnImmediately must be true or false",
            ));
        }
    };
    Ok(PollRequest {
        acked,
        max,
        immediately: immediately || max == 0,
    })
}

/// `POST /ssf/poll/{stream_id}` (RFC 8936): acknowledges, then answers
/// `{sets: {jti: SET}, moreAvailable}`; with nothing to answer and
/// `returnImmediately` false it waits for events, at most
/// [`LONG_POLL_WAIT`], and only while fewer than [`MAX_LONG_POLLS`] wait.
pub async fn poll(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(response) = manager(&http, peer, &headers).await {
        return response;
    }
    let Ok(id) = Uuid::parse_str(&id) else {
        return app_error(AppError::NotFound("stream not found".into()));
    };
    let body = match json_body(&http, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request = match poll_request(&body) {
        Ok(request) => request,
        Err(e) => return app_error(e),
    };
    let app = &http.app;
    // Subscribed before the first look, so an event committed in between
    // still wakes the wait.
    let mut wake = app.events.subscribe();
    let mut answer = match poll::poll(&app.db, &app.ssf_keys, id, &request.acked, request.max).await
    {
        Ok(answer) => answer,
        Err(e) => return app_error(e),
    };
    if answer.sets.is_empty()
        && !request.immediately
        && let Ok(_permit) = http.ssf_long_polls.clone().try_acquire_owned()
    {
        let deadline = tokio::time::Instant::now() + LONG_POLL_WAIT;
        let none = HashSet::new();
        loop {
            match tokio::time::timeout_at(deadline, wake.recv()).await {
                Err(_) => break,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => break,
                Ok(_) => {}
            }
            // One look for every event come meanwhile.
            while wake.try_recv().is_ok() {}
            answer = match poll::poll(&app.db, &app.ssf_keys, id, &none, request.max).await {
                Ok(answer) => answer,
                Err(e) => return app_error(e),
            };
            if !answer.sets.is_empty() {
                break;
            }
        }
    }
    let sets: Map<String, Value> = answer
        .sets
        .into_iter()
        .map(|(jti, set)| (jti, Value::String(set)))
        .collect();
    json_ok(
        StatusCode::OK,
        json!({ "sets": sets, "moreAvailable": answer.more_available }),
    )
}
