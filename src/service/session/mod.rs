//! Sessions: sign-in, the per-request token check, and ending sessions.
//!
//! Split by what the code does; every item is re-exported here, so
//! `service::session::X` names it whatever file holds it.

use crate::auth::RequestMeta;

mod check;
mod end;
mod expiry;
mod issue;
mod list;
mod open;
mod sign_in;
mod sign_up;

pub use check::{authenticate, live_caller, live_session};
pub use end::{end_session, revoke, revoke_all, revoked_event, sign_out};
pub use expiry::{
    delete_ended_before, expiry_reason, record_expired, record_expiry, unrecorded_expired_query,
};
pub use issue::{issue, may_be_issued_a_session};
pub use list::{as_seen_by, audit_viewed, count_active, find_with_owner, list, sessions_of, view};
pub use open::{OpenedSession, new_session};
pub use sign_in::sign_in;
pub use sign_up::{SIGNUP_CLOSED, sign_up};

/// The one message for an unknown email and a wrong password.
pub const BAD_CREDENTIALS: &str = "invalid email or password";

/// Why a session ended, as stored in `revoke_reason` and the audit event.
pub mod reasons {
    pub const SIGN_OUT: &str = "sign_out";
    /// `revokeSession`.
    pub const REVOKE: &str = "revoke";
    /// `revokeSessions`.
    pub const BULK: &str = "bulk";
    /// `stopImpersonation`.
    pub const IMPERSONATION_STOPPED: &str = "impersonation_stopped";
    /// Signing in beyond `MAX_SESSIONS_PER_USER` ended the oldest.
    pub const SESSION_LIMIT: &str = "session_limit";
    /// `changePassword` ended the other sessions.
    pub const PASSWORD_CHANGED: &str = "password_changed";
    /// The admin's session that opened an impersonation ended.
    pub const IMPERSONATOR_SESSION_ENDED: &str = "impersonator_session_ended";
}

/// How a session ended by expiry, as stored in `end_reason` once recorded.
pub mod end_reasons {
    /// Not used for `SESSION_IDLE_TIMEOUT` (or longer).
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
    /// Its absolute lifetime (`SESSION_TTL`, or `IMPERSONATION_TTL`) ran out.
    pub const EXPIRED: &str = "expired";
}

/// Longest User-Agent kept; longer ones are cut at a character boundary.
pub const MAX_USER_AGENT_LEN: usize = 512;
const MAX_IP_LEN: usize = 64;

fn clip(value: Option<&str>, max: usize) -> Option<String> {
    let value = value?.trim();
    if value.is_empty() {
        return None;
    }
    let end = value
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take_while(|&end| end <= max)
        .last()
        .unwrap_or(0);
    Some(value[..end].to_owned())
}

impl RequestMeta {
    /// Builds the request's origin, bounded to what the columns hold.
    pub fn new(ip_address: Option<&str>, user_agent: Option<&str>) -> Self {
        Self {
            ip_address: clip(ip_address, MAX_IP_LEN),
            user_agent: clip(user_agent, MAX_USER_AGENT_LEN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_whole_characters_within_the_bound() {
        assert_eq!(clip(Some("  "), 10), None);
        assert_eq!(clip(None, 10), None);
        assert_eq!(clip(Some("abc"), 10).as_deref(), Some("abc"));
        assert_eq!(clip(Some("ééé"), 5).as_deref(), Some("éé"));
        assert_eq!(clip(Some(&"x".repeat(600)), 512).unwrap().len(), 512);
    }
}
