//! Refused attempts: the one event shape a refusal is audited as, the
//! per-request deduplication (once per action and target, with a count;
//! see [`deny`]), and the limit past which a caller who keeps being refused
//! is answered `RATE_LIMITED` for a while instead (see [`DenialLimiter`]).
//! The rules that refuse are [`super::access`]'s.

use std::{collections::HashMap, time::Instant};

use entity::user::Role;
use uuid::Uuid;

use crate::{
    auth::{Actor, Caller, KeyCaller, RequestMeta},
    db::Db,
    error::AppError,
    service::{
        access::Action,
        audit::{self, NewEvent, events},
    },
};

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
        // A refused change of an account is logged with the changes of
        // its kind (`user.disabled`, failed), so each kind's log is whole.
        Action::CreateUser => events::USER_CREATED,
        Action::UpdateUser => events::USER_UPDATED,
        Action::SetUserRole => events::USER_ROLE_CHANGED,
        Action::DisableUser => events::USER_DISABLED,
        Action::EnableUser => events::USER_ENABLED,
        Action::DeleteUser => events::USER_DELETED,
        Action::ResetPassword => events::USER_PASSWORD_RESET,
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
    use crate::service::access::fixtures::*;

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
