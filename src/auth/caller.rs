//! Who a request is from: the authenticated caller, the actor an audit
//! event names, and where the request came from.

use entity::{session, user};
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
