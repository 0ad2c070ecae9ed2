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

mod operation;
mod protocol;

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use axum::{
    extract::{
        ConnectInfo, State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{
    auth::{self, Caller, RequestMeta},
    error::AppError,
    service::{audit::events, session as sessions},
};

use super::{HttpState, request_meta};
use operation::start_operation;
use protocol::{ClientMessage, Close, Incoming, error_message, next_message, text};

const PROTOCOL: &str = "graphql-transport-ws";

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
    let meta = request_meta(&http, peer, &headers);
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

/// Why a socket authenticating with an API key is closed.
pub const KEYS_OVER_HTTP_ONLY: &str =
    "API keys are accepted over HTTP only; subscriptions need a session token";

async fn authenticate(http: &HttpState, payload: Option<&Value>) -> Result<Caller, &'static str> {
    let header = payload
        .and_then(|p| p.get("authorization").or_else(|| p.get("Authorization")))
        .and_then(Value::as_str)
        .ok_or("connection_init must carry {\"authorization\": \"Bearer <token>\"}")?;
    // A socket lives as long as a user's session (it closes when the session
    // ends, and counts against the user's sockets); a key has neither, and
    // the operations of its scopes are all HTTP ones.
    if let Ok(auth::Credential::ApiKey(_)) = auth::bearer_credential(header.as_bytes()) {
        return Err(KEYS_OVER_HTTP_ONLY);
    }
    let token = auth::bearer_token(header.as_bytes()).map_err(|_| crate::error::BAD_TOKEN)?;
    sessions::authenticate(&http.app.db, &http.app.config, token)
        .await
        .map_err(|err| match err {
            AppError::Unauthenticated(_) => crate::error::BAD_TOKEN,
            _ => "the session could not be checked",
        })
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
