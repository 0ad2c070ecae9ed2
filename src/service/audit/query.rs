//! Reading the log: filtered pages, as a reader may see them.

use entity::audit_event::{self, AuditStatus};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::Value;
use uuid::Uuid;

use super::chain::chain_head;
use crate::{
    auth::Caller,
    error::{AppError, AppResult},
    service::{access, paging},
};

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
    if access::may_read_all_audit(reader) {
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
    /// `BAD_USER_INPUT` for an event type no event could have, or a time
    /// range that ends before it starts.
    pub fn validate(&self) -> AppResult<()> {
        if let Some(event_type) = &self.event_type
            && (event_type.is_empty()
                || event_type.len() > 64
                || event_type.chars().any(char::is_control))
        {
            return Err(AppError::bad_input(
                "eventType",
                "eventType must be 1 to 64 printable characters",
            ));
        }
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since > until
        {
            return Err(AppError::bad_input(
                "since",
                "since must not be after until",
            ));
        }
        Ok(())
    }

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

/// The page of `sessionAudit` that `reader` asked for: the arguments
/// checked (`limit` 1 to [`MAX_PAGE`], `offset` 0 to [`MAX_OFFSET`], the
/// filter, the cursor `after`), the filter narrowed to the events about
/// the reader unless they may read all of them, and each event as the
/// reader may see it (see [`as_seen_by`]).
pub async fn page_for(
    conn: &impl ConnectionTrait,
    reader: Option<&Caller>,
    mut filter: AuditFilter,
    limit: i32,
    offset: i32,
    after: Option<&str>,
) -> AppResult<Page> {
    let limit = paging::bounded("limit", limit, 1, MAX_PAGE)?;
    let offset = paging::bounded("offset", offset, 0, MAX_OFFSET)?;
    filter.validate()?;
    // No reader: an API key with `AUDIT_READ` (checked by its guard),
    // which reads every event as it is stored.
    if let Some(reader) = reader
        && !access::may_read_all_audit(reader)
    {
        filter.user_id = Some(reader.user.id);
    }
    let before_seq = after.map(paging::cursor).transpose()?;
    let mut page = page(conn, &filter, limit, offset, before_seq).await?;
    page.logs = page
        .logs
        .into_iter()
        .map(|event| match reader {
            Some(reader) => as_seen_by(reader, event),
            None => event,
        })
        .collect();
    Ok(page)
}

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

impl Page {
    /// The cursor of the next page (the chain position of this page's
    /// last event), unless this is the last page.
    pub fn next_cursor(&self) -> Option<String> {
        self.has_more
            .then(|| self.logs.last().map(|e| e.seq.to_string()))
            .flatten()
    }
}
