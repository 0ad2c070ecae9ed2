//! Limits that are checked before an insert hold for concurrent requests
//! too, in one process and across replicas: the check and the insert are
//! one step (`WriteTxn::exclusive` on PostgreSQL, the write lock on
//! SQLite), so fifty at once cannot all see room for one more.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::{
    api_keys::owner_token,
    helpers::{TestApp, assert_error_code, spawn_app, spawn_app_with, spawn_replica},
    ssf::{call, ssf_key},
};

const CREATE_KEY: &str =
    "mutation($n: String!) { createApiKey(name: $n, scopes: [SESSIONS_CHECK]) { apiKey { id } } }";
const CREATE_ENDPOINT: &str =
    "mutation($url: String!) { createWebhookEndpoint(url: $url) { endpoint { id } } }";

/// Sends `variables` at once, half through `app` and half through
/// `replica`, and returns the answers.
async fn at_once(
    app: &TestApp,
    replica: &TestApp,
    token: &str,
    query: &str,
    variables: Vec<Value>,
) -> Vec<Value> {
    join_all(variables.into_iter().enumerate().map(|(i, variables)| {
        let server = if i.is_multiple_of(2) { app } else { replica };
        server.gql(Some(token), query, variables)
    }))
    .await
}

fn created(answers: &[Value], field: &str) -> usize {
    answers
        .iter()
        .filter(|a| a["data"][field].is_object())
        .count()
}

#[tokio::test]
async fn concurrent_api_keys_never_share_a_live_name_or_pass_the_cap() {
    let app = spawn_app().await;
    let replica = spawn_replica(&app, |_| {}).await;
    let (owner, _) = owner_token(&app).await;

    let same_name = vec![json!({ "n": "checker" }); 12];
    let answers = at_once(&app, &replica, &owner, CREATE_KEY, same_name).await;
    assert_eq!(created(&answers, "createApiKey"), 1, "{answers:#?}");
    for answer in answers.iter().filter(|a| a["errors"].is_array()) {
        assert_error_code(answer, "BAD_USER_INPUT", "the name is taken");
    }

    let cap = session_manager::service::api_key::MAX_LIVE_KEYS as usize;
    for i in 1..cap - 1 {
        let body = app
            .gql(Some(&owner), CREATE_KEY, json!({ "n": format!("key {i}") }))
            .await;
        assert!(body["data"]["createApiKey"].is_object(), "{body}");
    }
    // One place left, twelve asking for it at once.
    let last = (0..12)
        .map(|i| json!({ "n": format!("last {i}") }))
        .collect();
    let answers = at_once(&app, &replica, &owner, CREATE_KEY, last).await;
    assert_eq!(created(&answers, "createApiKey"), 1, "{answers:#?}");
    for answer in answers.iter().filter(|a| a["errors"].is_array()) {
        assert_error_code(answer, "BAD_USER_INPUT", "the cap is reached");
    }
    let listed = app.gql(Some(&owner), "{ apiKeys { id } }", json!({})).await;
    assert_eq!(
        listed["data"]["apiKeys"].as_array().map(Vec::len),
        Some(cap),
        "{listed}"
    );
}

#[tokio::test]
async fn concurrent_webhook_endpoints_never_pass_the_cap() {
    let app = spawn_app_with(|config| config.webhook_allow_private = true).await;
    let replica = spawn_replica(&app, |config| config.webhook_allow_private = true).await;
    let (owner, _) = owner_token(&app).await;
    let url = |i: usize| json!({ "url": format!("http://127.0.0.1:9/hooks/{i}") });

    let cap = session_manager::service::webhook::MAX_ENDPOINTS as usize;
    for i in 0..cap - 1 {
        let body = app.gql(Some(&owner), CREATE_ENDPOINT, url(i)).await;
        assert!(body["data"]["createWebhookEndpoint"].is_object(), "{body}");
    }
    let last = (cap..cap + 12).map(url).collect();
    let answers = at_once(&app, &replica, &owner, CREATE_ENDPOINT, last).await;
    assert_eq!(
        created(&answers, "createWebhookEndpoint"),
        1,
        "{answers:#?}"
    );
    for answer in answers.iter().filter(|a| a["errors"].is_array()) {
        assert_error_code(answer, "BAD_USER_INPUT", "the cap is reached");
    }
    let listed = app
        .gql(Some(&owner), "{ webhookEndpoints { id } }", json!({}))
        .await;
    assert_eq!(
        listed["data"]["webhookEndpoints"].as_array().map(Vec::len),
        Some(cap),
        "{listed}"
    );
}

#[tokio::test]
async fn concurrent_ssf_streams_never_share_an_audience_or_pass_the_cap() {
    let app = spawn_app().await;
    let replica = spawn_replica(&app, |_| {}).await;
    let key = ssf_key(&app, &["SSF_MANAGE"]).await;
    let poll = |aud: String| json!({ "aud": aud, "delivery": { "method": "urn:ietf:rfc:8936" } });
    let create = |i: usize, body: Value| {
        let server = if i.is_multiple_of(2) { &app } else { &replica };
        call(
            server,
            reqwest::Method::POST,
            "/ssf/stream",
            Some(&key),
            Some(body),
        )
    };

    let same = join_all((0..12).map(|i| create(i, poll("https://one.test".into())))).await;
    let statuses: Vec<u16> = same.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{same:?}"
    );
    assert!(statuses.iter().all(|s| [201, 409].contains(s)), "{same:?}");

    let cap = session_manager::service::ssf::stream::MAX_STREAMS as usize;
    for i in 1..cap - 1 {
        let (status, body) = create(0, poll(format!("https://r{i}.test"))).await;
        assert_eq!(status, 201, "{body}");
    }
    let last = join_all((0..12).map(|i| create(i, poll(format!("https://last{i}.test"))))).await;
    let statuses: Vec<u16> = last.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{last:?}"
    );
    assert!(statuses.iter().all(|s| [201, 400].contains(s)), "{last:?}");
    let (status, listed) = call(&app, reqwest::Method::GET, "/ssf/stream", Some(&key), None).await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(cap), "{listed}");
}
