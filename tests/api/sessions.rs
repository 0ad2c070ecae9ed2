//! Session inventory and revocation, with the rights matrix.

use chrono::Utc;
use entity::{audit_event::AuditStatus, session, user::Role};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, assert_error_code, spawn_app};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0";
const SAFARI_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36";

const LIST: &str = "query($all: Boolean! = false, $user: UUID) { sessions(includeExpired: $all, userId: $user) { count activeCount sessions { id sessionToken userId device userAgent ipAddress isCurrent isActive isExpired revokedAt createdAt lastActiveAt expires user { email } impersonator { id } impersonationReason } } }";
const GET: &str = "query($id: UUID!) { session(id: $id) { id userId isCurrent isActive device } }";
const REVOKE: &str =
    "mutation($id: UUID!) { revokeSession(id: $id) { id revokedAt isActive isExpired } }";
const REVOKE_ALL: &str = "mutation($user: UUID, $keep: Boolean! = true) { revokeSessions(userId: $user, exceptCurrent: $keep) }";
const VIEWER: &str = "{ viewer { user { id } } }";

async fn list(app: &TestApp, token: &str, variables: Value) -> Value {
    app.gql(Some(token), LIST, variables).await
}

fn ids(body: &Value) -> Vec<String> {
    body["data"]["sessions"]["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no session list: {body}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn works(app: &TestApp, token: &str) -> bool {
    app.gql(Some(token), VIEWER, json!({})).await["data"]["viewer"].is_object()
}

#[tokio::test]
async fn a_user_lists_their_sessions_newest_first_with_devices_and_the_current_one_flagged() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (_, firefox) = app.sign_in_as(&alice, FIREFOX).await;
    let (_, safari) = app.sign_in_as(&alice, SAFARI_IOS).await;
    let (chrome_token, chrome) = app.sign_in_as(&alice, CHROME_MAC).await;
    let bob = app.create_user(Role::User).await;
    app.sign_in(&bob).await;

    let body = list(&app, &chrome_token, json!({})).await;
    let data = &body["data"]["sessions"];
    assert_eq!(data["count"], 3, "{body}");
    assert_eq!(data["activeCount"], 3);
    assert_eq!(
        ids(&body),
        [chrome, safari, firefox].map(|id| id.to_string()),
        "newest first"
    );
    let sessions = data["sessions"].as_array().unwrap();
    let devices: Vec<_> = sessions
        .iter()
        .map(|s| s["device"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        devices,
        [
            "Chrome 129 on macOS",
            "Safari 17 on iOS",
            "Firefox 131 on Linux"
        ]
    );
    let current: Vec<_> = sessions
        .iter()
        .map(|s| s["isCurrent"].as_bool().unwrap())
        .collect();
    assert_eq!(current, [true, false, false]);
    for s in sessions {
        assert_eq!(s["user"]["email"], alice.email.as_str());
        assert_eq!(s["userId"], alice.id.to_string());
        assert_eq!(s["ipAddress"], "127.0.0.1");
        assert_eq!(s["isActive"], true);
        assert_eq!(s["isExpired"], false);
        assert_eq!(s["impersonator"], Value::Null);
        let masked = s["sessionToken"].as_str().unwrap();
        assert!(
            masked.starts_with("smt_") && masked.ends_with('…') && masked.chars().count() == 9,
            "{masked}"
        );
    }
    assert!(
        !body.to_string().contains(&chrome_token[8..]),
        "a full token leaked into the list"
    );
}

#[tokio::test]
async fn include_expired_adds_revoked_and_expired_sessions_and_counts_match() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (token, current) = app.sign_in_as(&alice, FIREFOX).await;
    let (_, to_revoke) = app.sign_in_as(&alice, FIREFOX).await;
    let (_, to_expire) = app.sign_in_as(&alice, FIREFOX).await;
    let revoked = app
        .gql(Some(&token), REVOKE, json!({ "id": to_revoke }))
        .await;
    assert!(
        revoked["data"]["revokeSession"]["revokedAt"].is_string(),
        "{revoked}"
    );
    let row = session::Entity::find_by_id(to_expire)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    let mut row: session::ActiveModel = row.into();
    row.expires_at = Set(Utc::now() - chrono::Duration::seconds(5));
    row.update(app.db()).await.unwrap();

    let active = list(&app, &token, json!({})).await;
    assert_eq!(ids(&active), [current.to_string()]);
    assert_eq!(active["data"]["sessions"]["count"], 1);
    assert_eq!(active["data"]["sessions"]["activeCount"], 1);

    let all = list(&app, &token, json!({ "all": true })).await;
    assert_eq!(all["data"]["sessions"]["count"], 3, "{all}");
    assert_eq!(all["data"]["sessions"]["activeCount"], 1);
    for s in all["data"]["sessions"]["sessions"].as_array().unwrap() {
        let id: Uuid = s["id"].as_str().unwrap().parse().unwrap();
        let (active, expired, revoked) = (
            s["isActive"].as_bool().unwrap(),
            s["isExpired"].as_bool().unwrap(),
            !s["revokedAt"].is_null(),
        );
        match id {
            id if id == current => assert!(active && !expired && !revoked),
            id if id == to_revoke => assert!(!active && !expired && revoked),
            id if id == to_expire => assert!(!active && expired && !revoked),
            other => panic!("unexpected session {other}"),
        }
    }
}

#[tokio::test]
async fn one_session_by_id_and_bad_ids() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (token, id) = app.sign_in_as(&alice, FIREFOX).await;
    let body = app.gql(Some(&token), GET, json!({ "id": id })).await;
    assert_eq!(
        body["data"]["session"]["device"], "Firefox 131 on Linux",
        "{body}"
    );
    assert_eq!(body["data"]["session"]["isCurrent"], true);

    let unknown = app
        .gql(Some(&token), GET, json!({ "id": Uuid::new_v4() }))
        .await;
    assert_error_code(&unknown, "NOT_FOUND", "unknown session id");
    for (bad, why) in [
        (json!("not-a-uuid"), "malformed"),
        (json!(""), "empty"),
        (json!(42), "a number"),
        (Value::Null, "null"),
    ] {
        let body = app.gql(Some(&token), GET, json!({ "id": bad })).await;
        assert_error_code(&body, "BAD_USER_INPUT", why);
        let body = app.gql(Some(&token), REVOKE, json!({ "id": bad })).await;
        assert_error_code(&body, "BAD_USER_INPUT", why);
    }
    let inline = app
        .gql(Some(&token), "{ session(id: \"123\") { id } }", json!({}))
        .await;
    assert_error_code(&inline, "BAD_USER_INPUT", "malformed literal id");
    assert!(works(&app, &token).await, "nothing was revoked");
}

#[tokio::test]
async fn inventory_and_revocation_need_a_caller() {
    let app = spawn_app().await;
    for (query, vars) in [
        (LIST, json!({})),
        (GET, json!({ "id": Uuid::new_v4() })),
        (REVOKE, json!({ "id": Uuid::new_v4() })),
        (REVOKE_ALL, json!({})),
    ] {
        let body = app.gql(None, query, vars).await;
        assert_error_code(&body, "UNAUTHENTICATED", query);
    }
}

#[tokio::test]
async fn a_revoked_token_dies_at_once_and_the_row_and_audit_remain() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (laptop, _) = app.sign_in_as(&alice, FIREFOX).await;
    let (phone, phone_id) = app.sign_in_as(&alice, SAFARI_IOS).await;
    assert!(works(&app, &phone).await);

    let body = app
        .gql(Some(&laptop), REVOKE, json!({ "id": phone_id }))
        .await;
    let revoked = &body["data"]["revokeSession"];
    assert_eq!(revoked["id"], phone_id.to_string(), "{body}");
    assert_eq!(revoked["isActive"], false);
    assert!(revoked["revokedAt"].is_string());
    assert!(
        !works(&app, &phone).await,
        "the revoked token must fail on the very next request"
    );
    assert!(works(&app, &laptop).await);

    let row = session::Entity::find_by_id(phone_id)
        .one(app.db())
        .await
        .unwrap()
        .expect("row kept");
    assert_eq!(row.revoked_by, Some(alice.id));
    assert_eq!(row.revoke_reason.as_deref(), Some("revoke"));
    let events = app.events_of_type("session.revoked").await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.status, e.actor_id, e.user_id, e.session_id),
        (
            AuditStatus::Success,
            Some(alice.id),
            Some(alice.id),
            Some(phone_id)
        )
    );
    assert_eq!(e.metadata["sessionId"], phone_id.to_string());
    assert_eq!(e.metadata["userId"], alice.id.to_string());
    assert_eq!(e.metadata["userEmail"], alice.email.as_str());
    assert_eq!(e.metadata["revokedBy"], alice.id.to_string());
    assert_eq!(e.metadata["reason"], "revoke");
    assert!(e.metadata["revokedAt"].is_string());
}

#[tokio::test]
async fn revoking_twice_changes_nothing_and_writes_no_second_event() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (token, _) = app.sign_in_as(&alice, FIREFOX).await;
    let (_, other) = app.sign_in_as(&alice, FIREFOX).await;
    let first = app.gql(Some(&token), REVOKE, json!({ "id": other })).await;
    let second = app.gql(Some(&token), REVOKE, json!({ "id": other })).await;
    assert!(second["errors"].is_null(), "{second}");
    assert_eq!(
        first["data"]["revokeSession"]["revokedAt"], second["data"]["revokeSession"]["revokedAt"],
        "the first revocation time stands"
    );
    assert_eq!(app.events_of_type("session.revoked").await.len(), 1);
}

#[tokio::test]
async fn revoke_all_keeps_the_current_session_unless_told_otherwise() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    let bobs = app.sign_in(&bob).await;
    let (current, _) = app.sign_in_as(&alice, FIREFOX).await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(app.sign_in_as(&alice, SAFARI_IOS).await.0);
    }

    let body = app.gql(Some(&current), REVOKE_ALL, json!({})).await;
    assert_eq!(body["data"]["revokeSessions"], 3, "{body}");
    for token in &others {
        assert!(!works(&app, token).await);
    }
    assert!(
        works(&app, &current).await,
        "the current session is kept by default"
    );
    assert!(
        works(&app, &bobs).await,
        "another user's sessions are untouched"
    );
    let events = app.events_of_type("session.revoked").await;
    assert_eq!(events.len(), 3, "one event per ended session");
    assert!(events.iter().all(|e| e.metadata["reason"] == "bulk"));

    let again = app.gql(Some(&current), REVOKE_ALL, json!({})).await;
    assert_eq!(again["data"]["revokeSessions"], 0, "nothing left to end");

    let all = app
        .gql(Some(&current), REVOKE_ALL, json!({ "keep": false }))
        .await;
    assert_eq!(all["data"]["revokeSessions"], 1, "{all}");
    assert!(
        !works(&app, &current).await,
        "exceptCurrent: false ends this session too"
    );
}

/// Every cell of the rights matrix, through the API: list, view and revoke
/// another user's sessions.
#[tokio::test]
async fn the_rights_matrix_for_other_users_sessions() {
    let app = spawn_app().await;
    use Role::*;
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
    for (actor_role, victim_role, allowed) in matrix {
        let case = format!("{actor_role:?} on {victim_role:?}'s sessions");
        let actor = app.create_user(actor_role).await;
        let victim = app.create_user(victim_role).await;
        let actor_token = app.sign_in(&actor).await;
        let (victim_token, victim_session) = app.sign_in_as(&victim, FIREFOX).await;
        let denied_before = app.refusals().await.len();

        let listed = list(&app, &actor_token, json!({ "user": victim.id })).await;
        let viewed = app
            .gql(Some(&actor_token), GET, json!({ "id": victim_session }))
            .await;
        let revoked = app
            .gql(Some(&actor_token), REVOKE, json!({ "id": victim_session }))
            .await;

        if allowed {
            assert_eq!(ids(&listed), [victim_session.to_string()], "{case}: list");
            assert_eq!(
                viewed["data"]["session"]["userId"],
                victim.id.to_string(),
                "{case}: view"
            );
            assert_eq!(viewed["data"]["session"]["isCurrent"], false, "{case}");
            assert_eq!(
                revoked["data"]["revokeSession"]["isActive"], false,
                "{case}: revoke {revoked}"
            );
            assert!(
                !works(&app, &victim_token).await,
                "{case}: the victim's token dies"
            );
            let event = app.events_of_type("session.revoked").await.pop().unwrap();
            assert_eq!(
                (event.actor_id, event.user_id),
                (Some(actor.id), Some(victim.id)),
                "{case}"
            );
        } else {
            for (body, what) in [(&listed, "list"), (&viewed, "view"), (&revoked, "revoke")] {
                assert_error_code(body, "FORBIDDEN", &format!("{case}: {what}"));
            }
            assert!(
                works(&app, &victim_token).await,
                "{case}: the victim's token still works"
            );
            let denied = app.refusals().await;
            assert_eq!(
                denied.len() - denied_before,
                3,
                "{case}: each denial is audited"
            );
            let types: Vec<_> = denied[denied_before..]
                .iter()
                .map(|e| e.event_type.as_str())
                .collect();
            assert_eq!(
                types,
                ["access.denied", "access.denied", "session.revoked"],
                "{case}: a refused revocation is a failed session.revoked"
            );
            for event in &denied[denied_before..] {
                assert_eq!(event.status, AuditStatus::Failed, "{case}");
                assert_eq!(event.actor_id, Some(actor.id), "{case}: actor");
                assert_eq!(
                    event.user_id,
                    Some(victim.id),
                    "{case}: the subject is the victim"
                );
                assert!(
                    event.metadata["action"].is_string() && event.metadata["reason"] == "forbidden",
                    "{case}"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_admin_viewing_someone_elses_sessions_is_audited() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let (_, alice_session) = app.sign_in_as(&alice, FIREFOX).await;

    list(&app, &admin_token, json!({ "user": alice.id })).await;
    app.gql(Some(&admin_token), GET, json!({ "id": alice_session }))
        .await;
    list(&app, &admin_token, json!({})).await; // own: not audited as a view

    let viewed = app.events_of_type("sessions.viewed").await;
    assert_eq!(viewed.len(), 2, "{viewed:?}");
    assert!(
        viewed
            .iter()
            .all(|e| e.actor_id == Some(admin.id) && e.user_id == Some(alice.id))
    );
    assert_eq!(viewed[1].session_id, Some(alice_session));
}

#[tokio::test]
async fn unknown_users_and_sessions_are_not_found_for_admins_but_forbidden_for_users() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let user = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let user_token = app.sign_in(&user).await;
    let nobody = Uuid::new_v4();

    let body = list(&app, &admin_token, json!({ "user": nobody })).await;
    assert_error_code(&body, "NOT_FOUND", "admin, unknown user");
    let body = app
        .gql(Some(&admin_token), REVOKE_ALL, json!({ "user": nobody }))
        .await;
    assert_error_code(&body, "NOT_FOUND", "admin, revoke-all of unknown user");
    let body = list(&app, &user_token, json!({ "user": nobody })).await;
    assert_error_code(&body, "FORBIDDEN", "a user cannot probe for accounts");
    let body = app
        .gql(Some(&user_token), REVOKE, json!({ "id": nobody }))
        .await;
    assert_error_code(&body, "NOT_FOUND", "unknown session id");

    let denied = app.refusals().await;
    assert_eq!(
        denied.len(),
        4,
        "every failed attempt is audited: {denied:?}"
    );
    assert!(denied.iter().all(|e| e.status == AuditStatus::Failed));
}

#[tokio::test]
async fn revoke_all_for_another_user_follows_the_matrix() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let owner = app.create_user(Role::Owner).await;
    let alice = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let alice_tokens = [app.sign_in(&alice).await, app.sign_in(&alice).await];
    let owner_token = app.sign_in(&owner).await;

    let body = app
        .gql(Some(&admin_token), REVOKE_ALL, json!({ "user": alice.id }))
        .await;
    assert_eq!(
        body["data"]["revokeSessions"], 2,
        "an admin ends all of a user's sessions: {body}"
    );
    for token in &alice_tokens {
        assert!(!works(&app, token).await);
    }
    assert!(
        works(&app, &admin_token).await,
        "the admin's own session is not the target's"
    );

    let body = app
        .gql(Some(&admin_token), REVOKE_ALL, json!({ "user": owner.id }))
        .await;
    assert_error_code(&body, "FORBIDDEN", "admin on owner");
    assert!(works(&app, &owner_token).await);
    let alice_token = app.sign_in(&alice).await;
    let body = app
        .gql(Some(&alice_token), REVOKE_ALL, json!({ "user": admin.id }))
        .await;
    assert_error_code(&body, "FORBIDDEN", "user on admin");
    assert!(works(&app, &admin_token).await);
}

#[tokio::test]
async fn listing_many_sessions_costs_a_constant_number_of_queries() {
    let app = spawn_app().await;
    let alice: TestUser = app.create_user(Role::User).await;
    let admin = app.create_user(Role::Admin).await;
    let admin_token = app.sign_in(&admin).await;
    let (token, _) = app.sign_in_as(&alice, FIREFOX).await;
    let others = json!({ "all": true, "user": alice.id });
    let (_, own_small) = app
        .count_queries(list(&app, &token, json!({ "all": true })))
        .await;
    let (_, admin_small) = app
        .count_queries(list(&app, &admin_token, others.clone()))
        .await;
    for _ in 0..30 {
        app.sign_in_as(&alice, SAFARI_IOS).await;
    }
    let (body, own_large) = app
        .count_queries(list(&app, &token, json!({ "all": true })))
        .await;
    assert_eq!(body["data"]["sessions"]["count"], 31);
    let (body, admin_large) = app.count_queries(list(&app, &admin_token, others)).await;
    assert_eq!(body["data"]["sessions"]["count"], 31, "{body}");
    assert!(
        body["data"]["sessions"]["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["user"]["email"] == alice.email.as_str()),
        "every row's user is resolved"
    );
    assert_eq!(
        own_small, own_large,
        "own list: {own_small} queries for 1 session, {own_large} for 31"
    );
    assert_eq!(
        own_large, 2,
        "the token check and the list; the owner is the caller, already known"
    );
    assert_eq!(
        admin_small, admin_large,
        "another user's list: {admin_small} for 1, {admin_large} for 31"
    );
}

#[tokio::test]
async fn a_session_the_guard_read_is_not_read_again() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (token, current) = app.sign_in_as(&alice, FIREFOX).await;
    let (_, other) = app.sign_in_as(&alice, SAFARI_IOS).await;

    let (body, own) = app
        .count_queries(app.gql(Some(&token), GET, json!({ "id": current })))
        .await;
    assert_eq!(body["data"]["session"]["isCurrent"], true, "{body}");
    assert_eq!(
        own, 1,
        "the current session is the caller's: the token check only"
    );

    let (body, another) = app
        .count_queries(app.gql(Some(&token), GET, json!({ "id": other })))
        .await;
    assert_eq!(body["data"]["session"]["id"], other.to_string(), "{body}");
    assert_eq!(another, 2, "the token check and the guard's read");
}
