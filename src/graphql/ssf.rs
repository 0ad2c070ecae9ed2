//! OpenID Shared Signals streams as the schema shows them, for the
//! dashboard's owner pages: read-only (receivers manage their streams over
//! the SSF API, `/ssf/…`), never with the push authorization header.

use async_graphql::{ComplexObject, Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::api_key::ApiScope as Scope;
use uuid::Uuid;

use super::{context::state, guards::RoleOrScope};
use crate::{
    error::AppError,
    service::{
        access::{self, Action},
        outbox,
        ssf::{PUSH, stream},
    },
};

fn guard() -> RoleOrScope {
    RoleOrScope::new(
        access::MANAGE_WEBHOOKS_ROLE,
        Scope::SsfManage,
        Action::ManageSsf,
    )
}

/// A Shared Signals event stream (SSF 1.0) and where its deliveries stand.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct SsfStream {
    /// The stream's id (`stream_id`).
    pub id: Uuid,
    /// The receiver (the SETs' `aud`).
    pub audience: String,
    /// What the stream is for.
    pub description: Option<String>,
    /// `push` (RFC 8935) or `poll` (RFC 8936).
    pub delivery: String,
    /// Push: where SETs are POSTed; poll: the poll endpoint.
    pub endpoint_url: String,
    /// The event-type URIs delivered.
    pub events_delivered: Vec<String>,
    /// `enabled`, `paused` or `disabled`.
    pub status: String,
    /// Why it is paused or disabled (set by the receiver, or by the server
    /// after failing deliveries).
    pub status_reason: Option<String>,
    /// Restricted to the subjects added (else every subject).
    pub subjects_restricted: bool,
    /// The `seq` of the last audit event delivered (push) or acknowledged
    /// (poll), or passed over.
    pub cursor_seq: i64,
    /// Failed attempts at the oldest undelivered event (push).
    pub failures: i32,
    /// Since when the oldest undelivered event has failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// The last delivery (push) or acknowledgement (poll).
    pub last_success_at: Option<DateTime<Utc>>,
    /// The last failed attempt.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

#[ComplexObject]
impl SsfStream {
    /// Audit events after `cursorSeq`: how far delivery is behind (events
    /// not for this stream count too, until passed over).
    async fn lag(&self, ctx: &Context<'_>) -> Result<i64> {
        let app = state(ctx)?;
        let head = outbox::head_seq(&app.db).await.map_err(AppError::extend)?;
        Ok((head - self.cursor_seq).max(0))
    }
}

impl From<stream::Stream> for SsfStream {
    fn from(found: stream::Stream) -> Self {
        let (status, reason) = found.status();
        let (status, status_reason) = (status.to_owned(), reason.map(str::to_owned));
        let push = found.stream.delivery_method == PUSH;
        let endpoint_url = if push {
            found.stream.endpoint_url.clone().unwrap_or_default()
        } else {
            found.poll_url()
        };
        let stream::Stream { stream, cursor } = found;
        Self {
            id: stream.id,
            events_delivered: stream
                .events_delivered()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            audience: stream.audience,
            description: stream.description,
            delivery: if push { "push" } else { "poll" }.to_owned(),
            endpoint_url,
            status,
            status_reason,
            subjects_restricted: stream.subjects_listed,
            cursor_seq: cursor.cursor_seq,
            failures: cursor.attempts,
            failing_since: cursor.failing_since,
            last_success_at: cursor.last_success_at,
            last_failure_at: cursor.last_failure_at,
            created_at: stream.created_at,
        }
    }
}

#[derive(Default)]
pub struct SsfQuery;

#[Object]
impl SsfQuery {
    /// Owners, and API keys with `SSF_MANAGE`: every Shared Signals
    /// stream, oldest first, with its health.
    #[graphql(guard = "guard()")]
    async fn ssf_streams(&self, ctx: &Context<'_>) -> Result<Vec<SsfStream>> {
        let app = state(ctx)?;
        let found = stream::list(&app.db).await.map_err(AppError::extend)?;
        Ok(found.into_iter().map(SsfStream::from).collect())
    }
}
