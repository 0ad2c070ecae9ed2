//! Accounts over GraphQL (issue 18 §1): reading, making, changing,
//! disabling, enabling and deleting them, roles, password resets and
//! sign-up; refusals answered with a code, audited, and nothing written.

use entity::{
    audit_event::AuditStatus,
    session,
    user::{self, Role},
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use session_manager::config::Signup;
use uuid::Uuid;

use crate::{
    api_keys::{create_key, owner_token},
    cli::run,
    helpers::{TestApp, TestUser, assert_error_code, spawn_app, spawn_app_with},
    subscriptions::{connect, receive, subscribe},
};

const FIELDS: &str = "id email name role status disabledAt disabledReason externalId lastSignInAt canUpdate canSetRole canDisable canDelete canResetPassword";
const VIEWER: &str = "{ viewer { user { id } } }";
const SIGN_IN: &str =
    "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";
const ISSUE: &str = "mutation($u: UserRef!) { issueSession(user: $u) { token session { id } } }";

fn user_query() -> String {
    format!("query($id: UUID!) {{ user(id: $id) {{ {FIELDS} }} }}")
}
fn create() -> String {
    format!("mutation($i: CreateUserInput!) {{ createUser(input: $i) {{ {FIELDS} }} }}")
}
fn update() -> String {
    format!(
        "mutation($id: UUID!, $i: UpdateUserInput!) {{ updateUser(id: $id, input: $i) {{ {FIELDS} }} }}"
    )
}
fn set_role() -> String {
    format!("mutation($id: UUID!, $r: Role!) {{ setUserRole(id: $id, role: $r) {{ {FIELDS} }} }}")
}
fn disable() -> String {
    format!(
        "mutation($id: UUID!, $r: String!) {{ disableUser(id: $id, reason: $r) {{ {FIELDS} }} }}"
    )
}
fn enable() -> String {
    format!("mutation($id: UUID!) {{ enableUser(id: $id) {{ {FIELDS} }} }}")
}
const DELETE: &str = "mutation($id: UUID!) { deleteUser(id: $id) }";
const SET_PASSWORD: &str =
    "mutation($id: UUID!, $p: String!) { setPassword(id: $id, password: $p) }";
const SIGN_UP: &str = "mutation($e: String!, $n: String!, $p: String!) { signUp(email: $e, name: $n, password: $p) { token session { sessionToken userId isActive isCurrent expires createdAt lastActiveAt device user { id email name role status lastSignInAt createdAt } } } }";

/// A signed-in account of `role`: its test user and token.
async fn signed_in(app: &TestApp, role: Role) -> (TestUser, String) {
    let user = app.create_user(role).await;
    let token = app.sign_in(&user).await;
    (user, token)
}

async fn sign_in_body(app: &TestApp, email: &str, password: &str) -> Value {
    app.gql(None, SIGN_IN, json!({ "e": email, "p": password }))
        .await
}

async fn stored(app: &TestApp, id: Uuid) -> user::Model {
    user::Entity::find_by_id(id)
        .one(app.db())
        .await
        .unwrap()
        .expect("the account row")
}

async fn user_rows(app: &TestApp) -> u64 {
    user::Entity::find().count(app.db()).await.unwrap()
}

/// Sessions of `user_id` that are live in the database.
async fn live_sessions(app: &TestApp, user_id: Uuid) -> Vec<session::Model> {
    let now = chrono::Utc::now();
    session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .all(app.db())
        .await
        .unwrap()
}

/// Events of `event_type` with `status`.
async fn events(app: &TestApp, event_type: &str, status: AuditStatus) -> Vec<Value> {
    app.events_of_type(event_type)
        .await
        .into_iter()
        .filter(|e| e.status == status)
        .map(|e| json!({ "actor": e.actor_id, "user": e.user_id, "metadata": e.metadata, "message": e.message }))
        .collect()
}

#[tokio::test]
async fn user_reads_oneself_and_admins_read_anyone() {
    let app = spawn_app().await;
    let (alice, alice_token) = signed_in(&app, Role::User).await;
    let (bob, _) = signed_in(&app, Role::User).await;
    let (_, admin) = signed_in(&app, Role::Admin).await;
    let (owner, _) = signed_in(&app, Role::Owner).await;

    let own = app
        .gql(Some(&alice_token), &user_query(), json!({ "id": alice.id }))
        .await;
    let me = &own["data"]["user"];
    assert_eq!(me["email"], alice.email, "{own}");
    assert_eq!(me["status"], "ACTIVE");
    assert_eq!(me["disabledAt"], Value::Null);
    assert!(me["lastSignInAt"].is_string(), "set by sign-in: {own}");
    assert_eq!(me["canDisable"], false, "nobody disables themselves");

    let other = app
        .gql(Some(&alice_token), &user_query(), json!({ "id": bob.id }))
        .await;
    assert_error_code(&other, "FORBIDDEN", "a user reading another");
    let unknown = app
        .gql(
            Some(&alice_token),
            &user_query(),
            json!({ "id": Uuid::new_v4() }),
        )
        .await;
    assert_error_code(&unknown, "FORBIDDEN", "a user learns nothing of existence");
    let denied = app.refusals().await;
    assert!(
        denied
            .iter()
            .any(|e| e.metadata["action"] == "user.view" && e.user_id == Some(bob.id)),
        "audited: {denied:?}"
    );

    for (id, who) in [(bob.id, "a user"), (owner.id, "an owner")] {
        let body = app
            .gql(Some(&admin), &user_query(), json!({ "id": id }))
            .await;
        assert_eq!(body["data"]["user"]["id"], id.to_string(), "{who}: {body}");
    }
    let as_admin = app
        .gql(Some(&admin), &user_query(), json!({ "id": bob.id }))
        .await;
    assert_eq!(as_admin["data"]["user"]["canDisable"], true);
    let on_owner = app
        .gql(Some(&admin), &user_query(), json!({ "id": owner.id }))
        .await;
    assert_eq!(on_owner["data"]["user"]["canDisable"], false, "{on_owner}");
    let missing = app
        .gql(Some(&admin), &user_query(), json!({ "id": Uuid::new_v4() }))
        .await;
    assert_error_code(&missing, "NOT_FOUND", "an admin, unknown id");
    let anonymous = app.gql(None, &user_query(), json!({ "id": bob.id })).await;
    assert_error_code(&anonymous, "UNAUTHENTICATED", "signed out");
}

#[tokio::test]
async fn who_makes_which_account() {
    let app = spawn_app().await;
    let (_, user_token) = signed_in(&app, Role::User).await;
    let (admin, admin_token) = signed_in(&app, Role::Admin).await;
    let (_, owner_token) = signed_in(&app, Role::Owner).await;
    let input = |email: &str, role: Option<&str>| {
        let mut input =
            json!({ "email": email, "name": "New Person", "password": "a-long-password-1" });
        if let Some(role) = role {
            input["role"] = json!(role);
        }
        json!({ "i": input })
    };

    let body = app
        .gql(Some(&user_token), &create(), input("u@example.com", None))
        .await;
    assert_error_code(&body, "FORBIDDEN", "a user making an account");
    for role in ["ADMIN", "OWNER"] {
        let body = app
            .gql(
                Some(&admin_token),
                &create(),
                input("a@example.com", Some(role)),
            )
            .await;
        assert_error_code(&body, "FORBIDDEN", &format!("an admin making {role}"));
    }
    let refused = events(&app, "user.created", AuditStatus::Failed).await;
    assert!(
        refused
            .iter()
            .any(|e| e["actor"] == json!(admin.id) && e["metadata"]["action"] == "user.create"),
        "refusals audited as failed user.created: {refused:?}"
    );

    let made = app
        .gql(
            Some(&admin_token),
            &create(),
            input("New.User@Example.com", None),
        )
        .await;
    let account = &made["data"]["createUser"];
    assert_eq!(account["email"], "new.user@example.com", "{made}");
    assert_eq!(account["role"], "USER", "default role");
    assert_eq!(account["status"], "ACTIVE");
    assert_eq!(account["lastSignInAt"], Value::Null);
    let signed = sign_in_body(&app, "new.user@example.com", "a-long-password-1").await;
    assert!(signed["data"]["signIn"]["token"].is_string(), "{signed}");

    let owner_made = app
        .gql(
            Some(&owner_token),
            &create(),
            input("boss@example.com", Some("OWNER")),
        )
        .await;
    assert_eq!(
        owner_made["data"]["createUser"]["role"], "OWNER",
        "{owner_made}"
    );

    let created = events(&app, "user.created", AuditStatus::Success).await;
    let by_admin = created
        .iter()
        .find(|e| e["metadata"]["email"] == "new.user@example.com")
        .expect("audited");
    assert_eq!(by_admin["actor"], json!(admin.id));
    assert!(!by_admin.to_string().contains("a-long-password-1"));
}

#[tokio::test]
async fn an_account_without_a_password_gets_sessions_only_from_a_backend() {
    let app = spawn_app().await;
    let (owner, _) = owner_token(&app).await;
    let (key, _) = create_key(&app, &owner, "backend", &["SESSIONS_ISSUE"]).await;
    let made = app
        .gql(
            Some(&owner),
            &create(),
            json!({ "i": { "email": "sso@example.com", "name": "SSO Person", "externalId": "ext-1" } }),
        )
        .await;
    let account = &made["data"]["createUser"];
    assert_eq!(account["externalId"], "ext-1", "{made}");
    for password in ["", "any-password-at-all"] {
        let body = sign_in_body(&app, "sso@example.com", password).await;
        assert_error_code(&body, "UNAUTHENTICATED", "no password: no sign-in");
    }
    let issued = app
        .gql(Some(&key), ISSUE, json!({ "u": { "externalId": "ext-1" } }))
        .await;
    let token = issued["data"]["issueSession"]["token"]
        .as_str()
        .expect("issued");
    let viewer = app.gql(Some(token), VIEWER, json!({})).await;
    assert_eq!(viewer["data"]["viewer"]["user"]["id"], account["id"]);
    let id: Uuid = account["id"].as_str().unwrap().parse().unwrap();
    assert!(
        stored(&app, id).await.last_sign_in_at.is_some(),
        "issueSession sets it"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_a_code_and_nothing_written() {
    let app = spawn_app().await;
    let (_, owner) = signed_in(&app, Role::Owner).await;
    let taken = app.create_user(Role::User).await;
    let before = user_rows(&app).await;
    let events_before = app.audit_events().await.len();
    let good =
        json!({ "email": "ok@example.com", "name": "Okay", "password": "a-long-password-1" });
    let with = |key: &str, value: Value| {
        let mut input = good.clone();
        input[key] = value;
        json!({ "i": input })
    };
    let cases = [
        (with("name", json!("")), "BAD_USER_INPUT", "empty name"),
        (with("name", json!("   ")), "BAD_USER_INPUT", "blank name"),
        (
            with("name", json!("x".repeat(201))),
            "BAD_USER_INPUT",
            "oversize name",
        ),
        (
            with("name", json!("a\u{0}b")),
            "BAD_USER_INPUT",
            "control character",
        ),
        (
            with("email", json!("not-an-email")),
            "BAD_USER_INPUT",
            "bad email",
        ),
        (
            with("email", json!(format!("{}@example.com", "a".repeat(400)))),
            "BAD_USER_INPUT",
            "oversize email",
        ),
        (
            with("email", json!("x@deleted.invalid")),
            "BAD_USER_INPUT",
            "reserved domain",
        ),
        (
            with("email", json!(taken.email.to_uppercase())),
            "BAD_USER_INPUT",
            "taken email",
        ),
        (
            with("password", json!("short")),
            "BAD_USER_INPUT",
            "short password",
        ),
        (
            with("password", json!("p".repeat(300))),
            "BAD_USER_INPUT",
            "oversize password",
        ),
        (
            with("role", json!("SUPERUSER")),
            "BAD_USER_INPUT",
            "bad role",
        ),
        (
            with("role", json!(3)),
            "BAD_USER_INPUT",
            "role of the wrong type",
        ),
        (
            with("externalId", json!("")),
            "BAD_USER_INPUT",
            "empty externalId",
        ),
        (
            json!({ "i": { "name": "No Email" } }),
            "BAD_USER_INPUT",
            "missing email",
        ),
    ];
    for (variables, code, case) in cases {
        let body = app.gql(Some(&owner), &create(), variables).await;
        assert_error_code(&body, code, case);
    }
    let body = app
        .gql(Some(&owner), &create(), with("email", json!(taken.email)))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["reason"], "EMAIL_TAKEN",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["field"], "email", "{body}");

    let updates = [
        (json!({ "name": "" }), "empty name"),
        (json!({ "email": "nope" }), "bad email"),
        (json!({ "name": "x".repeat(500) }), "oversize name"),
    ];
    for (input, case) in updates {
        let body = app
            .gql(
                Some(&owner),
                &update(),
                json!({ "id": taken.id, "i": input }),
            )
            .await;
        assert_error_code(&body, "BAD_USER_INPUT", case);
    }
    for reason in ["", &"r".repeat(501)] {
        let body = app
            .gql(
                Some(&owner),
                &disable(),
                json!({ "id": taken.id, "r": reason }),
            )
            .await;
        assert_error_code(&body, "BAD_USER_INPUT", "disable reason");
    }
    let body = app
        .gql(
            Some(&owner),
            SET_PASSWORD,
            json!({ "id": taken.id, "p": "short" }),
        )
        .await;
    assert_error_code(&body, "BAD_USER_INPUT", "short password reset");
    let body = app
        .gql(
            Some(&owner),
            &set_role(),
            json!({ "id": taken.id, "r": "ROOT" }),
        )
        .await;
    assert_error_code(&body, "BAD_USER_INPUT", "bad role");
    let body = app
        .gql(Some(&owner), DELETE, json!({ "id": "not-a-uuid" }))
        .await;
    assert_error_code(&body, "BAD_USER_INPUT", "bad id");

    assert_eq!(user_rows(&app).await, before, "no account written");
    assert_eq!(
        app.audit_events().await.len(),
        events_before,
        "no event written"
    );
    let unchanged = stored(&app, taken.id).await;
    assert_eq!(unchanged.email, taken.email);
    assert!(unchanged.is_active());
}

#[tokio::test]
async fn admins_update_users_and_a_taken_email_is_a_coded_error() {
    let app = spawn_app().await;
    let (alice, alice_token) = signed_in(&app, Role::User).await;
    let bob = app.create_user(Role::User).await;
    let (other_admin, _) = signed_in(&app, Role::Admin).await;
    let (_, admin) = signed_in(&app, Role::Admin).await;
    let (_, owner) = signed_in(&app, Role::Owner).await;

    let body = app
        .gql(
            Some(&alice_token),
            &update(),
            json!({ "id": alice.id, "i": { "name": "Me" } }),
        )
        .await;
    assert_error_code(&body, "FORBIDDEN", "a user updating themselves");
    let body = app
        .gql(
            Some(&admin),
            &update(),
            json!({ "id": other_admin.id, "i": { "name": "X" } }),
        )
        .await;
    assert_error_code(&body, "FORBIDDEN", "an admin updating an admin");
    let refused = events(&app, "user.updated", AuditStatus::Failed).await;
    assert_eq!(refused.len(), 2, "{refused:?}");

    let body = app
        .gql(
            Some(&admin),
            &update(),
            json!({ "id": alice.id, "i": { "name": "Alice Renamed", "email": "ALICE2@example.com" } }),
        )
        .await;
    let updated = &body["data"]["updateUser"];
    assert_eq!(updated["name"], "Alice Renamed", "{body}");
    assert_eq!(updated["email"], "alice2@example.com");
    let ok = sign_in_body(&app, "alice2@example.com", &alice.password).await;
    assert!(ok["data"]["signIn"]["token"].is_string(), "{ok}");

    let body = app
        .gql(
            Some(&admin),
            &update(),
            json!({ "id": alice.id, "i": { "email": bob.email } }),
        )
        .await;
    assert_error_code(&body, "BAD_USER_INPUT", "taken email");
    assert_eq!(body["errors"][0]["extensions"]["reason"], "EMAIL_TAKEN");
    assert_eq!(stored(&app, alice.id).await.email, "alice2@example.com");

    let body = app
        .gql(
            Some(&owner),
            &update(),
            json!({ "id": other_admin.id, "i": { "name": "Boss Made" } }),
        )
        .await;
    assert_eq!(body["data"]["updateUser"]["name"], "Boss Made", "{body}");
    let done = events(&app, "user.updated", AuditStatus::Success).await;
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(done[0]["metadata"]["changed"], json!(["name", "email"]));
    assert_eq!(done[0]["metadata"]["previousEmail"], alice.email);
}

#[tokio::test]
async fn only_owners_change_roles_and_nobody_their_own() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (admin_user, admin) = signed_in(&app, Role::Admin).await;
    let (owner_user, owner) = signed_in(&app, Role::Owner).await;

    let body = app
        .gql(
            Some(&admin),
            &set_role(),
            json!({ "id": alice.id, "r": "ADMIN" }),
        )
        .await;
    assert_error_code(&body, "FORBIDDEN", "an admin promoting");
    let body = app
        .gql(
            Some(&admin),
            &set_role(),
            json!({ "id": admin_user.id, "r": "OWNER" }),
        )
        .await;
    assert_error_code(&body, "FORBIDDEN", "an admin promoting themselves");
    let body = app
        .gql(
            Some(&owner),
            &set_role(),
            json!({ "id": owner_user.id, "r": "ADMIN" }),
        )
        .await;
    assert_error_code(
        &body,
        "FORBIDDEN",
        "an owner demoting themselves (the last owner)",
    );
    assert_eq!(stored(&app, owner_user.id).await.role, Role::Owner);
    let refused = events(&app, "user.role_changed", AuditStatus::Failed).await;
    assert_eq!(refused.len(), 3, "{refused:?}");

    let body = app
        .gql(
            Some(&owner),
            &set_role(),
            json!({ "id": alice.id, "r": "ADMIN" }),
        )
        .await;
    assert_eq!(body["data"]["setUserRole"]["role"], "ADMIN", "{body}");
    let changed = events(&app, "user.role_changed", AuditStatus::Success).await;
    assert_eq!(changed[0]["metadata"]["previousRole"], "user");
    assert_eq!(changed[0]["metadata"]["role"], "admin");
}

#[tokio::test]
async fn demoting_an_admin_ends_their_impersonations_at_once() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (admin_user, admin) = signed_in(&app, Role::Admin).await;
    let (_, owner) = signed_in(&app, Role::Owner).await;
    let started = app
        .gql(
            Some(&admin),
            "mutation($id: UUID!) { startImpersonation(userId: $id, reason: \"ticket 7\") { token session { id } } }",
            json!({ "id": alice.id }),
        )
        .await;
    let as_alice = started["data"]["startImpersonation"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{started}"))
        .to_owned();
    let mut socket = connect(&app, &as_alice).await;
    subscribe(&mut socket, "s", json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let body = app
        .gql(
            Some(&owner),
            &set_role(),
            json!({ "id": admin_user.id, "r": "USER" }),
        )
        .await;
    assert_eq!(body["data"]["setUserRole"]["role"], "USER", "{body}");
    let after = app.gql(Some(&as_alice), VIEWER, json!({})).await;
    assert_error_code(&after, "UNAUTHENTICATED", "the impersonation, next request");
    let ended = session::Entity::find()
        .filter(session::Column::ImpersonatorId.eq(admin_user.id))
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.revoke_reason.as_deref(), Some("role_changed"));
    assert!(wait_close(&mut socket).await, "its socket closed with 4403");
    // The admin's own session stays: they are a user now.
    let own = app.gql(Some(&admin), VIEWER, json!({})).await;
    assert_eq!(
        own["data"]["viewer"]["user"]["id"],
        admin_user.id.to_string()
    );
}

/// Reads until the close frame; whether it was 4403.
async fn wait_close(socket: &mut crate::subscriptions::Socket) -> bool {
    for _ in 0..50 {
        let message = receive(socket).await;
        if let Some(code) = message.get("close") {
            return code == 4403;
        }
    }
    false
}

#[tokio::test]
async fn disabling_ends_every_session_and_socket_and_refuses_sign_in_until_enabled() {
    let app = spawn_app().await;
    let (owner, owner_id) = owner_token(&app).await;
    let (key, _) = create_key(
        &app,
        &owner,
        "backend",
        &["SESSIONS_ISSUE", "USERS_PROVISION"],
    )
    .await;
    let (_, admin) = signed_in(&app, Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let first = app.sign_in(&alice).await;
    let second = app.sign_in(&alice).await;
    let mut socket = connect(&app, &first).await;
    subscribe(&mut socket, "s", json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let body = app
        .gql(
            Some(&admin),
            &disable(),
            json!({ "id": alice.id, "r": "compromised laptop" }),
        )
        .await;
    let disabled = &body["data"]["disableUser"];
    assert_eq!(disabled["status"], "DISABLED", "{body}");
    assert_eq!(disabled["disabledReason"], "compromised laptop");
    assert!(disabled["disabledAt"].is_string());
    for token in [&first, &second] {
        let after = app.gql(Some(token), VIEWER, json!({})).await;
        assert_error_code(&after, "UNAUTHENTICATED", "a session of the disabled user");
    }
    assert!(live_sessions(&app, alice.id).await.is_empty());
    assert!(wait_close(&mut socket).await, "socket closed with 4403");
    let event = &events(&app, "user.disabled", AuditStatus::Success).await[0];
    assert_eq!(event["metadata"]["endedSessions"], 2);
    assert_eq!(event["metadata"]["reason"], "compromised laptop");

    let refused = sign_in_body(&app, &alice.email, &alice.password).await;
    assert_error_code(&refused, "FORBIDDEN", "sign-in while disabled");
    assert_eq!(
        refused["errors"][0]["extensions"]["reason"],
        "ACCOUNT_DISABLED"
    );
    let wrong = sign_in_body(&app, &alice.email, "wrong-password-123").await;
    assert_error_code(&wrong, "UNAUTHENTICATED", "a wrong password learns nothing");
    let issued = app
        .gql(Some(&key), ISSUE, json!({ "u": { "id": alice.id } }))
        .await;
    assert_error_code(&issued, "FORBIDDEN", "issueSession while disabled");
    assert_eq!(
        issued["errors"][0]["extensions"]["reason"],
        "ACCOUNT_DISABLED"
    );
    let impersonate = app
        .gql(
            Some(&owner),
            "mutation($id: UUID!) { startImpersonation(userId: $id, reason: \"look\") { token } }",
            json!({ "id": alice.id }),
        )
        .await;
    assert_error_code(&impersonate, "FORBIDDEN", "impersonating a disabled user");
    let refused_impersonation = events(&app, "impersonation.started", AuditStatus::Failed).await;
    assert_eq!(
        refused_impersonation.len(),
        1,
        "audited: {refused_impersonation:?}"
    );
    let shown = app
        .gql(
            Some(&owner),
            "query($id: UUID!) { user(id: $id) { canImpersonate } }",
            json!({ "id": alice.id }),
        )
        .await;
    assert_eq!(shown["data"]["user"]["canImpersonate"], false, "{shown}");
    assert!(
        live_sessions(&app, alice.id).await.is_empty(),
        "nothing opened"
    );
    let failed_sign_ins = events(&app, "auth.sign_in", AuditStatus::Failed).await;
    assert!(
        failed_sign_ins
            .iter()
            .any(|e| e["metadata"]["reason"] == "disabled")
    );
    let failed_issues = events(&app, "auth.session_issued", AuditStatus::Failed).await;
    assert!(
        failed_issues
            .iter()
            .any(|e| e["metadata"]["reason"] == "disabled")
    );

    // Provisioning does not enable it again.
    let ext = app
        .gql(
            Some(&owner),
            &create(),
            json!({ "i": { "email": "ext@example.com", "name": "Ext", "externalId": "e-9" } }),
        )
        .await;
    let ext_id = ext["data"]["createUser"]["id"].as_str().unwrap().to_owned();
    app.gql(
        Some(&admin),
        &disable(),
        json!({ "id": ext_id, "r": "left" }),
    )
    .await;
    let upsert = app
        .gql(
            Some(&key),
            "mutation { upsertUser(externalId: \"e-9\", email: \"ext2@example.com\", name: \"Ext Two\") { status email } }",
            json!({}),
        )
        .await;
    assert_eq!(
        upsert["data"]["upsertUser"]["status"], "DISABLED",
        "{upsert}"
    );
    assert_eq!(upsert["data"]["upsertUser"]["email"], "ext2@example.com");

    let again = app
        .gql(
            Some(&admin),
            &disable(),
            json!({ "id": alice.id, "r": "again" }),
        )
        .await;
    assert_eq!(
        again["data"]["disableUser"]["disabledReason"], "compromised laptop",
        "unchanged"
    );
    let enabled = app
        .gql(Some(&admin), &enable(), json!({ "id": alice.id }))
        .await;
    assert_eq!(
        enabled["data"]["enableUser"]["status"], "ACTIVE",
        "{enabled}"
    );
    assert_eq!(enabled["data"]["enableUser"]["disabledReason"], Value::Null);
    assert_eq!(
        events(&app, "user.enabled", AuditStatus::Success)
            .await
            .len(),
        1
    );
    let back = sign_in_body(&app, &alice.email, &alice.password).await;
    let token = back["data"]["signIn"]["token"]
        .as_str()
        .expect("sign-in works again");
    assert!(app.gql(Some(token), VIEWER, json!({})).await["data"]["viewer"].is_object());
    let issued = app
        .gql(Some(&key), ISSUE, json!({ "u": { "id": alice.id } }))
        .await;
    assert!(
        issued["data"]["issueSession"]["token"].is_string(),
        "{issued}"
    );
    let _ = owner_id;
}

#[tokio::test]
async fn who_disables_whom_and_nobody_themselves() {
    let app = spawn_app().await;
    let (alice, alice_token) = signed_in(&app, Role::User).await;
    let bob = app.create_user(Role::User).await;
    let (admin_user, admin) = signed_in(&app, Role::Admin).await;
    let other_admin = app.create_user(Role::Admin).await;
    let (owner_user, owner) = signed_in(&app, Role::Owner).await;
    let cases = [
        (&alice_token, bob.id, "a user disabling a user"),
        (&alice_token, alice.id, "a user disabling themselves"),
        (&admin, admin_user.id, "an admin disabling themselves"),
        (&admin, other_admin.id, "an admin disabling an admin"),
        (&admin, owner_user.id, "an admin disabling an owner"),
        (&owner, owner_user.id, "the last owner disabling themselves"),
    ];
    for (token, id, case) in cases {
        let body = app
            .gql(Some(token), &disable(), json!({ "id": id, "r": "because" }))
            .await;
        assert_error_code(&body, "FORBIDDEN", case);
        let body = app.gql(Some(token), DELETE, json!({ "id": id })).await;
        assert_error_code(&body, "FORBIDDEN", case);
        let body = app
            .gql(
                Some(token),
                SET_PASSWORD,
                json!({ "id": id, "p": "a-long-password-2" }),
            )
            .await;
        assert_error_code(&body, "FORBIDDEN", case);
    }
    for id in [
        alice.id,
        bob.id,
        admin_user.id,
        other_admin.id,
        owner_user.id,
    ] {
        let account = stored(&app, id).await;
        assert!(account.is_active(), "{id} unchanged");
    }
    assert_eq!(
        events(&app, "user.disabled", AuditStatus::Failed)
            .await
            .len(),
        6
    );
    assert_eq!(
        events(&app, "user.deleted", AuditStatus::Failed)
            .await
            .len(),
        6
    );
    assert_eq!(
        events(&app, "user.password_reset", AuditStatus::Failed)
            .await
            .len(),
        6
    );

    let body = app
        .gql(
            Some(&owner),
            &disable(),
            json!({ "id": other_admin.id, "r": "left" }),
        )
        .await;
    assert_eq!(body["data"]["disableUser"]["status"], "DISABLED", "{body}");
}

#[tokio::test]
async fn api_keys_and_impersonation_sessions_manage_no_account() {
    let app = spawn_app().await;
    let (owner, _) = owner_token(&app).await;
    let (key, _) = create_key(
        &app,
        &owner,
        "all scopes",
        &[
            "SESSIONS_ISSUE",
            "SESSIONS_CHECK",
            "USERS_PROVISION",
            "AUDIT_READ",
        ],
    )
    .await;
    let alice = app.create_user(Role::User).await;
    let started = app
        .gql(
            Some(&owner),
            "mutation($id: UUID!) { startImpersonation(userId: $id, reason: \"support\") { token } }",
            json!({ "id": alice.id }),
        )
        .await;
    let as_alice = started["data"]["startImpersonation"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let operations = [
        (user_query(), json!({ "id": alice.id })),
        (
            create(),
            json!({ "i": { "email": "k@example.com", "name": "K" } }),
        ),
        (update(), json!({ "id": alice.id, "i": { "name": "K" } })),
        (set_role(), json!({ "id": alice.id, "r": "ADMIN" })),
        (disable(), json!({ "id": alice.id, "r": "k" })),
        (enable(), json!({ "id": alice.id })),
        (DELETE.to_owned(), json!({ "id": alice.id })),
        (
            SET_PASSWORD.to_owned(),
            json!({ "id": alice.id, "p": "a-long-password-3" }),
        ),
        (
            SIGN_UP.to_owned(),
            json!({ "e": "k@example.com", "n": "K", "p": "a-long-password-3" }),
        ),
    ];
    for (query, variables) in &operations {
        let body = app.gql(Some(&key), query, variables.clone()).await;
        assert_error_code(&body, "FORBIDDEN", &format!("API key: {query}"));
    }
    // An impersonation session acts as its user: reads itself, manages nobody.
    for (query, variables) in operations.iter().skip(1).take(7) {
        let body = app.gql(Some(&as_alice), query, variables.clone()).await;
        assert_error_code(&body, "FORBIDDEN", &format!("impersonating: {query}"));
    }
    let own = app
        .gql(Some(&as_alice), &user_query(), json!({ "id": alice.id }))
        .await;
    assert_eq!(own["data"]["user"]["id"], alice.id.to_string(), "{own}");
    assert!(stored(&app, alice.id).await.is_active());
}

#[tokio::test]
async fn deleting_ends_sessions_keeps_the_history_verifying_and_frees_the_email() {
    let app = spawn_app().await;
    let (_, admin) = signed_in(&app, Role::Admin).await;
    let (_, owner) = signed_in(&app, Role::Owner).await;
    let (alice, alice_token) = signed_in(&app, Role::User).await;
    let about_alice_before = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.user_id == Some(alice.id))
        .count();

    let body = app
        .gql(Some(&admin), DELETE, json!({ "id": alice.id }))
        .await;
    assert_eq!(body["data"]["deleteUser"], true, "{body}");
    let after = app.gql(Some(&alice_token), VIEWER, json!({})).await;
    assert_error_code(&after, "UNAUTHENTICATED", "the deleted user's token");
    assert!(live_sessions(&app, alice.id).await.is_empty());
    let read = app
        .gql(Some(&admin), &user_query(), json!({ "id": alice.id }))
        .await;
    assert_error_code(&read, "NOT_FOUND", "a deleted account");
    let again = app
        .gql(Some(&admin), DELETE, json!({ "id": alice.id }))
        .await;
    assert_error_code(&again, "NOT_FOUND", "deleted twice");
    let sign_in = sign_in_body(&app, &alice.email, &alice.password).await;
    assert_error_code(
        &sign_in,
        "UNAUTHENTICATED",
        "signing in to a deleted account",
    );
    let listed = app
        .gql(
            Some(&admin),
            "query($s: String) { users(search: $s) { users { id } } }",
            json!({ "s": alice.email }),
        )
        .await;
    assert_eq!(listed["data"]["users"]["users"], json!([]), "{listed}");

    let about_alice = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.user_id == Some(alice.id))
        .collect::<Vec<_>>();
    assert!(
        about_alice.len() > about_alice_before,
        "its events stay, and more"
    );
    assert!(
        about_alice
            .iter()
            .any(|e| e.event_type == "user.deleted" && e.metadata["email"] == alice.email.as_str())
    );
    let chain = app
        .gql(Some(&owner), "{ auditChain { intact checked } }", json!({}))
        .await;
    assert_eq!(chain["data"]["auditChain"]["intact"], true, "{chain}");
    let verify = run(&app, &["audit", "verify"], "").await;
    assert!(
        verify.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    let reused = app
        .gql(
            Some(&admin),
            &create(),
            json!({ "i": { "email": alice.email, "name": "New Alice", "password": "a-long-password-4" } }),
        )
        .await;
    let new_id = reused["data"]["createUser"]["id"]
        .as_str()
        .expect("the email is free");
    assert_ne!(new_id, alice.id.to_string());
    let signed = sign_in_body(&app, &alice.email, "a-long-password-4").await;
    assert!(signed["data"]["signIn"]["token"].is_string(), "{signed}");
}

#[tokio::test]
async fn a_password_reset_ends_every_session_and_the_new_password_works() {
    let app = spawn_app().await;
    let (_, admin) = signed_in(&app, Role::Admin).await;
    let owner = app.create_user(Role::Owner).await;
    let (alice, alice_token) = signed_in(&app, Role::User).await;
    let other = app.sign_in(&alice).await;

    let body = app
        .gql(
            Some(&admin),
            SET_PASSWORD,
            json!({ "id": owner.id, "p": "a-long-password-5" }),
        )
        .await;
    assert_error_code(&body, "FORBIDDEN", "an admin resetting an owner");
    let body = app
        .gql(
            Some(&admin),
            SET_PASSWORD,
            json!({ "id": alice.id, "p": "brand-new-password-1" }),
        )
        .await;
    assert_eq!(body["data"]["setPassword"], true, "{body}");
    for token in [&alice_token, &other] {
        let after = app.gql(Some(token), VIEWER, json!({})).await;
        assert_error_code(&after, "UNAUTHENTICATED", "a session before the reset");
    }
    let old = sign_in_body(&app, &alice.email, &alice.password).await;
    assert_error_code(&old, "UNAUTHENTICATED", "the old password");
    let new = sign_in_body(&app, &alice.email, "brand-new-password-1").await;
    assert!(new["data"]["signIn"]["token"].is_string(), "{new}");
    let reset = events(&app, "user.password_reset", AuditStatus::Success).await;
    assert_eq!(reset.len(), 1);
    assert_eq!(reset[0]["metadata"]["endedSessions"], 2);
    assert!(!reset[0].to_string().contains("brand-new-password-1"));
}

#[tokio::test]
async fn sign_up_is_closed_by_default() {
    let app = spawn_app().await;
    let before = user_rows(&app).await;
    let body = app
        .gql(
            None,
            SIGN_UP,
            json!({ "e": "new@example.com", "n": "New", "p": "a-long-password-6" }),
        )
        .await;
    assert_error_code(&body, "FORBIDDEN", "SIGNUP=closed");
    assert_eq!(user_rows(&app).await, before);
}

/// The answer with what differs between any two sign-ups (ids, tokens,
/// times, the typed email) replaced by its kind.
fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::String(_) => json!("string"),
        other => other.clone(),
    }
}

#[tokio::test]
async fn open_sign_up_makes_an_account_and_a_taken_email_gets_the_same_answer() {
    let app = spawn_app_with(|c| c.signup = Signup::Open).await;
    let existing = app.create_user(Role::User).await;
    let (_, admin) = signed_in(&app, Role::Admin).await;

    let new = app
        .gql(
            None,
            SIGN_UP,
            json!({ "e": "Fresh@Example.com", "n": "Fresh Person", "p": "a-long-password-7" }),
        )
        .await;
    let payload = &new["data"]["signUp"];
    let token = payload["token"].as_str().unwrap_or_else(|| panic!("{new}"));
    assert_eq!(payload["session"]["user"]["email"], "fresh@example.com");
    assert_eq!(payload["session"]["user"]["role"], "USER");
    let viewer = app.gql(Some(token), VIEWER, json!({})).await;
    assert_eq!(
        viewer["data"]["viewer"]["user"]["id"], payload["session"]["userId"],
        "{viewer}"
    );
    let signed = sign_in_body(&app, "fresh@example.com", "a-long-password-7").await;
    assert!(signed["data"]["signIn"]["token"].is_string());

    let rows = user_rows(&app).await;
    let taken = app
        .gql(None, SIGN_UP, json!({ "e": existing.email.to_uppercase(), "n": "Intruder", "p": "a-long-password-8" }))
        .await;
    assert!(taken.get("errors").is_none(), "no error: {taken}");
    assert_eq!(shape(&new), shape(&taken), "the same shape and flags");
    let decoy = &taken["data"]["signUp"];
    assert_eq!(
        decoy["session"]["user"]["email"], existing.email,
        "as typed, lower-cased"
    );
    assert_ne!(
        decoy["session"]["user"]["id"],
        existing.id.to_string(),
        "not the account"
    );
    assert_eq!(user_rows(&app).await, rows, "no account made");
    let existing_row = stored(&app, existing.id).await;
    assert_eq!(existing_row.name, "Test user", "the account untouched");
    let decoy_token = decoy["token"].as_str().unwrap();
    assert!(decoy_token.starts_with("smt_") && decoy_token.len() == token.len());
    let used = app.gql(Some(decoy_token), VIEWER, json!({})).await;
    assert_error_code(&used, "UNAUTHENTICATED", "the decoy token");
    let probes = events(&app, "user.created", AuditStatus::Failed).await;
    assert_eq!(probes.len(), 1, "{probes:?}");
    assert_eq!(
        probes[0]["user"],
        json!(existing.id),
        "audited against the account"
    );
    assert_eq!(probes[0]["metadata"]["reason"], "email_taken");
    assert!(!probes[0].to_string().contains("a-long-password-8"));
    let original = sign_in_body(&app, &existing.email, &existing.password).await;
    assert!(
        original["data"]["signIn"]["token"].is_string(),
        "the owner still signs in"
    );

    for (variables, case) in [
        (
            json!({ "e": "bad", "n": "X", "p": "a-long-password-9" }),
            "bad email",
        ),
        (
            json!({ "e": "x@example.com", "n": "", "p": "a-long-password-9" }),
            "empty name",
        ),
        (
            json!({ "e": "x@example.com", "n": "X", "p": "short" }),
            "short password",
        ),
    ] {
        let body = app.gql(None, SIGN_UP, variables).await;
        assert_error_code(&body, "BAD_USER_INPUT", case);
    }
    let _ = admin;
}

#[tokio::test]
async fn sign_up_is_throttled_like_sign_in_for_new_and_taken_emails_alike() {
    let app = spawn_app_with(|c| {
        c.signup = Signup::Open;
        c.signin_max_failures_per_ip = 3;
    })
    .await;
    let existing = app.create_user(Role::User).await;
    let mut outcomes = Vec::new();
    for n in 0..5 {
        let email = if n % 2 == 0 {
            format!("new-{n}@example.com")
        } else {
            existing.email.clone()
        };
        let body = app
            .gql(
                None,
                SIGN_UP,
                json!({ "e": email, "n": "N", "p": "a-long-password-10" }),
            )
            .await;
        outcomes.push(
            body["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("OK")
                .to_owned(),
        );
    }
    assert_eq!(outcomes, ["OK", "OK", "OK", "RATE_LIMITED", "RATE_LIMITED"]);
    let made = user::Entity::find()
        .filter(user::Column::Email.starts_with("new-"))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(made, 2, "no account made once throttled");
}

/// A sign-in and a `disableUser` of the same account at once, many times:
/// whichever commits first, no live session remains.
#[tokio::test]
async fn a_sign_in_concurrent_with_disabling_leaves_no_live_session() {
    let app = spawn_app().await;
    let (_, admin) = signed_in(&app, Role::Admin).await;
    let (owner, _) = owner_token(&app).await;
    let (key, _) = create_key(&app, &owner, "backend", &["SESSIONS_ISSUE"]).await;
    let disable_query = disable();
    for round in 0..8 {
        let alice = app.create_user(Role::User).await;
        let sign_in = sign_in_body(&app, &alice.email, &alice.password);
        let issue = app.gql(Some(&key), ISSUE, json!({ "u": { "id": alice.id } }));
        let disabling = app.gql(
            Some(&admin),
            &disable_query,
            json!({ "id": alice.id, "r": "race" }),
        );
        let (signed, issued, disabled) = tokio::join!(sign_in, issue, disabling);
        assert_eq!(
            disabled["data"]["disableUser"]["status"], "DISABLED",
            "{disabled}"
        );
        for (body, field) in [(&signed, "signIn"), (&issued, "issueSession")] {
            match body["data"][field]["token"].as_str() {
                Some(token) => {
                    let after = app.gql(Some(token), VIEWER, json!({})).await;
                    assert_error_code(&after, "UNAUTHENTICATED", "a session won the race");
                }
                None => assert_error_code(body, "FORBIDDEN", &format!("round {round} {field}")),
            }
        }
        assert!(
            live_sessions(&app, alice.id).await.is_empty(),
            "round {round}: a live session survived"
        );
    }
}

/// Two owners demoting each other at once: one of them stays an owner.
#[tokio::test]
async fn two_owners_demoting_each_other_at_once_leave_an_owner() {
    let app = spawn_app().await;
    let set_role_query = set_role();
    for round in 0..5 {
        let (a, a_token) = signed_in(&app, Role::Owner).await;
        let (b, b_token) = signed_in(&app, Role::Owner).await;
        // Only these two are owners this round.
        for other in user::Entity::find()
            .filter(user::Column::Role.eq(Role::Owner))
            .all(app.db())
            .await
            .unwrap()
        {
            if other.id != a.id && other.id != b.id {
                user::Entity::update_many()
                    .col_expr(
                        user::Column::Role,
                        sea_orm::sea_query::Expr::value(Role::User),
                    )
                    .filter(user::Column::Id.eq(other.id))
                    .exec(app.db())
                    .await
                    .unwrap();
            }
        }
        let (x, y) = tokio::join!(
            app.gql(
                Some(&a_token),
                &set_role_query,
                json!({ "id": b.id, "r": "ADMIN" })
            ),
            app.gql(
                Some(&b_token),
                &set_role_query,
                json!({ "id": a.id, "r": "ADMIN" })
            ),
        );
        let owners = user::Entity::find()
            .filter(user::Column::Role.eq(Role::Owner))
            .count(app.db())
            .await
            .unwrap();
        assert_eq!(owners, 1, "round {round}: {x} {y}");
    }
}

/// The rights the server states (`Viewer.can`, `User.can*`) are the rules
/// the mutations apply: each stated right is tried, and holds exactly.
#[tokio::test]
async fn stated_rights_match_what_the_mutations_allow() {
    let app = spawn_app().await;
    let can = "{ viewer { can { manageUsers grantableRoles } } }";
    let expected = [
        (
            Role::User,
            json!({ "manageUsers": false, "grantableRoles": [] }),
        ),
        (
            Role::Admin,
            json!({ "manageUsers": true, "grantableRoles": ["USER"] }),
        ),
        (
            Role::Owner,
            json!({ "manageUsers": true, "grantableRoles": ["USER", "ADMIN", "OWNER"] }),
        ),
    ];
    for (role, rights) in expected {
        let (_, token) = signed_in(&app, role).await;
        let body = app.gql(Some(&token), can, json!({})).await;
        assert_eq!(body["data"]["viewer"]["can"], rights, "{role:?}");
    }

    for caller_role in [Role::Admin, Role::Owner] {
        let (me, token) = signed_in(&app, caller_role).await;
        let mut targets = vec![me.clone()];
        for role in [Role::User, Role::Admin, Role::Owner] {
            targets.push(app.create_user(role).await);
        }
        for target in targets {
            let read = app
                .gql(Some(&token), &user_query(), json!({ "id": target.id }))
                .await;
            let stated = read["data"]["user"]["canDisable"]
                .as_bool()
                .expect("stated");
            let tried = app
                .gql(
                    Some(&token),
                    &disable(),
                    json!({ "id": target.id, "r": "check" }),
                )
                .await;
            let done = tried["data"]["disableUser"]["status"] == "DISABLED";
            assert_eq!(stated, done, "{caller_role:?} on {}: {tried}", target.email);
            if done {
                app.gql(Some(&token), &enable(), json!({ "id": target.id }))
                    .await;
            }
            let stated = read["data"]["user"]["canSetRole"].as_bool().unwrap();
            let role = stored(&app, target.id).await.role;
            let tried = app
                .gql(
                    Some(&token),
                    &set_role(),
                    json!({ "id": target.id, "r": "ADMIN" }),
                )
                .await;
            assert_eq!(
                stated,
                tried["data"]["setUserRole"].is_object(),
                "{caller_role:?} setting the role of {}: {tried}",
                target.email
            );
            if stated {
                user::Entity::update_many()
                    .col_expr(user::Column::Role, sea_orm::sea_query::Expr::value(role))
                    .filter(user::Column::Id.eq(target.id))
                    .exec(app.db())
                    .await
                    .unwrap();
            }
        }
    }
}
