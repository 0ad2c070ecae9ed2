//! The audit log: filtered, paged, and its chain check.

use std::collections::HashSet;

use async_graphql::{
    ComplexObject, Context, Enum, ErrorExtensions, InputObject, Json, Object, Result, SimpleObject,
    Subscription,
};
use chrono::{DateTime, Utc};
use entity::{api_key::ApiScope, audit_event};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};
use uuid::Uuid;

use super::{
    context::{caller, key_caller, state, users},
    guards::{AuditAccess, RoleGuard},
    paging::Pagination,
    user::User,
};
use crate::{
    error::AppError,
    service::{
        access::{self, Action},
        audit as audits,
    },
};

/// Outcome of an audited attempt.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum AuditStatus {
    /// It happened.
    Success,
    /// It was refused, or failed.
    Failed,
}

impl From<audit_event::AuditStatus> for AuditStatus {
    fn from(status: audit_event::AuditStatus) -> Self {
        match status {
            audit_event::AuditStatus::Success => AuditStatus::Success,
            audit_event::AuditStatus::Failed => AuditStatus::Failed,
        }
    }
}

impl From<AuditStatus> for audit_event::AuditStatus {
    fn from(status: AuditStatus) -> Self {
        match status {
            AuditStatus::Success => audit_event::AuditStatus::Success,
            AuditStatus::Failed => audit_event::AuditStatus::Failed,
        }
    }
}

/// One audit event.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct AuditLog {
    /// UUIDv7: time-ordered.
    pub id: Uuid,
    /// Position in the hash chain.
    pub seq: i64,
    /// e.g. `auth.sign_in`, `session.revoked`, `access.denied`.
    pub event_type: String,
    /// Whether what it records succeeded or was refused or failed.
    pub status: AuditStatus,
    /// A readable account of the event.
    pub message: String,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// Who did it (the impersonating admin for actions taken while
    /// impersonating).
    pub actor_id: Option<Uuid>,
    /// Whose account or session it concerns.
    pub user_id: Option<Uuid>,
    /// The session it concerns, if any.
    pub session_id: Option<Uuid>,
    /// The client address of the request that caused it (hidden from a
    /// user reading an event someone else caused).
    pub ip_address: Option<String>,
    /// The User-Agent of that request (hidden likewise).
    pub user_agent: Option<String>,
    /// Event details, e.g. a revocation's `reason` and `revokedBy`.
    pub metadata: Json<serde_json::Value>,
    /// SHA-256 of the previous event's hash and this event's content.
    pub hash: String,
}

#[ComplexObject]
impl AuditLog {
    /// The account behind `actorId`, loaded in one batch for the whole
    /// page. Null when there is no actor or the account no longer exists,
    /// and, for a user reading their own events, when it is another
    /// user's account (admins and owners are shown, as with
    /// `Session.impersonator`).
    async fn actor(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        person(ctx, self.actor_id).await
    }

    /// The account behind `userId`, under the same rules as `actor`.
    async fn user(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        person(ctx, self.user_id).await
    }
}

/// The account `id`, if it exists and the caller may see it.
async fn person(ctx: &Context<'_>, id: Option<Uuid>) -> Result<Option<User>> {
    let Some(id) = id else {
        return Ok(None);
    };
    // A key reading the audit log (`AUDIT_READ`) sees every account, as
    // those who read all events do.
    if key_caller(ctx).is_some_and(|key| key.has(ApiScope::AuditRead)) {
        return Ok(users(ctx)?.load_one(id).await?.map(User::from));
    }
    let caller = caller(ctx)?;
    let found = users(ctx)?.load_one(id).await?;
    Ok(found
        .filter(|account| access::may_see_account(caller, account.id, account.role))
        .map(User::from))
}

impl From<audit_event::Model> for AuditLog {
    fn from(model: audit_event::Model) -> Self {
        Self {
            id: model.id,
            seq: model.seq,
            event_type: model.event_type,
            status: model.status.into(),
            message: model.message,
            created_at: model.created_at,
            actor_id: model.actor_id,
            user_id: model.user_id,
            session_id: model.session_id,
            ip_address: model.ip_address,
            user_agent: model.user_agent,
            metadata: Json(model.metadata),
            hash: model.hash,
        }
    }
}

/// Filters of `sessionAudit`; all optional, combined with AND.
#[derive(InputObject, Default, Clone)]
pub struct AuditFilter {
    /// Events about this user.
    pub user_id: Option<Uuid>,
    /// Events done by this user.
    pub actor_id: Option<Uuid>,
    /// Events about this session.
    pub session_id: Option<Uuid>,
    /// Exact event type, e.g. `session.revoked`.
    pub event_type: Option<String>,
    /// Only successes, or only failures (refusals among them).
    pub status: Option<AuditStatus>,
    /// From this instant on (inclusive).
    pub since: Option<DateTime<Utc>>,
    /// Before this instant (exclusive).
    pub until: Option<DateTime<Utc>>,
}

impl From<AuditFilter> for audits::AuditFilter {
    fn from(filter: AuditFilter) -> Self {
        Self {
            user_id: filter.user_id,
            actor_id: filter.actor_id,
            session_id: filter.session_id,
            event_type: filter.event_type,
            status: filter.status.map(Into::into),
            since: filter.since,
            until: filter.until,
        }
    }
}

/// A page of audit events, newest first.
#[derive(SimpleObject)]
pub struct AuditPage {
    /// The events of this page, newest first.
    pub logs: Vec<AuditLog>,
    /// Where this page is in the whole.
    pub pagination: Pagination,
}

/// The result of walking the hash chain.
#[derive(SimpleObject)]
pub struct AuditChainReport {
    /// No event was edited, deleted or reordered.
    pub intact: bool,
    /// How many events were checked.
    pub checked: i64,
    /// The first event that does not fit the chain.
    pub first_broken_id: Option<Uuid>,
    /// Chain position of the break.
    pub first_broken_seq: Option<i64>,
    /// What is wrong, in words.
    pub problem: Option<String>,
    /// Signed checkpoints and purge records checked (signatures included:
    /// by the server's key and those of `AUDIT_PUBLIC_KEYS`).
    pub checkpoints_checked: i64,
    /// The newest chain position a verified checkpoint vouches for; null
    /// when none does yet. Events after it are covered by the hash chain
    /// only, not by any signature (the unsigned tail).
    pub covered_seq: Option<i64>,
    /// Events after `coveredSeq`: the unsigned tail.
    pub unsigned_events: i64,
}

/// A signed statement about the audit chain (Ed25519, by a key outside
/// the database): a checkpoint of its head, or the record of a retention
/// purge. The same JSON as `session-manager audit checkpoint` prints
/// verifies it with `audit verify --checkpoint`.
#[derive(SimpleObject)]
pub struct AuditCheckpoint {
    /// `CHECKPOINT` or `PURGE`.
    pub kind: CheckpointKind,
    /// A checkpoint: the chain position it vouches for. A purge: the last
    /// event removed (the chain's anchor since).
    pub seq: i64,
    /// The hash of the event at `seq`.
    pub hash: String,
    /// A checkpoint: the chain started after this position when it was
    /// signed. A purge: the first event removed came after it.
    pub anchor_seq: i64,
    /// The hash of the event at `anchorSeq` (zeros for the chain's start).
    pub anchor_hash: String,
    /// When it was signed.
    pub created_at: DateTime<Utc>,
    /// The signing key's id (the first 16 hex digits of SHA-256 of the
    /// public key), as `session-manager audit public-key` prints it.
    pub key_id: String,
    /// The Ed25519 signature, hex.
    pub signature: String,
}

/// What a signed statement about the chain says.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CheckpointKind {
    /// The chain's head at a position.
    Checkpoint,
    /// Retention removed the oldest events up to a position.
    Purge,
}

impl From<audits::Checkpoint> for AuditCheckpoint {
    fn from(c: audits::Checkpoint) -> Self {
        Self {
            kind: if c.is_purge() {
                CheckpointKind::Purge
            } else {
                CheckpointKind::Checkpoint
            },
            seq: c.seq,
            hash: c.hash,
            anchor_seq: c.anchor_seq,
            anchor_hash: c.anchor_hash,
            created_at: c.created_at,
            key_id: c.key_id,
            signature: c.signature,
        }
    }
}

/// A page of signed checkpoints and purge records, newest first.
#[derive(SimpleObject)]
pub struct AuditCheckpointPage {
    /// This page's checkpoints, newest first.
    pub checkpoints: Vec<AuditCheckpoint>,
    /// Where this page is in the whole.
    pub pagination: Pagination,
}

/// Whether `caller` may see `event` on a subscription: as for
/// `sessionAudit`, users see events about themselves, admins and owners all
/// of them (or one user's, with `userId`).
fn visible(
    caller: &crate::auth::Caller,
    user_id: Option<Uuid>,
    event: &audit_event::Model,
) -> bool {
    let subject = if access::may_read_all_audit(caller) {
        user_id
    } else {
        Some(caller.user.id)
    };
    subject.is_none_or(|id| event.user_id == Some(id))
}

#[derive(Default)]
pub struct AuditSubscription;

/// Live events, over graphql-transport-ws at `/graphql/ws`.
#[Subscription]
impl AuditSubscription {
    /// Audit events as they are committed (graphql-transport-ws at
    /// `/graphql/ws`), under the same visibility as `sessionAudit`. If the
    /// subscriber falls too far behind, the stream ends with a
    /// `RATE_LIMITED` error and the socket is closed.
    #[graphql(guard = "AuditAccess::new(user_id)")]
    async fn session_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Only events about this user (admins and owners; a user sees their own events either way)."
        )]
        user_id: Option<Uuid>,
    ) -> Result<impl Stream<Item = Result<AuditLog>> + use<>> {
        let app = state(ctx)?;
        let caller = caller(ctx)?.clone();
        // The request's loader lives as long as the subscription: caching
        // would keep every account an event ever named (and show renamed
        // ones stale), so each event's `actor`/`user` is read afresh.
        users(ctx)?.enable_all_cache(false);
        let events = BroadcastStream::new(app.events.subscribe());
        Ok(events
            .scan(false, move |ended, item| {
                if *ended {
                    return futures_util::future::ready(None);
                }
                let out = match item {
                    Ok(event) => Some(visible(&caller, user_id, &event).then(|| {
                        Ok(AuditLog::from(audits::as_seen_by(
                            &caller,
                            (*event).clone(),
                        )))
                    })),
                    Err(BroadcastStreamRecvError::Lagged(missed)) => {
                        *ended = true;
                        Some(Some(Err(AppError::RateLimited {
                            retry_after_secs: 1,
                        }
                        .extend()
                        .extend_with(|_, ext| {
                            ext.set("reason", "subscriber_lagged");
                            ext.set("missed", missed);
                        }))))
                    }
                };
                futures_util::future::ready(out)
            })
            .filter_map(futures_util::future::ready))
    }
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Audit events, newest first. Users see the events about themselves;
    /// admins and owners see all. `limit` is 1 to 500, `offset` 0 to
    /// 1000000.
    #[graphql(guard = "AuditAccess::new(filter.as_ref().and_then(|f| f.user_id))")]
    async fn session_audit(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which events: every condition given must hold.")] filter: Option<
            AuditFilter,
        >,
        #[graphql(default = 100, desc = "Events per page, 1 to 500.")] limit: i32,
        #[graphql(
            default = 0,
            desc = "Events to skip, up to 1 000 000 (`after` is faster for deep pages)."
        )]
        offset: i32,
        #[graphql(desc = "Continue after the page that ended with this cursor \
            (`pagination.nextCursor`): keyset paging, as fast at any depth.")]
        after: Option<String>,
    ) -> Result<AuditPage> {
        let app = state(ctx)?;
        // None for a key: the guard let it through with `AUDIT_READ`.
        let caller = match key_caller(ctx) {
            Some(_) => None,
            None => Some(caller(ctx)?),
        };
        let filter = filter.unwrap_or_default().into();
        let page = audits::page_for(&app.db, caller, filter, limit, offset, after.as_deref())
            .await
            .map_err(AppError::extend)?;
        // The people the page names, in one query before the rows resolve
        // them (each row's `actor`/`user` then reads the request's cache),
        // and only when the query asks for them.
        let logs = ctx.look_ahead().field("logs");
        if logs.field("actor").exists() || logs.field("user").exists() {
            let ids: HashSet<Uuid> = page
                .logs
                .iter()
                .flat_map(|e| [e.actor_id, e.user_id])
                .flatten()
                .collect();
            users(ctx)?.load_many(ids).await?;
        }
        let next_cursor = page.next_cursor();
        Ok(AuditPage {
            logs: page.logs.into_iter().map(AuditLog::from).collect(),
            pagination: Pagination {
                total: i32::try_from(page.total).unwrap_or(i32::MAX),
                limit,
                offset,
                has_more: page.has_more,
                next_cursor,
            },
        })
    }

    /// The event types the server records (`auth.sign_in`,
    /// `session.revoked`, …), for choosing `AuditFilter.eventType`. Anyone
    /// signed in, as for `sessionAudit`.
    #[graphql(guard = "AuditAccess::new(None)")]
    async fn audit_event_types(&self) -> Vec<&'static str> {
        audits::events::ALL.to_vec()
    }

    /// Owners only: walks the whole hash chain and reports whether any
    /// event was edited, deleted or reordered, checking the signed
    /// checkpoints and purge records too (signatures, the anchor, and
    /// that the chain holds every position they vouch for).
    #[graphql(guard = "RoleGuard::new(access::VERIFY_AUDIT_ROLE, Action::VerifyAudit)")]
    async fn audit_chain(&self, ctx: &Context<'_>) -> Result<AuditChainReport> {
        let app = state(ctx)?;
        let how = audits::Verification {
            keys: Some(&app.keyring),
            external: &[],
        };
        let report = audits::verify(app.db.pool(), &how)
            .await
            .map_err(AppError::extend)?;
        let unsigned_events = report.unsigned_events();
        Ok(AuditChainReport {
            intact: report.intact,
            checked: i64::try_from(report.checked).unwrap_or(i64::MAX),
            first_broken_id: report.first_broken_id,
            first_broken_seq: report.first_broken_seq,
            problem: report.problem,
            checkpoints_checked: i64::try_from(report.checkpoints_checked).unwrap_or(i64::MAX),
            covered_seq: report.covered_seq,
            unsigned_events,
        })
    }

    /// Owners only: the signed checkpoints and purge records the database
    /// holds, newest first. `limit` is 1 to 500, `offset` 0 to 1000000.
    #[graphql(guard = "RoleGuard::new(access::VERIFY_AUDIT_ROLE, Action::VerifyAudit)")]
    async fn audit_checkpoints(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100, desc = "Checkpoints per page, 1 to 500.")] limit: i32,
        #[graphql(default = 0, desc = "Checkpoints to skip, up to 1 000 000.")] offset: i32,
    ) -> Result<AuditCheckpointPage> {
        let app = state(ctx)?;
        let (checkpoints, total, has_more) = audits::checkpoint_page(&app.db, limit, offset)
            .await
            .map_err(AppError::extend)?;
        Ok(AuditCheckpointPage {
            checkpoints: checkpoints.into_iter().map(AuditCheckpoint::from).collect(),
            pagination: Pagination {
                total: i32::try_from(total).unwrap_or(i32::MAX),
                limit,
                offset,
                has_more,
                next_cursor: None,
            },
        })
    }
}
