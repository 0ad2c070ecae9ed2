//! The benchmark's synthetic world: which seeded accounts and sessions an
//! event is about, and events of every type shaped as the server writes
//! them, drawn from a seeded generator so that a seed is reproducible.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use entity::{session, user};

use session_manager::{
    auth::Actor,
    error::AppError,
    service::{
        access::{self, Action},
        audit::{NewEvent, events},
        denials,
        session::{self as sessions, reasons},
    },
};

use super::BENCH_SESSIONS;

/// The seeded accounts and sessions the events talk about.
pub(super) struct World {
    pub(super) users: Arc<Vec<user::Model>>,
    pub(super) sessions: Arc<Vec<session::Model>>,
    /// Index in `sessions` of the first seeded user's first session.
    pub(super) seeded_sessions_from: usize,
    pub(super) sessions_per_user: usize,
    /// Indexes in `users` of the admins.
    pub(super) admins: Vec<usize>,
}

impl World {
    /// A session of the user at `index`, when it has any.
    pub(super) fn session_of(&self, rng: &mut Rng, index: usize) -> Option<&session::Model> {
        match index {
            0 => Some(&self.sessions[rng.below(BENCH_SESSIONS as u64) as usize]),
            1 | 2 => None,
            _ if self.sessions_per_user == 0 => None,
            _ => {
                let first = self.seeded_sessions_from + (index - 3) * self.sessions_per_user;
                Some(&self.sessions[first + rng.below(self.sessions_per_user as u64) as usize])
            }
        }
    }

    /// Any seeded user (or the bench user when there are none).
    pub(super) fn any_user(&self, rng: &mut Rng) -> usize {
        let seeded = self.users.len() - 3;
        if seeded == 0 {
            0
        } else {
            3 + rng.below(seeded as u64) as usize
        }
    }

    pub(super) fn any_admin(&self, rng: &mut Rng) -> &user::Model {
        &self.users[self.admins[rng.below(self.admins.len() as u64) as usize]]
    }
}

/// One event about the user at `subject`, of a type drawn with the rough
/// frequencies of a real log, shaped as the server writes it.
pub(super) fn fake_event(
    world: &World,
    rng: &mut Rng,
    subject: usize,
    at: DateTime<Utc>,
) -> NewEvent {
    let user = &world.users[subject];
    let session = world.session_of(rng, subject);
    let ip = ip_address(rng);
    let agent = pick(rng, USER_AGENTS);
    let with_origin = |event: NewEvent| {
        let mut event = event;
        event.ip_address = Some(ip.clone());
        event.user_agent = Some(agent.to_owned());
        event
    };
    let with_session = |event: NewEvent| match session {
        Some(s) => event.session(s.id),
        None => event,
    };
    let roll = rng.below(100);
    let event = match roll {
        0..50 => with_session(
            NewEvent::success(events::SIGN_IN, format!("{} signed in", user.email))
                .actor(user.id)
                .subject(user.id)
                .meta("email", user.email.clone())
                .meta("expiresAt", (at + Duration::days(7)).to_rfc3339()),
        ),
        50..60 => {
            let wrong_password = rng.below(2) == 0;
            let mut event =
                NewEvent::failed(events::SIGN_IN, "sign-in failed: invalid email or password")
                    .meta("email", user.email.clone())
                    .meta(
                        "reason",
                        if wrong_password {
                            "wrong_password"
                        } else {
                            "unknown_email"
                        },
                    );
            if wrong_password {
                event = event.subject(user.id);
            }
            event
        }
        60..78 if session.is_some() => {
            let by_admin = rng.below(5) == 0;
            let actor = if by_admin {
                world.any_admin(rng).id
            } else {
                user.id
            };
            let reason = pick(
                rng,
                &[
                    reasons::SIGN_OUT,
                    reasons::REVOKE,
                    reasons::BULK,
                    reasons::PASSWORD_CHANGED,
                    reasons::SESSION_LIMIT,
                ],
            );
            let target = session.expect("matched on is_some");
            sessions::revoked_event(target, user, Actor::user(actor), at, reason)
        }
        60..86 => {
            let admin = world.any_admin(rng);
            NewEvent::success(
                events::SESSIONS_VIEWED,
                format!("sessions of {} viewed", user.email),
            )
            .actor(admin.id)
            .subject(user.id)
            .meta("userEmail", user.email.clone())
        }
        86..91 => {
            // Someone else tried to end this user's sessions.
            let intruder = &world.users[world.any_user(rng)];
            denials::denial_event(
                Actor::user(intruder.id),
                intruder.role,
                Action::RevokeSessions,
                &AppError::Forbidden(access::OWN_ONLY.into()),
            )
            .subject(user.id)
            // As a request's refusals are written (`denials::Denials::take`).
            .meta("count", 1u64)
        }
        91..94 => {
            let admin = world.any_admin(rng);
            with_session(
                NewEvent::success(
                    events::IMPERSONATION_STARTED,
                    format!(
                        "{} started impersonating {}: support ticket",
                        admin.email, user.email
                    ),
                )
                .actor(admin.id)
                .subject(user.id)
                .meta("reason", "support ticket")
                .meta("impersonatorEmail", admin.email.clone()),
            )
        }
        94..97 => {
            let admin = world.any_admin(rng);
            with_session(
                NewEvent::success(
                    events::IMPERSONATION_STOPPED,
                    format!("impersonation of {} stopped", user.email),
                )
                .actor(admin.id)
                .subject(user.id)
                .meta("impersonatedBy", admin.id.to_string())
                .meta("impersonatorId", admin.id.to_string())
                .meta("userEmail", user.email.clone()),
            )
        }
        _ => with_session(
            NewEvent::success(
                events::PASSWORD_CHANGED,
                format!("{} changed their password", user.email),
            )
            .actor(user.id)
            .subject(user.id)
            .meta("endedSessions", rng.below(4)),
        ),
    };
    with_origin(event)
}

/// Addresses from the documentation ranges (RFC 5737): data only.
pub(super) fn ip_address(rng: &mut Rng) -> String {
    let net = pick(rng, &["192.0.2", "198.51.100", "203.0.113"]);
    format!("{net}.{}", 1 + rng.below(254))
}

pub(super) const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "curl/8.5.0",
];

pub(super) fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

/// SplitMix64: a fixed seed makes every run draw the same data, and the
/// benchmark needs no cryptographic randomness (tokens still come from the
/// OS, through [`auth::generate_token`]).
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for test data (`n` > 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
