use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What an account may do; see "Who may do what" in the design.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[sea_orm(string_value = "user")]
    User,
    #[sea_orm(string_value = "admin")]
    Admin,
    #[sea_orm(string_value = "owner")]
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            other => Err(format!(
                "unknown role `{other}`: expected user, admin or owner"
            )),
        }
    }
}

/// Whether an account may have sessions.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "lowercase")]
pub enum UserStatus {
    #[sea_orm(string_value = "active")]
    Active,
    /// Refused sign-in and session issuance; its sessions were ended.
    #[sea_orm(string_value = "disabled")]
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Stored lower-case; unique.
    #[sea_orm(unique)]
    pub email: String,
    pub name: String,
    pub role: Role,
    /// argon2id PHC string; empty for an account without a password
    /// (provisioned by a trusted backend: it gets sessions only through
    /// `issueSession`).
    pub password_hash: String,
    pub created_at: DateTimeUtc,
    /// The account's id in the application that provisioned it
    /// (`upsertUser`); unique, null for accounts made here.
    #[sea_orm(unique)]
    pub external_id: Option<String>,
    pub status: UserStatus,
    /// When it was last disabled; null while it never was. (Kept when it
    /// is enabled again, as its history; `status` says which holds.)
    pub disabled_at: Option<DateTimeUtc>,
    /// Why it was disabled; null when active.
    pub disabled_reason: Option<String>,
    /// When a session was last opened for it by sign-in or `issueSession`.
    pub last_sign_in_at: Option<DateTimeUtc>,
    /// When it was deleted: a deleted account is kept for the history
    /// that names it, with its email and external id given up.
    pub deleted_at: Option<DateTimeUtc>,
}

impl Model {
    /// A new active account, never signed in.
    pub fn new(
        id: Uuid,
        email: String,
        name: String,
        role: Role,
        password_hash: String,
        created_at: DateTimeUtc,
    ) -> Self {
        Self {
            id,
            email,
            name,
            role,
            password_hash,
            created_at,
            external_id: None,
            status: UserStatus::Active,
            disabled_at: None,
            disabled_reason: None,
            last_sign_in_at: None,
            deleted_at: None,
        }
    }

    /// Not deleted and not disabled: it may have sessions.
    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active && self.deleted_at.is_none()
    }
}

impl Model {
    /// The model read by position from `row`, its columns starting at `at`
    /// in declaration order (see `session::Model::from_row_at`).
    pub fn from_row_at(row: &QueryResult, at: usize) -> Result<Self, sea_orm::TryGetError> {
        let mut column = crate::positions(at);
        Ok(Self {
            id: row.try_get_by_index_nullable(column())?,
            email: row.try_get_by_index_nullable(column())?,
            name: row.try_get_by_index_nullable(column())?,
            role: row.try_get_by_index_nullable(column())?,
            password_hash: row.try_get_by_index_nullable(column())?,
            created_at: crate::time::get(row, column())?,
            external_id: crate::nullable(row, column())?,
            status: row.try_get_by_index_nullable(column())?,
            disabled_at: crate::time::get(row, column())?,
            disabled_reason: crate::nullable(row, column())?,
            last_sign_in_at: crate::time::get(row, column())?,
            deleted_at: crate::time::get(row, column())?,
        })
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::session::Entity")]
    Session,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
