//! The append-only, hash-chained audit log.
//!
//! `hash = SHA-256(prev_hash ‖ canonical event)`, where the canonical event
//! is JSON with sorted keys and RFC 3339 timestamps in microseconds. Events
//! are appended under a lock on the chain-head row, in the same transaction
//! as the change they record.

use entity::{
    audit_chain::{self, CHAIN_ID},
    audit_event::{self, AuditStatus},
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    auth::{Actor, Caller, RequestMeta},
    db::{self, Db},
    error::{AppError, AppResult},
};

/// Event types written by the server.
pub mod events {
    pub const SIGN_IN: &str = "auth.sign_in";
    /// A session opened by a trusted backend's API key (`issueSession`).
    pub const SESSION_ISSUED: &str = "auth.session_issued";
    pub const SESSION_REVOKED: &str = "session.revoked";
    /// A session ended by idle timeout or absolute expiry (recorded once).
    pub const SESSION_EXPIRED: &str = "session.expired";
    pub const ACCESS_DENIED: &str = "access.denied";
    pub const SESSIONS_VIEWED: &str = "sessions.viewed";
    pub const IMPERSONATION_STARTED: &str = "impersonation.started";
    pub const IMPERSONATION_STOPPED: &str = "impersonation.stopped";
    pub const USER_CREATED: &str = "user.created";
    pub const USER_UPDATED: &str = "user.updated";
    pub const PASSWORD_CHANGED: &str = "password.changed";
    pub const API_KEY_CREATED: &str = "api_key.created";
    pub const API_KEY_REVOKED: &str = "api_key.revoked";

    /// Every type above, as the schema's `auditEventTypes` lists them.
    pub const ALL: &[&str] = &[
        SIGN_IN,
        SESSION_REVOKED,
        SESSIONS_VIEWED,
        IMPERSONATION_STARTED,
        IMPERSONATION_STOPPED,
        SESSION_EXPIRED,
        ACCESS_DENIED,
        PASSWORD_CHANGED,
        USER_CREATED,
        API_KEY_CREATED,
        API_KEY_REVOKED,
        SESSION_ISSUED,
        USER_UPDATED,
    ];
}

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: &'static str,
    pub status: AuditStatus,
    pub message: String,
    pub actor_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub metadata: Value,
}

impl NewEvent {
    pub fn new(event_type: &'static str, status: AuditStatus, message: impl Into<String>) -> Self {
        Self {
            event_type,
            status,
            message: message.into(),
            actor_id: None,
            user_id: None,
            session_id: None,
            ip_address: None,
            user_agent: None,
            metadata: json!({}),
        }
    }

    pub fn success(event_type: &'static str, message: impl Into<String>) -> Self {
        Self::new(event_type, AuditStatus::Success, message)
    }

    pub fn failed(event_type: &'static str, message: impl Into<String>) -> Self {
        Self::new(event_type, AuditStatus::Failed, message)
    }

    /// Where the request came from.
    pub fn from_request(mut self, meta: &RequestMeta) -> Self {
        self.ip_address = meta.ip_address.clone();
        self.user_agent = meta.user_agent.clone();
        self
    }

    /// Done by `caller`: the actor is the impersonator when there is one,
    /// and the metadata says so.
    pub fn by(self, caller: &Caller) -> Self {
        self.by_actor(caller.actor())
    }

    pub fn by_actor(mut self, actor: Actor) -> Self {
        self.actor_id = Some(actor.id);
        if let Some(admin) = actor.impersonated_by {
            self = self.meta("impersonatedBy", admin.to_string());
        }
        self
    }

    /// Done by the API key `key`: a key is no account, so the event has no
    /// actor and names the key in its metadata (`apiKeyId`, `apiKeyName`).
    pub fn by_key(self, key: &entity::api_key::Model) -> Self {
        self.meta("apiKeyId", key.id.to_string())
            .meta("apiKeyName", key.name.clone())
    }

    pub fn actor(mut self, actor_id: Uuid) -> Self {
        self.actor_id = Some(actor_id);
        self
    }

    /// Whose account or session the event concerns.
    pub fn subject(mut self, user_id: Uuid) -> Self {
        self.user_id = Some(user_id);
        self
    }

    pub fn session(mut self, session_id: Uuid) -> Self {
        self.session_id = Some(session_id);
        self
    }

    /// The stored event at chain position `seq`, after the event whose hash
    /// is `prev_hash`, with its own hash.
    pub fn chained(
        self,
        id: Uuid,
        seq: i64,
        created_at: chrono::DateTime<chrono::Utc>,
        prev_hash: String,
    ) -> audit_event::Model {
        let mut model = audit_event::Model {
            id,
            seq,
            created_at,
            event_type: self.event_type.to_owned(),
            status: self.status,
            message: self.message,
            actor_id: self.actor_id,
            user_id: self.user_id,
            session_id: self.session_id,
            ip_address: self.ip_address,
            user_agent: self.user_agent,
            metadata: self.metadata,
            prev_hash,
            hash: String::new(),
        };
        model.hash = event_hash(&model);
        model
    }

    pub fn meta(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Value::Object(map) = &mut self.metadata {
            map.insert(key.to_owned(), value.into());
        }
        self
    }
}

/// Appends `event` to the chain. Call it inside a write transaction
/// ([`Db::write`] or [`Db::transaction`]) together with the change it
/// records. On PostgreSQL the transaction also notifies [`crate::events::CHANNEL`]
/// so every replica's event tail wakes when it commits.
pub async fn record(conn: &impl ConnectionTrait, event: NewEvent) -> AppResult<audit_event::Model> {
    let grouped = group::head();
    let (prev_seq, prev_hash) = match grouped.clone().flatten() {
        Some(head) => head,
        None => {
            let head = lock_head(conn).await?;
            (head.head_seq, head.head_hash)
        }
    };

    let model = event.chained(Uuid::now_v7(), prev_seq + 1, db::now(), prev_hash);

    let active: audit_event::ActiveModel = model.clone().into();
    audit_event::Entity::insert(active)
        .exec_without_returning(conn)
        .await?;
    if grouped.is_some() {
        group::advance(model.seq, &model.hash);
    } else {
        store_head(conn, model.seq, model.hash.clone()).await?;
    }
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        conn.execute_raw(crate::events::notify_statement()).await?;
    }
    tracing::info!(
        event_type = model.event_type,
        status = model.status.as_str(),
        actor_id = ?model.actor_id,
        user_id = ?model.user_id,
        session_id = ?model.session_id,
        "audit: {}",
        model.message
    );
    Ok(model)
}

async fn store_head(conn: &impl ConnectionTrait, seq: i64, hash: String) -> Result<(), DbErr> {
    audit_chain::Entity::update(audit_chain::ActiveModel {
        id: Set(CHAIN_ID),
        head_seq: Set(seq),
        head_hash: Set(hash),
        ..Default::default()
    })
    .exec(conn)
    .await?;
    Ok(())
}

/// The chain head while the grouped writer ([`Db::write`]) runs a group
/// of writes in one SQLite transaction: the [`db::GroupHook`] wired into
/// the writer (see [`crate::state`]). The group holds the database's write
/// lock from its first statement to its commit, so no one else can append
/// meanwhile: the head is read once, advanced in memory by each append,
/// and written back once before the commit, instead of a read and an
/// update per event.
pub struct GroupHead;

impl db::GroupHook for GroupHead {
    fn scope<'a>(
        &'a self,
        group: futures_util::future::BoxFuture<'a, db::GroupDone>,
    ) -> futures_util::future::BoxFuture<'a, db::GroupDone> {
        // A group rolled back takes its head with it.
        Box::pin(group::scope(group))
    }

    fn before_commit<'t>(
        &'t self,
        txn: &'t sea_orm::DatabaseTransaction,
    ) -> futures_util::future::BoxFuture<'t, Result<(), DbErr>> {
        Box::pin(group::store(txn))
    }
}

mod group {
    use std::cell::RefCell;

    use sea_orm::{ConnectionTrait, DbErr};

    /// (seq, hash) of the newest event; `None` until the group first reads it.
    type Head = Option<(i64, String)>;

    tokio::task_local! {
        static HEAD: RefCell<Head>;
    }

    /// Runs `group` (one transaction's writes) with a group head of its
    /// own.
    pub(super) async fn scope<F: std::future::Future>(group: F) -> F::Output {
        HEAD.scope(RefCell::new(None), group).await
    }

    /// `Some` inside a group (holding the head once known), `None` outside.
    pub(super) fn head() -> Option<Head> {
        HEAD.try_with(|head| head.borrow().clone()).ok()
    }

    pub(super) fn advance(seq: i64, hash: &str) {
        let _ = HEAD.try_with(|head| *head.borrow_mut() = Some((seq, hash.to_owned())));
    }

    /// Writes the group's head back to the chain-head row, if the group
    /// appended anything. Call it before the commit.
    pub(super) async fn store(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
        match head().flatten() {
            Some((seq, hash)) => super::store_head(conn, seq, hash).await,
            None => Ok(()),
        }
    }
}

/// Appends `event` in a transaction of its own: for outcomes that change
/// nothing else, such as a denied or failed attempt.
pub async fn record_alone(db: &Db, event: NewEvent) -> AppResult<audit_event::Model> {
    let txn = db.transaction().await?;
    let model = record(&txn, event).await?;
    txn.commit().await?;
    Ok(model)
}

/// `SHA-256(prev_hash ‖ canonical event)`, hex.
pub fn event_hash(event: &audit_event::Model) -> String {
    let mut hasher = Sha256::new();
    hasher.update(event.prev_hash.as_bytes());
    hasher.update(canonical_event(event).as_bytes());
    hex::encode(hasher.finalize())
}

/// The canonical encoding of everything in an event but its hashes.
pub fn canonical_event(event: &audit_event::Model) -> String {
    let value = json!({
        "seq": event.seq,
        "id": event.id.to_string(),
        "createdAt": event.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "eventType": event.event_type,
        "status": event.status.as_str(),
        "message": event.message,
        "actorId": event.actor_id.map(|id| id.to_string()),
        "userId": event.user_id.map(|id| id.to_string()),
        "sessionId": event.session_id.map(|id| id.to_string()),
        "ipAddress": event.ip_address,
        "userAgent": event.user_agent,
        "metadata": event.metadata,
    });
    let mut out = String::new();
    write_canonical(&value, &mut out);
    out
}

/// JSON with object keys sorted at every level, whatever map type
/// serde_json was built with, so the encoding never depends on features
/// or on how a database stored the document.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Metadata keys that say where someone else sits (their own session),
/// hidden from readers without admin rights.
const ADMIN_ONLY_METADATA: &[&str] = &["impersonatorSessionId"];

/// `event` as `reader` may see it. Admins and owners see everything. Others
/// (the events about themselves) do not see where someone else acted from:
/// on an event another account did (an admin, directly or through an
/// impersonation of them), the address and User-Agent are hidden, and so
/// is the admin's own session; who did it, and why, stay (`actorId`,
/// `impersonatorEmail`, `impersonatorName`, `reason`). The stored event,
/// and its hash, are unchanged.
pub fn as_seen_by(reader: &Caller, mut event: audit_event::Model) -> audit_event::Model {
    if crate::service::access::may_read_all_audit(reader) {
        return event;
    }
    if event.actor_id.is_some_and(|actor| actor != reader.user.id) {
        event.ip_address = None;
        event.user_agent = None;
    }
    if let Value::Object(map) = &mut event.metadata {
        for key in ADMIN_ONLY_METADATA {
            map.remove(*key);
        }
    }
    event
}

/// Filters of an audit page; every one is a real, indexed column.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub user_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub status: Option<AuditStatus>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

impl AuditFilter {
    fn condition(&self) -> Condition {
        let mut all = Condition::all();
        if let Some(id) = self.user_id {
            all = all.add(audit_event::Column::UserId.eq(id));
        }
        if let Some(id) = self.actor_id {
            all = all.add(audit_event::Column::ActorId.eq(id));
        }
        if let Some(id) = self.session_id {
            all = all.add(audit_event::Column::SessionId.eq(id));
        }
        if let Some(event_type) = &self.event_type {
            all = all.add(audit_event::Column::EventType.eq(event_type.clone()));
        }
        if let Some(status) = self.status {
            all = all.add(audit_event::Column::Status.eq(status));
        }
        if let Some(since) = self.since {
            all = all.add(audit_event::Column::CreatedAt.gte(since));
        }
        if let Some(until) = self.until {
            all = all.add(audit_event::Column::CreatedAt.lt(until));
        }
        all
    }

    fn is_empty(&self) -> bool {
        self.user_id.is_none()
            && self.actor_id.is_none()
            && self.session_id.is_none()
            && self.event_type.is_none()
            && self.status.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }
}

/// Largest page of `sessionAudit`.
pub const MAX_PAGE: u64 = 500;
/// Deepest offset; past it, narrow the filters (`since`/`until`) instead.
pub const MAX_OFFSET: u64 = 1_000_000;

/// One page of events, newest first (by chain position, so ties cannot
/// reorder), with the exact number of matches.
pub async fn page(
    conn: &impl ConnectionTrait,
    filter: &AuditFilter,
    limit: u64,
    offset: u64,
    before_seq: Option<i64>,
) -> AppResult<Page> {
    let query = audit_event::Entity::find().filter(filter.condition());
    let total = if filter.is_empty() {
        // Unfiltered, the chain head knows the count: no scan of the table.
        let head = chain_head(conn).await?;
        u64::try_from(head.head_seq - head.anchor_seq).unwrap_or(0)
    } else {
        query.clone().count(conn).await?
    };
    let mut page = query;
    if let Some(before) = before_seq {
        // Keyset paging: continue below the last event seen, an index seek
        // however deep the page is.
        page = page.filter(audit_event::Column::Seq.lt(before));
    }
    // One more than asked tells whether anything follows.
    let mut logs = page
        .order_by_desc(audit_event::Column::Seq)
        .limit(limit + 1)
        .offset(offset)
        .all(conn)
        .await?;
    let has_more = logs.len() as u64 > limit;
    logs.truncate(limit as usize);
    Ok(Page {
        logs,
        total,
        has_more,
    })
}

/// One page of the audit log.
#[derive(Debug)]
pub struct Page {
    /// Newest first.
    pub logs: Vec<audit_event::Model>,
    /// Events matching the filters, in all.
    pub total: u64,
    /// Whether events follow this page.
    pub has_more: bool,
}

async fn chain_head(conn: &impl ConnectionTrait) -> AppResult<audit_chain::Model> {
    audit_chain::Entity::find_by_id(CHAIN_ID)
        .one(conn)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("audit chain head row is missing")))
}

/// Deletes events older than `cutoff`, oldest first, at most `batch` per
/// transaction, moving the chain's anchor to the last one deleted so the
/// rest still verifies. Returns how many were deleted.
pub async fn purge_before(
    db: &Db,
    cutoff: chrono::DateTime<chrono::Utc>,
    batch: u64,
) -> AppResult<u64> {
    let mut purged = 0;
    loop {
        let txn = db.transaction().await?;
        let head = lock_head(&txn).await?;
        // The newest event of this batch that is old enough.
        let last = audit_event::Entity::find()
            .filter(audit_event::Column::Seq.gt(head.anchor_seq))
            .filter(audit_event::Column::Seq.lte(head.anchor_seq + batch as i64))
            .filter(audit_event::Column::CreatedAt.lt(cutoff))
            .order_by_desc(audit_event::Column::Seq)
            .one(&txn)
            .await?;
        let Some(last) = last else {
            break;
        };
        let deleted = audit_event::Entity::delete_many()
            .filter(audit_event::Column::Seq.lte(last.seq))
            .exec(&txn)
            .await?
            .rows_affected;
        audit_chain::Entity::update(audit_chain::ActiveModel {
            id: Set(CHAIN_ID),
            anchor_seq: Set(last.seq),
            anchor_hash: Set(last.hash.clone()),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        txn.commit().await?;
        purged += deleted;
        tracing::info!(
            deleted,
            anchor_seq = last.seq,
            "audit retention: purged old events"
        );
    }
    Ok(purged)
}

/// The chain head, locked for an append (see [`record`]).
pub async fn lock_head(conn: &impl ConnectionTrait) -> AppResult<audit_chain::Model> {
    let mut query = audit_chain::Entity::find_by_id(CHAIN_ID);
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        // SQLite needs no row lock: the immediate transaction already holds
        // the database's write lock.
        query = query.lock_exclusive();
    }
    query
        .one(conn)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("audit chain head row is missing")))
}

/// Events from `since` on, oldest first, one page at a time: for exports.
pub async fn for_each_event(
    conn: &impl ConnectionTrait,
    since: Option<chrono::DateTime<chrono::Utc>>,
    mut each: impl FnMut(&audit_event::Model) -> std::io::Result<()>,
) -> AppResult<u64> {
    const PAGE: u64 = 1_000;
    let mut after = i64::MIN;
    let mut count = 0;
    loop {
        let mut query = audit_event::Entity::find().filter(audit_event::Column::Seq.gt(after));
        if let Some(since) = since {
            query = query.filter(audit_event::Column::CreatedAt.gte(since));
        }
        let page = query
            .order_by_asc(audit_event::Column::Seq)
            .limit(PAGE)
            .all(conn)
            .await?;
        for event in &page {
            each(event).map_err(AppError::internal)?;
            count += 1;
        }
        match page.last() {
            Some(last) if page.len() as u64 == PAGE => after = last.seq,
            _ => return Ok(count),
        }
    }
}

/// What a walk of the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub intact: bool,
    /// Events checked.
    pub checked: u64,
    /// The first event that does not fit the chain (or the one after a gap).
    pub first_broken_id: Option<Uuid>,
    /// `seq` where the break was found.
    pub first_broken_seq: Option<i64>,
    pub problem: Option<String>,
}

/// Walks the whole chain from its anchor, in pages, recomputing each hash.
pub async fn verify_chain(conn: &impl ConnectionTrait) -> AppResult<ChainReport> {
    const PAGE: u64 = 2_000;
    let head = chain_head(conn).await?;
    let mut expected_seq = head.anchor_seq + 1;
    let mut expected_prev = head.anchor_hash.clone();
    let mut checked = 0u64;
    let broken = |event: &audit_event::Model, checked: u64, problem: String| ChainReport {
        intact: false,
        checked,
        first_broken_id: Some(event.id),
        first_broken_seq: Some(event.seq),
        problem: Some(problem),
    };
    loop {
        let page = audit_event::Entity::find()
            .filter(audit_event::Column::Seq.gte(expected_seq))
            .order_by_asc(audit_event::Column::Seq)
            .limit(PAGE)
            .all(conn)
            .await?;
        let done = (page.len() as u64) < PAGE;
        for event in page {
            checked += 1;
            if event.seq != expected_seq {
                return Ok(broken(
                    &event,
                    checked,
                    format!(
                        "event {} has seq {} where {} was expected: events are missing",
                        event.id, event.seq, expected_seq
                    ),
                ));
            }
            if event.prev_hash != expected_prev {
                return Ok(broken(
                    &event,
                    checked,
                    format!(
                        "event {} (seq {}) does not link to the event before it",
                        event.id, event.seq
                    ),
                ));
            }
            if event_hash(&event) != event.hash {
                return Ok(broken(
                    &event,
                    checked,
                    format!(
                        "event {} (seq {}) was altered: its hash does not match its content",
                        event.id, event.seq
                    ),
                ));
            }
            expected_prev = event.hash.clone();
            expected_seq += 1;
        }
        if done {
            break;
        }
    }
    if expected_seq - 1 != head.head_seq || expected_prev != head.head_hash {
        return Ok(ChainReport {
            intact: false,
            checked,
            first_broken_id: None,
            first_broken_seq: Some(expected_seq),
            problem: Some(format!(
                "the chain ends at seq {} but its head says {}: the newest events are missing",
                expected_seq - 1,
                head.head_seq
            )),
        });
    }
    Ok(ChainReport {
        intact: true,
        checked,
        first_broken_id: None,
        first_broken_seq: None,
        problem: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> audit_event::Model {
        audit_event::Model {
            id: Uuid::nil(),
            seq: 1,
            created_at: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
            event_type: events::SIGN_IN.into(),
            status: AuditStatus::Success,
            message: "signed in".into(),
            actor_id: None,
            user_id: None,
            session_id: None,
            ip_address: Some("127.0.0.1".into()),
            user_agent: None,
            metadata: json!({"b": 1, "a": {"d": [1, 2], "c": "x"}}),
            prev_hash: entity::audit_chain::GENESIS_HASH.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn canonical_encoding_sorts_keys_at_every_level() {
        let text = canonical_event(&sample());
        assert!(
            text.contains(r#""metadata":{"a":{"c":"x","d":[1,2]},"b":1}"#),
            "{text}"
        );
        assert!(
            text.contains(r#""createdAt":"2023-11-14T22:13:20.123456Z""#),
            "{text}"
        );
        assert!(text.starts_with(r#"{"actorId":null,"createdAt""#), "{text}");
    }

    #[test]
    fn any_change_to_an_event_changes_its_hash() {
        let base = sample();
        let hash = event_hash(&base);
        assert_eq!(hash.len(), 64);
        let mut changed = base.clone();
        changed.message.push('!');
        assert_ne!(event_hash(&changed), hash, "message");
        let mut changed = base.clone();
        changed.prev_hash = "1".repeat(64);
        assert_ne!(event_hash(&changed), hash, "prev_hash");
        let mut changed = base.clone();
        changed.metadata = json!({"b": 2, "a": {"d": [1, 2], "c": "x"}});
        assert_ne!(event_hash(&changed), hash, "metadata");
        let mut changed = base;
        changed.status = AuditStatus::Failed;
        assert_ne!(event_hash(&changed), hash, "status");
    }
}
