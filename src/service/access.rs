//! Who may do what: the rights matrix of the design, in one place. The
//! GraphQL guards ([`crate::graphql::guards`]) apply these rules; a denial
//! is answered `FORBIDDEN` and audited as `access.denied` (once per action
//! and target in a request, with a count; see [`deny`]), and a caller who
//! keeps being refused is answered `RATE_LIMITED` for a while instead (see
//! [`DenialLimiter`]).

use std::{collections::HashMap, time::Instant};

use entity::user::{self, Role};
use uuid::Uuid;

use crate::{
    auth::{Actor, Caller, KeyCaller, RequestMeta},
    db::Db,
    error::AppError,
    service::audit::{self, NewEvent, events},
};

/// What a caller attempted, as written into denial events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ViewSessions,
    RevokeSessions,
    ReadAudit,
    VerifyAudit,
    Impersonate,
    /// Finding accounts by email or name.
    ListUsers,
    /// Account-wide actions an impersonation session may not take.
    Sensitive,
    /// Making, listing and revoking API keys.
    ManageApiKeys,
    /// An operation for signed-in users, attempted with an API key.
    UserOperation,
    /// An operation for API keys, attempted without the scope it needs.
    KeyOperation,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ViewSessions => "sessions.view",
            Action::RevokeSessions => "sessions.revoke",
            Action::ReadAudit => "audit.read",
            Action::VerifyAudit => "audit.verify",
            Action::Impersonate => "impersonation.start",
            Action::ListUsers => "users.list",
            Action::Sensitive => "account.sensitive",
            Action::ManageApiKeys => "api_keys.manage",
            Action::UserOperation => "user.operation",
            Action::KeyOperation => "api_key.operation",
        }
    }
}

/// May `caller` list, view or revoke the sessions of `owner`? `Err` holds
/// the reason, safe to show.
///
/// Everyone manages their own; an impersonation session acts only as its
/// target; otherwise an admin manages users' and admins' sessions and an
/// owner everyone's.
pub fn may_manage_sessions(caller: &Caller, owner: &user::Model) -> Result<(), &'static str> {
    may_manage_sessions_of(caller, owner.id, owner.role)
}

/// [`may_manage_sessions`] for the account `id` holding `role`, for callers
/// that hold no model (the schema's `Session.canRevoke`).
pub fn may_manage_sessions_of(caller: &Caller, id: Uuid, role: Role) -> Result<(), &'static str> {
    if id == caller.user.id {
        return Ok(());
    }
    may_manage_others(caller)?;
    match (caller.user.role, role) {
        (Role::Owner, _) | (Role::Admin, Role::User | Role::Admin) => Ok(()),
        (Role::Admin, Role::Owner) => Err("admins cannot act on an owner's sessions"),
        (Role::User, _) => Err(OWN_ONLY),
    }
}

/// Why a user is refused acting on someone else's sessions.
pub const OWN_ONLY: &str = "you can act only on your own sessions";

/// Can `caller` act on anyone's sessions but their own at all? A plain
/// user cannot, nor can any impersonation session, whoever the other is;
/// so they are refused before the other account is even looked up.
pub fn may_manage_others(caller: &Caller) -> Result<(), &'static str> {
    if caller.is_impersonation() {
        return Err(
            "an impersonation session can act only on the impersonated user's own sessions",
        );
    }
    match caller.user.role {
        Role::User => Err(OWN_ONLY),
        Role::Admin | Role::Owner => Ok(()),
    }
}

/// May `caller` read every audit event (not only those about themselves)?
pub fn may_read_all_audit(caller: &Caller) -> bool {
    may_manage_others(caller).is_ok()
}

/// May `caller` see the name and email of the account `id` (with `role`)
/// where an audit event names it? Those who read all events see everyone;
/// a user sees themselves and the admins and owners who acted on their
/// account (as `Session.impersonator` shows them), never another user.
pub fn may_see_account(caller: &Caller, id: Uuid, role: Role) -> bool {
    may_read_all_audit(caller) || id == caller.user.id || role != Role::User
}

/// The role finding accounts (`users`) needs.
pub const LIST_USERS_ROLE: Role = Role::Admin;
/// The role walking the audit hash chain (`auditChain`) needs.
pub const VERIFY_AUDIT_ROLE: Role = Role::Owner;

/// The role making, listing and revoking API keys needs: a key acts for
/// the whole installation, so only owners hand them out.
pub const MANAGE_API_KEYS_ROLE: Role = Role::Owner;

/// May `caller` find accounts by email or name (`users`)?
pub fn may_list_users(caller: &Caller) -> bool {
    has_role(caller, LIST_USERS_ROLE)
}

/// May `caller` walk the audit hash chain (`auditChain`)?
pub fn may_verify_audit(caller: &Caller) -> bool {
    has_role(caller, VERIFY_AUDIT_ROLE)
}

/// Does `caller` hold at least `role`? An impersonation session never does
/// beyond a user's rights.
pub fn has_role(caller: &Caller, role: Role) -> bool {
    let rank = |r: Role| match r {
        Role::User => 0,
        Role::Admin => 1,
        Role::Owner => 2,
    };
    let held = if caller.is_impersonation() {
        Role::User
    } else {
        caller.user.role
    };
    rank(held) >= rank(role)
}

/// May `caller` open an impersonation session as `target`? Admins may
/// impersonate users; owners users and admins; nobody an owner or
/// themselves, and never from an impersonation session.
pub fn may_impersonate(caller: &Caller, target: &user::Model) -> Result<(), &'static str> {
    may_impersonate_account(caller, target.id, target.role)
}

/// [`may_impersonate`] for the account `id` holding `role`, for callers
/// that hold no model (the schema's `User.canImpersonate`).
pub fn may_impersonate_account(caller: &Caller, id: Uuid, role: Role) -> Result<(), &'static str> {
    may_start_impersonating(caller)?;
    if id == caller.user.id {
        return Err("you cannot impersonate yourself");
    }
    may_impersonate_role(caller.user.role, role)
}

/// The checks that need no target: refused before looking anyone up.
pub fn may_start_impersonating(caller: &Caller) -> Result<(), &'static str> {
    if caller.is_impersonation() {
        return Err("an impersonation session cannot start another impersonation");
    }
    if caller.user.role == Role::User {
        return Err("only admins and owners can impersonate");
    }
    Ok(())
}

/// The role part of [`may_impersonate`]; also re-checked on every request
/// of an impersonation session, so it ends when the admin loses the role.
pub fn may_impersonate_role(admin: Role, target: Role) -> Result<(), &'static str> {
    match (admin, target) {
        (_, Role::Owner) => Err("nobody can impersonate an owner"),
        (Role::Owner, _) | (Role::Admin, Role::User) => Ok(()),
        (Role::Admin, Role::Admin) => Err("admins can impersonate users only"),
        (Role::User, _) => Err("only admins and owners can impersonate"),
    }
}

/// May `caller` revoke a session of `owner` that `impersonator` opened by
/// impersonation (`None` for an ordinary session)? As for any session of
/// `owner`, and for an impersonation session the caller needs rights over
/// the impersonator too: an admin cannot end an owner's impersonation of
/// another admin. The impersonated user may always end it, and the
/// impersonator too. (Revoking from an impersonation session is refused
/// before this, see [`not_impersonating`].)
pub fn may_revoke_session(
    caller: &Caller,
    owner: &user::Model,
    impersonator: Option<&user::Model>,
) -> Result<(), &'static str> {
    may_revoke_session_of(
        caller,
        (owner.id, owner.role),
        impersonator.map(|admin| (admin.id, admin.role)),
    )
}

/// [`may_revoke_session`] for accounts given as (id, role), for callers
/// that hold no model.
pub fn may_revoke_session_of(
    caller: &Caller,
    (owner_id, owner_role): (Uuid, Role),
    impersonator: Option<(Uuid, Role)>,
) -> Result<(), &'static str> {
    may_manage_sessions_of(caller, owner_id, owner_role)?;
    match impersonator {
        Some((admin_id, admin_role)) if owner_id != caller.user.id => may_manage_sessions_of(
            caller, admin_id, admin_role,
        )
        .map_err(
            |_| "this impersonation session was opened by someone whose sessions you cannot act on",
        ),
        _ => Ok(()),
    }
}

/// May `caller` revoke the session `session_id` of `owner` (as (id, role)),
/// opened by `impersonator` (`None` for an ordinary session, or when that
/// account is gone)? The whole rule of `revokeSession`, for its guard and
/// for `Session.canRevoke`: any session may end itself; an impersonation
/// session may end no other (not even another of its user's, see
/// [`not_impersonating`]); otherwise [`may_revoke_session_of`].
pub fn may_revoke(
    caller: &Caller,
    session_id: Uuid,
    owner: (Uuid, Role),
    impersonator: Option<(Uuid, Role)>,
) -> Result<(), &'static str> {
    if session_id == caller.session.id {
        return Ok(());
    }
    not_impersonating(caller)?;
    may_revoke_session_of(caller, owner, impersonator)
}

/// May `caller` end all of a user's sessions at once (`revokeSessions`),
/// as far as the caller's session goes? Not from an impersonation session
/// (see [`not_impersonating`]); whose sessions is [`may_manage_sessions`].
pub fn may_revoke_all(caller: &Caller) -> bool {
    not_impersonating(caller).is_ok()
}

/// Refuses account-wide actions from an impersonation session.
pub fn not_impersonating(caller: &Caller) -> Result<(), &'static str> {
    if caller.is_impersonation() {
        return Err("this action is not allowed from an impersonation session");
    }
    Ok(())
}

/// The `reason` of a refusal event.
pub mod denial_reasons {
    /// The caller may not do it.
    pub const FORBIDDEN: &str = "forbidden";
    /// What it was aimed at does not exist (or is not the caller's to know of).
    pub const NOT_FOUND: &str = "not_found";
}

/// The event a refusal of `action` with `error` is recorded as, done by
/// `actor` holding `role`: the one shape [`deny`] writes (and the seed
/// data copies), before the request's origin, subject and session.
pub fn denial_event(actor: Actor, role: Role, action: Action, error: &AppError) -> NewEvent {
    NewEvent::failed(
        denial_type(action),
        format!("{} denied: {error}", action.as_str()),
    )
    .by_actor(actor)
    .meta("action", action.as_str())
    .meta("reason", denial_reason(error))
    .meta("callerRole", role.as_str())
}

fn denial_reason(error: &AppError) -> &'static str {
    match error {
        AppError::NotFound(_) => denial_reasons::NOT_FOUND,
        _ => denial_reasons::FORBIDDEN,
    }
}

/// A refused impersonation or revocation is recorded under its own type,
/// so the log of impersonations, or of revocations (success and failure,
/// as the original spec asks), is complete with one filter.
fn denial_type(action: Action) -> &'static str {
    match action {
        Action::Impersonate => events::IMPERSONATION_STARTED,
        Action::RevokeSessions => events::SESSION_REVOKED,
        _ => events::ACCESS_DENIED,
    }
}

/// Refused attempts a caller may have recorded within [`DENIAL_WINDOW`]
/// (after the per-request deduplication below) before further refusals
/// are answered `RATE_LIMITED` and no longer recorded, until the window
/// ends.
pub const DENIALS_PER_WINDOW: u32 = 30;
/// The window of [`DENIALS_PER_WINDOW`], from a caller's first recorded
/// refusal.
pub const DENIAL_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Callers the denial limiter keeps track of at once (per server process).
pub const MAX_TRACKED_CALLERS: usize = 10_000;

/// What [`DenialLimiter::admit`] decides about one more refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the limit: record it.
    Record,
    /// The first one over the limit: answer `RATE_LIMITED` and record,
    /// once, that the caller is now throttled.
    Throttle { retry_after_secs: u64 },
    /// Over the limit: answer `RATE_LIMITED`, record nothing.
    Refuse { retry_after_secs: u64 },
}

/// Counts the refusals recorded per caller (the acting account: the
/// impersonator for an impersonation session) in a fixed window, in this
/// server process. It holds at most [`MAX_TRACKED_CALLERS`] callers: when
/// full, expired windows are dropped first, then the oldest window, so
/// many accounts cannot make it grow without bound.
pub struct DenialLimiter {
    limit: u32,
    window: std::time::Duration,
    max_callers: usize,
    callers: std::sync::Mutex<HashMap<Uuid, DenialWindow>>,
}

#[derive(Debug, Clone, Copy)]
struct DenialWindow {
    started: Instant,
    count: u32,
}

impl Default for DenialLimiter {
    fn default() -> Self {
        Self::new(DENIALS_PER_WINDOW, DENIAL_WINDOW, MAX_TRACKED_CALLERS)
    }
}

impl DenialLimiter {
    pub fn new(limit: u32, window: std::time::Duration, max_callers: usize) -> Self {
        Self {
            limit,
            window,
            max_callers: max_callers.max(1),
            callers: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Counts one more refusal of `actor` and says what to do with it.
    pub fn admit(&self, actor: Uuid) -> Admission {
        self.admit_at(actor, Instant::now())
    }

    fn admit_at(&self, actor: Uuid, now: Instant) -> Admission {
        let window = self.window;
        let mut callers = self
            .callers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !callers.contains_key(&actor) && callers.len() >= self.max_callers {
            callers.retain(|_, w| now.duration_since(w.started) < window);
            if callers.len() >= self.max_callers
                && let Some(oldest) = callers
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(id, _)| *id)
            {
                callers.remove(&oldest);
            }
        }
        let entry = callers.entry(actor).or_insert(DenialWindow {
            started: now,
            count: 0,
        });
        if now.duration_since(entry.started) >= window {
            *entry = DenialWindow {
                started: now,
                count: 0,
            };
        }
        entry.count = entry.count.saturating_add(1);
        let retry_after_secs = window
            .saturating_sub(now.duration_since(entry.started))
            .as_secs()
            .max(1);
        match entry.count {
            n if n <= self.limit => Admission::Record,
            n if n == self.limit + 1 => Admission::Throttle { retry_after_secs },
            _ => Admission::Refuse { retry_after_secs },
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.callers.lock().unwrap().len()
    }
}

/// What makes two refusals in one request "the same": the same kind of
/// event, action, target account and session, and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DenialKey {
    event_type: &'static str,
    action: Action,
    subject: Option<Uuid>,
    session_id: Option<Uuid>,
    reason: &'static str,
}

/// The refusals of one request (every entry of an HTTP batch, or one
/// WebSocket operation), waiting to be written when its execution ends:
/// the first refusal of each (action, target) becomes one event, and its
/// repeats are counted into that event's `count`.
#[derive(Default)]
pub struct Denials(std::sync::Mutex<Vec<PendingDenial>>);

struct PendingDenial {
    key: Option<DenialKey>,
    event: NewEvent,
    count: u64,
}

impl Denials {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PendingDenial>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the events to write, each with its final `count`.
    pub fn take(&self) -> Vec<NewEvent> {
        std::mem::take(&mut *self.lock())
            .into_iter()
            .map(|pending| match pending.key {
                Some(_) => pending.event.meta("count", pending.count),
                None => pending.event,
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Writes a request's refusals (see [`Denials`]) in one transaction. A
/// failed write is logged; the refusals were answered already.
pub async fn write_denials(db: &Db, events: Vec<NewEvent>) {
    if events.is_empty() {
        return;
    }
    let written = async {
        let txn = db.transaction().await?;
        for event in events {
            audit::record(&txn, event).await?;
        }
        txn.commit().await?;
        Ok::<_, AppError>(())
    }
    .await;
    if let Err(err) = written {
        tracing::error!(error = %err, "refused attempts could not be audited");
    }
}

/// Refuses an attempt: notes it in the request's [`Denials`] (to be
/// audited once per action and target, with a count, when the request
/// ends) and returns the error to answer it with. `subject` is whose
/// account or session it was aimed at, when known. A caller over the
/// denial limit (see [`DenialLimiter`]) is answered `RATE_LIMITED`
/// instead, and nothing more is recorded for them until the window ends.
#[allow(clippy::too_many_arguments)]
pub fn deny(
    limiter: &DenialLimiter,
    denials: &Denials,
    caller: &Caller,
    meta: &RequestMeta,
    action: Action,
    subject: Option<Uuid>,
    session_id: Option<Uuid>,
    error: AppError,
) -> AppError {
    deny_as(
        limiter,
        denials,
        Refused::User(caller),
        meta,
        action,
        subject,
        session_id,
        error,
    )
}

/// Who was refused: a user's session, or an API key.
#[derive(Clone, Copy)]
pub enum Refused<'a> {
    User(&'a Caller),
    Key(&'a KeyCaller),
}

/// The `callerRole` of a refusal by an API key.
pub const API_KEY_ROLE: &str = "api_key";

impl Refused<'_> {
    /// Whom the denial limiter counts: the acting account, or the key.
    fn limiter_id(self) -> Uuid {
        match self {
            Refused::User(caller) => caller.actor_id(),
            Refused::Key(key) => key.key.id,
        }
    }

    fn role(self) -> &'static str {
        match self {
            Refused::User(caller) => caller.user.role.as_str(),
            Refused::Key(_) => API_KEY_ROLE,
        }
    }

    /// `event` as done by this caller: a user is its actor; a key has no
    /// account, so the event names it in its metadata and has no actor.
    fn stamp(self, event: NewEvent) -> NewEvent {
        match self {
            Refused::User(caller) => event.by(caller),
            Refused::Key(key) => event.by_key(&key.key),
        }
    }
}

/// [`deny`] for any caller, a user or an API key (see [`Refused`]).
#[allow(clippy::too_many_arguments)]
pub fn deny_as(
    limiter: &DenialLimiter,
    denials: &Denials,
    who: Refused<'_>,
    meta: &RequestMeta,
    action: Action,
    subject: Option<Uuid>,
    session_id: Option<Uuid>,
    error: AppError,
) -> AppError {
    let reason = denial_reason(&error);
    let event_type = denial_type(action);
    let key = DenialKey {
        event_type,
        action,
        subject,
        session_id,
        reason,
    };
    // One lock over the check and the note, so concurrent fields of one
    // request cannot both count as the first.
    let mut pending = denials.lock();
    if let Some(seen) = pending.iter_mut().find(|p| p.key.as_ref() == Some(&key)) {
        seen.count += 1;
        return error;
    }
    match limiter.admit(who.limiter_id()) {
        Admission::Record => {}
        Admission::Throttle { retry_after_secs } => {
            let event = NewEvent::failed(
                events::ACCESS_DENIED,
                format!(
                    "caller throttled: more than {DENIALS_PER_WINDOW} refused attempts within {}s; \
                     further refusals are answered RATE_LIMITED and not recorded until the window ends",
                    DENIAL_WINDOW.as_secs()
                ),
            )
            .from_request(meta);
            let event = who
                .stamp(event)
                .meta("action", action.as_str())
                .meta("reason", "throttled")
                .meta("callerRole", who.role())
                .meta("limit", DENIALS_PER_WINDOW)
                .meta("windowSecs", DENIAL_WINDOW.as_secs())
                .meta("retryAfter", retry_after_secs);
            pending.push(PendingDenial {
                key: None,
                event,
                count: 1,
            });
            return AppError::RateLimited { retry_after_secs };
        }
        Admission::Refuse { retry_after_secs } => {
            return AppError::RateLimited { retry_after_secs };
        }
    }
    let mut event = match who {
        Refused::User(caller) => denial_event(caller.actor(), caller.user.role, action, &error),
        Refused::Key(key) => NewEvent::failed(
            denial_type(action),
            format!("{} denied: {error}", action.as_str()),
        )
        .by_key(&key.key)
        .meta("action", action.as_str())
        .meta("reason", denial_reason(&error))
        .meta("callerRole", API_KEY_ROLE),
    }
    .from_request(meta);
    if let Some(subject) = subject {
        event = event.subject(subject);
    }
    if let Some(session_id) = session_id {
        event = event
            .session(session_id)
            .meta("sessionId", session_id.to_string());
    }
    pending.push(PendingDenial {
        key: Some(key),
        event,
        count: 1,
    });
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use entity::session;

    fn user(role: Role) -> user::Model {
        user::Model {
            id: Uuid::new_v4(),
            email: format!("{}@example.com", role.as_str()),
            name: "x".into(),
            role,
            password_hash: String::new(),
            created_at: chrono::Utc::now(),
            external_id: None,
        }
    }

    fn caller(user: &user::Model, impersonator: Option<Uuid>) -> Caller {
        let now = chrono::Utc::now();
        Caller {
            user: user.clone(),
            session: session::Model {
                id: Uuid::new_v4(),
                token_hash: String::new(),
                token_prefix: String::new(),
                user_id: user.id,
                impersonator_id: impersonator,
                impersonation_reason: None,
                impersonator_session_id: None,
                ip_address: None,
                user_agent: None,
                created_at: now,
                last_active_at: now,
                expires_at: now,
                absolute_expires_at: now,
                revoked_at: None,
                revoked_by: None,
                revoke_reason: None,
                end_reason: None,
            },
        }
    }

    #[test]
    fn the_session_rights_matrix() {
        use Role::*;
        // (caller role, owner role, allowed)
        let matrix = [
            (User, User, false),
            (User, Admin, false),
            (User, Owner, false),
            (Admin, User, true),
            (Admin, Admin, true),
            (Admin, Owner, false),
            (Owner, User, true),
            (Owner, Admin, true),
            (Owner, Owner, true),
        ];
        for (caller_role, owner_role, allowed) in matrix {
            let me = user(caller_role);
            let other = user(owner_role);
            assert_eq!(
                may_manage_sessions(&caller(&me, None), &other).is_ok(),
                allowed,
                "{caller_role:?} on {owner_role:?}'s sessions"
            );
            assert!(
                may_manage_sessions(&caller(&me, None), &me).is_ok(),
                "{caller_role:?} on own"
            );
        }
    }

    #[test]
    fn an_impersonation_session_never_carries_admin_rights() {
        let admin = user(Role::Admin);
        let target = user(Role::Admin);
        let other = user(Role::User);
        let as_target = caller(&target, Some(admin.id));
        assert!(
            may_manage_sessions(&as_target, &target).is_ok(),
            "own sessions"
        );
        assert!(
            may_manage_sessions(&as_target, &other).is_err(),
            "someone else's"
        );
        assert!(!may_read_all_audit(&as_target));
    }

    #[test]
    fn who_may_impersonate_whom() {
        use Role::*;
        let matrix = [
            (User, User, false),
            (User, Admin, false),
            (User, Owner, false),
            (Admin, User, true),
            (Admin, Admin, false),
            (Admin, Owner, false),
            (Owner, User, true),
            (Owner, Admin, true),
            (Owner, Owner, false),
        ];
        for (admin_role, target_role, allowed) in matrix {
            let admin = user(admin_role);
            let target = user(target_role);
            assert_eq!(
                may_impersonate(&caller(&admin, None), &target).is_ok(),
                allowed,
                "{admin_role:?} impersonating {target_role:?}"
            );
            assert!(
                may_impersonate(&caller(&admin, None), &admin).is_err(),
                "{admin_role:?} as self"
            );
        }
        let owner = user(Owner);
        let nested = caller(&user(User), Some(owner.id));
        assert!(may_impersonate(&nested, &user(User)).is_err(), "no nesting");
    }

    #[test]
    fn only_admins_and_owners_read_all_audit() {
        assert!(!may_read_all_audit(&caller(&user(Role::User), None)));
        assert!(may_read_all_audit(&caller(&user(Role::Admin), None)));
        assert!(may_read_all_audit(&caller(&user(Role::Owner), None)));
    }

    #[test]
    fn rights_on_an_impersonation_session_include_rights_over_the_impersonator() {
        use Role::*;
        let owner = user(Owner);
        let target = user(Admin);
        let other_admin = user(Admin);
        let opened_by_owner = Some(&owner);
        assert!(
            may_revoke_session(&caller(&other_admin, None), &target, opened_by_owner).is_err(),
            "an admin on an owner's impersonation of an admin"
        );
        assert!(
            may_revoke_session(&caller(&other_admin, None), &target, None).is_ok(),
            "the same admin on the target's ordinary session"
        );
        assert!(
            may_revoke_session(&caller(&owner, None), &target, opened_by_owner).is_ok(),
            "the impersonator"
        );
        assert!(
            may_revoke_session(&caller(&target, None), &target, opened_by_owner).is_ok(),
            "the impersonated user"
        );
        let admin = user(Admin);
        let alice = user(User);
        assert!(
            may_revoke_session(&caller(&other_admin, None), &alice, Some(&admin)).is_ok(),
            "an admin on another admin's impersonation of a user"
        );
        assert!(
            may_revoke_session(&caller(&user(User), None), &alice, Some(&admin)).is_err(),
            "a plain user on someone else's"
        );
    }

    #[test]
    fn an_impersonation_session_may_revoke_itself_only() {
        let admin = user(Role::Admin);
        let alice = user(Role::User);
        let as_alice = caller(&alice, Some(admin.id));
        let own = (alice.id, alice.role);
        assert!(
            may_revoke(
                &as_alice,
                as_alice.session.id,
                own,
                Some((admin.id, admin.role))
            )
            .is_ok()
        );
        assert!(
            may_revoke(&as_alice, Uuid::new_v4(), own, None).is_err(),
            "another of the user's sessions"
        );
        let mine = caller(&alice, None);
        assert!(
            may_revoke(&mine, Uuid::new_v4(), own, None).is_ok(),
            "the user's own session"
        );
        assert!(!may_revoke_all(&as_alice));
        assert!(may_revoke_all(&mine));
    }

    #[test]
    fn role_only_rights_need_the_role_and_no_impersonation() {
        use Role::*;
        for (role, list, verify) in [
            (User, false, false),
            (Admin, true, false),
            (Owner, true, true),
        ] {
            let me = user(role);
            assert_eq!(may_list_users(&caller(&me, None)), list, "{role:?}");
            assert_eq!(may_verify_audit(&caller(&me, None)), verify, "{role:?}");
            let as_me = caller(&me, Some(Uuid::new_v4()));
            assert!(
                !may_list_users(&as_me) && !may_verify_audit(&as_me),
                "{role:?} impersonated"
            );
        }
    }

    #[test]
    fn the_denial_limiter_throttles_once_then_refuses_until_the_window_ends() {
        let limiter = DenialLimiter::new(3, std::time::Duration::from_secs(60), 100);
        let (me, other) = (Uuid::new_v4(), Uuid::new_v4());
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit_at(me, start), Admission::Record);
        }
        assert!(matches!(
            limiter.admit_at(me, start),
            Admission::Throttle {
                retry_after_secs: 60
            }
        ));
        let later = start + std::time::Duration::from_secs(45);
        assert!(matches!(
            limiter.admit_at(me, later),
            Admission::Refuse {
                retry_after_secs: 15
            }
        ));
        assert_eq!(
            limiter.admit_at(other, later),
            Admission::Record,
            "per caller"
        );
        let next_window = start + std::time::Duration::from_secs(60);
        assert_eq!(limiter.admit_at(me, next_window), Admission::Record);
    }

    #[test]
    fn the_denial_limiter_tracks_a_bounded_number_of_callers() {
        let limiter = DenialLimiter::new(1, std::time::Duration::from_secs(60), 8);
        let start = Instant::now();
        let first = Uuid::new_v4();
        limiter.admit_at(first, start);
        limiter.admit_at(first, start);
        for i in 0..100 {
            let at = start + std::time::Duration::from_millis(i + 1);
            assert_eq!(limiter.admit_at(Uuid::new_v4(), at), Admission::Record);
            assert!(limiter.tracked() <= 8, "{}", limiter.tracked());
        }
    }

    #[test]
    fn repeats_in_a_request_become_one_event_with_a_count() {
        let limiter = DenialLimiter::default();
        let denials = Denials::default();
        let me = caller(&user(Role::User), None);
        let bob = Uuid::new_v4();
        let meta = RequestMeta::default();
        for _ in 0..5 {
            let error = deny(
                &limiter,
                &denials,
                &me,
                &meta,
                Action::ViewSessions,
                Some(bob),
                None,
                AppError::Forbidden("no".into()),
            );
            assert_eq!(error.code(), "FORBIDDEN");
        }
        deny(
            &limiter,
            &denials,
            &me,
            &meta,
            Action::RevokeSessions,
            Some(bob),
            None,
            AppError::Forbidden("no".into()),
        );
        let events = denials.take();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].metadata["count"], 5);
        assert_eq!(events[0].user_id, Some(bob));
        assert_eq!(events[1].metadata["count"], 1);
        assert!(denials.is_empty(), "taken");
    }
}
