//! Audit reporting: visibility, filters, paging, tamper evidence,
//! retention and export.

use std::collections::HashSet;

use entity::{audit_event, user::Role};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Statement};
use serde_json::{Value, json};
use session_manager::service::audit::{self as audits, NewEvent, verify_chain};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_error_code, spawn_app};

const PAGE: &str = "query($f: AuditFilter, $limit: Int! = 100, $offset: Int! = 0) { sessionAudit(filter: $f, limit: $limit, offset: $offset) { logs { id seq eventType status message createdAt actorId userId sessionId ipAddress userAgent metadata hash } pagination { total limit offset hasMore } } }";
const CHAIN: &str = "{ auditChain { intact checked firstBrokenId firstBrokenSeq problem } }";

async fn page(app: &TestApp, token: &str, variables: Value) -> Value {
    app.gql(Some(token), PAGE, variables).await
}

fn logs(body: &Value) -> &Vec<Value> {
    body["data"]["sessionAudit"]["logs"]
        .as_array()
        .unwrap_or_else(|| panic!("no audit page: {body}"))
}

/// Appends `n` events straight through the service.
async fn seed_events(app: &TestApp, n: usize, event_type: &'static str, user: Option<Uuid>) {
    for i in 0..n {
        let mut event = NewEvent::success(event_type, format!("seeded {i}")).meta("i", i);
        if let Some(user) = user {
            event = event.subject(user).actor(user);
        }
        audits::record_alone(&app.state.db, event).await.unwrap();
    }
}

#[tokio::test]
async fn users_see_only_events_about_themselves_admins_and_owners_see_all() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    let admin = app.create_user(Role::Admin).await;
    let owner = app.create_user(Role::Owner).await;
    let alice_token = app.sign_in(&alice).await;
    let bob_token = app.sign_in(&bob).await;
    let (_, alice_session) = app.sign_in_as(&alice, "phone").await;
    // Bob tries to revoke Alice's session: denied, and Alice can see it.
    let denied = app
        .gql(
            Some(&bob_token),
            "mutation($id: UUID!) { revokeSession(id: $id) { id } }",
            json!({ "id": alice_session }),
        )
        .await;
    assert_error_code(&denied, "FORBIDDEN", "bob on alice");

    let mine = page(&app, &alice_token, json!({})).await;
    let events = logs(&mine);
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e["userId"] == alice.id.to_string()),
        "alice sees only her own: {mine}"
    );
    let attempt = events
        .iter()
        .find(|e| e["eventType"] == "session.revoked" && e["status"] == "FAILED")
        .expect("alice sees bob's failed attempt against her");
    assert_eq!(attempt["status"], "FAILED");
    assert_eq!(attempt["actorId"], bob.id.to_string());
    assert_eq!(
        mine["data"]["sessionAudit"]["pagination"]["total"]
            .as_u64()
            .unwrap() as usize,
        events.len()
    );

    // Naming someone else is refused and audited.
    let body = page(&app, &alice_token, json!({ "f": { "userId": bob.id } })).await;
    assert_error_code(&body, "FORBIDDEN", "user reading another's audit");
    let body = page(&app, &alice_token, json!({ "f": { "userId": alice.id } })).await;
    assert!(body["errors"].is_null(), "naming oneself is fine: {body}");

    let total = app.audit_events().await.len() as u64;
    for user in [&admin, &owner] {
        let token = app.sign_in(user).await;
        let all = page(&app, &token, json!({ "limit": 500 })).await;
        let seen = all["data"]["sessionAudit"]["pagination"]["total"]
            .as_u64()
            .unwrap();
        assert!(
            seen >= total,
            "{:?} sees everything: {seen} < {total}",
            user.email
        );
        let bobs = page(&app, &token, json!({ "f": { "userId": bob.id } })).await;
        assert!(
            logs(&bobs)
                .iter()
                .all(|e| e["userId"] == bob.id.to_string())
        );
        assert!(!logs(&bobs).is_empty());
    }

    let anonymous = app.gql(None, PAGE, json!({})).await;
    assert_error_code(&anonymous, "UNAUTHENTICATED", "anonymous");
}

/// Which stored events a filter should return.
type Matcher<'a> = Box<dyn Fn(&audit_event::Model) -> bool + 'a>;

#[tokio::test]
async fn each_filter_alone_and_combined() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    let token = app.sign_in(&admin).await;
    let (_, alice_session) = app.sign_in_as(&alice, "a").await;
    let bob_token = app.sign_in(&bob).await;
    app.gql(None, "mutation { signIn(email: \"nobody@example.com\", password: \"wrong-password\") { token } }", json!({}))
        .await;
    app.gql(
        Some(&bob_token),
        "mutation($id: UUID!) { revokeSession(id: $id) { id } }",
        json!({ "id": alice_session }),
    )
    .await;
    app.gql(
        Some(&token),
        "mutation($id: UUID!) { revokeSession(id: $id) { id } }",
        json!({ "id": alice_session }),
    )
    .await;
    let all = app.audit_events().await;

    let cases: Vec<(Value, Matcher<'_>, &str)> = vec![
        (
            json!({ "userId": alice.id }),
            Box::new(|e| e.user_id == Some(alice.id)),
            "userId",
        ),
        (
            json!({ "actorId": bob.id }),
            Box::new(|e| e.actor_id == Some(bob.id)),
            "actorId",
        ),
        (
            json!({ "sessionId": alice_session }),
            Box::new(|e| e.session_id == Some(alice_session)),
            "sessionId",
        ),
        (
            json!({ "eventType": "auth.sign_in" }),
            Box::new(|e| e.event_type == "auth.sign_in"),
            "eventType",
        ),
        (
            json!({ "status": "FAILED" }),
            Box::new(|e| e.status == entity::audit_event::AuditStatus::Failed),
            "status",
        ),
        (
            json!({ "userId": alice.id, "eventType": "session.revoked", "status": "SUCCESS", "actorId": admin.id }),
            Box::new(|e| {
                e.user_id == Some(alice.id)
                    && e.event_type == "session.revoked"
                    && e.actor_id == Some(admin.id)
            }),
            "combined",
        ),
        (
            json!({ "userId": alice.id, "status": "FAILED" }),
            Box::new(|e| {
                e.user_id == Some(alice.id) && e.status == entity::audit_event::AuditStatus::Failed
            }),
            "user and status",
        ),
    ];
    for (filter, expected, why) in cases {
        let body = page(&app, &token, json!({ "f": filter, "limit": 500 })).await;
        let got: Vec<String> = logs(&body)
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        let mut want: Vec<&audit_event::Model> = all.iter().filter(|e| expected(e)).collect();
        want.sort_by_key(|e| std::cmp::Reverse(e.seq));
        let want: Vec<String> = want.iter().map(|e| e.id.to_string()).collect();
        assert!(!want.is_empty(), "{why}: the fixture must match something");
        assert_eq!(got, want, "{why}");
        assert_eq!(
            body["data"]["sessionAudit"]["pagination"]["total"],
            want.len(),
            "{why}"
        );
    }

    // Time window: since is inclusive, until exclusive.
    let middle = &all[all.len() / 2];
    let since = middle.created_at.to_rfc3339();
    let body = page(
        &app,
        &token,
        json!({ "f": { "since": since }, "limit": 500 }),
    )
    .await;
    assert!(
        logs(&body)
            .iter()
            .all(|e| e["seq"].as_i64().unwrap() >= middle.seq || e["createdAt"] == since)
    );
    assert!(
        logs(&body).iter().any(|e| e["id"] == middle.id.to_string()),
        "since is inclusive"
    );
    let body = page(
        &app,
        &token,
        json!({ "f": { "until": since }, "limit": 500 }),
    )
    .await;
    assert!(
        logs(&body).iter().all(|e| e["id"] != middle.id.to_string()),
        "until is exclusive"
    );
    let before = all
        .iter()
        .filter(|e| e.created_at < middle.created_at)
        .count();
    assert_eq!(logs(&body).len(), before);
}

#[tokio::test]
async fn paging_covers_every_event_once_and_has_more_is_right_at_the_edges() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let token = app.sign_in(&admin).await;
    seed_events(&app, 23, "test.event", None).await;
    let total = app.audit_events().await.len();

    for limit in [1usize, 5, 7, total, total + 3] {
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let body = page(&app, &token, json!({ "limit": limit, "offset": offset })).await;
            let p = &body["data"]["sessionAudit"]["pagination"];
            assert_eq!(p["total"], total, "limit {limit}");
            assert_eq!(
                (p["limit"].as_u64(), p["offset"].as_u64()),
                (Some(limit as u64), Some(offset as u64))
            );
            let batch = logs(&body);
            seen.extend(batch.iter().map(|e| e["seq"].as_i64().unwrap()));
            let expect_more = offset + batch.len() < total;
            assert_eq!(p["hasMore"], expect_more, "limit {limit} offset {offset}");
            if !expect_more {
                break;
            }
            offset += limit;
        }
        let unique: HashSet<_> = seen.iter().collect();
        assert_eq!(seen.len(), total, "limit {limit}: every event once");
        assert_eq!(unique.len(), total, "limit {limit}: no duplicates");
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");
    }
    let past = page(&app, &token, json!({ "limit": 10, "offset": total + 5 })).await;
    assert!(logs(&past).is_empty());
    assert_eq!(past["data"]["sessionAudit"]["pagination"]["hasMore"], false);
}

#[tokio::test]
async fn out_of_range_inputs_are_refused_naming_the_bound() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let token = app.sign_in(&admin).await;
    let cases = [
        (json!({ "limit": 0 }), "between 1 and 500", "zero limit"),
        (
            json!({ "limit": -1 }),
            "between 1 and 500",
            "negative limit",
        ),
        (
            json!({ "limit": 501 }),
            "between 1 and 500",
            "oversized limit",
        ),
        (
            json!({ "offset": -1 }),
            "between 0 and 1000000",
            "negative offset",
        ),
        (
            json!({ "offset": 1_000_001 }),
            "between 0 and 1000000",
            "oversized offset",
        ),
        (json!({ "limit": 3_000_000_000u64 }), "", "beyond 32 bits"),
        (
            json!({ "f": { "eventType": "" } }),
            "1 to 64",
            "empty event type",
        ),
        (
            json!({ "f": { "eventType": "x".repeat(65) } }),
            "1 to 64",
            "long event type",
        ),
        (
            json!({ "f": { "eventType": "auth\u{0}" } }),
            "printable",
            "NUL in event type",
        ),
        (
            json!({ "f": { "since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z" } }),
            "since",
            "inverted window",
        ),
        (
            json!({ "f": { "since": "yesterday" } }),
            "",
            "malformed instant",
        ),
        (json!({ "f": { "status": "MAYBE" } }), "", "unknown status"),
        (json!({ "f": { "userId": "nope" } }), "", "malformed uuid"),
        (
            json!({ "f": { "colour": "red" } }),
            "",
            "unknown filter field",
        ),
    ];
    for (variables, message, why) in cases {
        let body = page(&app, &token, variables).await;
        assert_error_code(&body, "BAD_USER_INPUT", why);
        let text = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            text.contains(message),
            "{why}: message {text:?} should mention {message:?}"
        );
    }
}

async fn chain(app: &TestApp, token: &str) -> Value {
    let body = app.gql(Some(token), CHAIN, json!({})).await;
    body["data"]["auditChain"].clone()
}

async fn cli_verify(app: &TestApp) -> (bool, String) {
    let out = app
        .command()
        .args(["audit", "verify"])
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn tampering_is_detected_by_the_owner_query_and_the_cli() {
    let app = spawn_app().await;
    let owner = app.create_user(Role::Owner).await;
    let token = app.sign_in(&owner).await;
    seed_events(&app, 6, "test.event", None).await;
    let report = chain(&app, &token).await;
    assert_eq!(report["intact"], true, "{report}");
    let (ok, text) = cli_verify(&app).await;
    assert!(ok && text.contains("intact"), "{text}");

    let events = app.audit_events().await;
    let victim = &events[3];
    let backend = app.db().get_database_backend();
    let exec = |sql: String| {
        let db = app.db().clone();
        async move {
            db.execute_raw(Statement::from_string(backend, sql))
                .await
                .unwrap()
        }
    };
    let id_literal = |id: Uuid| match backend {
        sea_orm::DatabaseBackend::Postgres => format!("'{id}'"),
        _ => format!("X'{}'", id.simple()),
    };

    // Edit.
    exec(format!(
        "UPDATE audit_events SET message = 'nothing to see' WHERE id = {}",
        id_literal(victim.id)
    ))
    .await;
    let report = chain(&app, &token).await;
    assert_eq!(report["intact"], false, "edit: {report}");
    assert_eq!(report["firstBrokenId"], victim.id.to_string());
    let (ok, text) = cli_verify(&app).await;
    assert!(
        !ok && text.contains(&victim.id.to_string()),
        "the CLI names the edited event: {text}"
    );
    exec(format!(
        "UPDATE audit_events SET message = '{}' WHERE id = {}",
        victim.message,
        id_literal(victim.id)
    ))
    .await;
    assert_eq!(chain(&app, &token).await["intact"], true, "restored");

    // Swap two events' positions.
    let (a, b) = (&events[1], &events[2]);
    exec(format!(
        "UPDATE audit_events SET seq = -1 WHERE seq = {}",
        a.seq
    ))
    .await;
    exec(format!(
        "UPDATE audit_events SET seq = {} WHERE seq = {}",
        a.seq, b.seq
    ))
    .await;
    exec(format!(
        "UPDATE audit_events SET seq = {} WHERE seq = -1",
        b.seq
    ))
    .await;
    let report = chain(&app, &token).await;
    assert_eq!(report["intact"], false, "swap: {report}");
    assert_eq!(report["firstBrokenSeq"], a.seq);
    exec(format!(
        "UPDATE audit_events SET seq = -1 WHERE seq = {}",
        a.seq
    ))
    .await;
    exec(format!(
        "UPDATE audit_events SET seq = {} WHERE seq = {}",
        a.seq, b.seq
    ))
    .await;
    exec(format!(
        "UPDATE audit_events SET seq = {} WHERE seq = -1",
        b.seq
    ))
    .await;
    assert_eq!(chain(&app, &token).await["intact"], true, "swapped back");

    // Delete one in the middle, then the newest.
    exec(format!(
        "DELETE FROM audit_events WHERE id = {}",
        id_literal(victim.id)
    ))
    .await;
    let report = chain(&app, &token).await;
    assert_eq!(report["intact"], false, "delete: {report}");
    assert_eq!(report["firstBrokenSeq"], victim.seq + 1);
    let (ok, _) = cli_verify(&app).await;
    assert!(!ok);
}

#[tokio::test]
async fn deleting_the_newest_event_is_detected() {
    let app = spawn_app().await;
    seed_events(&app, 3, "test.event", None).await;
    let last = app.audit_events().await.pop().unwrap();
    let backend = app.db().get_database_backend();
    app.db()
        .execute_raw(Statement::from_string(
            backend,
            format!("DELETE FROM audit_events WHERE seq = {}", last.seq),
        ))
        .await
        .unwrap();
    let report = verify_chain(app.db()).await.unwrap();
    assert!(!report.intact, "{report:?}");
    assert!(report.problem.unwrap().contains("newest"));
}

#[tokio::test]
async fn only_owners_check_the_chain_and_refusals_are_audited() {
    let app = spawn_app().await;
    for role in [Role::User, Role::Admin] {
        let user = app.create_user(role).await;
        let token = app.sign_in(&user).await;
        let body = app.gql(Some(&token), CHAIN, json!({})).await;
        assert_error_code(&body, "FORBIDDEN", role.as_str());
        let denied = app.events_of_type("access.denied").await;
        assert_eq!(denied.last().unwrap().actor_id, Some(user.id));
        assert_eq!(denied.last().unwrap().metadata["action"], "audit.verify");
    }
}

#[tokio::test]
async fn a_purge_moves_the_anchor_and_the_chain_still_verifies() {
    let app = spawn_app().await;
    let owner = app.create_user(Role::Owner).await;
    seed_events(&app, 12, "test.old", None).await;
    let cutoff = session_manager::db::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let token = app.sign_in(&owner).await;
    seed_events(&app, 3, "test.new", None).await;
    let before = app.audit_events().await;
    let old = before.iter().filter(|e| e.created_at < cutoff).count() as u64;

    let purged = audits::purge_before(&app.state.db, &app.state.signer, cutoff, 5)
        .await
        .unwrap();
    assert_eq!(
        purged, old,
        "every event before the cutoff, in batches of 5"
    );
    let after = app.audit_events().await;
    assert!(after.iter().all(|e| e.created_at >= cutoff));
    // Each batch of 5 left a signed record of what it removed, announced
    // in the chain.
    let records = after
        .iter()
        .filter(|e| e.event_type == "audit.purged")
        .count() as u64;
    assert_eq!(records, old.div_ceil(5), "{after:?}");
    assert_eq!(after.len() as u64, before.len() as u64 - old + records);
    let report = chain(&app, &token).await;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["checked"], after.len(), "{report}");
    let (ok, text) = cli_verify(&app).await;
    assert!(ok, "{text}");

    // Totals stay exact after a purge, filtered or not.
    let body = page(&app, &token, json!({})).await;
    let total = body["data"]["sessionAudit"]["pagination"]["total"]
        .as_u64()
        .unwrap();
    assert_eq!(total, app.audit_events().await.len() as u64);
    // Purging again finds nothing; appending continues the chain.
    assert_eq!(
        audits::purge_before(&app.state.db, &app.state.signer, cutoff, 5)
            .await
            .unwrap(),
        0
    );
    seed_events(&app, 2, "test.after", None).await;
    assert!(verify_chain(app.db()).await.unwrap().intact);
}

/// The walk reads the head, the checkpoints and the events in one
/// committed state: events appended while it runs are neither a chain
/// that "ends past its head" nor "newest events missing". (Found by the
/// dashboard's test, whose own sign-ins were appended while the owner's
/// page asked for `auditChain`.)
#[tokio::test]
async fn verifying_while_events_are_appended_sees_an_intact_chain() {
    let app = spawn_app().await;
    seed_events(&app, 50, "test.before", None).await;
    let db = app.state.db.clone();
    let appending = tokio::spawn(async move {
        for i in 0..400 {
            audits::record_alone(&db, NewEvent::success("test.during", format!("during {i}")))
                .await
                .unwrap();
        }
    });
    let owner = app.create_user(Role::Owner).await;
    let owner = app.sign_in(&owner).await;
    let mut walks = 0;
    while !appending.is_finished() {
        let report = verify_chain(app.db()).await.unwrap();
        assert!(report.intact, "walk {walks}: {report:?}");
        let body = app.gql(Some(&owner), CHAIN, json!({})).await;
        assert_eq!(
            body["data"]["auditChain"]["intact"], true,
            "walk {walks}: {body}"
        );
        walks += 1;
    }
    appending.await.unwrap();
    assert!(walks > 0);
    assert_linear(&app).await;
}

#[tokio::test]
async fn concurrent_appends_keep_the_chain_linear() {
    let app = spawn_app().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let db = app.state.db.clone();
        tasks.push(tokio::spawn(async move {
            audits::record_alone(
                &db,
                NewEvent::success("test.concurrent", format!("event {i}")),
            )
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("every append succeeds");
    }
    let events = app.audit_events().await;
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "contiguous positions"
    );
    assert!(verify_chain(app.db()).await.unwrap().intact);
}

/// Asserts the chain holds positions 1..=n with no gap and verifies.
async fn assert_linear(app: &TestApp) -> Vec<audit_event::Model> {
    let events = app.audit_events().await;
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "contiguous positions"
    );
    let report = verify_chain(app.db()).await.unwrap();
    assert!(report.intact, "{report:?}");
    events
}

#[tokio::test]
async fn concurrent_appends_on_two_replicas_keep_the_chain_linear() {
    let app = spawn_app().await;
    let replica = crate::helpers::spawn_replica(&app, |_| {}).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let db = if i % 2 == 0 {
            app.state.db.clone()
        } else {
            replica.state.db.clone()
        };
        // Half through each replica's grouped writer, half in transactions
        // of their own: both kinds on both replicas.
        tasks.push(tokio::spawn(async move {
            let event = NewEvent::success("test.concurrent", format!("event {i}"));
            if i % 4 < 2 {
                let event = std::sync::Arc::new(event);
                db.write(move |txn| {
                    let event = event.clone();
                    Box::pin(async move { audits::record(txn, (*event).clone()).await })
                })
                .await
            } else {
                audits::record_alone(&db, event).await
            }
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("every append succeeds");
    }
    let events = assert_linear(&app).await;
    let mut messages: Vec<&str> = events
        .iter()
        .filter(|e| e.event_type == "test.concurrent")
        .map(|e| e.message.as_str())
        .collect();
    messages.sort_unstable();
    let mut expected: Vec<String> = (0..40).map(|i| format!("event {i}")).collect();
    expected.sort_unstable();
    assert_eq!(messages, expected, "each append exactly once");
}

#[tokio::test]
async fn revocations_and_sign_ins_on_two_replicas_at_once_are_each_audited_once_in_one_chain() {
    let app = spawn_app().await;
    let replica = crate::helpers::spawn_replica(&app, |_| {}).await;
    let alice = app.create_user(Role::User).await;
    // Ten others sign in at once, one attempt each (the throttle counts
    // attempts in flight).
    let mut others = Vec::new();
    for _ in 0..10 {
        others.push(app.create_user(Role::User).await);
    }
    let token = app.sign_in(&alice).await;
    let mut targets = Vec::new();
    for _ in 0..20 {
        targets.push(app.sign_in_as(&alice, "test").await.1);
    }
    let before = app.audit_events().await.len();

    const REVOKE: &str = "mutation($id: UUID!) { revokeSession(id: $id) { id isActive } }";
    let revocations = targets.iter().enumerate().map(|(i, id)| {
        let (server, token) = (if i % 2 == 0 { &app } else { &replica }, &token);
        async move { server.gql(Some(token), REVOKE, json!({ "id": id })).await }
    });
    let sign_ins = others.iter().enumerate().map(|(i, user)| {
        let server = if i % 2 == 0 { &app } else { &replica };
        async move { server.sign_in(user).await }
    });
    let (revoked, _) = tokio::join!(
        futures_util::future::join_all(revocations),
        futures_util::future::join_all(sign_ins)
    );
    for body in &revoked {
        assert_eq!(
            body["data"]["revokeSession"]["isActive"], false,
            "revoked: {body}"
        );
    }

    let events = assert_linear(&app).await;
    assert_eq!(
        events.len(),
        before + 20 + 10,
        "20 revocations, 10 sign-ins"
    );
    let revoked_ids: HashSet<Uuid> = events
        .iter()
        .filter(|e| e.event_type == audits::events::SESSION_REVOKED)
        .filter_map(|e| e.session_id)
        .collect();
    assert_eq!(
        revoked_ids,
        targets.iter().copied().collect::<HashSet<_>>(),
        "one event per revoked session"
    );
}

#[tokio::test]
async fn export_writes_every_event_with_its_hash_as_ndjson_or_csv() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    seed_events(&app, 4, "test.export", Some(alice.id)).await;
    audits::record_alone(
        &app.state.db,
        NewEvent::failed("test.export", "tricky, \"quoted\"\nmessage").meta("x", "=1+1"),
    )
    .await
    .unwrap();
    let events = app.audit_events().await;

    let run = async |args: &[&str]| app.command().args(args).output().await.unwrap();
    let out = run(&["audit", "export"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), events.len());
    for (line, event) in lines.iter().zip(&events) {
        assert_eq!(line["id"], event.id.to_string());
        assert_eq!(line["hash"], event.hash.as_str());
        assert_eq!(line["prevHash"], event.prev_hash.as_str());
    }

    let out = run(&["audit", "export", "--format", "csv"]).await;
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.starts_with("seq,id,created_at,event_type,status,message,"),
        "{csv}"
    );
    assert!(
        csv.contains("\"tricky, \"\"quoted\"\"\nmessage\""),
        "RFC 4180 quoting: {csv}"
    );
    for event in &events {
        assert!(csv.contains(&event.hash), "every hash is exported");
    }

    let future = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let out = run(&["audit", "export", "--since", &future]).await;
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "nothing since tomorrow");
    let out = run(&["audit", "export", "--since", "last tuesday"]).await;
    assert!(!out.status.success(), "a malformed --since is refused");
}

#[tokio::test]
async fn no_operation_of_the_api_changes_or_deletes_audit_events() {
    let schema = session_manager::graphql::schema_builder().finish();
    let response = schema
        .execute("{ __schema { mutationType { fields { name } } } }")
        .await;
    let body = serde_json::to_value(&response).unwrap();
    let fields: Vec<String> = body["data"]["__schema"]["mutationType"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(fields.contains(&"revokeSession".to_owned()), "{fields:?}");
    assert!(
        fields.iter().all(|f| !f.to_lowercase().contains("audit")),
        "mutations: {fields:?}"
    );
}

#[tokio::test]
async fn keyset_paging_walks_every_event_once_with_filters_too() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&admin).await;
    seed_events(&app, 17, "test.keyset", Some(alice.id)).await;
    seed_events(&app, 5, "test.other", None).await;
    const KEYSET: &str = "query($f: AuditFilter, $after: String) { sessionAudit(filter: $f, limit: 4, after: $after) { logs { seq userId } pagination { total hasMore nextCursor } } }";

    for (filter, expected) in [
        (json!(null), app.audit_events().await.len()),
        (json!({ "userId": alice.id }), 17 + 1),
    ] {
        let mut after = Value::Null;
        let mut seen = Vec::new();
        loop {
            let body = app
                .gql(Some(&token), KEYSET, json!({ "f": filter, "after": after }))
                .await;
            let page = &body["data"]["sessionAudit"];
            assert_eq!(page["pagination"]["total"], expected, "{body}");
            seen.extend(
                page["logs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["seq"].as_i64().unwrap()),
            );
            let more = page["pagination"]["hasMore"].as_bool().unwrap();
            assert_eq!(
                more,
                page["pagination"]["nextCursor"].is_string(),
                "a cursor exactly when more follow"
            );
            if !more {
                break;
            }
            after = page["pagination"]["nextCursor"].clone();
        }
        assert_eq!(seen.len(), expected, "filter {filter}: every event once");
        assert!(
            seen.windows(2).all(|w| w[0] > w[1]),
            "newest first, no repeats"
        );
    }

    for bad in ["", "abc", "-5", "0", "1.5"] {
        let body = app.gql(Some(&token), KEYSET, json!({ "after": bad })).await;
        assert_error_code(&body, "BAD_USER_INPUT", &format!("cursor {bad:?}"));
    }
}

const PEOPLE: &str = "query($f: AuditFilter, $limit: Int! = 500) { sessionAudit(filter: $f, limit: $limit) { logs { eventType status actorId userId actor { id email name role } user { id email name } } pagination { total } } }";

/// The successful event of `event_type` in a page of `PEOPLE`.
fn event_of<'a>(body: &'a Value, event_type: &str) -> &'a Value {
    logs(body)
        .iter()
        .find(|e| e["eventType"] == event_type && e["status"] == "SUCCESS")
        .unwrap_or_else(|| panic!("no {event_type} event: {body}"))
}

/// The refused revocation (a failed `session.revoked`) in a page of `PEOPLE`.
fn refusal_of(body: &Value) -> &Value {
    logs(body)
        .iter()
        .find(|e| e["eventType"] == "session.revoked" && e["status"] == "FAILED")
        .unwrap_or_else(|| panic!("no refused revocation: {body}"))
}

/// An account stored directly (no password hashing: it never signs in).
async fn account(app: &TestApp, n: usize) -> entity::user::Model {
    let id = Uuid::new_v4();
    let model = entity::user::Model::new(
        id,
        format!("person-{n}-{}@example.com", id.simple()),
        format!("Person {n}"),
        Role::User,
        "!".into(),
        chrono::Utc::now(),
    );
    entity::user::ActiveModel::from(model.clone())
        .insert(app.db())
        .await
        .unwrap();
    model
}

/// `n` events, each by a new account about another new account.
async fn add_people(
    app: &TestApp,
    n: usize,
    people: &mut Vec<(entity::user::Model, entity::user::Model)>,
) {
    for _ in 0..n {
        let actor = account(app, people.len() * 2).await;
        let subject = account(app, people.len() * 2 + 1).await;
        audits::record_alone(
            &app.state.db,
            NewEvent::success("test.people", "by one about another")
                .actor(actor.id)
                .subject(subject.id),
        )
        .await
        .unwrap();
        people.push((actor, subject));
    }
}

#[tokio::test]
async fn an_audit_page_names_its_people_with_one_user_query_however_many_there_are() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let admin_token = app.sign_in(&admin).await;
    // One event per pair of people, each by someone about someone else.
    let mut people = Vec::new();
    let filter = json!({ "f": { "eventType": "test.people" } });
    let plain = "query($f: AuditFilter) { sessionAudit(filter: $f, limit: 500) { logs { actorId userId } } }";

    add_people(&app, 1, &mut people).await;
    let (_, without_small) = app
        .count_queries(app.gql(Some(&admin_token), plain, filter.clone()))
        .await;
    let (body, with_small) = app
        .count_queries(app.gql(Some(&admin_token), PEOPLE, filter.clone()))
        .await;
    assert_eq!(logs(&body).len(), 1, "{body}");
    add_people(&app, 99, &mut people).await;
    let (body, with_large) = app
        .count_queries(app.gql(Some(&admin_token), PEOPLE, filter.clone()))
        .await;

    let page = logs(&body);
    assert_eq!(page.len(), 100, "{body}");
    for (actor, subject) in &people {
        let event = page
            .iter()
            .find(|e| e["actorId"] == actor.id.to_string())
            .unwrap_or_else(|| panic!("the event by {}: {body}", actor.email));
        assert_eq!(event["actor"]["id"], actor.id.to_string());
        assert_eq!(event["actor"]["email"], actor.email.as_str());
        assert_eq!(event["actor"]["name"], actor.name.as_str());
        assert_eq!(event["actor"]["role"], "USER");
        assert_eq!(event["user"]["id"], subject.id.to_string());
        assert_eq!(event["user"]["email"], subject.email.as_str());
    }
    assert_eq!(
        with_small,
        without_small + 1,
        "naming the people of a page costs one query"
    );
    assert_eq!(
        with_small, with_large,
        "{with_small} queries for 2 people, {with_large} for 200"
    );
}

#[tokio::test]
async fn a_user_sees_themselves_and_the_admins_in_their_events_named_but_not_other_users() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    let admin = app.create_user(Role::Admin).await;
    let alice_token = app.sign_in(&alice).await;
    let bob_token = app.sign_in(&bob).await;
    let admin_token = app.sign_in(&admin).await;
    let (_, phone) = app.sign_in_as(&alice, "phone").await;
    let (_, tablet) = app.sign_in_as(&alice, "tablet").await;
    const REVOKE: &str = "mutation($id: UUID!) { revokeSession(id: $id) { id } }";
    // Bob tries to end Alice's phone session; the admin ends her tablet's.
    let denied = app
        .gql(Some(&bob_token), REVOKE, json!({ "id": phone }))
        .await;
    assert_error_code(&denied, "FORBIDDEN", "bob on alice");
    let revoked = app
        .gql(Some(&admin_token), REVOKE, json!({ "id": tablet }))
        .await;
    assert!(revoked["data"]["revokeSession"].is_object(), "{revoked}");

    let mine = app.gql(Some(&alice_token), PEOPLE, json!({})).await;
    let by_admin = event_of(&mine, "session.revoked");
    assert_eq!(by_admin["actor"]["email"], admin.email.as_str(), "{mine}");
    assert_eq!(by_admin["actor"]["role"], "ADMIN");
    assert_eq!(by_admin["user"]["email"], alice.email.as_str());
    let by_bob = refusal_of(&mine);
    assert_eq!(by_bob["actorId"], bob.id.to_string(), "the id, as before");
    assert!(
        by_bob["actor"].is_null(),
        "another user's name and email stay hidden from a user: {by_bob}"
    );
    assert_eq!(by_bob["user"]["email"], alice.email.as_str());
    let sign_in = event_of(&mine, "auth.sign_in");
    assert_eq!(sign_in["actor"]["email"], alice.email.as_str(), "oneself");

    // Admins see everyone.
    let all = app
        .gql(
            Some(&admin_token),
            PEOPLE,
            json!({ "f": { "userId": alice.id } }),
        )
        .await;
    assert_eq!(
        refusal_of(&all)["actor"]["email"],
        bob.email.as_str(),
        "{all}"
    );
}

#[tokio::test]
async fn an_event_naming_an_account_that_does_not_exist_resolves_it_to_null() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let token = app.sign_in(&admin).await;
    let (gone, nobody) = (Uuid::new_v4(), Uuid::new_v4());
    audits::record_alone(
        &app.state.db,
        NewEvent::success("test.gone", "by and about nobody")
            .actor(gone)
            .subject(nobody),
    )
    .await
    .unwrap();
    audits::record_alone(
        &app.state.db,
        NewEvent::success("test.anonymous", "no people"),
    )
    .await
    .unwrap();

    let body = app.gql(Some(&token), PEOPLE, json!({})).await;
    assert!(body["errors"].is_null(), "no error: {body}");
    let event = event_of(&body, "test.gone");
    assert_eq!(event["actorId"], gone.to_string());
    assert!(event["actor"].is_null(), "{event}");
    assert_eq!(event["userId"], nobody.to_string());
    assert!(event["user"].is_null(), "{event}");
    let anonymous = event_of(&body, "test.anonymous");
    assert!(anonymous["actor"].is_null() && anonymous["user"].is_null());
}

const EVENT_TYPES: &str = "{ auditEventTypes }";

#[tokio::test]
async fn audit_event_types_lists_every_type_the_server_records_to_anyone_signed_in() {
    let app = spawn_app().await;
    let expected = json!([
        "auth.sign_in",
        "session.revoked",
        "sessions.viewed",
        "impersonation.started",
        "impersonation.stopped",
        "session.expired",
        "access.denied",
        "password.changed",
        "user.created",
        "api_key.created",
        "api_key.revoked",
        "auth.session_issued",
        "user.updated",
        "audit.checkpoint",
        "audit.purged",
        "user.role_changed",
        "user.disabled",
        "user.enabled",
        "user.deleted",
        "user.password_reset",
        "webhook.created",
        "webhook.updated",
        "webhook.deleted",
        "webhook.secret_rotated",
        "webhook.replayed",
        "webhook.disabled",
        "ssf.stream_created",
        "ssf.stream_updated",
        "ssf.stream_deleted",
        "ssf.stream_status_changed",
        "ssf.subject_added",
        "ssf.subject_removed",
        "ssf.verification_requested",
        "ssf.stream_disabled",
    ]);
    let owner = app.create_user(Role::Owner).await;
    let owner_token = app.sign_in(&owner).await;
    let alice = app.create_user(Role::User).await;
    for role in [Role::User, Role::Admin, Role::Owner] {
        let someone = app.create_user(role).await;
        let token = app.sign_in(&someone).await;
        let body = app.gql(Some(&token), EVENT_TYPES, json!({})).await;
        assert_eq!(
            body["data"]["auditEventTypes"], expected,
            "{role:?}: {body}"
        );
    }
    let impersonating = app
        .gql(
            Some(&owner_token),
            "mutation($id: UUID!) { startImpersonation(userId: $id, reason: \"ticket 3\") { token } }",
            json!({ "id": alice.id }),
        )
        .await;
    let token = impersonating["data"]["startImpersonation"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{impersonating}"));
    let body = app.gql(Some(token), EVENT_TYPES, json!({})).await;
    assert_eq!(
        body["data"]["auditEventTypes"], expected,
        "impersonating: {body}"
    );

    let anonymous = app.gql(None, EVENT_TYPES, json!({})).await;
    assert_error_code(&anonymous, "UNAUTHENTICATED", "auditEventTypes signed out");

    // What this test made the server record is among them.
    let listed: HashSet<String> = serde_json::from_value(expected).unwrap();
    for event in app.audit_events().await {
        assert!(
            listed.contains(&event.event_type),
            "{} is not listed",
            event.event_type
        );
    }
}
