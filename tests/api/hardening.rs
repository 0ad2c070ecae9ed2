//! Hostile and malformed input, GraphQL-over-HTTP conformance, limits,
//! throttling and operations endpoints.

use entity::{
    audit_event::AuditStatus, session, sign_in_failure, sign_in_throttle_key, user::Role,
};
use reqwest::{StatusCode, header};
use sea_orm::{ConnectionTrait, EntityTrait, Statement, sea_query::Expr};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error_code, spawn_app, spawn_app_with, spawn_replica};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const SIGN_IN: &str =
    "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";

async fn post_raw(
    app: &TestApp,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: String,
) -> reqwest::Response {
    let mut request = app.client.post(app.graphql_url()).body(body);
    if let Some(ct) = content_type {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    request.send().await.unwrap()
}

fn content_type(response: &reqwest::Response) -> String {
    response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> Value {
    app.gql(None, SIGN_IN, json!({ "e": email, "p": password }))
        .await
}

#[tokio::test]
async fn status_codes_follow_the_media_type() {
    let app = spawn_app().await;
    let invalid = json!({ "query": "{ noSuchField }" }).to_string();
    let cases = [
        (
            Some(GRAPHQL_RESPONSE),
            StatusCode::BAD_REQUEST,
            GRAPHQL_RESPONSE,
            "validation error, new media type: 4xx",
        ),
        (
            Some("*/*"),
            StatusCode::OK,
            "application/json",
            "anything acceptable means legacy JSON: 200",
        ),
        (
            Some("application/json"),
            StatusCode::OK,
            "application/json",
            "validation error, legacy JSON: 200",
        ),
    ];
    for (accept, status, media, why) in cases {
        let response = post_raw(&app, Some("application/json"), accept, invalid.clone()).await;
        assert_eq!(response.status(), status, "{why}");
        assert!(
            content_type(&response).starts_with(media),
            "{why}: {}",
            content_type(&response)
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{why}"
        );
    }
    let unparseable = json!({ "query": "{ viewer { " }).to_string();
    let response = post_raw(
        &app,
        Some("application/json"),
        Some(GRAPHQL_RESPONSE),
        unparseable,
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "unparseable document"
    );

    // A field error is still a 200 with data.
    let ok = post_raw(
        &app,
        Some("application/json"),
        Some(GRAPHQL_RESPONSE),
        json!({ "query": "{ __typename }" }).to_string(),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()[header::CACHE_CONTROL], "no-store");

    let response = post_raw(
        &app,
        Some("application/json"),
        Some("text/html"),
        json!({ "query": "{ __typename }" }).to_string(),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::NOT_ACCEPTABLE,
        "nothing acceptable"
    );
}

#[tokio::test]
async fn bad_tokens_are_401_with_the_new_media_type_and_200_with_legacy_json() {
    let app = spawn_app().await;
    let body = json!({ "query": "{ __typename }" }).to_string();
    let response = app
        .client
        .post(app.graphql_url())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, GRAPHQL_RESPONSE)
        .header(header::AUTHORIZATION, "Bearer nope")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    let json_only = app
        .client
        .post(app.graphql_url())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, "Bearer nope")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(json_only.status(), StatusCode::OK);
    let value: Value = json_only.json().await.unwrap();
    assert_error_code(&value, "UNAUTHENTICATED", "legacy JSON");
}

#[tokio::test]
async fn only_json_bodies_are_accepted() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let body = json!({ "query": SIGN_IN, "variables": { "e": alice.email, "p": alice.password } })
        .to_string();
    for (content_type, why) in [
        (Some("text/plain"), "text/plain: the CSRF hole"),
        (Some("application/x-www-form-urlencoded"), "form post"),
        (Some("multipart/form-data; boundary=x"), "multipart"),
        (None, "no content type"),
        (Some("application/graphql"), "bare document"),
    ] {
        let response = post_raw(&app, content_type, None, body.clone()).await;
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{why}"
        );
        let value: Value = response.json().await.unwrap();
        assert_error_code(&value, "BAD_USER_INPUT", why);
    }
    assert!(app.sessions().await.is_empty(), "nothing ran");
    let response = post_raw(&app, Some("application/json; charset=utf-8"), None, body).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "JSON with a charset is fine"
    );
}

#[tokio::test]
async fn malformed_json_bodies_get_a_coded_400() {
    let app = spawn_app().await;
    for (body, why) in [
        ("{", "truncated"),
        ("not json", "not JSON"),
        ("[]", "empty batch"),
        ("42", "a number"),
        ("{\"query\": 42}", "query of the wrong type"),
        ("{\"variables\": {}}", "no query"),
        ("\u{feff}{}", "BOM and nothing"),
    ] {
        let response = post_raw(
            &app,
            Some("application/json"),
            Some(GRAPHQL_RESPONSE),
            body.to_owned(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{why}");
        let value: Value = response.json().await.unwrap();
        assert_error_code(&value, "BAD_USER_INPUT", why);
    }
    let body = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(
        body["data"]["__typename"], "QueryRoot",
        "the server keeps serving"
    );
}

#[tokio::test]
async fn mutations_over_get_are_refused_with_405() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let query = format!(
        "mutation {{ signIn(email: \"{}\", password: \"{}\") {{ token }} }}",
        alice.email, alice.password
    );
    let response = app
        .client
        .get(app.graphql_url())
        .query(&[("query", query.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[header::ALLOW], "POST");
    let value: Value = response.json().await.unwrap();
    assert_error_code(&value, "BAD_USER_INPUT", "mutation over GET");
    assert!(app.sessions().await.is_empty(), "the mutation did not run");

    // Named operations: the selected one decides.
    let doc = "query Q { __typename } mutation M { signOut }";
    let response = app
        .client
        .get(app.graphql_url())
        .query(&[("query", doc), ("operationName", "M")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = app
        .client
        .get(app.graphql_url())
        .query(&[("query", doc), ("operationName", "Q")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let response = app
        .client
        .get(app.graphql_url())
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "GET without a query"
    );
    let response = app
        .client
        .get(app.graphql_url())
        .query(&[
            ("query", "query($n: Int) { __typename }"),
            ("variables", "{not json"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "malformed variables"
    );
    let response = app
        .client
        .get(app.graphql_url())
        .query(&[
            ("query", "query($n: String!) { __type(name: $n) { name } }"),
            ("variables", "{\"n\": \"Session\"}"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "variables over GET");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["__type"]["name"], "Session");
}

#[tokio::test]
async fn batches_are_capped_and_limited_as_a_whole() {
    let app = spawn_app().await;
    let op = json!({ "query": "{ __typename }" });
    let two = post_raw(
        &app,
        Some("application/json"),
        None,
        json!([op, op]).to_string(),
    )
    .await;
    assert_eq!(two.status(), StatusCode::OK);
    let body: Value = two.json().await.unwrap();
    assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(body[1]["data"]["__typename"], "QueryRoot");

    let eleven = post_raw(
        &app,
        Some("application/json"),
        None,
        Value::Array(vec![op.clone(); 11]).to_string(),
    )
    .await;
    assert_eq!(eleven.status(), StatusCode::BAD_REQUEST);
    let body: Value = eleven.json().await.unwrap();
    assert_error_code(&body, "BAD_USER_INPUT", "11 > MAX_BATCH");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("MAX_BATCH")
    );

    // Each part is small, the batch as a whole is not.
    let aliases = (0..60)
        .map(|i| format!("a{i}: __typename"))
        .collect::<Vec<_>>()
        .join(" ");
    let part = json!({ "query": format!("{{ {aliases} }}") });
    let heavy = post_raw(
        &app,
        Some("application/json"),
        None,
        Value::Array(vec![part.clone(); 10]).to_string(),
    )
    .await;
    assert_eq!(
        heavy.status(),
        StatusCode::BAD_REQUEST,
        "600 fields in one batch"
    );
    let light = post_raw(
        &app,
        Some("application/json"),
        None,
        Value::Array(vec![part; 5]).to_string(),
    )
    .await;
    assert_eq!(light.status(), StatusCode::OK, "300 fields");
}

#[tokio::test]
async fn over_costly_documents_are_refused_with_a_code() {
    let app = spawn_app().await;
    let aliases = (0..5_000)
        .map(|i| format!("a{i}: __typename"))
        .collect::<Vec<_>>()
        .join(" ");
    let nested_fragments = "{ ...A } fragment A on QueryRoot { ...B ...B ...B ...B ...B ...B ...B ...B } \
        fragment B on QueryRoot { ...C ...C ...C ...C ...C ...C ...C ...C } \
        fragment C on QueryRoot { __typename a: __typename b: __typename c: __typename d: __typename e: __typename f: __typename g: __typename h: __typename }";
    let too_deep = format!(
        "{{ {}__typename{} }}",
        "__schema { types { fields { type { ofType { ".repeat(4),
        " } } } } }".repeat(4)
    );
    let directives = format!("{{ __typename {} }}", "@skip(if: false) ".repeat(20));
    let cases = [
        (format!("{{ {aliases} }}"), "5000 aliased __typename"),
        (nested_fragments.to_owned(), "fragment fan-out"),
        (too_deep, "nesting deeper than MAX_QUERY_DEPTH"),
        (directives, "directive flood"),
    ];
    // The second time, a short document comes from the parsed-document
    // cache with its field count: it must be refused all the same.
    for attempt in ["first", "again"] {
        for (query, why) in &cases {
            let body = app.gql(None, query, json!({})).await;
            assert_error_code(&body, "BAD_USER_INPUT", &format!("{why} ({attempt})"));
            assert_eq!(body["data"], Value::Null, "{why} ({attempt})");
        }
    }
}

/// The introspection query GraphiQL and code generators send
/// (graphql-js `getIntrospectionQuery()`, all options on).
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    description
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL
  fields(includeDeprecated: true) { name description args(includeDeprecated: true) { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue isDeprecated deprecationReason }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}
"#;

#[tokio::test]
async fn the_standard_introspection_query_passes_the_limits() {
    let app = spawn_app().await;
    let body = app.gql(None, INTROSPECTION, json!({})).await;
    assert!(body["errors"].is_null(), "{}", body["errors"]);
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Session"));
}

#[tokio::test]
async fn production_turns_off_graphiql_introspection_and_suggestions() {
    let app = spawn_app_with(|c| {
        c.production = true;
        c.graphiql = false;
        c.introspection = false;
    })
    .await;
    let body = app.gql(None, INTROSPECTION, json!({})).await;
    assert!(
        body["data"]["__schema"].is_null() || body["errors"].is_array(),
        "no schema in production: {body}"
    );
    let typo = app.gql(None, "{ viewr { user { id } } }", json!({})).await;
    let message = typo["errors"][0]["message"].as_str().unwrap();
    assert!(
        !message.contains("Did you mean"),
        "no suggestions: {message}"
    );
    let page = app
        .client
        .get(app.graphql_url())
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_ne!(page.status(), StatusCode::OK, "no GraphiQL");
    let asset = app
        .client
        .get(format!("{}/graphiql/init.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), StatusCode::NOT_FOUND);

    let dev = spawn_app().await;
    let typo = dev.gql(None, "{ viewr { user { id } } }", json!({})).await;
    assert!(
        typo["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Did you mean"),
        "suggestions in development: {typo}"
    );
}

#[tokio::test]
async fn cors_allows_only_the_listed_origins() {
    let app = spawn_app_with(|c| c.cors_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.graphql_url())
            .header(header::ORIGIN, origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(
        other
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );

    let closed = spawn_app().await;
    let response = closed
        .client
        .post(closed.graphql_url())
        .header(header::ORIGIN, "https://app.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none(),
        "none by default"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.graphql_url())
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-request-id"],
        "trace-me-123",
        "a caller's id is kept"
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    sign_in(&app, &alice.email, "wrong password!").await;
    let named = json!({ "query": "query Me { viewer { user { id } } }", "operationName": "Me" });
    app.client
        .post(app.graphql_url())
        .bearer_auth(&token)
        .json(&named)
        .send()
        .await
        .unwrap();

    for (path, expected) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let response = app
            .client
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap()["status"], expected);
    }
    let text = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "session_manager_graphql_requests_total{operation=\"Me\",outcome=\"ok\"} 1",
        "session_manager_graphql_request_duration_seconds_bucket{le=\"+Inf\"}",
        "session_manager_sign_ins_total{outcome=\"success\"} 1",
        "session_manager_sign_ins_total{outcome=\"failed\"} 1",
        "session_manager_active_sessions 1",
        "session_manager_sessions_revoked_total 0",
    ] {
        assert!(
            text.contains(expected),
            "metrics lack {expected:?}:\n{text}"
        );
    }
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.db().clone().close().await.ok();
    let response = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "alive all the same");
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_account_even_for_the_right_password() {
    let app = spawn_app_with(|c| {
        c.signin_max_failures_per_account = 3;
        // Long enough that the attempts below fall inside it however
        // slowly a loaded machine runs them; its end is reached by moving
        // the stored failures back in time, not by sleeping.
        c.signin_failure_window = std::time::Duration::from_secs(120);
    })
    .await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    for i in 0..3 {
        let body = sign_in(&app, &alice.email, "wrong password!").await;
        assert_error_code(&body, "UNAUTHENTICATED", &format!("failure {i}"));
    }
    let body = sign_in(&app, &alice.email, &alice.password).await;
    assert_error_code(&body, "RATE_LIMITED", "the right password, over the limit");
    assert!(
        body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            >= 1,
        "{body}"
    );
    let other = sign_in(&app, &bob.email, &bob.password).await;
    assert!(
        other["data"]["signIn"]["token"].is_string(),
        "other accounts are unaffected: {other}"
    );

    let throttled: Vec<_> = app
        .events_of_type("auth.sign_in")
        .await
        .into_iter()
        .filter(|e| e.metadata["reason"] == "throttled")
        .collect();
    assert_eq!(throttled.len(), 1, "each throttled attempt is audited");
    assert_eq!(
        (throttled[0].status, throttled[0].user_id),
        (AuditStatus::Failed, Some(alice.id))
    );

    // The window passes: every failure (and the throttle it caused) is
    // now older than it.
    let past = chrono::Utc::now() - chrono::Duration::seconds(121);
    sign_in_failure::Entity::update_many()
        .col_expr(sign_in_failure::Column::CreatedAt, Expr::value(past))
        .exec(app.db())
        .await
        .unwrap();
    sign_in_throttle_key::Entity::update_many()
        .col_expr(
            sign_in_throttle_key::Column::ThrottledUntil,
            Expr::value(past),
        )
        .exec(app.db())
        .await
        .unwrap();
    let body = sign_in(&app, &alice.email, &alice.password).await;
    assert!(
        body["data"]["signIn"]["token"].is_string(),
        "the window has passed: {body}"
    );
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_address() {
    let app = spawn_app_with(|c| {
        c.signin_max_failures_per_ip = 4;
        c.signin_max_failures_per_account = 100;
    })
    .await;
    let alice = app.create_user(Role::User).await;
    for i in 0..4 {
        sign_in(&app, &format!("guess{i}@example.com"), "password guess").await;
    }
    let body = sign_in(&app, &alice.email, &alice.password).await;
    assert_error_code(&body, "RATE_LIMITED", "this address has failed too often");
    let throttled = app.events_of_type("auth.sign_in").await.pop().unwrap();
    assert_eq!(throttled.metadata["limit"], "address");
}

#[tokio::test]
async fn aliased_guesses_in_one_request_count_one_by_one() {
    let app = spawn_app_with(|c| c.signin_max_failures_per_account = 3).await;
    let alice = app.create_user(Role::User).await;
    let guesses = (0..6)
        .map(|i| {
            format!(
                "g{i}: signIn(email: \"{}\", password: \"guess number {i}\") {{ token }}",
                alice.email
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    let body = app
        .gql(None, &format!("mutation {{ {guesses} }}"), json!({}))
        .await;
    let codes: Vec<_> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["extensions"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "UNAUTHENTICATED",
            "UNAUTHENTICATED",
            "UNAUTHENTICATED",
            "RATE_LIMITED",
            "RATE_LIMITED",
            "RATE_LIMITED"
        ],
        "{body}"
    );
}

#[tokio::test]
async fn the_throttle_holds_across_replicas_sharing_a_database() {
    let app = spawn_app_with(|c| c.signin_max_failures_per_account = 2).await;
    let replica = spawn_replica(&app, |c| c.signin_max_failures_per_account = 2).await;
    let alice = app.create_user(Role::User).await;
    sign_in(&app, &alice.email, "wrong one here").await;
    sign_in(&replica, &alice.email, "wrong two here").await;
    let body = sign_in(&app, &alice.email, &alice.password).await;
    assert_error_code(&body, "RATE_LIMITED", "failures on two replicas add up");
    let body = sign_in(&replica, &alice.email, &alice.password).await;
    assert_error_code(&body, "RATE_LIMITED", "on either replica");
}

#[tokio::test]
async fn a_wrong_current_password_counts_toward_the_throttle() {
    let app = spawn_app_with(|c| c.signin_max_failures_per_account = 2).await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    for _ in 0..2 {
        app.gql(Some(&token), "mutation { changePassword(currentPassword: \"not it at all\", newPassword: \"a new long password\") }", json!({}))
            .await;
    }
    let body = sign_in(&app, &alice.email, &alice.password).await;
    assert_error_code(&body, "RATE_LIMITED", "two wrong current passwords");
}

#[tokio::test]
async fn oversized_and_odd_strings_are_bounded_or_refused() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let admin = app.create_user(Role::Admin).await;
    let huge_agent = "Mozilla/5.0 ".repeat(900); // ~10 KB
    let (_, id) = app.sign_in_as(&alice, &huge_agent).await;
    let row = session::Entity::find_by_id(id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.user_agent.as_ref().map(String::len),
        Some(512),
        "stored truncated"
    );

    let admin_token = app.sign_in(&admin).await;
    let start = "mutation($id: UUID!, $r: String!) { startImpersonation(userId: $id, reason: $r) { token } }";
    let cases = [
        (
            json!({ "id": alice.id, "r": "x".repeat(10_000) }),
            "BAD_USER_INPUT",
            "10 KB reason",
        ),
        (
            json!({ "id": alice.id, "r": "tab\there" }),
            "BAD_USER_INPUT",
            "control character",
        ),
        (
            json!({ "id": alice.id, "r": "nul\u{0}" }),
            "BAD_USER_INPUT",
            "NUL",
        ),
        (
            json!({ "id": "not-a-uuid", "r": "fine" }),
            "BAD_USER_INPUT",
            "invalid UUID",
        ),
        (
            json!({ "id": 7, "r": "fine" }),
            "BAD_USER_INPUT",
            "wrong type",
        ),
        (
            json!({ "id": alice.id, "r": "fine", "extra": 1 }),
            "",
            "unknown variable is ignored",
        ),
    ];
    for (variables, code, why) in cases {
        let body = app.gql(Some(&admin_token), start, variables).await;
        if code.is_empty() {
            assert!(body["errors"].is_null(), "{why}: {body}");
        } else {
            assert_error_code(&body, code, why);
        }
    }
    for (email, why) in [
        ("x".repeat(10_000), "10 KB email"),
        ("alice\u{0}@example.com".into(), "NUL in email"),
        (String::new(), "empty email"),
    ] {
        let body = sign_in(&app, &email, "whatever password").await;
        assert_error_code(&body, "UNAUTHENTICATED", why);
    }
    let body = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(body["data"]["__typename"], "QueryRoot", "still serving");
}

#[tokio::test]
async fn database_errors_reach_the_client_as_internal_with_a_reference_only() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let backend = app.db().get_database_backend();
    app.db()
        .execute_raw(Statement::from_string(
            backend,
            "DROP TABLE sign_in_failures".to_owned(),
        ))
        .await
        .unwrap();
    let body = sign_in(&app, &alice.email, "wrong password!").await;
    assert_error_code(&body, "INTERNAL", "a broken table");
    let error = &body["errors"][0];
    let reference = error["extensions"]["correlationId"]
        .as_str()
        .expect("a correlation id");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(reference), "{message}");
    for leak in [
        "sign_in_failures",
        "SQL",
        "sqlite",
        "relation",
        "INSERT",
        "SELECT",
    ] {
        assert!(
            !message.contains(leak),
            "the message leaks {leak:?}: {message}"
        );
    }
    let still = app
        .gql(Some(&token), "{ viewer { user { id } } }", json!({}))
        .await;
    assert!(
        still["data"]["viewer"].is_object(),
        "other requests still work: {still}"
    );
}
