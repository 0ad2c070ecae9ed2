use sea_orm::entity::prelude::*;

/// An OpenID Shared Signals event stream (SSF 1.0 §8.1): who receives
/// (`audience`), how (push to `endpoint_url`, or poll), which events, and
/// about which subjects. Its place in the audit log is its
/// [`outbox_cursor`](crate::outbox_cursor) row (same id).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ssf_streams")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The receiver, the SETs' `aud` (unique).
    #[sea_orm(unique)]
    pub audience: String,
    /// The SETs' `iss`, as the stream was made under.
    pub issuer: String,
    pub description: Option<String>,
    /// `urn:ietf:rfc:8935` (push) or `urn:ietf:rfc:8936` (poll).
    pub delivery_method: String,
    /// Push: the receiver's URL.
    pub endpoint_url: Option<String>,
    /// Push: the `Authorization` header sent with every SET (never
    /// answered back).
    pub authorization_header: Option<String>,
    /// Space-separated event-type URIs the receiver asked for.
    pub events_requested: String,
    /// Space-separated event-type URIs delivered (those asked for that
    /// the server makes).
    pub events_delivered: String,
    /// `enabled`, `paused` or `disabled`, as the receiver set it.
    pub status: String,
    pub status_reason: Option<String>,
    /// `false`: every subject (SSF `default_subjects: ALL`); `true`: only
    /// the subjects listed in `subjects`.
    pub subjects_listed: bool,
    /// A JSON array of subject identifiers (RFC 9493), as normalized.
    pub subjects: String,
    /// The API key that made it.
    pub created_by_key: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl Model {
    pub fn events_delivered(&self) -> Vec<&str> {
        self.events_delivered.split_whitespace().collect()
    }

    pub fn events_requested(&self) -> Vec<&str> {
        self.events_requested.split_whitespace().collect()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
