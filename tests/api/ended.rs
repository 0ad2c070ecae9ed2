//! Ended sessions say who ended them, how and when; refused revocations
//! are recorded as failed `session.revoked` events.

use chrono::{Duration as ChronoDuration, Utc};
use entity::{session, user::Role};
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, assert_error_code, spawn_app, spawn_app_with};

const ENDED: &str = "{ sessions(includeExpired: true) { sessions { id isActive revokedAt expires endReason endedAt revokedBy { id email name } } } }";
const ENDED_OF: &str = "query($u: UUID) { sessions(includeExpired: true, userId: $u) { sessions { id isActive revokedAt expires endReason endedAt revokedBy { id email name } } } }";
const REVOKE: &str = "mutation($id: UUID!) { revokeSession(id: $id) { id } }";

/// The listed sessions of `user_id` (as seen by `token`), by id.
async fn listed(app: &TestApp, token: &str, user_id: Uuid) -> Vec<Value> {
    let body = app
        .gql(Some(token), ENDED_OF, json!({ "u": user_id }))
        .await;
    body["data"]["sessions"]["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("sessions listed: {body}"))
        .clone()
}

fn find(sessions: &[Value], id: Uuid) -> &Value {
    sessions
        .iter()
        .find(|s| s["id"] == id.to_string())
        .unwrap_or_else(|| panic!("session {id} listed"))
}

fn assert_ended(session: &Value, reason: &str, by: Option<&TestUser>, context: &str) {
    assert_eq!(session["endReason"], reason, "{context}: {session}");
    assert_eq!(session["isActive"], false, "{context}");
    match by {
        Some(user) => assert_eq!(session["revokedBy"]["id"], user.id.to_string(), "{context}"),
        None => assert!(session["revokedBy"].is_null(), "{context}: by the server"),
    }
    let ended_at = session["endedAt"].as_str().expect("endedAt");
    match session["revokedAt"].as_str() {
        Some(revoked_at) => assert_eq!(ended_at, revoked_at, "{context}: revoked then"),
        None => assert_eq!(ended_at, session["expires"].as_str().unwrap(), "{context}"),
    }
}

#[tokio::test]
async fn ended_sessions_say_who_ended_them_how_and_when() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let admin = app.create_user(Role::Admin).await;
    let admin_token = app.sign_in(&admin).await;

    // Signed out by its holder.
    let (signed_out, signed_out_id) = app.sign_in_as(&user, "a").await;
    app.gql(Some(&signed_out), "mutation { signOut }", json!({}))
        .await;
    // Revoked by an admin.
    let (_, revoked_id) = app.sign_in_as(&user, "b").await;
    let body = app
        .gql(Some(&admin_token), REVOKE, json!({ "id": revoked_id }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    // Revoked with the others by the user.
    let (bulk_token, bulk_keeper) = app.sign_in_as(&user, "c").await;
    let (_, bulk_id) = app.sign_in_as(&user, "d").await;
    let body = app
        .gql(Some(&bulk_token), "mutation { revokeSessions }", json!({}))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    // Idle and past its lifetime: the server ended them.
    let (_, idle_id) = app.sign_in_as(&user, "e").await;
    let (_, old_id) = app.sign_in_as(&user, "f").await;
    let now = Utc::now();
    let idle = session::ActiveModel {
        id: Set(idle_id),
        last_active_at: Set(now - ChronoDuration::days(8)),
        expires_at: Set(now - ChronoDuration::days(1)),
        ..Default::default()
    };
    idle.update(app.db()).await.unwrap();
    let old = session::ActiveModel {
        id: Set(old_id),
        expires_at: Set(now - ChronoDuration::hours(1)),
        absolute_expires_at: Set(now - ChronoDuration::hours(1)),
        ..Default::default()
    };
    old.update(app.db()).await.unwrap();

    let sessions = listed(&app, &admin_token, user.id).await;
    assert_ended(
        find(&sessions, signed_out_id),
        "SIGN_OUT",
        Some(&user),
        "signed out",
    );
    assert_ended(
        find(&sessions, revoked_id),
        "REVOKED",
        Some(&admin),
        "revoked",
    );
    assert_ended(
        find(&sessions, bulk_id),
        "REVOKED_BULK",
        Some(&user),
        "bulk",
    );
    assert_ended(find(&sessions, idle_id), "IDLE_TIMEOUT", None, "idle");
    assert_ended(find(&sessions, old_id), "EXPIRED", None, "expired");
    let keeper = find(&sessions, bulk_keeper);
    assert_eq!(keeper["isActive"], true);
    assert!(keeper["endReason"].is_null() && keeper["endedAt"].is_null());
    assert!(keeper["revokedBy"].is_null());
    assert_eq!(
        find(&sessions, revoked_id)["revokedBy"]["name"],
        "Test admin",
        "the user's own list names the admin"
    );

    // The user sees the same on their own list.
    let body = app.gql(Some(&bulk_token), ENDED, json!({})).await;
    let own = body["data"]["sessions"]["sessions"].as_array().unwrap();
    assert_ended(find(own, revoked_id), "REVOKED", Some(&admin), "own list");
}

#[tokio::test]
async fn password_changes_session_limits_and_impersonation_are_reasons_too() {
    let app = spawn_app_with(|c| c.max_sessions_per_user = 2).await;
    let user = app.create_user(Role::User).await;
    let admin = app.create_user(Role::Admin).await;

    // The oldest of three goes, by the server's rule.
    let (_, oldest) = app.sign_in_as(&user, "a").await;
    let (token, current) = app.sign_in_as(&user, "b").await;
    let (_, other) = app.sign_in_as(&user, "c").await;
    let sessions = listed(&app, &token, user.id).await;
    assert_ended(
        find(&sessions, oldest),
        "SESSION_LIMIT",
        None,
        "session limit",
    );

    // A password change ends the others, by the user.
    let body = app
        .gql(
            Some(&token),
            "mutation($c: String!) { changePassword(currentPassword: $c, newPassword: \"a-new-password-1\") }",
            json!({ "c": user.password }),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    let sessions = listed(&app, &token, user.id).await;
    assert_ended(
        find(&sessions, other),
        "PASSWORD_CHANGED",
        Some(&user),
        "password",
    );
    assert_eq!(find(&sessions, current)["isActive"], true);

    // Impersonation: stopped by the admin, or ended with the admin's session.
    let start = "mutation($id: UUID!) { startImpersonation(userId: $id, reason: \"support ticket 7\") { token session { id } } }";
    let admin_token = app.sign_in(&admin).await;
    let body = app
        .gql(Some(&admin_token), start, json!({ "id": user.id }))
        .await;
    let stopped_token = body["data"]["startImpersonation"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let stopped: Uuid = body["data"]["startImpersonation"]["session"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    app.gql(
        Some(&stopped_token),
        "mutation { stopImpersonation }",
        json!({}),
    )
    .await;
    let body = app
        .gql(Some(&admin_token), start, json!({ "id": user.id }))
        .await;
    let cascaded: Uuid = body["data"]["startImpersonation"]["session"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .parse()
        .unwrap();
    app.gql(Some(&admin_token), "mutation { signOut }", json!({}))
        .await;
    let sessions = listed(&app, &token, user.id).await;
    assert_ended(
        find(&sessions, stopped),
        "IMPERSONATION_STOPPED",
        Some(&admin),
        "stopped",
    );
    assert_ended(
        find(&sessions, cascaded),
        "IMPERSONATOR_ENDED",
        None,
        "cascade",
    );
}

const FAILED_REVOCATIONS: &str = "{ sessionAudit(filter: { eventType: \"session.revoked\", status: FAILED }) { logs { eventType status actorId userId sessionId metadata } } }";

#[tokio::test]
async fn refused_revocations_are_recorded_as_failed_session_revoked_events() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    let owner = app.create_user(Role::Owner).await;
    let alice_token = app.sign_in(&alice).await;
    let (_, bob_session) = app.sign_in_as(&bob, "bob").await;
    let unknown = Uuid::new_v4();

    let body = app
        .gql(Some(&alice_token), REVOKE, json!({ "id": bob_session }))
        .await;
    assert_error_code(&body, "FORBIDDEN", "someone else's session");
    let body = app
        .gql(Some(&alice_token), REVOKE, json!({ "id": unknown }))
        .await;
    assert_error_code(&body, "NOT_FOUND", "an unknown session");
    let body = app
        .gql(
            Some(&alice_token),
            "mutation($u: UUID) { revokeSessions(userId: $u) }",
            json!({ "u": bob.id }),
        )
        .await;
    assert_error_code(&body, "FORBIDDEN", "someone else's sessions in bulk");
    // Other refusals stay access.denied.
    let body = app
        .gql(Some(&alice_token), ENDED_OF, json!({ "u": bob.id }))
        .await;
    assert_error_code(&body, "FORBIDDEN", "listing someone else's sessions");

    let owner_token = app.sign_in(&owner).await;
    let body = app
        .gql(Some(&owner_token), FAILED_REVOCATIONS, json!({}))
        .await;
    let logs = body["data"]["sessionAudit"]["logs"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(logs.len(), 3, "one per refused revocation: {body}");
    let alice_id = alice.id.to_string();
    for log in logs {
        assert_eq!(log["status"], "FAILED");
        assert_eq!(log["actorId"], alice_id, "the actor: {log}");
    }
    let one = |session: Option<Uuid>, reason: &str| {
        logs.iter()
            .find(|l| {
                l["sessionId"] == session.map_or(Value::Null, |s| json!(s.to_string()))
                    && l["metadata"]["reason"] == reason
            })
            .unwrap_or_else(|| panic!("a {reason} event for {session:?}: {body}"))
    };
    let forbidden = one(Some(bob_session), "forbidden");
    assert_eq!(forbidden["userId"], bob.id.to_string(), "whose session");
    let not_found = one(Some(unknown), "not_found");
    assert!(
        not_found["userId"].is_null(),
        "no owner for an unknown session"
    );
    let bulk = one(None, "forbidden");
    assert_eq!(bulk["userId"], bob.id.to_string());
    assert_eq!(bulk["metadata"]["action"], "sessions.revoke");

    let denied = app.events_of_type("access.denied").await;
    assert_eq!(denied.len(), 1, "only the listing is access.denied");
    assert_eq!(denied[0].metadata["action"], "sessions.view");
}

#[tokio::test]
async fn a_bulk_revocation_refused_to_an_impersonation_session_is_a_failed_revocation() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let start =
        "mutation($id: UUID!) { startImpersonation(userId: $id, reason: \"ticket 9\") { token } }";
    let body = app
        .gql(Some(&admin_token), start, json!({ "id": alice.id }))
        .await;
    let token = body["data"]["startImpersonation"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let body = app
        .gql(Some(&token), "mutation { revokeSessions }", json!({}))
        .await;
    assert_error_code(&body, "FORBIDDEN", "bulk revocation while impersonating");
    let refused = app.refusals().await;
    let last = refused.last().expect("audited");
    assert_eq!(last.event_type, "session.revoked", "{last:?}");
    assert_eq!(last.metadata["action"], "sessions.revoke");
    assert_eq!(last.actor_id, Some(admin.id), "the admin acted");
    assert_eq!(last.user_id, Some(alice.id));
}
