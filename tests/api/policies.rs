//! Session policies: idle and absolute timeouts, last activity, the session
//! cap, password changes and retention clean-up.

use std::time::Duration;

use chrono::Utc;
use entity::{audit_event::AuditStatus, session, user::Role};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};
use session_manager::{service::audit::verify_chain, tasks};

use crate::helpers::{TestApp, assert_error_code, spawn_app, spawn_app_with};

const VIEWER: &str = "{ viewer { session { id lastActiveAt expires } } }";
const LIST_ALL: &str = "{ sessions(includeExpired: true) { sessions { id isExpired isActive revokedAt } activeCount } }";
const CHANGE: &str = "mutation($c: String!, $n: String!, $r: Boolean! = true) { changePassword(currentPassword: $c, newPassword: $n, revokeOtherSessions: $r) }";

async fn works(app: &TestApp, token: &str) -> bool {
    app.gql(Some(token), VIEWER, json!({})).await["data"]["viewer"].is_object()
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[tokio::test]
async fn an_idle_session_dies_while_a_used_one_lives_on() {
    let app = spawn_app_with(|c| {
        c.session_idle_timeout = Duration::from_secs(2);
        c.activity_write_interval = millis(300);
    })
    .await;
    let alice = app.create_user(Role::User).await;
    let (idle, idle_id) = app.sign_in_as(&alice, "idle").await;
    let (busy, _) = app.sign_in_as(&alice, "busy").await;
    for _ in 0..6 {
        tokio::time::sleep(millis(450)).await;
        assert!(
            works(&app, &busy).await,
            "a session in use stays alive past the idle timeout"
        );
    }
    assert!(
        !works(&app, &idle).await,
        "unused for longer than the idle timeout"
    );
    let body = app.gql(Some(&busy), LIST_ALL, json!({})).await;
    let listed = body["data"]["sessions"]["sessions"].as_array().unwrap();
    let entry = listed
        .iter()
        .find(|s| s["id"] == idle_id.to_string())
        .expect("still listed");
    assert_eq!(entry["isExpired"], true, "{entry}");
    assert_eq!(entry["isActive"], false);
    assert_eq!(body["data"]["sessions"]["activeCount"], 1);
}

#[tokio::test]
async fn a_session_in_use_still_ends_at_its_absolute_lifetime() {
    let app = spawn_app_with(|c| {
        c.session_ttl = Duration::from_secs(3);
        c.session_idle_timeout = Duration::from_secs(2);
        c.activity_write_interval = millis(300);
    })
    .await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let started = std::time::Instant::now();
    while started.elapsed() < millis(2_500) {
        assert!(
            works(&app, &token).await,
            "alive at {:?}",
            started.elapsed()
        );
        tokio::time::sleep(millis(400)).await;
    }
    tokio::time::sleep(millis(700)).await;
    assert!(!works(&app, &token).await, "past SESSION_TTL, use or not");
}

#[tokio::test]
async fn last_activity_advances_but_ordinary_requests_do_not_write() {
    let app = spawn_app().await; // ACTIVITY_WRITE_INTERVAL = 60s
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let first = app.gql(Some(&token), VIEWER, json!({})).await;
    let (second, statements) = app
        .count_queries(app.gql(Some(&token), VIEWER, json!({})))
        .await;
    assert_eq!(
        statements, 1,
        "the token check is the request's only statement"
    );
    assert_eq!(
        first["data"]["viewer"]["session"]["lastActiveAt"],
        second["data"]["viewer"]["session"]["lastActiveAt"]
    );

    let app = spawn_app_with(|c| c.activity_write_interval = millis(200)).await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let before = app.gql(Some(&token), VIEWER, json!({})).await;
    tokio::time::sleep(millis(300)).await;
    let after = app.gql(Some(&token), VIEWER, json!({})).await;
    let at = |body: &Value, field: &str| {
        body["data"]["viewer"]["session"][field]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<Utc>>()
            .unwrap()
    };
    assert!(
        at(&after, "lastActiveAt") > at(&before, "lastActiveAt"),
        "{before} vs {after}"
    );
    assert!(
        at(&after, "expires") > at(&before, "expires"),
        "the idle expiry slides forward"
    );
}

#[tokio::test]
async fn signing_in_beyond_the_cap_ends_the_oldest_session() {
    let app = spawn_app_with(|c| c.max_sessions_per_user = 2).await;
    let alice = app.create_user(Role::User).await;
    let (oldest, oldest_id) = app.sign_in_as(&alice, "one").await;
    let (second, _) = app.sign_in_as(&alice, "two").await;
    let bob = app.create_user(Role::User).await;
    let bobs = app.sign_in(&bob).await;
    let (third, _) = app.sign_in_as(&alice, "three").await;

    assert!(!works(&app, &oldest).await, "the oldest was evicted");
    assert!(works(&app, &second).await && works(&app, &third).await);
    assert!(works(&app, &bobs).await, "caps are per user");
    let body = app
        .gql(Some(&third), "{ sessions { count } }", json!({}))
        .await;
    assert_eq!(body["data"]["sessions"]["count"], 2);
    let event = app
        .events_of_type("session.revoked")
        .await
        .pop()
        .expect("audited");
    assert_eq!(event.session_id, Some(oldest_id));
    assert_eq!(event.metadata["reason"], "session_limit");
    assert_eq!(
        (event.actor_id, event.user_id),
        (Some(alice.id), Some(alice.id))
    );
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions_and_the_old_password() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (current, _) = app.sign_in_as(&alice, "laptop").await;
    let (other, _) = app.sign_in_as(&alice, "phone").await;

    let new_password = "a brand new passphrase";
    let body = app
        .gql(
            Some(&current),
            CHANGE,
            json!({ "c": alice.password, "n": new_password }),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    assert!(works(&app, &current).await, "the current session is kept");
    assert!(!works(&app, &other).await, "other sessions end");

    let sign_in =
        "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";
    let old = app
        .gql(
            None,
            sign_in,
            json!({ "e": alice.email, "p": alice.password }),
        )
        .await;
    assert_error_code(&old, "UNAUTHENTICATED", "the old password");
    let new = app
        .gql(
            None,
            sign_in,
            json!({ "e": alice.email, "p": new_password }),
        )
        .await;
    assert!(new["data"]["signIn"]["token"].is_string(), "{new}");

    let revoked = app.events_of_type("session.revoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].metadata["reason"], "password_changed");
    let changed = app.events_of_type("password.changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].status, AuditStatus::Success);
    assert_eq!(changed[0].metadata["endedSessions"], 1);
}

#[tokio::test]
async fn changing_the_password_can_keep_the_other_sessions() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let current = app.sign_in(&alice).await;
    let other = app.sign_in(&alice).await;
    let body = app
        .gql(
            Some(&current),
            CHANGE,
            json!({ "c": alice.password, "n": "another long password", "r": false }),
        )
        .await;
    assert_eq!(body["data"]["changePassword"], true, "{body}");
    assert!(works(&app, &other).await);
}

#[tokio::test]
async fn password_change_failures_are_coded_and_change_nothing() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let admin = app.create_user(Role::Admin).await;
    let token = app.sign_in(&alice).await;
    let other = app.sign_in(&alice).await;
    let cases = [
        (
            json!({ "c": "not my password", "n": "a fine new password" }),
            "BAD_USER_INPUT",
            "currentPassword",
            "wrong current password",
        ),
        (
            json!({ "c": alice.password, "n": "short" }),
            "BAD_USER_INPUT",
            "newPassword",
            "new password too short",
        ),
        (
            json!({ "c": alice.password, "n": "x".repeat(300) }),
            "BAD_USER_INPUT",
            "newPassword",
            "new password too long",
        ),
        (
            json!({ "c": alice.password, "n": alice.password }),
            "BAD_USER_INPUT",
            "newPassword",
            "unchanged password",
        ),
    ];
    for (variables, code, field, why) in cases {
        let body = app.gql(Some(&token), CHANGE, variables).await;
        assert_error_code(&body, code, why);
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{why}");
    }
    assert!(works(&app, &other).await, "nothing was revoked");
    let failed = app.events_of_type("password.changed").await;
    assert_eq!(failed.len(), 1, "the wrong current password is audited");
    assert_eq!(
        (failed[0].status, failed[0].user_id),
        (AuditStatus::Failed, Some(alice.id))
    );

    let body = app.gql(None, CHANGE, json!({ "c": "x", "n": "y" })).await;
    assert_error_code(&body, "UNAUTHENTICATED", "anonymous");

    let admin_token = app.sign_in(&admin).await;
    let started = app
        .gql(
            Some(&admin_token),
            "mutation($id: UUID!) { startImpersonation(userId: $id, reason: \"help\") { token } }",
            json!({ "id": alice.id }),
        )
        .await;
    let imp = started["data"]["startImpersonation"]["token"]
        .as_str()
        .unwrap();
    let body = app
        .gql(
            Some(imp),
            CHANGE,
            json!({ "c": alice.password, "n": "hijacked password!" }),
        )
        .await;
    assert_error_code(&body, "FORBIDDEN", "from an impersonation session");
    let sign_in =
        "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";
    let body = app
        .gql(
            None,
            sign_in,
            json!({ "e": alice.email, "p": alice.password }),
        )
        .await;
    assert!(
        body["data"]["signIn"]["token"].is_string(),
        "the password is unchanged: {body}"
    );
}

#[tokio::test]
async fn cleanup_removes_old_ended_sessions_and_keeps_active_ones_and_the_audit_log() {
    let app = spawn_app_with(|c| c.session_retention = Duration::from_secs(1)).await;
    let alice = app.create_user(Role::User).await;
    let (active, active_id) = app.sign_in_as(&alice, "keep").await;
    let (_, revoked_id) = app.sign_in_as(&alice, "revoke").await;
    let (_, expired_id) = app.sign_in_as(&alice, "expire").await;
    let (_, fresh_revoked_id) = app.sign_in_as(&alice, "fresh").await;
    app.gql(
        Some(&active),
        "mutation($id: UUID!) { revokeSession(id: $id) { id } }",
        json!({ "id": revoked_id }),
    )
    .await;
    let row = session::Entity::find_by_id(expired_id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    let mut row: session::ActiveModel = row.into();
    row.expires_at = Set(Utc::now() - chrono::Duration::seconds(5));
    row.update(app.db()).await.unwrap();
    tokio::time::sleep(millis(1_200)).await;
    app.gql(
        Some(&active),
        "mutation($id: UUID!) { revokeSession(id: $id) { id } }",
        json!({ "id": fresh_revoked_id }),
    )
    .await;
    let events_before = app.audit_events().await.len();

    let report = tasks::run_once(&app.state).await;
    assert_eq!(report.sessions_deleted, 2, "{report:?}");
    assert!(!report.failed);
    let left: Vec<_> = app.sessions().await.into_iter().map(|s| s.id).collect();
    assert!(
        left.contains(&active_id) && left.contains(&fresh_revoked_id),
        "{left:?}"
    );
    assert!(!left.contains(&revoked_id) && !left.contains(&expired_id));
    assert!(works(&app, &active).await);
    // The audit log is untouched, but for the expiry the pass recorded
    // before deleting the session.
    let events = app.audit_events().await;
    assert_eq!(events.len(), events_before + 1, "{events:?}");
    let recorded = events.last().unwrap();
    assert_eq!(
        (recorded.event_type.as_str(), recorded.session_id),
        ("session.expired", Some(expired_id))
    );
    assert!(verify_chain(app.db()).await.unwrap().intact);

    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("session_manager_sessions_deleted_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("session_manager_maintenance_runs_total "),
        "{metrics}"
    );
}

#[test]
fn the_server_refuses_an_activity_interval_not_shorter_than_the_idle_timeout() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_session-manager"))
        .args([
            "--session-idle-timeout",
            "1m",
            "--activity-write-interval",
            "1m",
            "migrate",
        ])
        .env("DATABASE_URL", "sqlite::memory:")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ACTIVITY_WRITE_INTERVAL"), "{stderr}");
}
