//! The chain as a whole: its head, purging the oldest, walking and
//! verifying it.

use entity::{
    audit_chain::{self, CHAIN_ID},
    audit_event::{self},
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{
    Checkpoint, Keyring, Signer,
    checkpoint::{all_checkpoints, is_genesis, record_purge},
    event_hash,
};
use crate::{
    db::Db,
    error::{AppError, AppResult},
};

pub(super) async fn chain_head(conn: &impl ConnectionTrait) -> AppResult<audit_chain::Model> {
    audit_chain::Entity::find_by_id(CHAIN_ID)
        .one(conn)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("audit chain head row is missing")))
}

/// Deletes events older than `cutoff`, oldest first, at most `batch` per
/// transaction, moving the chain's anchor to the last one deleted so the
/// rest still verifies, and writing in the same transaction a purge
/// record signed by `signer` (see [`super::checkpoint`]), so that the
/// move is told apart from a deletion. Returns how many were deleted.
pub async fn purge_before(
    db: &Db,
    signer: &Signer,
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
        record_purge(&txn, signer, &head, (last.seq, &last.hash)).await?;
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

/// The chain head, locked for an append (see [`record`](super::record)).
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainReport {
    pub intact: bool,
    /// Events checked.
    pub checked: u64,
    /// The first event that does not fit the chain (or the one after a gap).
    pub first_broken_id: Option<Uuid>,
    /// `seq` where the break was found.
    pub first_broken_seq: Option<i64>,
    pub problem: Option<String>,
    /// Whether signatures were checked (public keys were given).
    pub signatures_checked: bool,
    /// Checkpoints and purge records checked, stored and given.
    pub checkpoints_checked: u64,
    /// The newest chain position a checkpoint vouches for and the chain
    /// matched: events after it are not covered by any signature yet.
    pub covered_seq: Option<i64>,
    /// The chain head's `seq`.
    pub head_seq: i64,
    /// The anchor's `seq` (the last purged event; 0 before any purge).
    pub anchor_seq: i64,
}

impl ChainReport {
    /// Events no checkpoint covers yet (after `covered_seq`).
    pub fn unsigned_events(&self) -> i64 {
        (self.head_seq - self.covered_seq.unwrap_or(0).max(self.anchor_seq)).max(0)
    }
}

/// What to check besides the hash chain itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct Verification<'a> {
    /// Check every checkpoint's signature against these keys; `None`
    /// checks only that the chain matches the stored checkpoints.
    pub keys: Option<&'a Keyring>,
    /// Checkpoints kept outside the database, checked like stored ones
    /// (whether or not the database still holds them). Needs `keys`.
    pub external: &'a [Checkpoint],
}

/// Walks the whole chain from its anchor, recomputing each hash, with no
/// signature checked: [`verify`] with no keys.
pub async fn verify_chain(pool: &DatabaseConnection) -> AppResult<ChainReport> {
    verify(pool, &Verification::default()).await
}

/// Walks the whole chain from its anchor, in pages, recomputing each
/// hash, and holds it to the checkpoints: each checkpoint's signature
/// (with `keys`), the anchor (where the last signed purge left it), each
/// checkpoint's position (the chain's event there has the signed hash),
/// and the chain's end (no signed position past it).
///
/// The head, the checkpoints and every page of events are read in one
/// [`snapshot`](crate::db::snapshot): read one by one, the events appended
/// (or purged) meanwhile would not match the head read before them, and
/// an intact chain would be reported broken.
pub async fn verify(pool: &DatabaseConnection, how: &Verification<'_>) -> AppResult<ChainReport> {
    let snapshot = crate::db::snapshot(pool).await?;
    let report = walk(&snapshot, how).await?;
    snapshot.commit().await?;
    Ok(report)
}

async fn walk(conn: &DatabaseTransaction, how: &Verification<'_>) -> AppResult<ChainReport> {
    const PAGE: u64 = 2_000;
    let head = chain_head(conn).await?;
    let stored = all_checkpoints(conn).await?;
    let mut report = ChainReport {
        intact: true,
        signatures_checked: how.keys.is_some(),
        head_seq: head.head_seq,
        anchor_seq: head.anchor_seq,
        ..ChainReport::default()
    };
    let broken =
        |report: &ChainReport, seq: Option<i64>, id: Option<Uuid>, problem: String| ChainReport {
            intact: false,
            first_broken_id: id,
            first_broken_seq: seq,
            problem: Some(problem),
            ..report.clone()
        };
    if !how.external.is_empty() && how.keys.is_none() {
        return Err(AppError::bad_input(
            "checkpoint",
            "a checkpoint from outside is checked with public keys only",
        ));
    }

    // Signatures.
    let all: Vec<(&Checkpoint, bool)> = stored
        .iter()
        .map(|c| (c, false))
        .chain(how.external.iter().map(|c| (c, true)))
        .collect();
    if let Some(keys) = how.keys {
        for (checkpoint, external) in &all {
            if let Err(why) = checkpoint.verify(keys) {
                return Ok(broken(
                    &report,
                    Some(checkpoint.seq),
                    None,
                    format!(
                        "the {} {} at seq {}: {why}",
                        if *external { "given" } else { "stored" },
                        checkpoint.kind,
                        checkpoint.seq
                    ),
                ));
            }
        }
    }
    report.checkpoints_checked = all.len() as u64;

    // The anchor: where the last purge record left it. Purge records
    // follow each other without a gap; before the first one, the chain
    // began at the genesis, or (purged before checkpoints existed) at the
    // anchor the oldest checkpoint was signed with.
    let purges: Vec<&Checkpoint> = stored.iter().filter(|c| c.is_purge()).collect();
    for pair in purges.windows(2) {
        if pair[1].anchor_seq != pair[0].seq || pair[1].anchor_hash != pair[0].hash {
            return Ok(broken(
                &report,
                Some(pair[0].seq + 1),
                None,
                format!(
                    "no purge record covers the events after seq {}: a purge record is missing, or events were deleted",
                    pair[0].seq
                ),
            ));
        }
    }
    let anchor = (head.anchor_seq, head.anchor_hash.as_str());
    if how.keys.is_some() {
        let attested = match purges.last() {
            Some(last) => (last.seq, last.hash.as_str()) == anchor,
            None => {
                is_genesis(anchor.0, anchor.1)
                    || stored
                        .first()
                        .is_some_and(|c| (c.anchor_seq, c.anchor_hash.as_str()) == anchor)
            }
        };
        if !attested {
            return Ok(broken(
                &report,
                Some(anchor.0),
                None,
                format!(
                    "the chain starts after seq {}, where no signed purge record left it: the oldest events were deleted",
                    anchor.0
                ),
            ));
        }
    }
    // Each checkpoint's own anchor is the chain's, or one that signed
    // purges lead from to the chain's.
    let mut targets: Vec<&Checkpoint> = Vec::new();
    for (checkpoint, _) in &all {
        if checkpoint.is_purge() {
            continue;
        }
        let from = (checkpoint.anchor_seq, checkpoint.anchor_hash.as_str());
        if from != anchor && !purged_through(&purges, from, anchor) {
            return Ok(broken(
                &report,
                Some(checkpoint.anchor_seq.min(anchor.0) + 1),
                None,
                format!(
                    "the checkpoint at seq {} has the chain start after seq {}, but it starts after seq {} and no signed purge records lead there: events were deleted",
                    checkpoint.seq, checkpoint.anchor_seq, anchor.0
                ),
            ));
        }
        if checkpoint.seq == anchor.0 && checkpoint.hash != anchor.1 {
            return Ok(broken(
                &report,
                Some(anchor.0),
                None,
                format!(
                    "the chain's anchor does not match the checkpoint at seq {}",
                    checkpoint.seq
                ),
            ));
        }
        if checkpoint.seq >= anchor.0 {
            report.covered_seq = report.covered_seq.max(Some(checkpoint.seq));
        }
        if checkpoint.seq > anchor.0 {
            targets.push(checkpoint);
        }
    }
    targets.sort_by_key(|c| c.seq);
    let mut targets = targets.into_iter().peekable();

    let mut expected_seq = head.anchor_seq + 1;
    let mut expected_prev = head.anchor_hash.clone();
    loop {
        let page = audit_event::Entity::find()
            .filter(audit_event::Column::Seq.gte(expected_seq))
            .order_by_asc(audit_event::Column::Seq)
            .limit(PAGE)
            .all(conn)
            .await?;
        let done = (page.len() as u64) < PAGE;
        for event in page {
            report.checked += 1;
            if event.seq != expected_seq {
                let problem = format!(
                    "event {} has seq {} where {} was expected: events are missing",
                    event.id, event.seq, expected_seq
                );
                return Ok(broken(&report, Some(event.seq), Some(event.id), problem));
            }
            if event.prev_hash != expected_prev {
                let problem = format!(
                    "event {} (seq {}) does not link to the event before it",
                    event.id, event.seq
                );
                return Ok(broken(&report, Some(event.seq), Some(event.id), problem));
            }
            if event_hash(&event) != event.hash {
                let problem = format!(
                    "event {} (seq {}) was altered: its hash does not match its content",
                    event.id, event.seq
                );
                return Ok(broken(&report, Some(event.seq), Some(event.id), problem));
            }
            while let Some(target) = targets.next_if(|t| t.seq == event.seq) {
                if target.hash != event.hash {
                    let problem = format!(
                        "event {} (seq {}) is not the event the checkpoint at seq {} signed: events up to it were altered, removed or replaced",
                        event.id, event.seq, target.seq
                    );
                    return Ok(broken(&report, Some(event.seq), Some(event.id), problem));
                }
            }
            expected_prev = event.hash;
            expected_seq += 1;
        }
        if done {
            break;
        }
    }
    let end = expected_seq - 1;
    if let Some(target) = targets.next() {
        return Ok(broken(
            &report,
            Some(end + 1),
            None,
            format!(
                "the chain ends at seq {end} but a signed checkpoint vouches for seq {}: the newest events were deleted",
                target.seq
            ),
        ));
    }
    if end != head.head_seq || expected_prev != head.head_hash {
        return Ok(broken(
            &report,
            Some(expected_seq),
            None,
            format!(
                "the chain ends at seq {} but its head says {}: the newest events are missing",
                end, head.head_seq
            ),
        ));
    }
    Ok(report)
}

/// Whether signed purge records lead from the anchor `from` to `to`.
fn purged_through(purges: &[&Checkpoint], from: (i64, &str), to: (i64, &str)) -> bool {
    let mut at = from;
    for purge in purges {
        if (purge.anchor_seq, purge.anchor_hash.as_str()) == at {
            at = (purge.seq, purge.hash.as_str());
        }
        if at == to {
            return true;
        }
    }
    at == to
}
