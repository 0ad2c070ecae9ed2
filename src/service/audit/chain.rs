//! The chain as a whole: its head, purging the oldest, walking and
//! verifying it.

use entity::{
    audit_chain::{self, CHAIN_ID},
    audit_event::{self},
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::event_hash;
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
