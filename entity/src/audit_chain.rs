use sea_orm::entity::prelude::*;

/// The single row holding the head of the audit hash chain. Appending an
/// event locks this row (or, on SQLite, the whole database through an
/// immediate transaction), so the chain stays linear with several servers.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_chain")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    /// `seq` of the last appended event (0 when none yet).
    pub head_seq: i64,
    /// `hash` of the last appended event (the anchor when none).
    pub head_hash: String,
    /// `seq` of the last purged event (0 when nothing was purged).
    pub anchor_seq: i64,
    /// `hash` of the last purged event: the `prev_hash` of the oldest kept one.
    pub anchor_hash: String,
}

/// The id of the one row.
pub const CHAIN_ID: i32 = 1;

/// `prev_hash` of the very first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
