//! `graphql::fast` (issue 21): the documents it answers without the
//! executor get the executor's bytes, and only once the executor has
//! accepted them; the token check in front of them is the same.
//!
//! How both paths are compared: a document's first request runs on the
//! executor (its plan is used only after it has passed the full validation
//! there); the second request of the same text takes the plan. The text is
//! made unique per caller (a trailing comment), so each caller's answer is
//! compared on both paths. The counter of fast answers says which path
//! answered.

use std::sync::atomic::Ordering;

use entity::user::Role;
use serde_json::json;

use crate::helpers::{TestApp, assert_error_code, spawn_app, spawn_app_with, spawn_replica};

/// The benchmark's W1 (the settings page) and W4 (an application's token
/// check), as bench/run.sh sends them.
const W1: &str = "query SettingsSessions { sessions { count activeCount sessions { id sessionToken device ipAddress userAgent createdAt lastActiveAt expires isCurrent isActive impersonationReason impersonator { name email } } } }";
const W4: &str = "query { viewer { user { id email name role } session { id expires } } }";

/// Every field a plan covers, in orders other than the schema's.
const DOCUMENTS: &[&str] = &[
    W1,
    W4,
    "{ viewer { session { isCurrent expires id userAgent } user { role name } } }",
    "query Everything { viewer { user { id email name role createdAt externalId } session { id sessionToken userId createdAt expires lastActiveAt revokedAt ipAddress userAgent impersonationReason endReason endedAt isExpired isActive isCurrent device } } }",
    "{ sessions { sessions { device id } activeCount } }",
    "{ sessions { count } }",
    "{ sessions { sessions { id sessionToken userId createdAt expires lastActiveAt revokedAt ipAddress userAgent impersonationReason endReason endedAt isExpired isActive isCurrent device impersonator { id email name role createdAt externalId } } count activeCount } }",
    "{\n  viewer {\n    user { email }\n  }\n}",
];

/// Status, content type and body of a POST /graphql.
async fn raw(app: &TestApp, token: &str, query: &str, accept: &str) -> (u16, String, Vec<u8>) {
    let response = app
        .client
        .post(app.graphql_url())
        .bearer_auth(token)
        .header("accept", accept)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

fn fast_answers(app: &TestApp) -> u64 {
    app.state
        .metrics
        .graphql_fast_answers
        .load(Ordering::SeqCst)
}

/// Runs `query` as the executor and then as the plan would (a text of its
/// own for this `tag`), asserts the same answer, and returns whether the
/// second request took the plan.
async fn both_ways(app: &TestApp, token: &str, query: &str, tag: &str, accept: &str) -> bool {
    let query = format!("{query} # {tag}");
    let before = fast_answers(app);
    let executor = raw(app, token, &query, accept).await;
    assert_eq!(
        fast_answers(app),
        before,
        "a first request runs on the executor"
    );
    let second = raw(app, token, &query, accept).await;
    assert_eq!(
        String::from_utf8_lossy(&second.2),
        String::from_utf8_lossy(&executor.2),
        "{tag}: {query}"
    );
    assert_eq!(second, executor, "{tag}: status and content type too");
    let body: serde_json::Value = serde_json::from_slice(&executor.2).unwrap();
    assert!(body.get("errors").is_none(), "{tag}: {body}");
    fast_answers(app) == before + 1
}

#[tokio::test]
async fn every_planned_document_answers_the_executors_bytes_for_every_kind_of_caller() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let admin = app.create_user(Role::Admin).await;
    // Several sessions with different clients (one unknown, one with
    // characters JSON escapes), so lists and device labels differ.
    let (token, _) = app
        .sign_in_as(
            &user,
            "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
        )
        .await;
    app.sign_in_as(&user, "curl/8.5.0").await;
    app.sign_in_as(&user, "odd \"client\" \\ with\ta tab").await;
    let admin_token = app.sign_in(&admin).await;
    // A user with no other session than this one.
    let lonely = app.create_user(Role::User).await;
    let lonely_token = app.sign_in(&lonely).await;

    let callers = [
        ("user", token.as_str()),
        ("admin", admin_token.as_str()),
        ("lonely", lonely_token.as_str()),
    ];
    for (i, query) in DOCUMENTS.iter().enumerate() {
        for (who, token) in callers {
            for accept in ["application/json", "application/graphql-response+json"] {
                let tag = format!("{who} {i} {accept}");
                assert!(
                    both_ways(&app, token, query, &tag, accept).await,
                    "{tag}: the second request takes the plan"
                );
            }
        }
    }
}

#[tokio::test]
async fn impersonation_sessions_answer_alike_and_give_up_where_the_plan_needs_the_loader() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let admin = app.create_user(Role::Admin).await;
    let user_token = app.sign_in(&user).await;
    let admin_token = app.sign_in(&admin).await;
    let started = app
        .gql(
            Some(&admin_token),
            "mutation($id: UUID!) { startImpersonation(userId: $id, reason: \"support ticket 7\") { token } }",
            json!({ "id": user.id }),
        )
        .await;
    let impersonation = started["data"]["startImpersonation"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("impersonation started: {started}"))
        .to_owned();
    let accept = "application/json";

    // The viewer of an impersonation session (no `impersonator` asked).
    for (i, query) in DOCUMENTS.iter().enumerate() {
        if query.contains("viewer") {
            assert!(
                both_ways(&app, &impersonation, query, &format!("viewer {i}"), accept).await,
                "the viewer of an impersonation session is planned"
            );
        }
    }
    // Lists holding the impersonation session: `impersonator` is an
    // account only the executor loads; the plan gives up, the executor
    // answers, with the same bytes as ever.
    for (who, token) in [("user", &user_token), ("impersonation", &impersonation)] {
        let took_plan = both_ways(&app, token, W1, &format!("list of {who}"), accept).await;
        assert!(
            !took_plan,
            "{who}: the executor answers lists with an impersonator"
        );
        let body = app.gql(Some(token), W1, json!({})).await;
        let listed = body["data"]["sessions"]["sessions"].as_array().unwrap();
        assert!(
            listed
                .iter()
                .any(|s| s["impersonator"]["email"] == admin.email.as_str()),
            "{who}: {body}"
        );
    }
    // Without `impersonator` in the document, the plan answers the list.
    let query =
        "{ sessions { count sessions { id impersonationReason ipAddress userAgent isCurrent } } }";
    for (who, token) in [("user", &user_token), ("impersonation", &impersonation)] {
        assert!(both_ways(&app, token, query, &format!("plain list of {who}"), accept).await);
    }
}

#[tokio::test]
async fn a_planned_document_refuses_a_session_revoked_on_this_or_another_replica() {
    let app = spawn_app().await;
    let replica = spawn_replica(&app, |_| {}).await;
    let user = app.create_user(Role::User).await;
    for (name, revoking) in [("same server", &app), ("other replica", &replica)] {
        let token = app.sign_in(&user).await;
        let other = app.sign_in(&user).await;
        for query in [W1, W4] {
            let before = fast_answers(&app);
            for _ in 0..2 {
                let body = app.gql(Some(&token), query, json!({})).await;
                assert!(body.get("errors").is_none(), "{name}: {body}");
            }
            assert!(fast_answers(&app) > before, "{name}: the plan answered");
        }
        let id =
            app.gql(Some(&token), W4, json!({})).await["data"]["viewer"]["session"]["id"].clone();
        let revoked = revoking
            .gql(
                Some(&other),
                "mutation($id: UUID!) { revokeSession(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert!(revoked.get("errors").is_none(), "{name}: {revoked}");
        for query in [W1, W4] {
            let before = fast_answers(&app);
            let body = app.gql(Some(&token), query, json!({})).await;
            assert_error_code(&body, "UNAUTHENTICATED", name);
            assert_eq!(
                fast_answers(&app),
                before,
                "{name}: refused before any plan"
            );
        }
        // The other session still gets the planned answer.
        let body = app.gql(Some(&other), W4, json!({})).await;
        assert!(body.get("errors").is_none(), "{name}: {body}");
    }
}

#[tokio::test]
async fn a_document_the_executor_refuses_is_never_answered_by_its_plan() {
    // W1 nests four levels deep: over this limit, which the configuration
    // check would not allow but the executor applies all the same.
    let app = spawn_app_with(|config| config.max_query_depth = 3).await;
    let user = app.create_user(Role::User).await;
    let token = app.sign_in(&user).await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(raw(&app, &token, W1, "application/json").await);
    }
    let body: serde_json::Value = serde_json::from_slice(&answers[0].2).unwrap();
    assert_error_code(&body, "BAD_USER_INPUT", "nested too deep");
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "refused every time"
    );
    assert_eq!(fast_answers(&app), 0);
    // W4 (three levels) passes and is then planned.
    for _ in 0..2 {
        let body = app.gql(Some(&token), W4, json!({})).await;
        assert!(body.get("errors").is_none(), "{body}");
    }
    assert_eq!(fast_answers(&app), 1);
}

#[tokio::test]
async fn batches_api_keys_and_anonymous_requests_stay_on_the_executor() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let token = app.sign_in(&user).await;
    // Validated once, so that the plan would be used if allowed.
    for _ in 0..2 {
        app.gql(Some(&token), W4, json!({})).await;
    }
    let before = fast_answers(&app);
    let batch: serde_json::Value = app
        .client
        .post(app.graphql_url())
        .bearer_auth(&token)
        .json(&json!([{ "query": W4 }, { "query": W4 }]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(batch.as_array().map(Vec::len), Some(2), "{batch}");
    assert!(
        batch[0]["data"]["viewer"]["user"]["email"] == user.email.as_str(),
        "{batch}"
    );
    let anonymous = app.gql(None, W4, json!({})).await;
    assert_error_code(&anonymous, "UNAUTHENTICATED", "no token");
    assert_eq!(fast_answers(&app), before, "none of these took a plan");
}
