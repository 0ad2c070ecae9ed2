use sea_orm::entity::prelude::*;

/// Where one outbound destination stands in the audit log (the outbox):
/// the last event delivered, whether it is being retried, and which
/// server holds it. Every kind of destination (webhook endpoints; later
/// SSF streams) has one row, under the destination's own id.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_cursors")]
pub struct Model {
    /// The destination's id (e.g. the webhook endpoint's).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// What kind of destination (`webhook`).
    pub kind: String,
    /// The `seq` of the last audit event delivered or passed over.
    pub cursor_seq: i64,
    pub enabled: bool,
    pub disabled_at: Option<DateTimeUtc>,
    pub disabled_reason: Option<String>,
    /// The server process holding the destination, until `lease_until`.
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    /// Failed attempts at the event after the cursor.
    pub attempts: i32,
    /// When delivering the event after the cursor first failed.
    pub failing_since: Option<DateTimeUtc>,
    /// Not before this (a retry's back-off).
    pub next_attempt_at: Option<DateTimeUtc>,
    pub last_success_at: Option<DateTimeUtc>,
    pub last_failure_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
