//! GraphQL over HTTP, as graphql.github.io/graphql-over-http asks:
//! `POST` with `application/json` bodies (others are refused, which also
//! closes the text/plain CSRF hole), `GET` for queries only, responses as
//! `application/graphql-response+json` unless the client accepts only
//! `application/json`, and 4xx for requests that cannot run. Batches are
//! capped and run one operation after another, and the cost limits apply
//! to a batch as a whole.

use std::{net::SocketAddr, time::Instant};

use async_graphql::{BatchRequest, Pos, Request, ServerError, parser::types::OperationType};
use axum::{
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    auth::{self, Caller, RequestMeta},
    error::{AppError, AppResult},
    graphiql, graphql,
    graphql::{
        documents::Documents,
        limits::{self, MAX_NESTING},
    },
    service,
    startup::HttpState,
};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// The media type a response is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
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
fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
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
fn error_response(status: StatusCode, media: MediaType, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, media.header());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn not_acceptable() -> Response {
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

/// `POST /graphql`.
pub async fn post(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(media) = negotiate(&headers) else {
        return not_acceptable();
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(JSON) {
        let mut response = error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            "BAD_USER_INPUT",
            "the request body must be application/json",
        );
        response
            .headers_mut()
            .insert(header::ACCEPT, HeaderValue::from_static(JSON));
        return response;
    }
    let limit = http.app.config.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large(media, limit);
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => return too_large(media, limit),
    };
    // Before any recursive parser sees it (the batch's array and each
    // request's object count as levels too).
    if let Err(too_deep) = limits::json_nesting(&bytes, MAX_NESTING) {
        return too_deep_response(media, too_deep);
    }
    let batch: BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(batch) => batch,
        Err(err) => {
            let message = format!("the body is not a GraphQL request in JSON: {err}");
            return error_response(StatusCode::BAD_REQUEST, media, "BAD_USER_INPUT", &message);
        }
    };
    execute(&http, peer, &headers, media, batch).await
}

fn too_deep_response(media: MediaType, too_deep: limits::TooDeep) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        media,
        "BAD_USER_INPUT",
        &too_deep.to_string(),
    )
}

fn too_large(media: MediaType, limit: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        media,
        "BAD_USER_INPUT",
        &format!("the request body is over the limit of {limit} bytes"),
    )
}

/// `GET /graphql`: GraphiQL for a browser, queries for other clients;
/// mutations are refused with 405.
pub async fn get(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = uri.query().unwrap_or("");
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if query.is_empty() && wants_html && http.app.config.graphiql {
        return graphiql::page();
    }
    let Some(media) = negotiate(&headers) else {
        return not_acceptable();
    };
    let request = match parse_get(query) {
        Ok(request) => request,
        Err(message) => {
            return error_response(StatusCode::BAD_REQUEST, media, "BAD_USER_INPUT", &message);
        }
    };
    if is_mutation(&http.documents, &request) {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            media,
            "BAD_USER_INPUT",
            "mutations must be sent with POST",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    execute(&http, peer, &headers, media, BatchRequest::Single(request)).await
}

/// The parameters of a GET request. (async-graphql's own parser reads
/// `operation_name` where the spec says `operationName`.)
fn parse_get(query: &str) -> Result<Request, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params {
        query: Option<String>,
        operation_name: Option<String>,
        variables: Option<String>,
        extensions: Option<String>,
    }
    let params: Params =
        serde_urlencoded::from_str(query).map_err(|e| format!("unreadable query string: {e}"))?;
    let document = params.query.filter(|q| !q.trim().is_empty()).ok_or(
        "a GET request needs a `query` parameter (and optional `variables`, `operationName`)",
    )?;
    for json in [&params.variables, &params.extensions]
        .into_iter()
        .flatten()
    {
        limits::json_nesting(json.as_bytes(), MAX_NESTING).map_err(|e| e.to_string())?;
    }
    let mut request = Request::new(document);
    request.operation_name = params.operation_name;
    if let Some(variables) = params.variables {
        let value: serde_json::Value = serde_json::from_str(&variables)
            .map_err(|e| format!("`variables` is not JSON: {e}"))?;
        request.variables = async_graphql::Variables::from_json(value);
    }
    if let Some(extensions) = params.extensions {
        request.extensions = serde_json::from_str(&extensions)
            .map_err(|e| format!("`extensions` is not a JSON object: {e}"))?;
    }
    Ok(request)
}

/// Whether the operation a request would run is a mutation (or a
/// subscription): not allowed over GET.
fn is_mutation(documents: &Documents, request: &Request) -> bool {
    let Ok(Some(parsed)) = documents.parse(&request.query) else {
        return false; // the parse error is reported by the normal path
    };
    parsed
        .document
        .operations
        .iter()
        .find(|(name, _)| match &request.operation_name {
            Some(wanted) => name.is_some_and(|n| n.as_str() == wanted),
            None => true,
        })
        .is_some_and(|(_, op)| op.node.ty != OperationType::Query)
}

/// The client's address: the socket's, or with `TRUST_FORWARDED_FOR` the
/// last `X-Forwarded-For` entry (the one the trusted proxy appended).
pub(crate) fn client_ip(http: &HttpState, peer: SocketAddr, headers: &HeaderMap) -> String {
    if http.app.config.trust_forwarded_for
        && let Some(forwarded) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
    {
        return forwarded.to_owned();
    }
    peer.ip().to_string()
}

async fn execute(
    http: &HttpState,
    peer: SocketAddr,
    headers: &HeaderMap,
    media: MediaType,
    batch: BatchRequest,
) -> Response {
    let config = &http.app.config;
    let requests = match batch {
        BatchRequest::Single(request) => vec![request],
        BatchRequest::Batch(requests) => {
            if requests.len() > config.max_batch {
                let message = format!(
                    "a batch may hold at most {} operations (MAX_BATCH); this one has {}",
                    config.max_batch,
                    requests.len()
                );
                return error_response(StatusCode::BAD_REQUEST, media, "BAD_USER_INPUT", &message);
            }
            return execute_many(http, peer, headers, media, requests, true).await;
        }
    };
    execute_many(http, peer, headers, media, requests, false).await
}

async fn execute_many(
    http: &HttpState,
    peer: SocketAddr,
    headers: &HeaderMap,
    media: MediaType,
    mut requests: Vec<Request>,
    is_batch: bool,
) -> Response {
    let config = &http.app.config;
    let metrics = &http.app.metrics;

    // The cost limit holds for the batch as a whole. Each document is
    // parsed here, once (see `Documents`).
    let documents = match requests
        .iter_mut()
        .map(|request| http.documents.prepare(request))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(documents) => documents,
        Err(too_deep) => return too_deep_response(media, too_deep),
    };
    let fields: usize = documents.iter().flatten().map(|parsed| parsed.fields).sum();
    if fields > config.max_query_fields {
        let message = format!(
            "the request selects more than {} fields (MAX_QUERY_FIELDS; aliases, __typename and fragment spreads count)",
            config.max_query_fields
        );
        return error_response(StatusCode::BAD_REQUEST, media, "BAD_USER_INPUT", &message);
    }

    let meta = RequestMeta::new(
        Some(&client_ip(http, peer, headers)),
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    let caller = match resolve_caller(http, headers).await {
        Ok(caller) => caller,
        Err(err) => {
            let status = match (&err, media) {
                (AppError::Unauthenticated(_), MediaType::GraphqlResponse) => {
                    StatusCode::UNAUTHORIZED
                }
                (_, MediaType::GraphqlResponse) => StatusCode::INTERNAL_SERVER_ERROR,
                (_, MediaType::Json) => StatusCode::OK,
            };
            let mut error = err.extend().into_server_error(Pos::default());
            // The error is about the request, not a place in the document.
            error.locations.clear();
            let mut response = send_response(
                status,
                media,
                async_graphql::Response::from_errors(vec![error]),
            );
            if status == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            return response;
        }
    };

    // Shared by the batch's entries: a session ended by one ends for the
    // rest, and refusals are audited once for the whole request.
    let scope = graphql::RequestScope::new(&http.app);
    let mut responses = Vec::with_capacity(requests.len());
    for (request, parsed) in requests.into_iter().zip(documents) {
        let started = Instant::now();
        let operation = request.operation_name.clone();
        let validated = parsed.as_ref().is_some_and(|p| p.validated(&request));
        let request =
            graphql::request_data(request, &http.app, caller.clone(), meta.clone(), &scope).await;
        let mut response = if validated {
            http.validated_schema.execute(request).await
        } else {
            http.schema.execute(request).await
        };
        if let Some(parsed) = parsed.filter(|_| !validated && !is_request_error(&response)) {
            parsed.passed_validation(operation.clone());
        }
        code_uncoded_errors(&mut response.errors);
        metrics.observe_request(
            operation.as_deref(),
            response.errors.is_empty(),
            started.elapsed(),
        );
        responses.push(response);
    }
    scope.finish().await;

    if is_batch {
        if media == MediaType::GraphqlResponse && responses.iter().any(is_request_error) {
            let bodies: Vec<_> = responses.into_iter().map(graphql_response_body).collect();
            return send(StatusCode::OK, media, &bodies);
        }
        let body = async_graphql::BatchResponse::Batch(responses);
        return send(StatusCode::OK, media, &body);
    }
    let response = responses.pop().expect("one request");
    // A request that could not run at all (it did not parse or validate)
    // is a client error; with the GraphQL response type it says so in the
    // status too.
    let status = if media == MediaType::GraphqlResponse && is_request_error(&response) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    send_response(status, media, response)
}

/// A response with the GraphQL response type: one that could not run at
/// all (it did not parse or validate, or was refused before execution)
/// has no `data` entry, not even `null`, as GraphQL over HTTP asks.
fn graphql_response_body(response: async_graphql::Response) -> serde_json::Value {
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

fn send_response(
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

/// No data and no error tied to a field: parsing, validation or variable
/// coercion failed, so nothing ran.
pub(crate) fn is_request_error(response: &async_graphql::Response) -> bool {
    !response.errors.is_empty()
        && response.data == async_graphql::Value::Null
        && response.errors.iter().all(|e| e.path.is_empty())
}

fn send(status: StatusCode, media: MediaType, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = (status, bytes).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, media.header());
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
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

/// The caller from `Authorization: Bearer`, once per request. No header is
/// anonymous; a header that does not name a live session is an error.
async fn resolve_caller(http: &HttpState, headers: &HeaderMap) -> AppResult<Option<Caller>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = auth::bearer_token(value.as_bytes())?;
    service::session::authenticate(&http.app.db, &http.app.config, token)
        .await
        .map(Some)
}

/// async-graphql's own parse, validation, limit and input-coercion errors
/// carry no `extensions.code`; they are all the client's mistakes. Errors
/// made by this server always have one already (see [`AppError`]).
pub(crate) fn code_uncoded_errors(errors: &mut [ServerError]) {
    for error in errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", "BAD_USER_INPUT");
        }
    }
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
