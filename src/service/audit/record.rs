//! Appending to the chain: the event, its hash over the canonical form,
//! and the events of a grouped writer's group, appended together.

use entity::{
    audit_chain::{self, CHAIN_ID},
    audit_event::{self, AuditStatus},
};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter, QueryTrait,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::lock_head;
use crate::{
    auth::{Actor, Caller, RequestMeta},
    db::{self, Db},
    error::AppResult,
};

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
/// records.
///
/// In a transaction of its own the chain head is locked here and held
/// until the commit. In a group of the grouped writer ([`Db::write`], on
/// both databases) the event waits in the group and takes its place in
/// the chain in [`GroupHead`]'s last statements before the group commits,
/// with the others' (see there for why). Either way the event is written
/// if and only if the transaction commits.
pub async fn record(conn: &impl ConnectionTrait, event: NewEvent) -> AppResult<()> {
    tracing::info!(
        event_type = event.event_type,
        status = event.status.as_str(),
        actor_id = ?event.actor_id,
        user_id = ?event.user_id,
        session_id = ?event.session_id,
        "audit: {}",
        event.message
    );
    let event = (event, Uuid::now_v7(), db::now());
    if let Some(event) = group::defer(event) {
        append(conn, vec![event]).await?;
    }
    Ok(())
}

/// Appends `event` at once, as [`record`] does in a transaction of its
/// own, even inside a group of the grouped writer (whose own events then
/// follow it), and answers its chain position: for a change that must
/// know where in the chain it starts (a webhook endpoint's cursor begins
/// after the event that records it).
pub async fn record_positioned(conn: &impl ConnectionTrait, event: NewEvent) -> AppResult<i64> {
    tracing::info!(
        event_type = event.event_type,
        status = event.status.as_str(),
        "audit: {}",
        event.message
    );
    append(conn, vec![(event, Uuid::now_v7(), db::now())]).await
}

/// Rows per insert statement in [`append`]: 14 columns each stay well
/// under both databases' limits on bound parameters.
const ROWS_PER_STATEMENT: usize = 1_000;

/// An event with its id and time, not yet in the chain.
type Unchained = (NewEvent, Uuid, chrono::DateTime<chrono::Utc>);

/// Locks the chain head and appends `events` after it, in order, `seq`
/// by `seq` and hash by hash, in multi-row inserts; moves the head once.
/// On PostgreSQL it also notifies [`crate::events::CHANNEL`], so every
/// replica's event tail wakes when the transaction commits. The head stays
/// locked until the commit, so positions are committed in chain order
/// (the event tail relies on it). Returns the new head's `seq`.
async fn append(conn: &impl ConnectionTrait, events: Vec<Unchained>) -> AppResult<i64> {
    let head = lock_head(conn).await?;
    let (mut seq, mut hash) = (head.head_seq, head.head_hash);
    if events.is_empty() {
        return Ok(seq);
    }
    let mut rows = Vec::with_capacity(events.len());
    for (event, id, at) in events {
        seq += 1;
        let model = event.chained(id, seq, at, std::mem::take(&mut hash));
        hash.clone_from(&model.hash);
        rows.push(audit_event::ActiveModel::from(model));
    }
    let backend = conn.get_database_backend();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let part: Vec<_> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
        let last = rows.peek().is_none();
        if last && backend == DatabaseBackend::Postgres {
            // The last rows, the head and the notification in one
            // statement: one round trip where there were three, in the
            // group's last statements, while the head is locked.
            conn.execute_raw(append_statement(part, seq, hash)).await?;
            return Ok(seq);
        }
        conn.execute_raw(audit_event::Entity::insert_many(part).build(backend))
            .await?;
    }
    store_head(conn, seq, hash).await?;
    Ok(seq)
}

/// PostgreSQL: inserts `rows`, moves the head to `seq` and `hash`, and
/// notifies [`crate::events::CHANNEL`], in one statement (data-modifying
/// `WITH` queries run once each, whatever the final `SELECT` reads). The
/// notification's payload is empty on purpose: PostgreSQL delivers
/// identical notifications of one transaction once, and the tail reads
/// what is new from the log anyway.
fn append_statement(
    rows: Vec<audit_event::ActiveModel>,
    seq: i64,
    hash: String,
) -> sea_orm::Statement {
    use sea_orm::sea_query::{Alias, CommonTableExpression, Expr, Func, Query, WithClause};
    let insert = audit_event::Entity::insert_many(rows).into_query();
    let head = audit_chain::Entity::update_many()
        .col_expr(audit_chain::Column::HeadSeq, Expr::value(seq))
        .col_expr(audit_chain::Column::HeadHash, Expr::value(hash))
        .filter(sea_orm::ColumnTrait::eq(&audit_chain::Column::Id, CHAIN_ID))
        .into_query();
    let notify = Query::select()
        .expr(
            Func::cust(Alias::new("pg_notify"))
                .arg(crate::events::CHANNEL)
                .arg(""),
        )
        .to_owned();
    let with = WithClause::new()
        .cte(
            CommonTableExpression::new()
                .query(insert)
                .table_name(Alias::new("appended"))
                .to_owned(),
        )
        .cte(
            CommonTableExpression::new()
                .query(head)
                .table_name(Alias::new("moved"))
                .to_owned(),
        )
        .to_owned()
        .query(notify);
    DatabaseBackend::Postgres.build(&with)
}

/// Appends `events`, each with the time it was made, to the chain in
/// order, exactly as [`record`] appends one, in multi-row inserts; the
/// head is locked once and moved once for the whole batch, at once (even
/// inside a group of the grouped writer, whose own events then follow
/// them). Ids are UUIDv7 of each event's time, so they stay time-ordered
/// like the server's. For bulk appends (the benchmark seeder); call it
/// inside a write transaction, as [`record`]. Returns the new head's `seq`.
pub async fn record_batch(
    conn: &impl ConnectionTrait,
    events: Vec<(NewEvent, chrono::DateTime<chrono::Utc>)>,
) -> AppResult<i64> {
    let events = events
        .into_iter()
        .map(|(event, at)| (event, uuid_v7_at(at), at))
        .collect();
    append(conn, events).await
}

/// A UUIDv7 for an event made at `at`.
fn uuid_v7_at(at: chrono::DateTime<chrono::Utc>) -> Uuid {
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.timestamp() as u64,
        at.timestamp_subsec_nanos(),
    ))
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

/// The audit log's part in the grouped writer ([`Db::write`]): the
/// [`db::GroupHook`] wired into it (see [`crate::state`]). The events a
/// group's writes record wait in the group, in the order recorded; the
/// group's last statements lock the chain head, append them all after it
/// in one insert, move the head once and (PostgreSQL) notify once; then
/// the group commits.
///
/// Why this and not positions assigned after commit by a sequencer (issue
/// 20 offered both): an append that locks the head until its commit runs
/// one commit at a time across every replica, and on PostgreSQL each
/// commit is a WAL flush. Grouping keeps that lock but takes it once per
/// group, for the few statements just before one commit, so one flush
/// carries up to a group's events (as SQLite's grouped commits already
/// did). Everything else stays as it was: an event is in the chain, at its
/// final position, the moment its transaction commits, in the same
/// transaction as the change it records (nothing acknowledged is lost on a
/// crash, and no window where a change is committed but its event is
/// not); positions commit in chain order, so the event tail (and the live
/// subscription) still reads `seq > last` and never skips; readers see an
/// event as soon as its write is acknowledged, with no sequencing delay,
/// no lease, no second process role to fail over, and no column that is
/// empty until later. A sequencer would let replicas commit in parallel
/// but needs all of that.
///
/// The head is locked last, after the group's writes: a group that took
/// it first would hold it while its writes wait for rows another replica's
/// transaction holds, which waits in turn for the head.
pub struct GroupHead;

impl db::GroupHook for GroupHead {
    fn scope<'a>(
        &'a self,
        group: futures_util::future::BoxFuture<'a, db::GroupDone>,
    ) -> futures_util::future::BoxFuture<'a, db::GroupDone> {
        // A group rolled back takes its waiting events with it.
        Box::pin(group::scope(group))
    }

    fn before_commit<'t>(
        &'t self,
        txn: &'t sea_orm::DatabaseTransaction,
    ) -> futures_util::future::BoxFuture<'t, Result<(), DbErr>> {
        Box::pin(async move {
            let events = group::take();
            if events.is_empty() {
                return Ok(());
            }
            append(txn, events)
                .await
                .map(drop)
                .map_err(|err| DbErr::Custom(format!("appending the group's events: {err}")))
        })
    }
}

mod group {
    use std::cell::RefCell;

    use super::Unchained;

    tokio::task_local! {
        /// The events recorded by the group's writes so far.
        static WAITING: RefCell<Vec<Unchained>>;
    }

    /// Runs `group` (one transaction's writes) with a list of waiting
    /// events of its own.
    pub(super) async fn scope<F: std::future::Future>(group: F) -> F::Output {
        WAITING.scope(RefCell::new(Vec::new()), group).await
    }

    /// Inside a group, adds `event` to the group's waiting events; outside
    /// one, gives it back.
    pub(super) fn defer(event: Unchained) -> Option<Unchained> {
        let mut event = Some(event);
        let _ = WAITING.try_with(|waiting| {
            if let Some(event) = event.take() {
                waiting.borrow_mut().push(event);
            }
        });
        event
    }

    /// The group's waiting events, leaving none.
    pub(super) fn take() -> Vec<Unchained> {
        WAITING
            .try_with(|waiting| std::mem::take(&mut *waiting.borrow_mut()))
            .unwrap_or_default()
    }
}

/// Appends `event` in a transaction of its own: for outcomes that change
/// nothing else, such as a denied or failed attempt.
pub async fn record_alone(db: &Db, event: NewEvent) -> AppResult<()> {
    let txn = db.transaction().await?;
    record(&txn, event).await?;
    txn.commit().await?;
    Ok(())
}

/// `SHA-256(prev_hash ‖ canonical event)`, hex.
pub fn event_hash(event: &audit_event::Model) -> String {
    let mut hasher = Sha256::new();
    hasher.update(event.prev_hash.as_bytes());
    hasher.update(canonical_event(event).as_bytes());
    hex::encode(hasher.finalize())
}

/// The canonical encoding of everything in an event but its hashes: a JSON
/// object with its keys sorted at every level (see `write_canonical`).
/// Written straight into one buffer, its top-level keys in their sorted
/// order, on every append: through a `json!` value and `Display`, this was
/// an eighth of a revocation's instructions (measured); the tests hold it
/// byte for byte to that form.
pub fn canonical_event(event: &audit_event::Model) -> String {
    let mut out = Vec::with_capacity(256 + event.message.len());
    out.push(b'{');
    field(
        &mut out,
        "actorId",
        &event.actor_id.map(|id| id.hyphenated()),
    );
    let created_at = event
        .created_at
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    field(&mut out, "createdAt", &created_at);
    field(&mut out, "eventType", &event.event_type);
    field(&mut out, "id", &event.id.hyphenated());
    field(&mut out, "ipAddress", &event.ip_address);
    field(&mut out, "message", &event.message);
    key(&mut out, "metadata");
    write_canonical(&event.metadata, &mut out);
    field(&mut out, "seq", &event.seq);
    field(
        &mut out,
        "sessionId",
        &event.session_id.map(|id| id.hyphenated()),
    );
    field(&mut out, "status", event.status.as_str());
    field(&mut out, "userAgent", &event.user_agent);
    field(&mut out, "userId", &event.user_id.map(|id| id.hyphenated()));
    out.push(b'}');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// `"name":value`, after a comma unless it is the object's first member.
fn field(out: &mut Vec<u8>, name: &str, value: &(impl serde::Serialize + ?Sized)) {
    key(out, name);
    json(out, value);
}

/// `"name":`, after a comma unless it opens its object. Whether it does is
/// read from the buffer: a member follows only its object's `{` or a
/// complete value, and no complete JSON value ends in `{`.
fn key(out: &mut Vec<u8>, name: &str) {
    if out.last() != Some(&b'{') {
        out.push(b',');
    }
    json(out, name);
    out.push(b':');
}

/// `value` as compact JSON, as serde_json writes it.
fn json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(out, value).expect("strings, numbers and UUIDs always serialize");
}

/// JSON with object keys sorted at every level, whatever map type
/// serde_json was built with, so the encoding never depends on features
/// or on how a database stored the document.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by_key(|(key, _)| *key);
            out.push(b'{');
            for (name, member) in members {
                key(out, name);
                write_canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => json(out, scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::audit::events;

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

    /// The form the canonical encoding was first written in (a `json!`
    /// value, keys sorted by a walk, scalars by `Display`): every hash in
    /// a stored chain was made with it, so the encoding must not move.
    fn canonical_by_value(event: &audit_event::Model) -> String {
        fn walk(value: &Value, out: &mut String) {
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
                        walk(&map[key], out);
                    }
                    out.push('}');
                }
                Value::Array(items) => {
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        walk(item, out);
                    }
                    out.push(']');
                }
                scalar => out.push_str(&scalar.to_string()),
            }
        }
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
        walk(&value, &mut out);
        out
    }

    #[test]
    fn the_encoding_is_byte_for_byte_the_first_one() {
        let mut events = vec![sample()];
        let mut full = sample();
        full.seq = -42;
        full.id = Uuid::now_v7();
        full.actor_id = Some(Uuid::new_v4());
        full.user_id = Some(Uuid::new_v4());
        full.session_id = Some(Uuid::new_v4());
        full.user_agent = Some("Mozilla/5.0 \"quoted\" \\ back\u{0007}\u{1F600} é\n".into());
        full.ip_address = Some("::1".into());
        full.message = "session a… of ünïcode@example.com revoked (\"x\")\t\r".into();
        full.status = AuditStatus::Failed;
        full.metadata = json!({
            "z": null, "a": true, "m": false, "n": 1.5, "neg": -7, "big": u64::MAX,
            "nested": {"b": [1, {"y": "2", "x": [[]]}], "a": {}},
            "\u{00e9}": "accented key", "A": "upper before lower", "": "empty key",
            "quote\"key": "\u{0000}\u{001f}\u{007f}",
        });
        events.push(full);
        let mut empty = sample();
        empty.metadata = json!({});
        events.push(empty);
        let mut not_an_object = sample();
        not_an_object.metadata = json!([1, "two", null]);
        events.push(not_an_object);
        for event in events {
            assert_eq!(canonical_event(&event), canonical_by_value(&event));
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
