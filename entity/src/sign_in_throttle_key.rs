use sea_orm::entity::prelude::*;

/// One key the sign-in throttle counts attempts against: `account:` and
/// the account's hashed email, or `address:` and a client address. A
/// reservation upserts its keys' rows first, which locks them until it
/// commits, so no two replicas count and reserve for one key at once.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sign_in_throttle_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// The last reservation against it (maintenance forgets old keys).
    pub touched_at: DateTimeUtc,
    /// Refusals against it are not audited again before this: a burst of
    /// refused attempts writes one `throttled` event, not one each.
    pub throttled_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
