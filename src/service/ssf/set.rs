//! Security Event Tokens (RFC 8417) for the audit events receivers hear
//! of: a session that ended — revoked (by its user, an admin, a sign-out,
//! a disabled account, a password change) or expired — is CAEP
//! `session-revoked`; a password changed or reset is CAEP
//! `credential-change`. Every other event makes no SET.
//!
//! A SET is a pure function of the event and the stream it goes to: the
//! same event to the same stream is the same token claims on every
//! attempt and every replica (`jti` included), so receivers drop
//! duplicates by `jti`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::audit_event::{self, AuditStatus};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{CREDENTIAL_CHANGE, SESSION_REVOKED};
use crate::service::audit::events;

/// The user an event concerns, as the receiver knows them.
#[derive(Debug, Clone, Copy, Default)]
pub struct User<'a> {
    pub email: Option<&'a str>,
    /// The id in the application's own user store (`upsertUser`).
    pub external_id: Option<&'a str>,
}

/// Does `event` make a SET?
pub fn announced(event: &audit_event::Model) -> bool {
    event.status == AuditStatus::Success
        && event.user_id.is_some()
        && matches!(
            event.event_type.as_str(),
            events::SESSION_REVOKED
                | events::SESSION_EXPIRED
                | events::PASSWORD_CHANGED
                | events::USER_PASSWORD_RESET
        )
}

/// The `jti` of `event` sent to `stream`: stable, and different per
/// stream (one receiver's ids tell nothing about another's).
pub fn jti(event: Uuid, stream: Uuid) -> String {
    let mut hash = Sha256::new();
    hash.update(b"ssf-set\0");
    hash.update(event.as_bytes());
    hash.update(stream.as_bytes());
    URL_SAFE_NO_PAD.encode(&hash.finalize()[..18])
}

/// The subject identifier (RFC 9493) of `user`: by email, by the external
/// id (`opaque`), or both (`aliases`).
fn user_subject(user: User<'_>) -> Option<Value> {
    let email = user.email.map(|e| json!({ "format": "email", "email": e }));
    let external = user
        .external_id
        .map(|id| json!({ "format": "opaque", "id": id }));
    match (email, external) {
        (Some(email), Some(external)) => Some(json!({
            "format": "aliases",
            "identifiers": [email, external],
        })),
        (one, other) => one.or(other),
    }
}

/// The claims of the SET announcing `event` to the stream `stream` (its
/// receiver `audience`), from `issuer`; `None` for an event that is not
/// announced.
pub fn claims(
    event: &audit_event::Model,
    user: User<'_>,
    issuer: &str,
    audience: &str,
    stream: Uuid,
) -> Option<Value> {
    if !announced(event) {
        return None;
    }
    let at = event.created_at.timestamp();
    let meta = |key: &str| event.metadata.get(key).and_then(Value::as_str);
    let mut subject = Map::new();
    subject.insert("format".into(), json!("complex"));
    if let Some(user) = user_subject(user) {
        subject.insert("user".into(), user);
    }
    let (event_type, payload) = match event.event_type.as_str() {
        events::SESSION_REVOKED | events::SESSION_EXPIRED => {
            let session = event.session_id?;
            subject.insert(
                "session".into(),
                json!({ "format": "opaque", "id": session.to_string() }),
            );
            let initiating = if event.event_type == events::SESSION_EXPIRED {
                "policy"
            } else if event.actor_id.is_some() && event.actor_id == event.user_id {
                "user"
            } else {
                "admin"
            };
            let mut payload = json!({
                "event_timestamp": at,
                "initiating_entity": initiating,
            });
            if let Some(reason) = meta("reason") {
                payload["reason_admin"] = json!({ "en": reason });
            }
            (SESSION_REVOKED, payload)
        }
        _ => (
            CREDENTIAL_CHANGE,
            json!({
                "event_timestamp": at,
                "credential_type": "password",
                "change_type": "update",
                "initiating_entity": if event.event_type == events::PASSWORD_CHANGED {
                    "user"
                } else {
                    "admin"
                },
            }),
        ),
    };
    if subject.len() == 1 {
        // Neither a user nor a session to name.
        return None;
    }
    Some(json!({
        "iss": issuer,
        "aud": audience,
        "iat": at,
        "jti": jti(event.id, stream),
        "sub_id": Value::Object(subject),
        "events": { event_type: payload },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, status: AuditStatus) -> audit_event::Model {
        let user = Uuid::now_v7();
        audit_event::Model {
            id: Uuid::now_v7(),
            seq: 7,
            created_at: chrono::DateTime::from_timestamp(1_764_633_600, 0).unwrap(),
            event_type: event_type.to_owned(),
            status,
            message: String::new(),
            actor_id: Some(user),
            user_id: Some(user),
            session_id: Some(Uuid::now_v7()),
            ip_address: None,
            user_agent: None,
            metadata: json!({ "reason": "signed out" }),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    const ALICE: User<'static> = User {
        email: Some("alice@example.com"),
        external_id: None,
    };

    #[test]
    fn a_revocation_is_a_session_revoked_set_with_a_complex_subject() {
        let revoked = event(events::SESSION_REVOKED, AuditStatus::Success);
        let stream = Uuid::now_v7();
        let set = claims(&revoked, ALICE, "https://i.test", "https://r.test", stream).unwrap();
        assert_eq!(set["iss"], "https://i.test");
        assert_eq!(set["aud"], "https://r.test");
        assert_eq!(set["iat"], 1_764_633_600);
        assert_eq!(
            set["sub_id"],
            json!({
                "format": "complex",
                "user": { "format": "email", "email": "alice@example.com" },
                "session": { "format": "opaque", "id": revoked.session_id.unwrap().to_string() },
            })
        );
        let payload = &set["events"][SESSION_REVOKED];
        assert_eq!(payload["event_timestamp"], 1_764_633_600);
        assert_eq!(payload["initiating_entity"], "user");
        assert_eq!(payload["reason_admin"]["en"], "signed out");
        // Stable per event and stream, different per stream.
        let again = claims(&revoked, ALICE, "https://i.test", "https://r.test", stream).unwrap();
        assert_eq!(again, set);
        let other = claims(
            &revoked,
            ALICE,
            "https://i.test",
            "https://r.test",
            Uuid::now_v7(),
        );
        assert_ne!(other.unwrap()["jti"], set["jti"]);
    }

    #[test]
    fn an_admin_revocation_and_an_expiry_say_who_initiated_them() {
        let mut revoked = event(events::SESSION_REVOKED, AuditStatus::Success);
        revoked.actor_id = Some(Uuid::now_v7());
        let set = claims(&revoked, ALICE, "i", "a", Uuid::nil()).unwrap();
        assert_eq!(set["events"][SESSION_REVOKED]["initiating_entity"], "admin");
        let expired = event(events::SESSION_EXPIRED, AuditStatus::Success);
        let set = claims(&expired, ALICE, "i", "a", Uuid::nil()).unwrap();
        assert_eq!(
            set["events"][SESSION_REVOKED]["initiating_entity"],
            "policy"
        );
    }

    #[test]
    fn password_changes_are_credential_changes_naming_both_identifiers() {
        let both = User {
            email: Some("alice@example.com"),
            external_id: Some("u-42"),
        };
        for (kind, initiating) in [
            (events::PASSWORD_CHANGED, "user"),
            (events::USER_PASSWORD_RESET, "admin"),
        ] {
            let changed = event(kind, AuditStatus::Success);
            let set = claims(&changed, both, "i", "a", Uuid::nil()).unwrap();
            let payload = &set["events"][CREDENTIAL_CHANGE];
            assert_eq!(payload["credential_type"], "password", "{kind}");
            assert_eq!(payload["change_type"], "update");
            assert_eq!(payload["initiating_entity"], initiating);
            assert_eq!(
                set["sub_id"]["user"],
                json!({
                    "format": "aliases",
                    "identifiers": [
                        { "format": "email", "email": "alice@example.com" },
                        { "format": "opaque", "id": "u-42" },
                    ],
                })
            );
        }
    }

    #[test]
    fn failures_and_other_events_make_no_set() {
        for (kind, status) in [
            (events::SESSION_REVOKED, AuditStatus::Failed),
            (events::PASSWORD_CHANGED, AuditStatus::Failed),
            (events::SIGN_IN, AuditStatus::Success),
            (events::USER_DISABLED, AuditStatus::Success),
        ] {
            assert!(
                claims(&event(kind, status), ALICE, "i", "a", Uuid::nil()).is_none(),
                "{kind} {status:?}"
            );
        }
        let mut anonymous = event(events::SESSION_REVOKED, AuditStatus::Success);
        anonymous.user_id = None;
        assert!(claims(&anonymous, ALICE, "i", "a", Uuid::nil()).is_none());
    }
}
