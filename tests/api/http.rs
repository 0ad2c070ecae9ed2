//! The HTTP surface: GraphiQL, health, content types and body limits.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use entity::user::Role;

use crate::helpers::{assert_error_code, spawn_app};

#[tokio::test]
async fn health_check_answers_ok() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn graphiql_is_served_from_the_binary_with_a_strict_policy() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.graphql_url())
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("script-src 'self' 'unsafe-inline'"),
        "{csp}"
    );
    let page = response.text().await.unwrap();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page must not load anything from elsewhere"
    );
    assert!(!page.contains("<script>"), "no inline script");

    // Every script and stylesheet the page names is served here.
    let assets: Vec<&str> = page
        .split(['"', '\''])
        .filter(|part| part.starts_with("/graphiql/"))
        .collect();
    assert!(
        assets.len() >= 5,
        "expected the page to reference its assets: {assets:?}"
    );
    for asset in assets {
        let response = app
            .client
            .get(format!("{}{asset}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let expected = if asset.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(
            content_type.starts_with(expected),
            "{asset}: {content_type}"
        );
        assert!(
            !response.bytes().await.unwrap().is_empty(),
            "{asset} is empty"
        );
    }
    let missing = app
        .client
        .get(format!("{}/graphiql/nope.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn get_queries_are_answered_as_json() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}?query=%7B__typename%7D", app.graphql_url()))
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "QueryRoot");
}

#[tokio::test]
async fn the_response_type_follows_the_accept_header() {
    let app = spawn_app().await;
    for (accept, expected) in [
        ("application/json", "application/json"),
        (
            "application/graphql-response+json, application/json;q=0.9",
            "application/graphql-response+json",
        ),
        ("*/*", "application/graphql-response+json"),
    ] {
        let response = app
            .client
            .post(app.graphql_url())
            .header(header::ACCEPT, accept)
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .unwrap();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with(expected),
            "Accept {accept}: got {content_type}"
        );
    }
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(2 * 1024 * 1024);
    let response = app
        .client
        .post(app.graphql_url())
        .header(header::CONTENT_TYPE, "application/json")
        .body(json!({ "query": "{ __typename }", "variables": { "pad": padding } }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The server keeps serving.
    let body = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(body["data"]["__typename"], "QueryRoot");
}

#[tokio::test]
async fn invalid_documents_get_coded_errors() {
    let app = spawn_app().await;
    let cases = [
        ("{ viewer { ", "syntax error"),
        ("{ noSuchField }", "unknown field"),
        (
            "query($id: Int!) { __typename }",
            "unused variable without value",
        ),
        (
            "mutation { signIn(email: 1, password: 2) { token } }",
            "wrong argument types",
        ),
    ];
    for (query, why) in cases {
        let body = app.gql(None, query, json!({})).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{why}: {body}"
        );
    }
}

#[tokio::test]
async fn documents_seen_before_are_checked_as_strictly_as_new_ones() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let token = app.sign_in(&user).await;
    // A document that fails validation fails every time, however often it
    // is sent (a document is only trusted once it has passed).
    for round in 0..3 {
        for query in ["{ noSuchField }", "{ viewer { user { id } } ...Missing }"] {
            let body = app.gql(Some(&token), query, json!({})).await;
            assert_eq!(body["data"], Value::Null, "round {round}, {query}: {body}");
            assert_error_code(&body, "BAD_USER_INPUT", query);
        }
    }
    // One that passed gives the same answer again.
    let query = "{ viewer { user { id } } }";
    let first = app.gql(Some(&token), query, json!({})).await;
    assert_eq!(first["data"]["viewer"]["user"]["id"], user.id.to_string());
    for _ in 0..3 {
        assert_eq!(app.gql(Some(&token), query, json!({})).await, first);
    }
    // With variables, the values sent are checked every time.
    let query = "query($all: Boolean!) { sessions(includeExpired: $all) { count } }";
    let ok = app.gql(Some(&token), query, json!({ "all": true })).await;
    assert_eq!(ok["data"]["sessions"]["count"], 1, "{ok}");
    let bad = app.gql(Some(&token), query, json!({ "all": "yes" })).await;
    assert_eq!(bad["data"], Value::Null, "{bad}");
    assert_error_code(&bad, "BAD_USER_INPUT", "a string for a Boolean");
}
