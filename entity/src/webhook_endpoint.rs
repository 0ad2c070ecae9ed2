use sea_orm::entity::prelude::*;

/// A Standard Webhooks endpoint: where and what to deliver, and the key
/// to sign with. Its place in the audit log is its
/// [`outbox_cursor`](crate::outbox_cursor) row (same id).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// Space-separated audit event types delivered; null for every type.
    pub event_types: Option<String>,
    /// The signing key, `whsec_` and base64, as shown at creation. The
    /// server must hold it to sign; it is never answered again.
    pub secret: String,
    /// The secret before the last rotation, which signs beside `secret`
    /// until `previous_secret_until`; both null when there is none.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTimeUtc>,
    /// The owner who made it; null when an API key did (named in the audit
    /// event).
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl Model {
    /// The event types delivered; `None` for all.
    pub fn event_types(&self) -> Option<Vec<String>> {
        self.event_types
            .as_deref()
            .map(|t| t.split_whitespace().map(str::to_owned).collect())
    }

    /// The secrets a delivery at `now` is signed with: the current one,
    /// and the previous one while it still signs.
    pub fn signing_secrets(&self, now: DateTimeUtc) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && now < until
        {
            secrets.push(previous);
        }
        secrets
    }

    pub fn wants(&self, event_type: &str) -> bool {
        match &self.event_types {
            None => true,
            Some(types) => types.split_whitespace().any(|t| t == event_type),
        }
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
