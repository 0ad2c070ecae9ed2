//! Signed checkpoints: statements about the chain that the server signs
//! with a key outside the database (see [`super::keys`]), so that one who
//! can rewrite the database cannot rewrite what was signed.
//!
//! A checkpoint says "the event at `seq` had hash `hash`, and the chain
//! then began after the anchor (`anchorSeq`, `anchorHash`)". A purge
//! record, written in the retention purge's own transaction, says "the
//! events after `anchorSeq` through `seq` were removed; the event at
//! `seq`, now the anchor, had hash `hash`": a purge is thus told apart
//! from a deletion. Both are stored (`audit_checkpoints`) and announced
//! as audit events (`audit.checkpoint`, `audit.purged`) carrying the whole
//! signed statement, for whatever carries events to an outside witness.
//!
//! The signature is over `session-manager audit checkpoint v1\n`
//! followed by the statement's canonical JSON (keys sorted, no spaces):
//! `anchorHash`, `anchorSeq`, `createdAt` (RFC 3339, microseconds),
//! `hash`, `keyId`, `kind`, `seq`.

use std::time::Duration;

use entity::{
    audit_chain::{self, GENESIS_HASH},
    audit_checkpoint::{self, CHECKPOINT, PURGE},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Keyring, NewEvent, Signer, event_hash, events, lock_head, record};
use crate::{
    db::{self, Db},
    error::{AppError, AppResult},
    service::paging,
};

const DOMAIN: &str = "session-manager audit checkpoint v1\n";

/// A signed statement about the chain, as stored, exported, announced
/// and printed by `audit checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkpoint {
    /// `checkpoint` or `purge`.
    pub kind: String,
    pub seq: i64,
    pub hash: String,
    pub anchor_seq: i64,
    pub anchor_hash: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub key_id: String,
    pub signature: String,
}

impl Checkpoint {
    /// The bytes the signature covers.
    pub fn signed_message(&self) -> Vec<u8> {
        let text = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        format!(
            "{DOMAIN}{{\"anchorHash\":{},\"anchorSeq\":{},\"createdAt\":{},\"hash\":{},\"keyId\":{},\"kind\":{},\"seq\":{}}}",
            text(&self.anchor_hash),
            self.anchor_seq,
            text(
                &self
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            ),
            text(&self.hash),
            text(&self.key_id),
            text(&self.kind),
            self.seq,
        )
        .into_bytes()
    }

    fn signed(
        signer: &Signer,
        kind: &str,
        (seq, hash): (i64, &str),
        (anchor_seq, anchor_hash): (i64, &str),
    ) -> Self {
        let mut checkpoint = Self {
            kind: kind.to_owned(),
            seq,
            hash: hash.to_owned(),
            anchor_seq,
            anchor_hash: anchor_hash.to_owned(),
            created_at: db::now(),
            key_id: signer.key_id().to_owned(),
            signature: String::new(),
        };
        checkpoint.signature = signer.sign(&checkpoint.signed_message());
        checkpoint
    }

    /// `Ok` when one of `keys` signed this; `Err` says why not.
    pub fn verify(&self, keys: &Keyring) -> Result<(), String> {
        keys.check(&self.key_id, &self.signed_message(), &self.signature)
    }

    /// Checkpoints in `text`: one JSON object, a JSON array of them, or
    /// one object per line (as `audit checkpoint >> file` collects them).
    pub fn parse_many(text: &str) -> Result<Vec<Self>, String> {
        let text = text.trim();
        if let Ok(one) = serde_json::from_str::<Self>(text) {
            return Ok(vec![one]);
        }
        if let Ok(many) = serde_json::from_str::<Vec<Self>>(text) {
            return Ok(many);
        }
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(n, line)| {
                serde_json::from_str(line)
                    .map_err(|e| format!("line {} is not a checkpoint: {e}", n + 1))
            })
            .collect()
    }

    pub fn is_purge(&self) -> bool {
        self.kind == PURGE
    }
}

impl From<audit_checkpoint::Model> for Checkpoint {
    fn from(model: audit_checkpoint::Model) -> Self {
        Self {
            kind: model.kind,
            seq: model.seq,
            hash: model.hash,
            anchor_seq: model.anchor_seq,
            anchor_hash: model.anchor_hash,
            created_at: model.created_at,
            key_id: model.key_id,
            signature: model.signature,
        }
    }
}

/// When the server signs on its own: after `every` new events, or
/// `interval` after the first event no checkpoint covers (see
/// `tasks::spawn_checkpoints`).
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    pub every: u64,
    pub interval: Duration,
}

/// Signs a checkpoint of the chain's head and announces it, in one
/// transaction holding the chain head, if anything was appended since
/// the last checkpoint besides that checkpoint's own announcement (which
/// is appended in the same transaction, so always right after it).
/// Otherwise `None`, or with `force` (`audit checkpoint`, which always
/// prints one) the last checkpoint as it is.
pub async fn checkpoint(db: &Db, signer: &Signer, force: bool) -> AppResult<Option<Checkpoint>> {
    let txn = db.transaction().await?;
    let head = lock_head(&txn).await?;
    let last = audit_checkpoint::Entity::find()
        .filter(audit_checkpoint::Column::Kind.eq(CHECKPOINT))
        .order_by_desc(audit_checkpoint::Column::Seq)
        .one(&txn)
        .await?;
    let due = match &last {
        None => force || head.head_seq > head.anchor_seq,
        Some(last) => head.head_seq > last.seq + 1,
    };
    if !due {
        txn.rollback().await?;
        return Ok(last.filter(|_| force).map(Checkpoint::from));
    }
    if let Some(last) = &last {
        // Never vouch for a chain rewritten since the last checkpoint.
        if let Err(broken) = extends(&txn, last, &head).await? {
            tracing::error!(
                last_seq = last.seq,
                head_seq = head.head_seq,
                "audit: not signing a checkpoint: {broken}"
            );
            txn.rollback().await?;
            return Err(AppError::internal(anyhow::anyhow!(
                "the audit chain does not extend the last checkpoint (seq {}): {broken}; \
                 run `session-manager audit verify`",
                last.seq
            )));
        }
    }
    let checkpoint = Checkpoint::signed(
        signer,
        CHECKPOINT,
        (head.head_seq, &head.head_hash),
        (head.anchor_seq, &head.anchor_hash),
    );
    store(&txn, &checkpoint).await?;
    announce(
        &txn,
        events::CHECKPOINT,
        format!("audit checkpoint signed at seq {}", checkpoint.seq),
        &checkpoint,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(
        seq = checkpoint.seq,
        key_id = checkpoint.key_id,
        "audit: checkpoint signed"
    );
    Ok(Some(checkpoint))
}

/// Whether the chain as it stands extends `last`: the event at its `seq`
/// still has its hash, and every event after it through the head follows
/// on, position by position, its hash recomputed. Normally a walk of
/// about `AUDIT_CHECKPOINT_EVERY` events, so the server never signs a
/// chain someone with the database's keys rewrote since (`Err` says how).
async fn extends(
    conn: &impl ConnectionTrait,
    last: &audit_checkpoint::Model,
    head: &audit_chain::Model,
) -> AppResult<Result<(), String>> {
    use entity::audit_event;
    if head.head_seq < last.seq {
        return Ok(Err(format!(
            "the head (seq {}) is behind the last checkpoint",
            head.head_seq
        )));
    }
    // A checkpoint retention has purged past stands for nothing more than
    // the anchor (a signed purge record vouches for that): walk from it.
    let (first, mut hash) = if last.seq <= head.anchor_seq {
        (head.anchor_seq + 1, Some(head.anchor_hash.clone()))
    } else {
        (last.seq, None)
    };
    let events = audit_event::Entity::find()
        .filter(audit_event::Column::Seq.gte(first))
        .filter(audit_event::Column::Seq.lte(head.head_seq))
        .order_by_asc(audit_event::Column::Seq)
        .all(conn)
        .await?;
    let mut expected = first;
    for event in &events {
        if event.seq != expected {
            return Ok(Err(format!("no event at seq {expected}")));
        }
        match &hash {
            None if event.hash != last.hash => {
                return Ok(Err(format!(
                    "the event at seq {} is not the one signed",
                    event.seq
                )));
            }
            Some(prev) if &event.prev_hash != prev || event_hash(event) != event.hash => {
                return Ok(Err(format!("the chain breaks at seq {}", event.seq)));
            }
            _ => {}
        }
        hash = Some(event.hash.clone());
        expected += 1;
    }
    if expected != head.head_seq + 1 || hash.as_deref() != Some(head.head_hash.as_str()) {
        return Ok(Err(format!(
            "the chain does not reach its head (seq {})",
            head.head_seq
        )));
    }
    Ok(Ok(()))
}

/// Signs a checkpoint at every `every`-th position of the chain as it
/// stands, from the anchor on, and the head, without announcing them:
/// for bulk loads (the benchmark seeder), whose events no server saw
/// appended. Returns how many were signed.
pub async fn sign_positions(db: &Db, signer: &Signer, every: i64) -> AppResult<u64> {
    let txn = db.transaction().await?;
    let head = lock_head(&txn).await?;
    let anchor = (head.anchor_seq, head.anchor_hash.as_str());
    let mut positions: Vec<i64> = (1..)
        .map(|k| head.anchor_seq.saturating_add(k * every.max(1)))
        .take_while(|seq| *seq < head.head_seq)
        .collect();
    if head.head_seq > head.anchor_seq {
        positions.push(head.head_seq);
    }
    for seq in &positions {
        let event = entity::audit_event::Entity::find()
            .filter(entity::audit_event::Column::Seq.eq(*seq))
            .one(&txn)
            .await?
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("no event at seq {seq}")))?;
        let checkpoint = Checkpoint::signed(signer, CHECKPOINT, (*seq, &event.hash), anchor);
        store(&txn, &checkpoint).await?;
    }
    txn.commit().await?;
    Ok(positions.len() as u64)
}

/// Records, signed, that retention removed the events after `head`'s
/// anchor through `(seq, hash)`: call it in the purge's transaction,
/// with the chain head locked, before the anchor moves.
pub(super) async fn record_purge(
    conn: &impl ConnectionTrait,
    signer: &Signer,
    head: &audit_chain::Model,
    (seq, hash): (i64, &str),
) -> AppResult<()> {
    let record = Checkpoint::signed(
        signer,
        PURGE,
        (seq, hash),
        (head.anchor_seq, &head.anchor_hash),
    );
    store(conn, &record).await?;
    // Checkpoints of purged events cannot be checked any more; the purge
    // record stands for them.
    audit_checkpoint::Entity::delete_many()
        .filter(audit_checkpoint::Column::Kind.eq(CHECKPOINT))
        .filter(audit_checkpoint::Column::Seq.lt(seq))
        .exec(conn)
        .await?;
    announce(
        conn,
        events::PURGED,
        format!(
            "audit retention purged events {} to {}",
            head.anchor_seq + 1,
            seq
        ),
        &record,
    )
    .await?;
    Ok(())
}

async fn store(conn: &impl ConnectionTrait, checkpoint: &Checkpoint) -> AppResult<()> {
    let model = audit_checkpoint::Model {
        id: Uuid::now_v7(),
        kind: checkpoint.kind.clone(),
        seq: checkpoint.seq,
        hash: checkpoint.hash.clone(),
        anchor_seq: checkpoint.anchor_seq,
        anchor_hash: checkpoint.anchor_hash.clone(),
        created_at: checkpoint.created_at,
        key_id: checkpoint.key_id.clone(),
        signature: checkpoint.signature.clone(),
    };
    audit_checkpoint::Entity::insert(audit_checkpoint::ActiveModel::from(model))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

async fn announce(
    conn: &impl ConnectionTrait,
    event_type: &'static str,
    message: String,
    checkpoint: &Checkpoint,
) -> AppResult<()> {
    let statement = serde_json::to_value(checkpoint).map_err(AppError::internal)?;
    record(
        conn,
        NewEvent::success(event_type, message).meta("checkpoint", statement),
    )
    .await?;
    Ok(())
}

/// Every stored checkpoint and purge record, by `seq` (purge records
/// first at equal `seq`).
pub async fn all_checkpoints(conn: &impl ConnectionTrait) -> AppResult<Vec<Checkpoint>> {
    let rows = audit_checkpoint::Entity::find()
        .order_by_asc(audit_checkpoint::Column::Seq)
        .order_by_desc(audit_checkpoint::Column::Kind)
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(Checkpoint::from).collect())
}

/// Largest page of `auditCheckpoints`.
pub const MAX_CHECKPOINT_PAGE: u64 = 500;

/// One page of stored checkpoints and purge records, newest first, with
/// how many there are in all.
pub async fn checkpoint_page(
    conn: &impl ConnectionTrait,
    limit: i32,
    offset: i32,
) -> AppResult<(Vec<Checkpoint>, u64, bool)> {
    let limit = paging::bounded("limit", limit, 1, MAX_CHECKPOINT_PAGE)?;
    let offset = paging::bounded("offset", offset, 0, super::MAX_OFFSET)?;
    let total = audit_checkpoint::Entity::find().count(conn).await?;
    let mut rows = audit_checkpoint::Entity::find()
        .order_by_desc(audit_checkpoint::Column::Seq)
        .order_by_asc(audit_checkpoint::Column::Kind)
        .limit(limit + 1)
        .offset(offset)
        .all(conn)
        .await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    Ok((
        rows.into_iter().map(Checkpoint::from).collect(),
        total,
        has_more,
    ))
}

/// Whether `(seq, hash)` is where a chain with no purge starts.
pub(super) fn is_genesis(seq: i64, hash: &str) -> bool {
    seq == 0 && hash == GENESIS_HASH
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            kind: CHECKPOINT.into(),
            seq: 1_000,
            hash: "ab".repeat(32),
            anchor_seq: 0,
            anchor_hash: GENESIS_HASH.into(),
            created_at: chrono::DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
            key_id: "0123456789abcdef".into(),
            signature: String::new(),
        }
    }

    /// The bytes an outside verifier must rebuild: fixed, documented in
    /// the module's notes.
    #[test]
    fn the_signed_message_is_the_documented_canonical_json() {
        let message = String::from_utf8(sample().signed_message()).unwrap();
        assert_eq!(
            message,
            format!(
                "session-manager audit checkpoint v1\n{{\"anchorHash\":\"{GENESIS_HASH}\",\"anchorSeq\":0,\
                 \"createdAt\":\"2023-11-14T22:13:20.123456Z\",\"hash\":\"{}\",\
                 \"keyId\":\"0123456789abcdef\",\"kind\":\"checkpoint\",\"seq\":1000}}",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn checkpoints_parse_as_one_object_an_array_or_lines() {
        let one = serde_json::to_string(&sample()).unwrap();
        assert_eq!(Checkpoint::parse_many(&one).unwrap().len(), 1);
        let array = format!("[{one},{one}]");
        assert_eq!(Checkpoint::parse_many(&array).unwrap().len(), 2);
        let lines = format!("{one}\n\n{one}\n{one}\n");
        assert_eq!(Checkpoint::parse_many(&lines).unwrap().len(), 3);
        let err = Checkpoint::parse_many(&format!("{one}\n{{\"seq\":1}}")).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let extra = one.replacen('{', "{\"extra\":1,", 1);
        assert!(
            Checkpoint::parse_many(&extra).is_err(),
            "unknown fields are refused"
        );
    }
}
