use sea_orm::entity::prelude::*;

/// A signed statement about the audit chain, kept so that a verifier can
/// tell the chain it reads from the one the server signed (see the
/// server's `service::audit` checkpoints). Two kinds:
///
/// - `checkpoint`: the chain's event at `seq` had hash `hash`, and the
///   chain then started after the anchor (`anchor_seq`, `anchor_hash`).
/// - `purge`: retention removed the events after `anchor_seq` through
///   `seq`; the event at `seq` (now the anchor) had hash `hash`.
///
/// The signature (Ed25519, by the key `key_id`, which is not in the
/// database) covers every column but `id`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_checkpoints")]
pub struct Model {
    /// UUIDv7, time-ordered.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `checkpoint` or `purge`.
    pub kind: String,
    pub seq: i64,
    pub hash: String,
    pub anchor_seq: i64,
    pub anchor_hash: String,
    pub created_at: DateTimeUtc,
    /// The first 16 hex digits of SHA-256 of the public key.
    pub key_id: String,
    /// Ed25519 signature, hex.
    pub signature: String,
}

/// `kind` of a checkpoint.
pub const CHECKPOINT: &str = "checkpoint";
/// `kind` of a purge record.
pub const PURGE: &str = "purge";

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
