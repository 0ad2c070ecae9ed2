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
            created_at: row.try_get_by_index_nullable(column())?,
            external_id: row.try_get_by_index_nullable(column())?,
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
