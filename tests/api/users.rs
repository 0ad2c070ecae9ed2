//! Finding users (`users(search, limit, offset)`): admins and owners only,
//! case-insensitive substring search on email and name, paged by email.

use entity::{audit_event::AuditStatus, user::Role};
use serde_json::{Value, json};
use session_manager::service::user::{NewUser, create_user};

use crate::helpers::{TestApp, TestUser, assert_error_code, error_code, spawn_app};

const USERS: &str = "query($search: String, $limit: Int! = 20, $offset: Int! = 0) { users(search: $search, limit: $limit, offset: $offset) { users { id email name role createdAt } pagination { total limit offset hasMore } } }";

async fn users(app: &TestApp, token: &str, variables: Value) -> Value {
    app.gql(Some(token), USERS, variables).await
}

fn emails(body: &Value) -> Vec<String> {
    body["data"]["users"]["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no user page: {body}"))
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

/// An account with a chosen email and name.
async fn named(app: &TestApp, email: &str, name: &str) {
    create_user(
        &app.state.db,
        &app.state.hasher,
        NewUser {
            email: email.into(),
            name: name.into(),
            role: Role::User,
            password: "a-long-enough-password".into(),
        },
    )
    .await
    .expect("user created");
}

async fn admin_token(app: &TestApp) -> (TestUser, String) {
    let admin = app.create_user(Role::Admin).await;
    let token = app.sign_in(&admin).await;
    (admin, token)
}

#[tokio::test]
async fn admins_and_owners_can_find_users() {
    let app = spawn_app().await;
    let (_, admin) = admin_token(&app).await;
    let owner = app.create_user(Role::Owner).await;
    let owner = app.sign_in(&owner).await;
    for (token, who) in [(&admin, "admin"), (&owner, "owner")] {
        let body = users(&app, token, json!({})).await;
        assert!(body["errors"].is_null(), "{who}: {body}");
        assert_eq!(
            body["data"]["users"]["pagination"]["total"], 2,
            "{who} sees both accounts: {body}"
        );
    }
}

#[tokio::test]
async fn a_user_cannot_list_users_and_the_refusal_is_audited() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;

    let body = users(&app, &token, json!({ "search": "a" })).await;

    assert_error_code(&body, "FORBIDDEN", "a user listing users");
    assert!(body["data"].is_null(), "nothing is listed: {body}");
    let denied = app.events_of_type("access.denied").await;
    let event = denied.last().expect("the refusal is audited");
    assert_eq!(event.status, AuditStatus::Failed);
    assert_eq!(event.actor_id, Some(alice.id));
    assert_eq!(event.metadata["action"], "users.list");
}

#[tokio::test]
async fn an_impersonation_session_cannot_list_users_even_when_opened_by_an_admin() {
    let app = spawn_app().await;
    let (_, admin) = admin_token(&app).await;
    let alice = app.create_user(Role::User).await;
    let opened = app
        .gql(
            Some(&admin),
            "mutation($id: UUID!) { startImpersonation(userId: $id, reason: \"ticket 42\") { token } }",
            json!({ "id": alice.id }),
        )
        .await;
    let as_alice = opened["data"]["startImpersonation"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("impersonation started: {opened}"));

    let body = users(&app, as_alice, json!({})).await;

    assert_error_code(&body, "FORBIDDEN", "impersonation session listing users");
}

#[tokio::test]
async fn listing_users_needs_a_signed_in_caller() {
    let app = spawn_app().await;
    let body = app.gql(None, USERS, json!({})).await;
    assert_error_code(&body, "UNAUTHENTICATED", "anonymous");
}

#[tokio::test]
async fn search_matches_email_or_name_in_any_case_ordered_by_email() {
    let app = spawn_app().await;
    let (_, admin) = admin_token(&app).await;
    named(&app, "zed@example.com", "Alice Zed").await;
    named(&app, "alice@example.com", "Ally").await;
    named(&app, "bob@example.org", "Bob Malice").await;
    named(&app, "carol@example.com", "Carol").await;

    for (search, expected, why) in [
        (
            "ALICE",
            vec!["alice@example.com", "bob@example.org", "zed@example.com"],
            "email or name, any case, by email",
        ),
        ("example.org", vec!["bob@example.org"], "part of an email"),
        ("  carol  ", vec!["carol@example.com"], "trimmed"),
        ("nobody", vec![], "no match"),
    ] {
        let body = users(&app, &admin, json!({ "search": search })).await;
        assert_eq!(emails(&body), expected, "{why} ({search:?}): {body}");
        assert_eq!(
            body["data"]["users"]["pagination"]["total"],
            expected.len(),
            "{why}: total counts the matches"
        );
    }
    let everyone = users(&app, &admin, json!({ "search": "" })).await;
    assert_eq!(
        everyone["data"]["users"]["pagination"]["total"], 5,
        "an empty search lists everyone: {everyone}"
    );
}

#[tokio::test]
async fn like_wildcards_in_a_search_are_taken_literally() {
    let app = spawn_app().await;
    let (_, admin) = admin_token(&app).await;
    named(&app, "percent@example.com", "100% Real").await;
    named(&app, "plain@example.com", "Plain").await;

    for (search, expected, why) in [
        ("%", vec!["percent@example.com"], "% is a character"),
        ("_", vec![], "_ is a character"),
        ("\\", vec![], "a backslash is a character"),
    ] {
        let body = users(&app, &admin, json!({ "search": search })).await;
        assert_eq!(emails(&body), expected, "{why}: {body}");
    }
}

#[tokio::test]
async fn paging_walks_the_result_by_email_without_overlap() {
    let app = spawn_app().await;
    let (_, admin) = admin_token(&app).await;
    for i in 0..5 {
        named(&app, &format!("page{i}@example.com"), &format!("Paged {i}")).await;
    }

    let mut seen = Vec::new();
    for (offset, expected_more) in [(0, true), (2, true), (4, false)] {
        let body = users(
            &app,
            &admin,
            json!({ "search": "paged", "limit": 2, "offset": offset }),
        )
        .await;
        let pagination = &body["data"]["users"]["pagination"];
        assert_eq!(pagination["total"], 5, "{body}");
        assert_eq!(pagination["limit"], 2);
        assert_eq!(pagination["offset"], offset);
        assert_eq!(pagination["hasMore"], expected_more, "offset {offset}");
        seen.extend(emails(&body));
    }
    let expected: Vec<String> = (0..5).map(|i| format!("page{i}@example.com")).collect();
    assert_eq!(seen, expected, "every match once, in email order");

    let past = users(
        &app,
        &admin,
        json!({ "search": "paged", "limit": 2, "offset": 10 }),
    )
    .await;
    assert!(emails(&past).is_empty(), "past the end: {past}");
    assert_eq!(past["data"]["users"]["pagination"]["hasMore"], false);
}

#[tokio::test]
async fn out_of_bounds_arguments_are_bad_user_input_naming_the_bound() {
    let app = spawn_app().await;
    let (_, admin) = admin_token(&app).await;
    let cases = [
        (
            json!({ "limit": 0 }),
            "limit",
            "limit must be between 1 and 100",
            "zero limit",
        ),
        (
            json!({ "limit": 101 }),
            "limit",
            "limit must be between 1 and 100",
            "limit over 100",
        ),
        (
            json!({ "limit": -5 }),
            "limit",
            "limit must be between 1 and 100",
            "negative limit",
        ),
        (
            json!({ "offset": -1 }),
            "offset",
            "offset must be between 0 and 1000000",
            "negative offset",
        ),
        (
            json!({ "offset": 1_000_001 }),
            "offset",
            "offset must be between 0 and 1000000",
            "offset too deep",
        ),
        (
            json!({ "search": "x".repeat(321) }),
            "search",
            "search must be at most 320 printable characters",
            "search too long",
        ),
        (
            json!({ "search": "a\u{0}b" }),
            "search",
            "search must be at most 320 printable characters",
            "control character in search",
        ),
    ];
    for (variables, field, message, why) in cases {
        let body = users(&app, &admin, variables).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{why}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{why}");
        assert_eq!(body["errors"][0]["message"], message, "{why}");
    }
    let largest = users(&app, &admin, json!({ "limit": 100, "offset": 1_000_000 })).await;
    assert!(
        largest["errors"].is_null(),
        "the bounds themselves are allowed: {largest}"
    );
}
