use sea_orm::entity::prelude::*;

/// What an API key may do. A key acts with its scopes and nothing else:
/// no user's rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, EnumIter)]
pub enum ApiScope {
    /// Open sessions for users the application authenticated itself.
    SessionsIssue,
    /// Check tokens (`POST /oauth/introspect`).
    SessionsCheck,
    /// Create and update accounts from the application's user store.
    UsersProvision,
    /// Read every audit event.
    AuditRead,
    /// Manage webhook endpoints (outbound session events).
    WebhooksManage,
    /// Manage OpenID Shared Signals streams and poll them.
    SsfManage,
}

impl ApiScope {
    /// The written form: lower case with a colon (`sessions:issue`), as
    /// stored and as the command line takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::SessionsIssue => "sessions:issue",
            ApiScope::SessionsCheck => "sessions:check",
            ApiScope::UsersProvision => "users:provision",
            ApiScope::AuditRead => "audit:read",
            ApiScope::WebhooksManage => "webhooks:manage",
            ApiScope::SsfManage => "ssf:manage",
        }
    }

    /// Every scope, in a stable order.
    pub fn all() -> impl Iterator<Item = ApiScope> {
        <ApiScope as sea_orm::Iterable>::iter()
    }
}

impl std::str::FromStr for ApiScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        ApiScope::all()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = ApiScope::all().map(ApiScope::as_str).collect();
                format!("unknown scope `{s}`: expected one of {}", known.join(", "))
            })
    }
}

/// A key a trusted backend calls with (`Authorization: Bearer smk_…`).
/// Revocation keeps the row: `revoked_at` is set.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    /// SHA-256 of the key (hex). The key itself is never stored.
    #[sea_orm(unique)]
    pub key_hash: String,
    /// The key's first characters, for display.
    pub key_prefix: String,
    /// Space-separated scope names (see [`ApiScope::as_str`]); read them
    /// with [`Model::scopes`].
    pub scopes: String,
    /// The owner who made it; null when made on the command line.
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    /// Last use, written at most once per `ACTIVITY_WRITE_INTERVAL`.
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<Uuid>,
}

impl Model {
    /// The scopes the key holds (names this version does not know, from a
    /// later one, are skipped: a key never gains a right by misreading).
    pub fn scopes(&self) -> Vec<ApiScope> {
        self.scopes
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    pub fn has_scope(&self, scope: ApiScope) -> bool {
        self.scopes.split_whitespace().any(|s| s == scope.as_str())
    }

    /// The column's form of `scopes`.
    pub fn scopes_column(scopes: &[ApiScope]) -> String {
        scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
