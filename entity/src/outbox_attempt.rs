use sea_orm::entity::prelude::*;

/// One attempt at delivering one audit event to one destination.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox_attempts")]
pub struct Model {
    /// UUIDv7: attempts of a destination page by it.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub destination_id: Uuid,
    pub event_id: Uuid,
    pub event_seq: i64,
    pub event_type: String,
    /// 1 for the first attempt at this event, then 2, 3, …
    pub attempt: i32,
    /// `success` or `failed`.
    pub status: String,
    /// The receiver's HTTP status, when it answered.
    pub response_code: Option<i32>,
    pub latency_ms: i64,
    /// Why it failed (timeout, connection refused, refused address…).
    pub error: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
