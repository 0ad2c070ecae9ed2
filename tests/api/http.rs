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
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        (
            "*/*, application/graphql-response+json",
            "application/graphql-response+json",
        ),
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

/// A POST sent as raw HTTP/1.1, so that no `Accept` header is added.
async fn post_without_accept(app: &crate::helpers::TestApp, body: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn a_request_without_accept_is_answered_with_application_json() {
    let app = spawn_app().await;
    let (head, body) = post_without_accept(&app, r#"{"query":"{ __typename }"}"#).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(body.contains("QueryRoot"), "{body}");
    // As legacy JSON clients expect: a document that does not validate is
    // a 200 with the errors.
    let (head, body) = post_without_accept(&app, r#"{"query":"{ nope }"}"#).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(body.contains("BAD_USER_INPUT"), "{body}");
}

#[tokio::test]
async fn with_the_graphql_response_type_a_request_that_cannot_run_has_no_data_entry() {
    let app = spawn_app().await;
    let send = |body: Value, accept: &'static str, token: Option<&'static str>| {
        let mut request = app
            .client
            .post(app.graphql_url())
            .header(header::ACCEPT, accept)
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    const NEW: &str = "application/graphql-response+json";
    for (body, why) in [
        (json!({ "query": "{ viewer { " }), "does not parse"),
        (json!({ "query": "{ noSuchField }" }), "does not validate"),
        (
            json!({ "query": "query($n: Int!) { __typename }", "variables": { "n": "x" } }),
            "bad variables",
        ),
    ] {
        let (status, answer) = send(body.clone(), NEW, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
        assert!(
            answer.get("data").is_none(),
            "{why}: no data entry: {answer}"
        );
        assert!(answer["errors"].is_array(), "{why}");
        let (status, answer) = send(json!([body, { "query": "{ __typename }" }]), NEW, None).await;
        assert_eq!(status, StatusCode::OK, "{why}, in a batch");
        assert!(
            answer[0].get("data").is_none(),
            "{why}, batch entry: {answer}"
        );
        assert_eq!(
            answer[1]["data"]["__typename"], "QueryRoot",
            "the other entry ran"
        );
    }
    let (status, answer) = send(json!({ "query": "{ __typename }" }), NEW, Some("smt_nope")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer.get("data").is_none(),
        "refused before execution: {answer}"
    );
    // A field error is not a request error: data stays, as null or partial.
    let (status, answer) = send(json!({ "query": "{ viewer { user { id } } }" }), NEW, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        answer.get("data").is_some(),
        "a field error keeps data: {answer}"
    );
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
