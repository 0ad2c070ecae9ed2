//! GraphQL over HTTP, as graphql.github.io/graphql-over-http asks:
//! `POST` with `application/json` bodies (others are refused, which also
//! closes the text/plain CSRF hole), `GET` for queries only, responses as
//! `application/graphql-response+json` unless the client accepts only
//! `application/json`, and 4xx for requests that cannot run. Batches are
//! capped and run one operation after another, and the cost limits apply
//! to a batch as a whole.

mod response;

use std::{net::SocketAddr, sync::Arc, time::Instant};

use async_graphql::{BatchRequest, Pos, Request, parser::types::OperationType};
use axum::{
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::Response,
};

use crate::{
    auth::{self, Credential, KeyCaller, Principal, RequestMeta},
    error::{AppError, AppResult},
    graphiql, graphql,
    graphql::{
        documents::{Documents, Parsed},
        limits::{self, MAX_NESTING},
    },
    service,
};

use super::{HttpState, code_uncoded_errors, is_request_error, request_meta};
use response::{
    JSON, MediaType, error_response, graphql_response_body, negotiate, not_acceptable, send,
    send_bytes, send_response, too_deep_response, too_large,
};

/// `POST /graphql`.
pub async fn post(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // On the heap: the executor's future is large, and every layer around
    // the handler would otherwise move it (measured: more instructions
    // than the token check).
    Box::pin(post_boxed(http, peer, headers, body)).await
}

async fn post_boxed(http: HttpState, peer: SocketAddr, headers: HeaderMap, body: Body) -> Response {
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

/// `GET /graphql`: GraphiQL for a browser, queries for other clients;
/// mutations are refused with 405.
pub async fn get(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    // On the heap, as for `post`.
    Box::pin(get_boxed(http, peer, headers, uri)).await
}

async fn get_boxed(http: HttpState, peer: SocketAddr, headers: HeaderMap, uri: Uri) -> Response {
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

async fn execute(
    http: &HttpState,
    peer: SocketAddr,
    headers: &HeaderMap,
    media: MediaType,
    batch: BatchRequest,
) -> Response {
    let config = &http.app.config;
    let (requests, is_batch) = match batch {
        BatchRequest::Single(request) => (vec![request], false),
        BatchRequest::Batch(requests) => {
            if requests.len() > config.max_batch {
                let message = format!(
                    "a batch may hold at most {} operations (MAX_BATCH); this one has {}",
                    config.max_batch,
                    requests.len()
                );
                return error_response(StatusCode::BAD_REQUEST, media, "BAD_USER_INPUT", &message);
            }
            (requests, true)
        }
    };
    // Awaited in one place: each await of it would hold a future of its own.
    execute_many(http, peer, headers, media, requests, is_batch).await
}

async fn execute_many(
    http: &HttpState,
    peer: SocketAddr,
    headers: &HeaderMap,
    media: MediaType,
    requests: Vec<Request>,
    is_batch: bool,
) -> Response {
    let config = &http.app.config;
    let metrics = &http.app.metrics;

    // The cost limit holds for the batch as a whole. Each document is
    // parsed here, once (see `Documents`), and handed to the executor
    // below if it runs there.
    let documents = match requests
        .iter()
        .map(|request| http.documents.parse(&request.query))
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

    let meta = request_meta(http, peer, headers);
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

    // One operation of a signed-in user that `graphql::fast` answers: the
    // same bytes as the executor's, without it. `None` from it (nothing
    // written) leaves the request to the executor.
    if let ([request], [Some(parsed)], Some(Principal::User(caller))) =
        (requests.as_slice(), documents.as_slice(), &caller)
        && let Some(plan) = parsed.fast_plan(request)
    {
        let started = Instant::now();
        if let Some(body) = graphql::fast::run(plan, &http.app, caller, &meta).await {
            metrics.observe_request(request.operation_name.as_deref(), true, started.elapsed());
            crate::metrics::Metrics::inc(&metrics.graphql_fast_answers);
            return send_bytes(StatusCode::OK, media, body);
        }
    }

    // On the heap, and only here: the executor's futures are many
    // kilobytes, and held inline they made this whole handler's future
    // that large, copied at every move even for the requests answered
    // above (measured: a tenth of W4's instructions were those copies).
    Box::pin(on_executor(
        http, meta, caller, requests, documents, media, is_batch,
    ))
    .await
}

/// The rest of [`execute_many`]: the requests run on async-graphql's
/// executor, one after another, and their answer.
async fn on_executor(
    http: &HttpState,
    meta: RequestMeta,
    caller: Option<Principal>,
    requests: Vec<Request>,
    documents: Vec<Option<Arc<Parsed>>>,
    media: MediaType,
    is_batch: bool,
) -> Response {
    let metrics = &http.app.metrics;
    // Shared by the batch's entries: a session ended by one ends for the
    // rest, and refusals are audited once for the whole request.
    let scope = graphql::RequestScope::new(&http.app);
    let mut responses = Vec::with_capacity(requests.len());
    for (mut request, parsed) in requests.into_iter().zip(documents) {
        let started = Instant::now();
        if let Some(parsed) = &parsed {
            request.set_parsed_query(parsed.document.clone());
        }
        let operation = request.operation_name.clone();
        let validated = parsed.as_ref().is_some_and(|p| p.validated(&request));
        let (user, key) = match caller.clone() {
            Some(Principal::User(user)) => (Some(user), None),
            Some(Principal::Key(key)) => (None, Some(key)),
            None => (None, None),
        };
        let mut request =
            graphql::request_data(request, &http.app, user, meta.clone(), &scope).await;
        if let Some(key) = key {
            request = request.data(key);
        }
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

/// The caller from `Authorization: Bearer`, once per request: a session
/// or an API key (`smk_…`). No header is anonymous; a header that does not
/// name a live session or key is an error.
async fn resolve_caller(http: &HttpState, headers: &HeaderMap) -> AppResult<Option<Principal>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let (db, config) = (&http.app.db, &http.app.config);
    match auth::bearer_credential(value.as_bytes())? {
        Credential::Session(token) => service::session::authenticate(db, config, token)
            .await
            .map(|user| Some(Principal::User(user))),
        // Boxed: rarer, and its future would make every request's larger.
        Credential::ApiKey(key) => Box::pin(service::api_key::authenticate(db, config, key))
            .await
            .map(|key| Some(Principal::Key(KeyCaller { key }))),
    }
}
