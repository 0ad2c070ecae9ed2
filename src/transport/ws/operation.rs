//! One operation on a socket: checked, run as the session's account as it
//! is now, and its results forwarded until it ends.

use std::time::Duration;

use async_graphql::{Request, Variables, parser::types::OperationType};
use axum::extract::ws::Message;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{
    auth::{Caller, RequestMeta},
    graphql::{self, limits},
    service::session as sessions,
    transport::{HttpState, code_uncoded_errors, is_request_error},
};

use super::protocol::{SubscribePayload, error_message, text};

/// How long a send to a client may wait before it counts as too slow.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one operation and forwards its results until it ends.
pub(super) fn start_operation(
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
            code_uncoded_errors(&mut response.errors);
            // A request that cannot run at all is answered with `error`.
            if first && is_request_error(&response) {
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
