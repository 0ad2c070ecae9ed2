//! GraphQL subscriptions over WebSocket with the graphql-transport-ws
//! protocol (github.com/enisdenjo/graphql-ws, PROTOCOL.md), at
//! `/graphql/ws`.
//!
//! Written here rather than taken from async-graphql-axum, which closes a
//! refused `connection_init` with 1002 instead of the protocol's 4403 and
//! cannot end a socket when its session is revoked. Here:
//! - the caller authenticates in `connection_init` with
//!   `{"authorization": "Bearer <token>"}`; a missing or bad token closes
//!   with 4403, no `connection_init` in time with 4408;
//! - a socket never outlives its session: when the session is revoked
//!   (seen on the event stream) or expires, every running operation gets a
//!   final `error` saying why and the socket closes with 4403;
//! - a subscriber that falls too far behind is closed with 1013;
//! - sockets per user and operations per socket are limited;
//! - an upgrade from a browser page of another origin (neither this server
//!   nor one of `CORS_ORIGINS`) is refused with 403: a page elsewhere must
//!   not open a socket with a token it got hold of (requests without
//!   `Origin` come from non-browser clients and are allowed);
//! - a message over `MAX_BODY_BYTES` closes the socket with 1009 before it
//!   is read whole; a message or document nested too deep is refused
//!   before anything parses it (see [`crate::graphql::limits`]);
//! - a subscription selects exactly one root field.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use async_graphql::{Request, Variables, parser::types::OperationType};
use axum::{
    extract::{
        ConnectInfo, State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{
    auth::{self, Caller, RequestMeta},
    error::AppError,
    graphql::{
        self,
        limits::{self, MAX_NESTING},
    },
    service::{audit::events, session as sessions},
    startup::HttpState,
};

const PROTOCOL: &str = "graphql-transport-ws";
/// How long a send to a client may wait before it counts as too slow.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /graphql/ws`.
pub async fn upgrade(
    State(http): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origin_allowed(&http.app.config.cors_origins, &headers, origin)
    {
        let body = json!({ "errors": [{
            "message": "subscriptions are open to this server's pages and CORS_ORIGINS only",
            "extensions": { "code": "FORBIDDEN" },
        }] });
        let mut response = (StatusCode::FORBIDDEN, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        return response;
    }
    let limit = http.app.config.max_body_bytes;
    let meta = RequestMeta::new(
        Some(&crate::http::client_ip(&http, peer, &headers)),
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    ws.protocols([PROTOCOL])
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| connection(http, socket, meta, limit))
}

/// A browser's `Origin` is this server's own (its authority is the `Host`
/// the request was sent to) or one of `CORS_ORIGINS`.
fn origin_allowed(cors_origins: &[String], headers: &HeaderMap, origin: &HeaderValue) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    if cors_origins
        .iter()
        .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    matches!((authority, host), (Some(a), Some(h)) if !a.is_empty() && a.eq_ignore_ascii_case(h))
}

/// Why a socket is closed.
struct Close(u16, String);

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self(code, reason.into())
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {
        #[serde(default)]
        payload: Option<Value>,
    },
    Pong {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Value>,
    },
    Subscribe {
        id: String,
        payload: SubscribePayload,
    },
    Complete {
        id: String,
    },
    /// A `subscribe` refused before it was read in full (it nests too
    /// deep): answered with an `error` for its id.
    #[serde(skip)]
    Refused {
        id: String,
        message: String,
    },
}

/// Just enough of a message to answer it when it cannot be read in full.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscribePayload {
    query: String,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<Value>,
    #[serde(default)]
    extensions: Option<serde_json::Map<String, Value>>,
}

fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

async fn connection(http: HttpState, socket: WebSocket, meta: RequestMeta, limit: usize) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut outbox) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
    });

    if let Some(Close(code, reason)) = serve(&http, &mut stream, &out, meta, limit).await {
        tracing::debug!(code, %reason, "closing subscription socket");
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(1), out.send(frame)).await;
    }
    drop(out);
    if tokio::time::timeout(Duration::from_secs(2), writer)
        .await
        .is_err()
    {
        tracing::debug!("subscription socket writer did not finish; dropped");
    }
}

type Incoming = futures_util::stream::SplitStream<WebSocket>;

/// Reads the next protocol message; `Err` closes the socket.
async fn next_message(stream: &mut Incoming, limit: usize) -> Result<Option<ClientMessage>, Close> {
    loop {
        match stream.next().await {
            // The reader refuses a message over the limit before reading it
            // whole (`max_message_size`); the socket closes saying why.
            Some(Err(err)) if err.to_string().contains("Message too long") => {
                return Err(Close::new(
                    1009,
                    format!("message over the limit of {limit} bytes (MAX_BODY_BYTES)"),
                ));
            }
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(None),
            Some(Ok(Message::Text(text))) => {
                let text = text.as_str();
                if let Err(too_deep) = limits::json_nesting(text.as_bytes(), MAX_NESTING) {
                    // serde_json stops at 128 levels, so the envelope is
                    // safe to read (or fails) however deep the rest is.
                    return match serde_json::from_str::<Envelope>(text) {
                        Ok(Envelope { kind, id: Some(id) }) if kind == "subscribe" => {
                            Ok(Some(ClientMessage::Refused {
                                id,
                                message: too_deep.to_string(),
                            }))
                        }
                        _ => Err(Close::new(
                            4400,
                            format!("Invalid message received: {too_deep}"),
                        )),
                    };
                }
                return serde_json::from_str(text)
                    .map(Some)
                    .map_err(|_| Close::new(4400, "Invalid message received"));
            }
            Some(Ok(Message::Binary(_))) => {
                return Err(Close::new(4400, "Binary messages are not supported"));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
        }
    }
}

/// Runs the protocol; returns how to close, or `None` when the client left.
async fn serve(
    http: &HttpState,
    stream: &mut Incoming,
    out: &mpsc::Sender<Message>,
    meta: RequestMeta,
    limit: usize,
) -> Option<Close> {
    let config = &http.app.config;

    // connection_init, within the time allowed.
    let init = tokio::time::timeout(config.ws_init_timeout, async {
        loop {
            match next_message(stream, limit).await {
                Ok(Some(ClientMessage::ConnectionInit { payload })) => return Ok(Some(payload)),
                Ok(Some(ClientMessage::Ping { .. })) => {
                    let _ = out.send(text(json!({ "type": "pong" }))).await;
                }
                Ok(Some(ClientMessage::Pong { .. })) => {}
                Ok(Some(
                    ClientMessage::Subscribe { .. }
                    | ClientMessage::Complete { .. }
                    | ClientMessage::Refused { .. },
                )) => {
                    return Err(Close::new(4401, "Unauthorized"));
                }
                Ok(None) => return Ok(None),
                Err(close) => return Err(close),
            }
        }
    })
    .await;
    let payload = match init {
        Err(_) => return Some(Close::new(4408, "Connection initialisation timeout")),
        Ok(Err(close)) => return Some(close),
        Ok(Ok(None)) => return None,
        Ok(Ok(Some(payload))) => payload,
    };
    let caller = match authenticate(http, payload.as_ref()).await {
        Ok(caller) => caller,
        Err(reason) => return Some(Close::new(4403, format!("Forbidden: {reason}"))),
    };
    let Some(_slot) = http
        .app
        .events
        .open_connection(caller.user.id, config.max_ws_connections_per_user)
    else {
        return Some(Close::new(
            4403,
            "Forbidden: too many open connections for this user",
        ));
    };
    if out
        .send(text(json!({ "type": "connection_ack" })))
        .await
        .is_err()
    {
        return None;
    }

    let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let (finished_tx, mut finished) = mpsc::unbounded_channel::<(String, bool)>();
    let mut watch = http.app.events.subscribe();
    let mut expires_at = caller.session.expires_at;

    let close = loop {
        let until_expiry = (expires_at - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        tokio::select! {
            message = next_message(stream, limit) => match message {
                Ok(None) => break None,
                Err(close) => break Some(close),
                Ok(Some(ClientMessage::ConnectionInit { .. })) => {
                    break Some(Close::new(4429, "Too many initialisation requests"));
                }
                Ok(Some(ClientMessage::Ping { payload })) => {
                    let mut pong = json!({ "type": "pong" });
                    if let Some(payload) = payload {
                        pong["payload"] = payload;
                    }
                    if out.send(text(pong)).await.is_err() {
                        break None;
                    }
                }
                Ok(Some(ClientMessage::Pong { .. })) => {}
                Ok(Some(ClientMessage::Refused { id, message })) => {
                    if out.send(error_message(&id, "BAD_USER_INPUT", &message)).await.is_err() {
                        break None;
                    }
                }
                Ok(Some(ClientMessage::Complete { id })) => {
                    if let Some(task) = running.remove(&id) {
                        task.abort();
                    }
                }
                Ok(Some(ClientMessage::Subscribe { id, payload })) => {
                    running.retain(|_, task| !task.is_finished());
                    if running.contains_key(&id) {
                        break Some(Close::new(4409, format!("Subscriber for {id} already exists")));
                    }
                    if running.len() >= config.max_subscriptions_per_connection {
                        let message = format!(
                            "at most {} operations may run on one connection",
                            config.max_subscriptions_per_connection
                        );
                        let _ = out.send(error_message(&id, "RATE_LIMITED", &message)).await;
                        continue;
                    }
                    let task = start_operation(http, &caller, &meta, id.clone(), payload, out.clone(), finished_tx.clone());
                    running.insert(id, task);
                }
            },
            event = watch.recv() => match event {
                Ok(event) => {
                    if event.event_type == events::SESSION_REVOKED && event.session_id == Some(caller.session.id) {
                        end_all(&mut running, out, "your session was revoked").await;
                        break Some(Close::new(4403, "Forbidden: session revoked"));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Events were missed here: ask the database instead.
                    match sessions::live_session(&http.app.db, caller.session.id).await {
                        Ok(Some(session)) => expires_at = session.expires_at,
                        _ => {
                            end_all(&mut running, out, "your session has ended").await;
                            break Some(Close::new(4403, "Forbidden: session ended"));
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    break Some(Close::new(1001, "server shutting down"));
                }
            },
            () = tokio::time::sleep(until_expiry) => {
                // Activity over HTTP may have moved the expiry on.
                match sessions::live_session(&http.app.db, caller.session.id).await {
                    Ok(Some(session)) if session.expires_at > expires_at => expires_at = session.expires_at,
                    _ => {
                        end_all(&mut running, out, "your session has expired").await;
                        break Some(Close::new(4403, "Forbidden: session expired"));
                    }
                }
            },
            Some((id, too_slow)) = finished.recv() => {
                running.remove(&id);
                if too_slow {
                    break Some(Close::new(1013, "subscriber too slow: events were dropped"));
                }
            },
        }
    };
    for task in running.into_values() {
        task.abort();
    }
    close
}

async fn authenticate(http: &HttpState, payload: Option<&Value>) -> Result<Caller, &'static str> {
    let header = payload
        .and_then(|p| p.get("authorization").or_else(|| p.get("Authorization")))
        .and_then(Value::as_str)
        .ok_or("connection_init must carry {\"authorization\": \"Bearer <token>\"}")?;
    let token = auth::bearer_token(header.as_bytes()).map_err(|_| crate::error::BAD_TOKEN)?;
    sessions::authenticate(&http.app.db, &http.app.config, token)
        .await
        .map_err(|err| match err {
            AppError::Unauthenticated(_) => crate::error::BAD_TOKEN,
            _ => "the session could not be checked",
        })
}

fn error_message(id: &str, code: &str, message: &str) -> Message {
    text(json!({
        "id": id,
        "type": "error",
        "payload": [{ "message": message, "extensions": { "code": code } }],
    }))
}

/// Tells every running operation why it ends.
async fn end_all(
    running: &mut HashMap<String, tokio::task::JoinHandle<()>>,
    out: &mpsc::Sender<Message>,
    why: &str,
) {
    for (id, task) in running.drain() {
        task.abort();
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            out.send(error_message(&id, "UNAUTHENTICATED", why)),
        )
        .await;
    }
}

/// Runs one operation and forwards its results until it ends.
fn start_operation(
    http: &HttpState,
    caller: &Caller,
    meta: &RequestMeta,
    id: String,
    payload: SubscribePayload,
    out: mpsc::Sender<Message>,
    finished: mpsc::UnboundedSender<(String, bool)>,
) -> tokio::task::JoinHandle<()> {
    let config = http.app.config.clone();
    let schema = http.schema.clone();
    let documents = http.documents.clone();
    let app = http.app.clone();
    let (caller, meta) = (caller.clone(), meta.clone());
    tokio::spawn(async move {
        let mut request = Request::new(payload.query);
        request.operation_name = payload.operation_name;
        let refusal = match documents.prepare(&mut request) {
            Err(too_deep) => Some(too_deep.to_string()),
            Ok(Some(parsed)) if parsed.fields > config.max_query_fields => Some(format!(
                "the operation selects more than {} fields",
                config.max_query_fields
            )),
            Ok(Some(parsed)) => not_one_root_field(&parsed.document, &request),
            Ok(None) => None,
        };
        if let Some(message) = refusal {
            let _ = out
                .send(error_message(&id, "BAD_USER_INPUT", &message))
                .await;
            let _ = finished.send((id, false));
            return;
        }
        // The socket's session was checked at `connection_init`, and its
        // revocation closes the socket once the event arrives; an operation
        // read before then (or a revocation the event stream has not
        // carried yet, e.g. from another replica) must not run as it, and
        // it runs with the account's role as it is now. One indexed read
        // per operation started.
        let caller = match sessions::live_caller(&app.db, caller.session.id).await {
            Ok(Some(caller)) => caller,
            _ => {
                let _ = out
                    .send(error_message(
                        &id,
                        "UNAUTHENTICATED",
                        crate::error::BAD_TOKEN,
                    ))
                    .await;
                let _ = finished.send((id, false));
                return;
            }
        };
        if let Some(variables) = payload.variables {
            request.variables = Variables::from_json(variables);
        }
        if let Some(extensions) = payload.extensions
            && let Ok(extensions) = serde_json::from_value(Value::Object(extensions))
        {
            request.extensions = extensions;
        }
        let scope = graphql::RequestScope::new(&app);
        let request = graphql::request_data(request, &app, Some(caller), meta, &scope).await;
        let mut responses = schema.execute_stream(request);
        let mut first = true;
        while let Some(mut response) = responses.next().await {
            // Refusals are audited before the client hears of them.
            scope.finish().await;
            crate::http::code_uncoded_errors(&mut response.errors);
            // A request that cannot run at all is answered with `error`.
            if first && crate::http::is_request_error(&response) {
                let _ = out
                    .send(text(
                        json!({ "id": id, "type": "error", "payload": response.errors }),
                    ))
                    .await;
                let _ = finished.send((id, false));
                return;
            }
            first = false;
            let lagged = response.errors.iter().any(|e| {
                e.extensions
                    .as_ref()
                    .and_then(|x| x.get("reason"))
                    .is_some_and(|r| *r == async_graphql::Value::from("subscriber_lagged"))
            });
            let message = text(json!({ "id": id, "type": "next", "payload": response }));
            let sent = tokio::time::timeout(SEND_TIMEOUT, out.send(message)).await;
            if lagged || !matches!(sent, Ok(Ok(()))) {
                let _ = finished.send((id, true));
                return;
            }
        }
        let _ = out
            .send(text(json!({ "id": id, "type": "complete" })))
            .await;
        let _ = finished.send((id, false));
    })
}

/// Why a subscription does not select exactly one root field, if it does
/// not (GraphQL spec, "Single root field").
fn not_one_root_field(
    document: &async_graphql::parser::types::ExecutableDocument,
    request: &Request,
) -> Option<String> {
    let operation = document
        .operations
        .iter()
        .find(|(name, _)| match &request.operation_name {
            Some(wanted) => name.is_some_and(|n| n.as_str() == wanted),
            None => true,
        })
        .map(|(_, operation)| operation)?;
    if operation.node.ty != OperationType::Subscription {
        return None;
    }
    match limits::root_fields(document, &operation.node, 1) {
        (1, false) => None,
        (_, true) => {
            Some("a subscription may not select an introspection field at its root".into())
        }
        _ => Some("a subscription must select exactly one root field".into()),
    }
}
