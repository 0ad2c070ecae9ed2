//! Who a request is from: the authenticated caller, the actor an audit
//! event names, and where the request came from.

use entity::{
    api_key::{self, ApiScope},
    session, user,
};
use uuid::Uuid;

/// Where a request came from, for sessions and audit events.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

/// The authenticated caller: the session's user (the subject) and, for an
/// impersonation session, the admin behind it (the actor).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: user::Model,
    pub session: session::Model,
}

/// Who did something, for the audit log: the account acting and, when it
/// acts through impersonation, the admin behind it (who is then the actor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub id: Uuid,
    pub impersonated_by: Option<Uuid>,
}

impl Actor {
    /// A user acting as themselves.
    pub fn user(id: Uuid) -> Self {
        Self {
            id,
            impersonated_by: None,
        }
    }
}

impl Caller {
    /// Who is really acting: the impersonator when there is one.
    pub fn actor_id(&self) -> Uuid {
        self.session.impersonator_id.unwrap_or(self.user.id)
    }

    pub fn actor(&self) -> Actor {
        Actor {
            id: self.actor_id(),
            impersonated_by: self.session.impersonator_id,
        }
    }

    pub fn is_impersonation(&self) -> bool {
        self.session.impersonator_id.is_some()
    }
}

/// A trusted backend calling with an API key. It acts with the key's
/// scopes and nothing else: it is no user, holds no role, and cannot
/// impersonate. It is a type of its own, not a [`Caller`], so no rule
/// written for users can let it through by accident: every operation for
/// signed-in users answers it `FORBIDDEN` (see `graphql::caller`), and
/// the operations for keys check a scope (`guards::Scoped`).
#[derive(Debug, Clone)]
pub struct KeyCaller {
    pub key: api_key::Model,
}

impl KeyCaller {
    pub fn has(&self, scope: ApiScope) -> bool {
        self.key.has_scope(scope)
    }
}

/// Who authenticated a request: a user's session, or an API key.
// Made once per request and moved, as the `Caller` was alone before:
// boxing the larger variant would cost every user's request an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Principal {
    User(Caller),
    Key(KeyCaller),
}
