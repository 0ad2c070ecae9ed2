use sea_orm::entity::prelude::*;

/// One credential check, reserved before the password is verified and kept
/// for the sign-in throttle's sliding window: a check that succeeds deletes
/// its row, one that fails (or never finished) leaves it counted. In the
/// database so the limit holds across server processes.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sign_in_failures")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The keyed hash (HMAC-SHA256, hex) of the lower-cased email tried, an
    /// account's or a name that is none; never the typed text.
    pub account_key: String,
    pub ip_address: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
