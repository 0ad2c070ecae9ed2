//! Poll delivery (RFC 8936): a receiver drains a poll stream by POSTing
//! to its endpoint. The stream's cursor (kind `ssf-poll`; the worker does
//! not serve it) is the last event acknowledged: an answer lists the SETs
//! after it, and the cursor moves only over the longest run of events
//! that are acknowledged (`ack`), refused (`setErrs`, logged) or not for
//! this stream. Nothing is dropped without an acknowledgement, and a SET
//! listed again after a lost answer keeps its `jti`.

use std::collections::HashSet;

use entity::outbox_cursor;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use super::{
    Keyring, POLL,
    stream::{self, Opened},
};
use crate::{
    db::Db,
    error::{AppError, AppResult},
    service::outbox,
};

/// Most SETs one answer lists (`maxEvents` above it is cut to it).
pub const MAX_EVENTS: u64 = 100;
/// Most audit events one request looks through.
const SCAN: u64 = 2_000;
const PAGE: u64 = 200;

/// One poll's answer.
#[derive(Debug, Default)]
pub struct Answer {
    /// (`jti`, SET), in log order.
    pub sets: Vec<(String, String)>,
    pub more_available: bool,
}

/// Applies the acknowledgements (`acked`: `ack` and `setErrs` keys) to
/// the stream `id` and lists at most `max` SETs after its cursor (none
/// unless it is enabled, or when `max` is 0).
pub async fn poll(
    db: &Db,
    keys: &Keyring,
    id: Uuid,
    acked: &HashSet<String>,
    max: u64,
) -> AppResult<Answer> {
    let found = stream::get(db, id).await?;
    if found.stream.delivery_method != POLL {
        return Err(AppError::bad_input(
            "stream_id",
            "this stream is delivered by push, not poll",
        ));
    }
    let enabled = found.status().0 == "enabled";
    let max = max.min(MAX_EVENTS);
    let opened = Opened::open(db, found.stream).await?;
    let start = found.cursor.cursor_seq;
    let mut at = start;
    let mut advanced = start;
    let mut advancing = true;
    let mut answer = Answer::default();
    let mut looked = 0u64;
    'scan: while looked < SCAN {
        let page = outbox::events_after(db, at, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            looked += 1;
            at = event.seq;
            if !opened.wants(event) {
                if advancing {
                    advanced = event.seq;
                }
                continue;
            }
            let jti = opened.jti(event);
            if acked.contains(&jti) {
                if advancing {
                    advanced = event.seq;
                }
                continue;
            }
            advancing = false;
            if !enabled {
                break 'scan;
            }
            if (answer.sets.len() as u64) >= max {
                answer.more_available = true;
                break 'scan;
            }
            if let Some(set) = opened.set(db, keys, event).await? {
                answer.sets.push((jti, set));
            }
        }
        if (page.len() as u64) < PAGE {
            break;
        }
    }
    if looked >= SCAN && enabled {
        answer.more_available = true;
    }
    if advanced > start {
        // Conditional: a concurrent poll that moved it first wins.
        outbox_cursor::Entity::update_many()
            .col_expr(outbox_cursor::Column::CursorSeq, Expr::value(advanced))
            .col_expr(
                outbox_cursor::Column::LastSuccessAt,
                Expr::value(crate::db::now()),
            )
            .filter(outbox_cursor::Column::Id.eq(id))
            .filter(outbox_cursor::Column::CursorSeq.eq(start))
            .exec(db)
            .await?;
    }
    Ok(answer)
}
