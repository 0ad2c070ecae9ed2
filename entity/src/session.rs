use sea_orm::entity::prelude::*;

/// A login session. Revocation keeps the row: `revoked_at` is set.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// SHA-256 of the bearer token (hex). The token itself is never stored.
    #[sea_orm(unique)]
    pub token_hash: String,
    /// First 8 characters of the token, for display.
    pub token_prefix: String,
    pub user_id: Uuid,
    /// The admin who opened this session by impersonation.
    pub impersonator_id: Option<Uuid>,
    pub impersonation_reason: Option<String>,
    /// The admin's own session it was opened from; it ends with it.
    pub impersonator_session_id: Option<Uuid>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTimeUtc,
    /// Last use, written at most once per `ACTIVITY_WRITE_INTERVAL`.
    pub last_active_at: DateTimeUtc,
    /// When the session ends unless used again: the earlier of
    /// `absolute_expires_at` and the last activity plus the idle timeout.
    /// It slides forward with activity; every "is it active" check compares
    /// this one column.
    pub expires_at: DateTimeUtc,
    /// When the session ends whatever happens (`SESSION_TTL` after sign-in).
    pub absolute_expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<Uuid>,
    pub revoke_reason: Option<String>,
    /// How the session ended by expiry, once the server has recorded it
    /// (`idle_timeout` or `expired`, with its `session.expired` event);
    /// null while it lives, when it was revoked, and until the expiry is
    /// recorded.
    pub end_reason: Option<String>,
}

impl Model {
    /// The model read by position from `row`, its columns starting at `at`
    /// in declaration order: the order in which `Entity::find()` selects
    /// them. For the hot paths (the token check, the sessions list):
    /// SeaORM's derived decoding looks every column up by a freshly
    /// formatted name. A test compares the two on both backends.
    pub fn from_row_at(row: &QueryResult, at: usize) -> Result<Self, sea_orm::TryGetError> {
        let mut column = crate::positions(at);
        Ok(Self {
            id: row.try_get_by_index_nullable(column())?,
            token_hash: row.try_get_by_index_nullable(column())?,
            token_prefix: row.try_get_by_index_nullable(column())?,
            user_id: row.try_get_by_index_nullable(column())?,
            impersonator_id: crate::nullable(row, column())?,
            impersonation_reason: crate::nullable(row, column())?,
            impersonator_session_id: crate::nullable(row, column())?,
            ip_address: crate::nullable(row, column())?,
            user_agent: crate::nullable(row, column())?,
            created_at: crate::time::get(row, column())?,
            last_active_at: crate::time::get(row, column())?,
            expires_at: crate::time::get(row, column())?,
            absolute_expires_at: crate::time::get(row, column())?,
            revoked_at: crate::time::get(row, column())?,
            revoked_by: crate::nullable(row, column())?,
            revoke_reason: crate::nullable(row, column())?,
            end_reason: crate::nullable(row, column())?,
        })
    }

    pub fn is_expired(&self, now: DateTimeUtc) -> bool {
        self.expires_at <= now
    }

    /// Neither expired nor revoked.
    pub fn is_active(&self, now: DateTimeUtc) -> bool {
        self.revoked_at.is_none() && !self.is_expired(now)
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
