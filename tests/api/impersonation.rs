//! Impersonation: who may, what it can do, how it ends, how it shows.

use entity::{audit_event::AuditStatus, session, user, user::Role};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_error_code, spawn_app, spawn_app_with};

const START: &str = "mutation($id: UUID!, $reason: String!) { startImpersonation(userId: $id, reason: $reason) { token session { id userId expires impersonationReason impersonator { id email } } } }";
const STOP: &str = "mutation { stopImpersonation }";
const VIEWER: &str = "{ viewer { user { id role } session { id } impersonator { id email } } }";
const LIST: &str = "query($user: UUID, $all: Boolean! = false) { sessions(userId: $user, includeExpired: $all) { sessions { id isActive revokedAt impersonationReason impersonator { id } } } }";

async fn start(app: &TestApp, token: &str, target: Uuid, reason: &str) -> Value {
    app.gql(
        Some(token),
        START,
        json!({ "id": target, "reason": reason }),
    )
    .await
}

fn token_of(body: &Value) -> String {
    body["data"]["startImpersonation"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no impersonation token: {body}"))
        .to_owned()
}

async fn works(app: &TestApp, token: &str) -> bool {
    app.gql(Some(token), VIEWER, json!({})).await["data"]["viewer"].is_object()
}

#[tokio::test]
async fn who_may_impersonate_whom() {
    let app = spawn_app().await;
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
    for (actor_role, target_role, allowed) in matrix {
        let case = format!("{actor_role:?} impersonating {target_role:?}");
        let actor = app.create_user(actor_role).await;
        let target = app.create_user(target_role).await;
        let token = app.sign_in(&actor).await;
        let body = start(&app, &token, target.id, "support ticket 1").await;
        let last = app.events_of_type("impersonation.started").await.pop();
        if allowed {
            let payload = &body["data"]["startImpersonation"];
            assert_eq!(
                payload["session"]["userId"],
                target.id.to_string(),
                "{case}: {body}"
            );
            assert_eq!(
                payload["session"]["impersonator"]["id"],
                actor.id.to_string(),
                "{case}"
            );
            let event = last.expect("audited");
            assert_eq!(
                (event.status, event.actor_id, event.user_id),
                (AuditStatus::Success, Some(actor.id), Some(target.id)),
                "{case}"
            );
            assert_eq!(event.metadata["reason"], "support ticket 1");
        } else {
            assert_error_code(&body, "FORBIDDEN", &case);
            let event = last.expect("the refusal is audited");
            assert_eq!(
                (event.status, event.actor_id, event.user_id),
                (AuditStatus::Failed, Some(actor.id), Some(target.id)),
                "{case}"
            );
        }
        // Nobody impersonates themselves.
        let body = start(&app, &token, actor.id, "curious").await;
        assert_error_code(&body, "FORBIDDEN", &format!("{actor_role:?} as self"));
    }
    assert_eq!(
        app.sessions()
            .await
            .iter()
            .filter(|s| s.impersonator_id.is_some())
            .count(),
        3,
        "only the allowed cases opened a session"
    );
}

#[tokio::test]
async fn a_reason_is_required_and_bounded_and_unknown_users_are_not_found() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&admin).await;
    for (reason, why) in [
        (String::new(), "empty"),
        ("   ".to_owned(), "blank"),
        ("x".repeat(501), "too long"),
    ] {
        let body = start(&app, &token, alice.id, &reason).await;
        assert_error_code(&body, "BAD_USER_INPUT", why);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("1 to 500"),
            "{why}: {body}"
        );
    }
    let body = app
        .gql(
            Some(&token),
            "mutation($id: UUID!) { startImpersonation(userId: $id) { token } }",
            json!({ "id": alice.id }),
        )
        .await;
    assert_error_code(&body, "BAD_USER_INPUT", "missing reason");
    let body = start(&app, &token, Uuid::new_v4(), "ticket").await;
    assert_error_code(&body, "NOT_FOUND", "unknown user");
    assert!(
        app.sessions()
            .await
            .iter()
            .all(|s| s.impersonator_id.is_none()),
        "nothing was opened"
    );
    let body = start(&app, &token, alice.id, &"é".repeat(500)).await;
    assert!(
        body["data"]["startImpersonation"]["token"].is_string(),
        "500 characters is fine: {body}"
    );
}

#[tokio::test]
async fn an_impersonation_session_acts_with_the_targets_rights_only() {
    let app = spawn_app().await;
    let owner = app.create_user(Role::Owner).await;
    let target_admin = app.create_user(Role::Admin).await;
    let bob = app.create_user(Role::User).await;
    let owner_token = app.sign_in(&owner).await;
    let bobs = app.sign_in_as(&bob, "bob").await;
    let token = token_of(
        &start(
            &app,
            &owner_token,
            target_admin.id,
            "check the admin console",
        )
        .await,
    );

    let viewer = app.gql(Some(&token), VIEWER, json!({})).await;
    assert_eq!(
        viewer["data"]["viewer"]["user"]["id"],
        target_admin.id.to_string(),
        "{viewer}"
    );
    assert_eq!(
        viewer["data"]["viewer"]["impersonator"]["id"],
        owner.id.to_string()
    );

    // The target is an admin, but the impersonation carries no admin rights.
    let body = app.gql(Some(&token), LIST, json!({ "user": bob.id })).await;
    assert_error_code(&body, "FORBIDDEN", "listing another user's sessions");
    let body = app
        .gql(
            Some(&token),
            "mutation($id: UUID!) { revokeSession(id: $id) { id } }",
            json!({ "id": bobs.1 }),
        )
        .await;
    assert_error_code(&body, "FORBIDDEN", "revoking another user's session");
    assert!(works(&app, &bobs.0).await);
    let body = app
        .gql(
            Some(&token),
            "{ sessionAudit { logs { userId } } }",
            json!({}),
        )
        .await;
    let logs = body["data"]["sessionAudit"]["logs"].as_array().unwrap();
    assert!(
        logs.iter()
            .all(|e| e["userId"] == target_admin.id.to_string()),
        "only the target's events: {body}"
    );
    let body = app
        .gql(
            Some(&token),
            "query($u: UUID) { sessionAudit(filter: { userId: $u }) { logs { id } } }",
            json!({ "u": bob.id }),
        )
        .await;
    assert_error_code(&body, "FORBIDDEN", "reading another user's audit");
    let body = app
        .gql(Some(&token), "{ auditChain { intact } }", json!({}))
        .await;
    assert_error_code(
        &body,
        "FORBIDDEN",
        "owner-only chain check through an owner's impersonation",
    );

    // No nesting, no account-wide actions.
    let body = start(&app, &token, bob.id, "nested").await;
    assert_error_code(&body, "FORBIDDEN", "nested impersonation");
    assert_eq!(
        app.events_of_type("impersonation.started")
            .await
            .last()
            .unwrap()
            .status,
        AuditStatus::Failed
    );
    let body = app
        .gql(Some(&token), "mutation { revokeSessions }", json!({}))
        .await;
    assert_error_code(&body, "FORBIDDEN", "revoke all sessions");
    let body = app
        .gql(
            Some(&token),
            "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }",
            json!({ "e": bob.email, "p": bob.password }),
        )
        .await;
    assert_error_code(
        &body,
        "FORBIDDEN",
        "signing in from an impersonation session",
    );
    assert!(
        works(&app, &token).await,
        "refusals do not end the impersonation"
    );
}

#[tokio::test]
async fn actions_taken_while_impersonating_are_attributed_to_the_admin() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let started = start(&app, &admin_token, alice.id, "ticket 7").await;
    let token = token_of(&started);
    let imp_id: Uuid = started["data"]["startImpersonation"]["session"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let body = app
        .gql(
            Some(&token),
            "{ sessions(userId: \"00000000-0000-0000-0000-000000000000\") { count } }",
            json!({}),
        )
        .await;
    assert_error_code(&body, "FORBIDDEN", "probe from impersonation");
    let denied = app.events_of_type("access.denied").await.pop().unwrap();
    assert_eq!(denied.actor_id, Some(admin.id));
    assert_eq!(denied.metadata["impersonatedBy"], admin.id.to_string());

    // Ending itself by revoking its own id, like stopImpersonation.
    let body = app
        .gql(
            Some(&token),
            "mutation($id: UUID!) { revokeSession(id: $id) { isActive } }",
            json!({ "id": imp_id }),
        )
        .await;
    assert_eq!(body["data"]["revokeSession"]["isActive"], false, "{body}");
    let event = app.events_of_type("session.revoked").await.pop().unwrap();
    assert_eq!(event.actor_id, Some(admin.id), "actor: the impersonator");
    assert_eq!(event.user_id, Some(alice.id), "subject: the target");
    assert_eq!(event.metadata["impersonatedBy"], admin.id.to_string());
    assert_eq!(event.metadata["revokedBy"], admin.id.to_string());
    let row = session::Entity::find_by_id(imp_id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.revoked_by, Some(admin.id));
    assert!(!works(&app, &token).await);
    assert!(works(&app, &admin_token).await);
}

#[tokio::test]
async fn an_impersonation_session_cannot_revoke_the_users_other_sessions() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let (alice_phone, alice_phone_id) = app.sign_in_as(&alice, "phone").await;
    let token = token_of(&start(&app, &admin_token, alice.id, "ticket 7").await);
    let other_imp = token_of(&start(&app, &admin_token, alice.id, "ticket 8").await);
    let other_imp_id =
        app.gql(Some(&other_imp), VIEWER, json!({})).await["data"]["viewer"]["session"]["id"]
            .clone();
    let revoke = "mutation($id: UUID!) { revokeSession(id: $id) { isActive } }";
    let events_before = app.audit_events().await.len();

    for (id, what) in [
        (json!(alice_phone_id), "the user's own session"),
        (other_imp_id, "another impersonation of the user"),
        (json!(Uuid::new_v4()), "an unknown id"),
    ] {
        let body = app.gql(Some(&token), revoke, json!({ "id": id })).await;
        assert_error_code(&body, "FORBIDDEN", what);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("impersonation session"),
            "{what}: {body}"
        );
    }
    let bulk = app
        .gql(Some(&token), "mutation { revokeSessions }", json!({}))
        .await;
    assert_error_code(&bulk, "FORBIDDEN", "the bulk form, as before");

    assert!(
        works(&app, &alice_phone).await,
        "alice's phone is untouched"
    );
    assert!(works(&app, &other_imp).await);
    assert!(works(&app, &token).await, "refusals do not end it");
    let events = app.audit_events().await;
    let written = &events[events_before..];
    assert_eq!(written.len(), 4, "each refusal is audited: {written:?}");
    // The single refusals are failed revocations; the bulk one is refused
    // as an account-wide act (access.denied), as before.
    assert!(written.iter().all(|e| (e.event_type == "access.denied"
        || e.event_type == "session.revoked")
        && e.status == AuditStatus::Failed
        && e.actor_id == Some(admin.id)
        && e.user_id == Some(alice.id)));
    assert!(
        app.events_of_type("session.revoked")
            .await
            .iter()
            .all(|e| e.status == AuditStatus::Failed),
        "nothing was revoked"
    );
}

#[tokio::test]
async fn an_admin_cannot_revoke_an_owners_impersonation_of_another_admin() {
    let app = spawn_app().await;
    let owner = app.create_user(Role::Owner).await;
    let target = app.create_user(Role::Admin).await;
    let other_admin = app.create_user(Role::Admin).await;
    let owner_token = app.sign_in(&owner).await;
    let other_token = app.sign_in(&other_admin).await;
    let (target_token, target_session) = app.sign_in_as(&target, "laptop").await;
    let started = start(&app, &owner_token, target.id, "audit the admin console").await;
    let imp = token_of(&started);
    let imp_id = started["data"]["startImpersonation"]["session"]["id"].clone();
    let revoke = "mutation($id: UUID!) { revokeSession(id: $id) { isActive } }";

    let body = app
        .gql(Some(&other_token), revoke, json!({ "id": imp_id }))
        .await;
    assert_error_code(&body, "FORBIDDEN", "an admin on the owner's impersonation");
    assert!(works(&app, &imp).await, "the impersonation goes on");
    let denied = app.refusals().await.pop().unwrap();
    assert_eq!(denied.event_type, "session.revoked", "a refused revocation");
    assert_eq!(
        (denied.actor_id, denied.user_id, denied.session_id),
        (
            Some(other_admin.id),
            Some(target.id),
            imp_id.as_str().map(|id| id.parse().unwrap())
        )
    );

    // The bulk form ends the admin's own sessions but not the owner's
    // impersonation of them.
    let body = app
        .gql(
            Some(&other_token),
            "mutation($u: UUID) { revokeSessions(userId: $u) }",
            json!({ "u": target.id }),
        )
        .await;
    assert_eq!(body["data"]["revokeSessions"], 1, "{body}");
    assert!(!works(&app, &target_token).await, "their own session ended");
    assert!(works(&app, &imp).await, "the impersonation was skipped");
    let _ = target_session;

    // An admin's ordinary session of the same admin stays revocable by the
    // other admin (unchanged), and the owner may end the impersonation.
    let (_, target_again) = app.sign_in_as(&target, "phone").await;
    let body = app
        .gql(Some(&other_token), revoke, json!({ "id": target_again }))
        .await;
    assert_eq!(body["data"]["revokeSession"]["isActive"], false, "{body}");
    let body = app
        .gql(Some(&owner_token), revoke, json!({ "id": imp_id }))
        .await;
    assert_eq!(body["data"]["revokeSession"]["isActive"], false, "{body}");
    assert!(!works(&app, &imp).await);
}

#[tokio::test]
async fn the_impersonated_user_may_end_an_owners_impersonation_of_them() {
    let app = spawn_app().await;
    let owner = app.create_user(Role::Owner).await;
    let target = app.create_user(Role::Admin).await;
    let owner_token = app.sign_in(&owner).await;
    let target_token = app.sign_in(&target).await;
    let started = start(&app, &owner_token, target.id, "check").await;
    let imp = token_of(&started);
    let imp_id = started["data"]["startImpersonation"]["session"]["id"].clone();
    let body = app
        .gql(
            Some(&target_token),
            "mutation($id: UUID!) { revokeSession(id: $id) { isActive } }",
            json!({ "id": imp_id }),
        )
        .await;
    assert_eq!(body["data"]["revokeSession"]["isActive"], false, "{body}");
    assert!(!works(&app, &imp).await);
}

#[tokio::test]
async fn the_impersonated_user_sees_who_and_why_but_not_where_the_admin_sits() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let owner = app.create_user(Role::Owner).await;
    let alice = app.create_user(Role::User).await;
    let (admin_token, admin_session) = app.sign_in_as(&admin, "AdminAgent/9.9").await;
    let owner_token = app.sign_in(&owner).await;
    let alice_token = app.sign_in(&alice).await;
    let mut alice_socket = crate::subscriptions::connect(&app, &alice_token).await;
    crate::subscriptions::subscribe(&mut alice_socket, "mine", json!({})).await;
    // The subscription is live once it delivers an event.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    app.sign_in(&alice).await;
    crate::subscriptions::next_event(&mut alice_socket, "auth.sign_in").await;

    let started: Value = app
        .client
        .post(app.graphql_url())
        .bearer_auth(&admin_token)
        .header("user-agent", "AdminAgent/9.9")
        .json(&json!({ "query": START, "variables": { "id": alice.id, "reason": "ticket 7" } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let imp = token_of(&started);
    let live = crate::subscriptions::next_event(&mut alice_socket, "impersonation.started").await;
    // Through the impersonation: a refusal, then the end of it.
    for query in ["mutation { revokeSessions }", STOP] {
        app.client
            .post(app.graphql_url())
            .bearer_auth(&imp)
            .header("user-agent", "AdminAgent/9.9")
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap();
    }

    let page = "{ sessionAudit(filter: { actorId: \"ACTOR\" }) { logs { eventType actorId sessionId ipAddress userAgent metadata } } }"
        .replace("ACTOR", &admin.id.to_string());
    let seen = app.gql(Some(&alice_token), &page, json!({})).await;
    let logs = seen["data"]["sessionAudit"]["logs"].as_array().unwrap();
    let types: Vec<_> = logs.iter().map(|e| e["eventType"].clone()).collect();
    // The refused bulk revocation is a failed session.revoked; the stop
    // revokes the impersonation session (a successful one).
    for expected in [
        "impersonation.started",
        "session.revoked",
        "impersonation.stopped",
    ] {
        assert!(types.contains(&json!(expected)), "{expected} in {types:?}");
    }
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == json!("session.revoked"))
            .count(),
        2,
        "the refusal and the stop: {types:?}"
    );
    let text = seen.to_string();
    let payload = live["payload"]["data"]["sessionEvents"].to_string();
    for (view, what) in [(&text, "sessionAudit"), (&payload, "sessionEvents")] {
        assert!(
            !view.contains(&admin_session.to_string()),
            "{what}: no trace of the admin's own session: {view}"
        );
        assert!(
            !view.contains("AdminAgent"),
            "{what}: nor their User-Agent: {view}"
        );
        assert!(
            !view.contains("127.0.0.1"),
            "{what}: nor their address: {view}"
        );
    }
    for event in logs {
        assert!(
            event["ipAddress"].is_null() && event["userAgent"].is_null(),
            "{event}"
        );
    }
    let started_event = logs
        .iter()
        .find(|e| e["eventType"] == "impersonation.started")
        .unwrap();
    let stopped_event = logs
        .iter()
        .find(|e| e["eventType"] == "impersonation.stopped")
        .unwrap();
    for event in [
        started_event,
        &live["payload"]["data"]["sessionEvents"],
        stopped_event,
    ] {
        let meta = &event["metadata"];
        assert_eq!(meta["impersonatorEmail"], admin.email, "who: {event}");
        assert_eq!(meta["impersonatorName"], "Test admin", "who: {event}");
        assert_eq!(meta["reason"], "ticket 7", "why: {event}");
    }

    // Their sessions list shows who and why, not where.
    let body = app
        .gql(
            Some(&alice_token),
            "{ sessions(includeExpired: true) { sessions { impersonationReason ipAddress userAgent device impersonator { name email } } } }",
            json!({}),
        )
        .await;
    let listed = body["data"]["sessions"]["sessions"].as_array().unwrap();
    let entry = listed
        .iter()
        .find(|s| s["impersonationReason"] == "ticket 7")
        .unwrap_or_else(|| panic!("listed: {body}"));
    assert_eq!(entry["impersonator"]["email"], admin.email);
    assert_eq!(entry["impersonator"]["name"], "Test admin");
    assert!(
        entry["ipAddress"].is_null() && entry["userAgent"].is_null() && entry["device"].is_null(),
        "{entry}"
    );

    // Admins and owners still see everything.
    let full = app.gql(Some(&owner_token), &page, json!({})).await;
    let logs = full["data"]["sessionAudit"]["logs"].as_array().unwrap();
    let started_event = logs
        .iter()
        .find(|e| e["eventType"] == "impersonation.started")
        .unwrap();
    assert_eq!(started_event["ipAddress"], "127.0.0.1", "{started_event}");
    assert_eq!(started_event["userAgent"], "AdminAgent/9.9");
    assert_eq!(
        started_event["metadata"]["impersonatorSessionId"],
        admin_session.to_string()
    );
    let body = app
        .gql(
            Some(&owner_token),
            "query($u: UUID) { sessions(userId: $u, includeExpired: true) { sessions { impersonationReason userAgent } } }",
            json!({ "u": alice.id }),
        )
        .await;
    assert!(
        body["data"]["sessions"]["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["userAgent"] == "AdminAgent/9.9"),
        "{body}"
    );
}

#[tokio::test]
async fn bidirectional_override_characters_in_the_reason_are_refused() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&admin).await;
    let events_before = app.audit_events().await.len();
    let cases = ('\u{202A}'..='\u{202E}')
        .chain('\u{2066}'..='\u{2069}')
        .map(|c| (c, "bidirectional"))
        .chain([
            ('\n', "control"),
            ('\u{7}', "control"),
            ('\u{1b}', "control"),
        ]);
    for (c, kind) in cases {
        let case = format!("U+{:04X} ({kind})", c as u32);
        let body = start(&app, &token, alice.id, &format!("ticket {c}42 for alice")).await;
        assert_error_code(&body, "BAD_USER_INPUT", &case);
        assert_eq!(body["errors"][0]["extensions"]["field"], "reason", "{case}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(kind),
            "{case}: {body}"
        );
    }
    assert!(
        app.sessions()
            .await
            .iter()
            .all(|s| s.impersonator_id.is_none()),
        "nothing was opened"
    );
    assert_eq!(
        app.audit_events().await.len(),
        events_before,
        "nothing was written"
    );
    let body = start(&app, &token, alice.id, "ticket 42 für Ålice — عربى").await;
    assert!(
        body["data"]["startImpersonation"]["token"].is_string(),
        "other scripts are fine: {body}"
    );
}

#[tokio::test]
async fn the_target_sees_the_impersonation_in_their_sessions_and_audit() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let alice_token = app.sign_in(&alice).await;
    let started = start(&app, &admin_token, alice.id, "  password reset help  ").await;
    let imp_session = started["data"]["startImpersonation"]["session"]["id"].clone();
    assert_eq!(
        started["data"]["startImpersonation"]["session"]["impersonationReason"],
        "password reset help",
        "trimmed"
    );

    let body = app.gql(Some(&alice_token), LIST, json!({})).await;
    let listed = body["data"]["sessions"]["sessions"].as_array().unwrap();
    let entry = listed
        .iter()
        .find(|s| s["id"] == imp_session)
        .expect("listed in the target's own inventory");
    assert_eq!(entry["impersonator"]["id"], admin.id.to_string());
    assert_eq!(entry["impersonationReason"], "password reset help");

    let body = app.gql(Some(&alice_token), "{ sessionAudit(filter: { eventType: \"impersonation.started\" }) { logs { actorId userId metadata } } }", json!({})).await;
    let logs = body["data"]["sessionAudit"]["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{body}");
    assert_eq!(logs[0]["actorId"], admin.id.to_string());
    assert_eq!(logs[0]["metadata"]["reason"], "password reset help");

    // The target may end it like any of their sessions.
    let body = app
        .gql(
            Some(&alice_token),
            "mutation($id: UUID!) { revokeSession(id: $id) { isActive } }",
            json!({ "id": imp_session }),
        )
        .await;
    assert_eq!(body["data"]["revokeSession"]["isActive"], false, "{body}");
}

#[tokio::test]
async fn stop_impersonation_ends_it_and_leaves_the_admin_signed_in() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let token = token_of(&start(&app, &admin_token, alice.id, "ticket").await);

    let body = app.gql(Some(&admin_token), STOP, json!({})).await;
    assert_error_code(&body, "BAD_USER_INPUT", "stop from an ordinary session");
    let body = app.gql(Some(&token), STOP, json!({})).await;
    assert_eq!(body["data"]["stopImpersonation"], true, "{body}");
    assert!(
        !works(&app, &token).await,
        "the impersonation token is dead"
    );
    assert!(
        works(&app, &admin_token).await,
        "the admin's session is untouched"
    );
    let stopped = app.events_of_type("impersonation.stopped").await;
    assert_eq!(stopped.len(), 1);
    assert_eq!(
        (stopped[0].actor_id, stopped[0].user_id),
        (Some(admin.id), Some(alice.id))
    );
    let revoked = app.events_of_type("session.revoked").await.pop().unwrap();
    assert_eq!(revoked.metadata["reason"], "impersonation_stopped");
    let body = app.gql(Some(&token), STOP, json!({})).await;
    assert_error_code(&body, "UNAUTHENTICATED", "stopping twice");
}

#[tokio::test]
async fn it_expires_after_impersonation_ttl() {
    let app = spawn_app_with(|c| c.impersonation_ttl = std::time::Duration::from_secs(1)).await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let body = start(&app, &admin_token, alice.id, "ticket").await;
    let token = token_of(&body);
    assert!(works(&app, &token).await);
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    assert!(!works(&app, &token).await, "dead after IMPERSONATION_TTL");
    assert!(works(&app, &admin_token).await);
}

#[tokio::test]
async fn it_never_outlives_the_admins_session() {
    let app = spawn_app_with(|c| c.session_ttl = std::time::Duration::from_secs(60)).await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let body = start(&app, &admin_token, alice.id, "ticket").await;
    let admin_session = app
        .gql(
            Some(&admin_token),
            "{ viewer { session { expires } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["startImpersonation"]["session"]["expires"],
        admin_session["data"]["viewer"]["session"]["expires"],
        "capped at the admin's expiry (60s < the 1h IMPERSONATION_TTL)"
    );
}

#[tokio::test]
async fn ending_the_admins_session_ends_the_impersonation() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let alice_token = app.sign_in(&alice).await;
    let admin_token = app.sign_in(&admin).await;
    let body = start(&app, &admin_token, alice.id, "ticket").await;
    let token = token_of(&body);
    let imp_id = body["data"]["startImpersonation"]["session"]["id"].clone();

    let out = app
        .gql(Some(&admin_token), "mutation { signOut }", json!({}))
        .await;
    assert_eq!(out["data"]["signOut"], true);
    assert!(
        !works(&app, &token).await,
        "the impersonation ends with the admin's session"
    );
    let body = app
        .gql(Some(&alice_token), LIST, json!({ "all": true }))
        .await;
    let entry = body["data"]["sessions"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == imp_id)
        .unwrap()
        .clone();
    assert_eq!(entry["isActive"], false, "listed as ended too: {entry}");
    let reasons: Vec<_> = app
        .events_of_type("session.revoked")
        .await
        .iter()
        .map(|e| e.metadata["reason"].clone())
        .collect();
    assert!(
        reasons.contains(&json!("impersonator_session_ended")),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn an_admin_who_loses_the_role_loses_the_impersonation() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let token = token_of(&start(&app, &admin_token, alice.id, "ticket").await);
    assert!(works(&app, &token).await);

    let row = user::Entity::find_by_id(admin.id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    let mut row: user::ActiveModel = row.into();
    row.role = Set(Role::User);
    row.update(app.db()).await.unwrap();
    assert!(
        !works(&app, &token).await,
        "demoted: the impersonation is refused on the next request"
    );
    assert!(
        works(&app, &admin_token).await,
        "their own session is theirs to keep"
    );
}

const CAN: &str = "query($q: String!) { users(search: $q) { users { id canImpersonate } } }";

/// `canImpersonate` of `target` as `token` sees it through `users`.
async fn can_impersonate(app: &TestApp, token: &str, email: &str) -> Value {
    let body = app.gql(Some(token), CAN, json!({ "q": email })).await;
    body["data"]["users"]["users"][0]["canImpersonate"].clone()
}

#[tokio::test]
async fn can_impersonate_says_what_start_impersonation_would_answer() {
    let app = spawn_app().await;
    use Role::*;
    // (viewer, target, allowed); `None` as target is the viewer themselves.
    let matrix = [
        (Admin, Some(User), true),
        (Admin, Some(Admin), false),
        (Admin, Some(Owner), false),
        (Admin, None, false),
        (Owner, Some(User), true),
        (Owner, Some(Admin), true),
        (Owner, Some(Owner), false),
        (Owner, None, false),
    ];
    for (viewer_role, target_role, allowed) in matrix {
        let case = format!("{viewer_role:?} on {target_role:?}");
        let viewer = app.create_user(viewer_role).await;
        let target = match target_role {
            Some(role) => app.create_user(role).await,
            None => viewer.clone(),
        };
        let token = app.sign_in(&viewer).await;
        assert_eq!(
            can_impersonate(&app, &token, &target.email).await,
            json!(allowed),
            "{case}"
        );
        let started = start(&app, &token, target.id, "support ticket 7").await;
        assert_eq!(
            started["data"]["startImpersonation"].is_object(),
            allowed,
            "{case}: the mutation agrees: {started}"
        );
    }
}

#[tokio::test]
async fn a_user_may_impersonate_nobody_they_can_see() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let mine = app.sign_in(&alice).await;
    // A user sees no other user's account; the admins and owners who
    // acted on their sessions they do see (`revokedBy`).
    for role in [Role::Admin, Role::Owner] {
        let other = app.create_user(role).await;
        let (_, session) = app.sign_in_as(&alice, "second-device/1.0").await;
        let theirs = app.sign_in(&other).await;
        let revoked = app
            .gql(
                Some(&theirs),
                "mutation($id: UUID!) { revokeSession(id: $id) { id } }",
                json!({ "id": session }),
            )
            .await;
        assert!(revoked["data"]["revokeSession"].is_object(), "{revoked}");
    }
    let body = app
        .gql(
            Some(&mine),
            "{ viewer { user { canImpersonate } } sessions(includeExpired: true) { sessions { revokedBy { role canImpersonate } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["viewer"]["user"]["canImpersonate"], false,
        "self: {body}"
    );
    let seen: Vec<&Value> = body["data"]["sessions"]["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .filter_map(|s| s["revokedBy"].as_object().map(|_| &s["revokedBy"]))
        .collect();
    assert_eq!(seen.len(), 2, "the admin and the owner: {body}");
    for person in seen {
        assert_eq!(person["canImpersonate"], false, "{person}");
    }
}

#[tokio::test]
async fn while_impersonating_can_impersonate_is_false_for_everyone() {
    let app = spawn_app().await;
    let owner = app.create_user(Role::Owner).await;
    let target = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&owner).await;
    assert_eq!(
        can_impersonate(&app, &admin_token, &alice.email).await,
        json!(true),
        "the owner's own session may"
    );
    let token = token_of(&start(&app, &admin_token, target.id, "ticket 9").await);
    let body = app
        .gql(
            Some(&token),
            "{ viewer { user { canImpersonate } impersonator { canImpersonate } } sessions { sessions { impersonator { canImpersonate } } } }",
            json!({}),
        )
        .await;
    let viewer = &body["data"]["viewer"];
    assert_eq!(
        viewer["user"]["canImpersonate"], false,
        "the impersonated admin: {body}"
    );
    assert_eq!(
        viewer["impersonator"]["canImpersonate"], false,
        "the owner: {body}"
    );
    for session in body["data"]["sessions"]["sessions"].as_array().unwrap() {
        if session["impersonator"].is_object() {
            assert_eq!(session["impersonator"]["canImpersonate"], false, "{body}");
        }
    }
    // Nor can it find anyone to impersonate.
    let refused = app
        .gql(Some(&token), CAN, json!({ "q": alice.email }))
        .await;
    assert_error_code(&refused, "FORBIDDEN", "users while impersonating");
}

#[tokio::test]
async fn can_impersonate_is_false_without_a_session() {
    let app = spawn_app().await;
    let owner = app.create_user(Role::Owner).await;
    let body = app
        .gql(
            None,
            "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { session { user { canImpersonate } } } }",
            json!({ "e": owner.email, "p": owner.password }),
        )
        .await;
    assert_eq!(
        body["data"]["signIn"]["session"]["user"]["canImpersonate"], false,
        "{body}"
    );
}
