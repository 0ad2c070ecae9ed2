//! `session-manager seed`: bulk benchmark data with a valid audit chain.

use std::{collections::HashSet, process::Output};

use entity::{audit_event, session, user};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

async fn run(app: &TestApp, args: &[&str]) -> Output {
    app.command()
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// 20 users with 3 sessions each, 2 500 events in transactions of 1 000
/// (so the chain head moves between batches and the last one is partial).
const SMALL: &[&str] = &[
    "seed",
    "--users",
    "20",
    "--sessions-per-user",
    "3",
    "--audit-events",
    "2500",
    "--revocable-sessions",
    "5",
    "--bench-user-events",
    "100",
    "--batch",
    "1000",
];

async fn seed(app: &TestApp) -> Value {
    let out = run(app, SMALL).await;
    assert!(out.status.success(), "seed failed: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("seed printed no JSON ({e}): {}", text(&out.stdout)))
}

async fn counts(app: &TestApp) -> (u64, u64, u64) {
    (
        user::Entity::find().count(app.db()).await.unwrap(),
        session::Entity::find().count(app.db()).await.unwrap(),
        audit_event::Entity::find().count(app.db()).await.unwrap(),
    )
}

#[tokio::test]
async fn seed_fills_the_database_and_extends_the_audit_chain_validly() {
    let app = spawn_app().await;
    // Events already in the chain: the seeded ones must continue it.
    let someone = app.create_user(entity::user::Role::User).await;
    app.sign_in(&someone).await;
    let (users_before, sessions_before, events_before) = counts(&app).await;
    assert!(events_before >= 2, "the chain starts non-empty");

    let report = seed(&app).await;

    let (users, sessions, events) = counts(&app).await;
    assert_eq!(
        users - users_before,
        20 + 3,
        "seeded users and 3 benchmark accounts"
    );
    assert_eq!(
        sessions - sessions_before,
        20 * 3 + 10 + 1 + (1 + 5),
        "3 per user, 10 for bench, 1 for the admin, 1 + 5 for the revoker"
    );
    assert_eq!(events - events_before, 2500);
    assert_eq!(report["users"], 23, "{report}");
    assert_eq!(report["sessions"], 77, "{report}");
    assert_eq!(report["auditEvents"], 2500, "{report}");
    assert_eq!(
        report["headSeq"], events,
        "seq is contiguous from the old head"
    );

    let verify = run(&app, &["audit", "verify"]).await;
    assert!(
        verify.status.success(),
        "audit verify failed: {}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    assert!(
        text(&verify.stdout).contains(&format!("{events} events checked")),
        "{}",
        text(&verify.stdout)
    );
    // Signed as a server would have: every 1 000 events, and the head.
    assert!(
        text(&verify.stdout).contains(&format!(
            "3 signed records verified, covering through seq {events}"
        )),
        "{}",
        text(&verify.stdout)
    );

    // The server keeps appending to the seeded chain.
    app.sign_in(&someone).await;
    let verify = run(&app, &["audit", "verify"]).await;
    assert!(verify.status.success(), "{}", text(&verify.stderr));
}

#[tokio::test]
async fn seeded_tokens_work_and_the_benchmark_accounts_have_what_the_workloads_need() {
    let app = spawn_app().await;
    let report = seed(&app).await;
    let bench_tokens = report["bench"]["tokens"].as_array().unwrap();
    assert_eq!(bench_tokens.len(), 10, "{report}");

    // W1: the bench user lists exactly 10 active sessions, with devices.
    let token = bench_tokens[3].as_str().unwrap();
    let body = app
        .gql(
            Some(token),
            "{ sessions { count activeCount sessions { isCurrent device ipAddress } } }",
            json!({}),
        )
        .await;
    let list = &body["data"]["sessions"];
    assert_eq!(list["count"], 10, "{body}");
    assert_eq!(list["activeCount"], 10, "{body}");
    let current: Vec<&Value> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["isCurrent"] == true)
        .collect();
    assert_eq!(current.len(), 1, "{body}");
    assert!(current[0]["device"].is_string(), "{body}");

    // W3: the admin reads the bench user's events, spread over types.
    let admin = report["admin"]["tokens"][0].as_str().unwrap();
    let body = app
        .gql(
            Some(admin),
            "query($u: UUID!) { viewer { user { role } } sessionAudit(filter: { userId: $u }, limit: 500) { logs { eventType status } pagination { total } } }",
            json!({ "u": report["bench"]["id"] }),
        )
        .await;
    assert_eq!(body["data"]["viewer"]["user"]["role"], "ADMIN", "{body}");
    let page = &body["data"]["sessionAudit"];
    assert_eq!(page["pagination"]["total"], 100, "{body}");
    let logs = page["logs"].as_array().unwrap();
    let types: HashSet<&str> = logs
        .iter()
        .map(|l| l["eventType"].as_str().unwrap())
        .collect();
    let statuses: HashSet<&str> = logs.iter().map(|l| l["status"].as_str().unwrap()).collect();
    assert!(types.len() >= 4, "varied event types: {types:?}");
    assert_eq!(statuses.len(), 2, "both statuses: {statuses:?}");

    // W2: the revoker revokes its listed sessions, one per request.
    let revoker = report["revoker"]["tokens"][0].as_str().unwrap();
    let ids = report["revocableSessionIds"].as_array().unwrap();
    assert_eq!(ids.len(), 5, "{report}");
    for id in ids {
        let body = app
            .gql(
                Some(revoker),
                "mutation($id: UUID!) { revokeSession(id: $id) { isActive } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(body["data"]["revokeSession"]["isActive"], false, "{body}");
    }

    // W5: seeded users sign in with the shared password.
    let body = app
        .gql(
            None,
            "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }",
            json!({ "e": report["signInEmail"], "p": report["password"] }),
        )
        .await;
    assert!(body["data"]["signIn"]["token"].is_string(), "{body}");
}

#[tokio::test]
async fn seeding_a_seeded_database_again_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    seed(&app).await;
    let before = counts(&app).await;

    let again = run(&app, SMALL).await;

    assert!(!again.status.success(), "a second seed must fail");
    assert!(
        text(&again.stderr).contains("exists already"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(counts(&app).await, before, "nothing was written");
}

/// The metadata keys of an event, sorted.
fn keys(event: &audit_event::Model) -> Vec<String> {
    let mut keys: Vec<String> = event
        .metadata
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::test]
async fn seeded_events_have_the_types_reasons_and_shapes_the_server_writes() {
    use session_manager::service::{audit::events, denials::denial_reasons, session::reasons};
    let app = spawn_app().await;
    seed(&app).await;
    let seeded = app.audit_events().await;

    // The same kinds of events, written by the server itself.
    let alice = app.create_user(entity::user::Role::User).await;
    let bob = app.create_user(entity::user::Role::User).await;
    let (token, _) = app.sign_in_as(&alice, "laptop").await;
    let (_, phone) = app.sign_in_as(&alice, "phone").await;
    let (_, tablet) = app.sign_in_as(&alice, "tablet").await;
    let bob_token = app.sign_in(&bob).await;
    const REVOKE: &str = "mutation($id: UUID!) { revokeSession(id: $id) { id } }";
    let denied = app
        .gql(Some(&bob_token), REVOKE, json!({ "id": tablet }))
        .await;
    assert!(denied["errors"].is_array(), "bob is refused: {denied}");
    let revoked = app.gql(Some(&token), REVOKE, json!({ "id": phone })).await;
    assert!(revoked["errors"].is_null(), "{revoked}");
    let written: Vec<_> = app
        .audit_events()
        .await
        .into_iter()
        .skip(seeded.len())
        .collect();
    let server = |event_type: &str, status: audit_event::AuditStatus| {
        written
            .iter()
            .find(|e| e.event_type == event_type && e.status == status)
            .unwrap_or_else(|| panic!("the server wrote no {event_type} ({status:?})"))
    };

    let types: HashSet<&str> = [
        events::SIGN_IN,
        events::SESSION_REVOKED,
        events::ACCESS_DENIED,
        events::SESSIONS_VIEWED,
        events::IMPERSONATION_STARTED,
        events::IMPERSONATION_STOPPED,
        events::USER_CREATED,
        events::PASSWORD_CHANGED,
    ]
    .into();
    let revoke_reasons: HashSet<&str> = [
        reasons::SIGN_OUT,
        reasons::REVOKE,
        reasons::BULK,
        reasons::IMPERSONATION_STOPPED,
        reasons::SESSION_LIMIT,
        reasons::PASSWORD_CHANGED,
        reasons::IMPERSONATOR_SESSION_ENDED,
    ]
    .into();
    let revoked_shape = server(events::SESSION_REVOKED, audit_event::AuditStatus::Success);
    // A refused revocation is a failed session.revoked event.
    let denied_shape = server(events::SESSION_REVOKED, audit_event::AuditStatus::Failed);
    let (mut revocations, mut denials) = (0, 0);
    for event in &seeded {
        assert!(
            types.contains(event.event_type.as_str()),
            "a type the server writes: {event:?}"
        );
        let reason = event.metadata["reason"].as_str();
        let failed = event.status == audit_event::AuditStatus::Failed;
        if event.event_type == events::SESSION_REVOKED && !failed {
            revocations += 1;
            assert!(
                reason.is_some_and(|r| revoke_reasons.contains(r)),
                "a revoke reason the server writes: {event:?}"
            );
            assert_eq!(keys(event), keys(revoked_shape), "{event:?}");
            assert!(
                event.session_id.is_some() && event.actor_id.is_some(),
                "{event:?}"
            );
        }
        if event.event_type == events::SESSION_REVOKED && failed {
            denials += 1;
            assert_eq!(
                reason,
                Some(denial_reasons::FORBIDDEN),
                "the server's refusal reason: {event:?}"
            );
            assert_eq!(
                event.metadata["action"], denied_shape.metadata["action"],
                "the action the server names for a refused revocation: {event:?}"
            );
            assert_eq!(event.message, denied_shape.message, "{event:?}");
            assert_eq!(
                keys(event)
                    .into_iter()
                    .filter(|k| k != "sessionId")
                    .collect::<Vec<_>>(),
                keys(denied_shape)
                    .into_iter()
                    .filter(|k| k != "sessionId")
                    .collect::<Vec<_>>(),
                "{event:?}"
            );
        }
    }
    assert!(
        revocations > 0 && denials > 0,
        "the seed writes both kinds ({revocations}, {denials})"
    );
}
