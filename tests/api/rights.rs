//! `Viewer.can` and `Session.canRevoke`: what the server tells a client it
//! may do agrees with what the guarded operations then answer.

use entity::user::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, spawn_app};

const START: &str = "mutation($id: UUID!) { startImpersonation(userId: $id, reason: \"ticket 17\") { token session { id } } }";
const CAN: &str =
    "{ viewer { can { listUsers readAllAudit verifyAuditChain revokeSessions manageWebhooks } } }";
const LIST: &str = "query($user: UUID) { sessions(userId: $user) { sessions { id canRevoke } } }";
const REVOKE: &str = "mutation($id: UUID!) { revokeSession(id: $id) { id } }";

/// Opens an impersonation session of `target` from `token`: its token and id.
async fn impersonate(app: &TestApp, token: &str, target: Uuid) -> (String, Uuid) {
    let body = app.gql(Some(token), START, json!({ "id": target })).await;
    let started = &body["data"]["startImpersonation"];
    assert!(started.is_object(), "impersonation refused: {body}");
    (
        started["token"].as_str().unwrap().to_owned(),
        started["session"]["id"].as_str().unwrap().parse().unwrap(),
    )
}

/// Whether `body` answered `field` (rather than an error and null).
fn answered(body: &Value, field: &str) -> bool {
    !body["data"][field].is_null() && body["errors"].is_null()
}

/// A viewer: an ordinary session of `role`, or an impersonation session of
/// `role` opened by an account of `by`.
async fn viewer(app: &TestApp, role: Role, by: Option<Role>) -> String {
    let me = app.create_user(role).await;
    match by {
        None => app.sign_in(&me).await,
        Some(admin_role) => {
            let admin = app.create_user(admin_role).await;
            let admin_token = app.sign_in(&admin).await;
            impersonate(app, &admin_token, me.id).await.0
        }
    }
}

#[tokio::test]
async fn viewer_can_says_what_the_guarded_operations_answer() {
    let app = spawn_app().await;
    use Role::*;
    let cases = [
        (User, None),
        (Admin, None),
        (Owner, None),
        (User, Some(Admin)),
        (User, Some(Owner)),
        (Admin, Some(Owner)),
    ];
    let stranger = app.create_user(User).await;
    for (role, by) in cases {
        let case = format!("{role:?} impersonated by {by:?}");
        let token = viewer(&app, role, by).await;
        let body = app.gql(Some(&token), CAN, json!({})).await;
        let can = &body["data"]["viewer"]["can"];
        assert!(can.is_object(), "{case}: {body}");

        let users = app
            .gql(
                Some(&token),
                "{ users { pagination { total } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            can["listUsers"],
            answered(&users, "users"),
            "{case}: {users}"
        );

        let audit = app
            .gql(
                Some(&token),
                "query($u: UUID!) { sessionAudit(filter: { userId: $u }, limit: 1) { pagination { total } } }",
                json!({ "u": stranger.id }),
            )
            .await;
        assert_eq!(
            can["readAllAudit"],
            answered(&audit, "sessionAudit"),
            "{case}: {audit}"
        );

        let chain = app
            .gql(Some(&token), "{ auditChain { intact } }", json!({}))
            .await;
        assert_eq!(
            can["verifyAuditChain"],
            answered(&chain, "auditChain"),
            "{case}: {chain}"
        );

        let hooks = app
            .gql(Some(&token), "{ webhookEndpoints { id } }", json!({}))
            .await;
        assert_eq!(
            can["manageWebhooks"],
            answered(&hooks, "webhookEndpoints"),
            "{case}: {hooks}"
        );

        let bulk = app
            .gql(
                Some(&token),
                "mutation { revokeSessions(exceptCurrent: true) }",
                json!({}),
            )
            .await;
        assert_eq!(
            can["revokeSessions"],
            answered(&bulk, "revokeSessions"),
            "{case}: {bulk}"
        );
    }
    let expected = [
        (User, None, [false, false, false, true, false]),
        (Admin, None, [true, true, false, true, false]),
        (Owner, None, [true, true, true, true, true]),
        (Admin, Some(Owner), [false, false, false, false, false]),
    ];
    for (role, by, rights) in expected {
        let token = viewer(&app, role, by).await;
        let body = app.gql(Some(&token), CAN, json!({})).await;
        let can = &body["data"]["viewer"]["can"];
        let got = [
            "listUsers",
            "readAllAudit",
            "verifyAuditChain",
            "revokeSessions",
            "manageWebhooks",
        ]
        .map(|k| can[k].as_bool().unwrap_or_else(|| panic!("{body}")));
        assert_eq!(got, rights, "{role:?} impersonated by {by:?}: {body}");
    }
}

/// `canRevoke` of the session `id` of `owner` (the viewer's own list when
/// `None`), as `token` sees it, and then what `revokeSession` answers.
async fn can_then_revoke(
    app: &TestApp,
    token: &str,
    owner: Option<Uuid>,
    id: Uuid,
) -> (Value, bool) {
    let body = app.gql(Some(token), LIST, json!({ "user": owner })).await;
    let can = body["data"]["sessions"]["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .find(|s| s["id"] == json!(id))
        .unwrap_or_else(|| panic!("session {id} not listed: {body}"))["canRevoke"]
        .clone();
    let revoked = app.gql(Some(token), REVOKE, json!({ "id": id })).await;
    (can, answered(&revoked, "revokeSession"))
}

/// A second, ordinary session of `user`.
async fn other_session(app: &TestApp, user: &TestUser) -> Uuid {
    app.sign_in_as(user, "second-device/1.0").await.1
}

#[tokio::test]
async fn can_revoke_says_what_revoke_session_would_answer() {
    let app = spawn_app().await;
    use Role::*;
    let mut checked = Vec::new();

    // Ordinary sessions: one's own (another and the current one), and the
    // sessions of the accounts an admin or owner may see.
    for role in [User, Admin, Owner] {
        let me = app.create_user(role).await;
        let (token, current) = app.sign_in_as(&me, "test-client/1.0").await;
        let other = other_session(&app, &me).await;
        checked.push((
            format!("{role:?} on another own session"),
            can_then_revoke(&app, &token, None, other).await,
            true,
        ));
        checked.push((
            format!("{role:?} on the current session"),
            can_then_revoke(&app, &token, None, current).await,
            true,
        ));
    }
    for (role, target_role) in [
        (Admin, User),
        (Admin, Admin),
        (Owner, User),
        (Owner, Admin),
        (Owner, Owner),
    ] {
        let me = app.create_user(role).await;
        let token = app.sign_in(&me).await;
        let target = app.create_user(target_role).await;
        let theirs = other_session(&app, &target).await;
        checked.push((
            format!("{role:?} on a {target_role:?}'s session"),
            can_then_revoke(&app, &token, Some(target.id), theirs).await,
            true,
        ));
    }

    // Impersonation sessions, seen by others.
    let owner = app.create_user(Owner).await;
    let owner_token = app.sign_in(&owner).await;
    let admin = app.create_user(Admin).await;
    let admin_token = app.sign_in(&admin).await;
    let other_admin = app.create_user(Admin).await;
    let other_admin_token = app.sign_in(&other_admin).await;
    let target_admin = app.create_user(Admin).await;
    let (_, of_admin) = impersonate(&app, &owner_token, target_admin.id).await;
    checked.push((
        "an admin on an owner's impersonation of an admin".into(),
        can_then_revoke(&app, &other_admin_token, Some(target_admin.id), of_admin).await,
        false,
    ));
    checked.push((
        "the impersonator on it".into(),
        can_then_revoke(&app, &owner_token, Some(target_admin.id), of_admin).await,
        true,
    ));
    let alice = app.create_user(User).await;
    let alice_token = app.sign_in(&alice).await;
    let (_, by_admin) = impersonate(&app, &admin_token, alice.id).await;
    checked.push((
        "an admin on another admin's impersonation of a user".into(),
        can_then_revoke(&app, &other_admin_token, Some(alice.id), by_admin).await,
        true,
    ));
    let (_, by_admin) = impersonate(&app, &admin_token, alice.id).await;
    checked.push((
        "the impersonated user on it".into(),
        can_then_revoke(&app, &alice_token, None, by_admin).await,
        true,
    ));

    // From an impersonation session: itself only.
    let bob = app.create_user(User).await;
    let bobs = other_session(&app, &bob).await;
    let (as_bob, itself) = impersonate(&app, &admin_token, bob.id).await;
    checked.push((
        "an impersonation session on another of its user's sessions".into(),
        can_then_revoke(&app, &as_bob, None, bobs).await,
        false,
    ));
    checked.push((
        "an impersonation session on itself".into(),
        can_then_revoke(&app, &as_bob, None, itself).await,
        true,
    ));

    for (case, (can, revoked), expected) in checked {
        assert_eq!(can, json!(expected), "{case}: canRevoke");
        assert_eq!(revoked, expected, "{case}: revokeSession agrees");
    }
}

#[tokio::test]
async fn can_revoke_is_false_without_a_session() {
    let app = spawn_app().await;
    let owner = app.create_user(Role::Owner).await;
    let body = app
        .gql(
            None,
            "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { session { canRevoke } } }",
            json!({ "e": owner.email, "p": owner.password }),
        )
        .await;
    assert_eq!(
        body["data"]["signIn"]["session"]["canRevoke"], false,
        "{body}"
    );
}
