//! The graphql-transport-ws messages a client sends, and reading them
//! off the socket with the size and nesting limits applied first.

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::graphql::limits::{self, MAX_NESTING};

/// Why a socket is closed.
pub(super) struct Close(pub(super) u16, pub(super) String);

impl Close {
    pub(super) fn new(code: u16, reason: impl Into<String>) -> Self {
        Self(code, reason.into())
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ClientMessage {
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
pub(super) struct SubscribePayload {
    pub(super) query: String,
    #[serde(default)]
    pub(super) operation_name: Option<String>,
    #[serde(default)]
    pub(super) variables: Option<Value>,
    #[serde(default)]
    pub(super) extensions: Option<serde_json::Map<String, Value>>,
}

pub(super) fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

pub(super) type Incoming = futures_util::stream::SplitStream<WebSocket>;

/// Reads the next protocol message; `Err` closes the socket.
pub(super) async fn next_message(
    stream: &mut Incoming,
    limit: usize,
) -> Result<Option<ClientMessage>, Close> {
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

pub(super) fn error_message(id: &str, code: &str, message: &str) -> Message {
    text(json!({
        "id": id,
        "type": "error",
        "payload": [{ "message": message, "extensions": { "code": code } }],
    }))
}
