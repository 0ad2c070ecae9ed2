//! Checking and revoking a token without GraphQL: `GET /auth/check` for
//! gateways and `POST /oauth/revoke` (RFC 7009).

use crate::helpers::{TestApp, assert_error_code, spawn_app, spawn_app_with};
use chrono::Duration;
use entity::{session, user::Role};
use reqwest::{Method, StatusCode, header::HeaderMap};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};

const VIEWER: &str = "{ viewer { user { id } } }";
const REVOKE: &str = "mutation($id: UUID!) { revokeSession(id: $id) { id } }";
const START: &str = "mutation($id: UUID!, $reason: String!) { startImpersonation(userId: $id, reason: $reason) { token session { id } } }";
const X_AUTH: [&str; 5] = [
    "x-auth-user-id",
    "x-auth-session-id",
    "x-auth-email",
    "x-auth-role",
    "x-auth-impersonator-id",
];

/// `/auth/check` with the given headers: the status and the answer's headers.
async fn check(app: &TestApp, headers: &[(&str, &[u8])]) -> (StatusCode, HeaderMap) {
    check_with(app, Method::GET, headers).await
}

async fn check_with(
    app: &TestApp,
    method: Method,
    headers: &[(&str, &[u8])],
) -> (StatusCode, HeaderMap) {
    let mut request = app
        .client
        .request(method, format!("{}/auth/check", app.address));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    assert!(body.is_empty(), "the answer has no body: {body:?}");
    (status, headers)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[track_caller]
fn assert_refused(status: StatusCode, headers: &HeaderMap, why: &str) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}");
    assert_eq!(header(headers, "www-authenticate"), Some("Bearer"), "{why}");
    for name in X_AUTH {
        assert!(headers.get(name).is_none(), "{why}: no {name} on a refusal");
    }
}

/// Header name and value pairs of a table-driven case.
type Headers = Vec<(&'static str, Vec<u8>)>;

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

fn unknown_token() -> String {
    session_manager::auth::generate_token().unwrap().plaintext
}

#[tokio::test]
async fn a_bearer_token_is_answered_with_every_header_of_its_caller() {
    let app = spawn_app().await;
    let user = app.create_user(Role::Admin).await;
    let (token, session_id) = app.sign_in_as(&user, "client/1").await;

    for method in [Method::GET, Method::HEAD, Method::POST] {
        let (status, headers) =
            check_with(&app, method.clone(), &[("authorization", &bearer(&token))]).await;
        assert_eq!(status, StatusCode::OK, "{method}");
        let id = user.id.to_string();
        let session = session_id.to_string();
        assert_eq!(header(&headers, "x-auth-user-id"), Some(id.as_str()));
        assert_eq!(
            header(&headers, "x-auth-session-id"),
            Some(session.as_str())
        );
        assert_eq!(header(&headers, "x-auth-email"), Some(user.email.as_str()));
        assert_eq!(header(&headers, "x-auth-role"), Some("admin"));
        assert!(headers.get("x-auth-impersonator-id").is_none());
        assert!(headers.get("www-authenticate").is_none());
        assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    }
}

#[tokio::test]
async fn the_session_cookie_is_read_alone_or_among_others() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let token = app.sign_in(&user).await;
    let id = user.id.to_string();
    let cases = [
        (format!("sm_session={token}"), "alone"),
        (
            format!("theme=dark; sm_session={token}; lang=fr"),
            "among others",
        ),
        (format!("sm_session=\"{token}\""), "quoted"),
    ];
    for (cookie, why) in cases {
        let (status, headers) = check(&app, &[("cookie", cookie.as_bytes())]).await;
        assert_eq!(status, StatusCode::OK, "{why}");
        assert_eq!(
            header(&headers, "x-auth-user-id"),
            Some(id.as_str()),
            "{why}"
        );
    }
}

#[tokio::test]
async fn the_cookie_name_is_the_session_cookie_setting() {
    let app = spawn_app_with(|config| config.session_cookie = "__Host-app".to_owned()).await;
    let user = app.create_user(Role::User).await;
    let token = app.sign_in(&user).await;
    let (status, _) = check(
        &app,
        &[("cookie", format!("__Host-app={token}").as_bytes())],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the configured name");
    let (status, headers) = check(
        &app,
        &[("cookie", format!("sm_session={token}").as_bytes())],
    )
    .await;
    assert_refused(status, &headers, "the default name is another cookie now");
}

#[tokio::test]
async fn the_authorization_header_wins_over_the_cookie_and_is_never_passed_over() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    let alice_token = app.sign_in(&alice).await;
    let bob_token = app.sign_in(&bob).await;
    let bob_cookie = format!("sm_session={bob_token}");

    let (status, headers) = check(
        &app,
        &[
            ("authorization", &bearer(&alice_token)),
            ("cookie", bob_cookie.as_bytes()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "x-auth-user-id"),
        Some(alice.id.to_string().as_str()),
        "the header's caller, not the cookie's"
    );

    for authorization in ["Bearer junk", "Basic dXNlcjpwYXNz", ""] {
        let (status, headers) = check(
            &app,
            &[
                ("authorization", authorization.as_bytes()),
                ("cookie", bob_cookie.as_bytes()),
            ],
        )
        .await;
        assert_refused(
            status,
            &headers,
            &format!("a bad header {authorization:?} does not fall back to the cookie"),
        );
    }
}

#[tokio::test]
async fn anything_but_a_live_session_is_refused_with_www_authenticate() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let token = app.sign_in(&user).await;
    let unknown = unknown_token();
    let long_bearer = format!("Bearer {}", "a".repeat(16 * 1024));
    let long_cookie = format!("pad={}; sm_session={token}", "x".repeat(9 * 1024));
    let cases: Vec<(Headers, &str)> = vec![
        (vec![], "no credentials"),
        (
            vec![("authorization", b"Bearer junk".to_vec())],
            "malformed token",
        ),
        (vec![("authorization", b"Bearer".to_vec())], "no token"),
        (
            vec![("authorization", token.clone().into_bytes())],
            "no scheme",
        ),
        (
            vec![("authorization", format!("Basic {token}").into_bytes())],
            "wrong scheme",
        ),
        (
            vec![("authorization", b"Bearer \xff\xfe".to_vec())],
            "not UTF-8",
        ),
        (vec![("authorization", bearer(&unknown))], "unknown token"),
        (
            vec![("authorization", long_bearer.into_bytes())],
            "oversized Authorization header",
        ),
        (
            vec![
                ("authorization", bearer(&token)),
                ("authorization", bearer(&token)),
            ],
            "two Authorization headers",
        ),
        (
            vec![("cookie", format!("sm_session={unknown}").into_bytes())],
            "unknown cookie",
        ),
        (
            vec![("cookie", b"sm_session=junk".to_vec())],
            "malformed cookie",
        ),
        (
            vec![("cookie", format!("session={token}").into_bytes())],
            "a cookie of another name",
        ),
        (
            vec![("cookie", long_cookie.into_bytes())],
            "oversized Cookie header",
        ),
    ];
    for (headers, why) in cases {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let (status, answer) = check(&app, &headers).await;
        assert_refused(status, &answer, why);
    }
    let (status, _) = check(&app, &[("authorization", &bearer(&token))]).await;
    assert_eq!(status, StatusCode::OK, "the server still answers");
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let (token, session_id) = app.sign_in_as(&user, "client/1").await;
    let past = session_manager::db::now() - Duration::minutes(5);
    session::Entity::update_many()
        .col_expr(session::Column::ExpiresAt, Expr::value(past))
        .col_expr(session::Column::AbsoluteExpiresAt, Expr::value(past))
        .filter(session::Column::Id.eq(session_id))
        .exec(app.db())
        .await
        .unwrap();
    let (status, headers) = check(&app, &[("authorization", &bearer(&token))]).await;
    assert_refused(status, &headers, "expired");
}

#[tokio::test]
async fn a_revoked_session_is_refused_on_the_very_next_check() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let (token, session_id) = app.sign_in_as(&user, "client/1").await;
    let (other, _) = app.sign_in_as(&user, "client/2").await;
    let (status, _) = check(&app, &[("authorization", &bearer(&token))]).await;
    assert_eq!(status, StatusCode::OK);

    let body = app
        .gql(Some(&other), REVOKE, json!({ "id": session_id }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let (status, headers) = check(&app, &[("authorization", &bearer(&token))]).await;
    assert_refused(status, &headers, "revoked by revokeSession");

    let body = app
        .gql(Some(&other), "mutation { signOut }", json!({}))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let cookie = format!("sm_session={other}");
    let (status, headers) = check(&app, &[("cookie", cookie.as_bytes())]).await;
    assert_refused(status, &headers, "signed out");
}

#[tokio::test]
async fn an_impersonation_session_names_the_target_and_the_admin() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let target = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let body = app
        .gql(
            Some(&admin_token),
            START,
            json!({ "id": target.id, "reason": "support ticket 7" }),
        )
        .await;
    let token = body["data"]["startImpersonation"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let session_id = body["data"]["startImpersonation"]["session"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, headers) = check(&app, &[("authorization", &bearer(&token))]).await;
    assert_eq!(status, StatusCode::OK);
    let target_id = target.id.to_string();
    let admin_id = admin.id.to_string();
    assert_eq!(header(&headers, "x-auth-user-id"), Some(target_id.as_str()));
    assert_eq!(
        header(&headers, "x-auth-email"),
        Some(target.email.as_str())
    );
    assert_eq!(
        header(&headers, "x-auth-role"),
        Some("user"),
        "the target's rights"
    );
    assert_eq!(
        header(&headers, "x-auth-session-id"),
        Some(session_id.as_str())
    );
    assert_eq!(
        header(&headers, "x-auth-impersonator-id"),
        Some(admin_id.as_str())
    );

    // It lives only while the admin's own session does.
    app.gql(Some(&admin_token), "mutation { signOut }", json!({}))
        .await;
    let (status, headers) = check(&app, &[("authorization", &bearer(&token))]).await;
    assert_refused(status, &headers, "the admin signed out");
}

#[tokio::test]
async fn a_check_is_one_read_and_writes_nothing_but_throttled_activity() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let (token, session_id) = app.sign_in_as(&user, "client/1").await;
    let events = app.audit_events().await.len();

    let ((status, _), statements) = app
        .count_queries(check(&app, &[("authorization", &bearer(&token))]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(statements, 1, "the token check alone: activity is fresh");
    let ((status, _), statements) = app
        .count_queries(check(&app, &[("authorization", &bearer(&unknown_token()))]))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(statements, 1, "an unknown token costs the same read");
    let ((status, _), statements) = app
        .count_queries(check(&app, &[("authorization", b"Bearer junk")]))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(statements, 0, "a malformed token costs nothing");

    // Activity older than ACTIVITY_WRITE_INTERVAL is written, as for
    // every GraphQL request.
    let old = session_manager::db::now() - Duration::minutes(10);
    session::Entity::update_many()
        .col_expr(session::Column::LastActiveAt, Expr::value(old))
        .filter(session::Column::Id.eq(session_id))
        .exec(app.db())
        .await
        .unwrap();
    let ((status, _), statements) = app
        .count_queries(check(&app, &[("authorization", &bearer(&token))]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(statements >= 2, "the read and the activity write");
    let session = session::Entity::find_by_id(session_id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert!(session.last_active_at > old, "activity recorded");
    assert_eq!(
        app.audit_events().await.len(),
        events,
        "no audit event for checks"
    );
}

// ---- POST /oauth/revoke ----

async fn revoke(
    app: &TestApp,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, String) {
    let mut request = app
        .client
        .post(format!("{}/oauth/revoke", app.address))
        .header("user-agent", "revoker/1")
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "RFC 6749 §5.1"
    );
    (status, response.text().await.unwrap())
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

#[tokio::test]
async fn revoking_a_token_ends_its_session_audited_as_a_sign_out() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let (token, session_id) = app.sign_in_as(&user, "client/1").await;
    let (other, _) = app.sign_in_as(&user, "client/2").await;

    let (status, body) = revoke(
        &app,
        Some("application/x-www-form-urlencoded; charset=UTF-8"),
        format!("token={token}&token_type_hint=access_token"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "", "RFC 7009 §2.2: the body is ignored");

    let body = app.gql(Some(&token), VIEWER, json!({})).await;
    assert_error_code(&body, "UNAUTHENTICATED", "the revoked token");
    let (status, headers) = check(&app, &[("authorization", &bearer(&token))]).await;
    assert_refused(status, &headers, "revoked by /oauth/revoke");
    let (status, _) = check(&app, &[("authorization", &bearer(&other))]).await;
    assert_eq!(status, StatusCode::OK, "the user's other session lives on");

    let session = session::Entity::find_by_id(session_id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert!(session.revoked_at.is_some());
    assert_eq!(session.revoked_by, Some(user.id));
    assert_eq!(session.revoke_reason.as_deref(), Some("sign_out"));
    let event = app
        .events_of_type("session.revoked")
        .await
        .pop()
        .expect("audited");
    assert_eq!(event.session_id, Some(session_id));
    assert_eq!(event.actor_id, Some(user.id));
    assert_eq!(event.user_id, Some(user.id));
    assert_eq!(event.metadata["reason"], "sign_out");
    assert_eq!(event.ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(event.user_agent.as_deref(), Some("revoker/1"));

    // Again: already ended, still 200, not audited twice.
    let events = app.audit_events().await.len();
    let (status, _) = revoke(&app, FORM, format!("token={token}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.audit_events().await.len(), events);
}

#[tokio::test]
async fn the_client_address_of_a_revocation_follows_trust_forwarded_for() {
    let app = spawn_app_with(|config| config.trust_forwarded_for = true).await;
    let user = app.create_user(Role::User).await;
    let token = app.sign_in(&user).await;
    let response = app
        .client
        .post(format!("{}/oauth/revoke", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "198.51.100.1, 203.0.113.7")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let event = app.events_of_type("session.revoked").await.pop().unwrap();
    assert_eq!(event.ip_address.as_deref(), Some("203.0.113.7"));
}

#[tokio::test]
async fn an_unknown_or_malformed_token_is_answered_200_and_writes_nothing() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let token = app.sign_in(&user).await;
    let events = app.audit_events().await.len();
    let sessions = app.sessions().await;

    let ((status, _), statements) = app
        .count_queries(revoke(&app, FORM, format!("token={}", unknown_token())))
        .await;
    assert_eq!(status, StatusCode::OK, "RFC 7009 §2.2");
    assert_eq!(statements, 1, "one indexed read, no write");
    let ((status, _), statements) = app
        .count_queries(revoke(&app, FORM, "token=not-a-token"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(statements, 0, "a malformed token is not looked up");

    assert_eq!(app.audit_events().await.len(), events, "nothing audited");
    let after = app.sessions().await;
    assert_eq!(after.len(), sessions.len());
    assert!(
        after.iter().all(|s| s.revoked_at.is_none()),
        "nothing ended"
    );
    let body = app.gql(Some(&token), VIEWER, json!({})).await;
    assert!(
        body["errors"].is_null(),
        "the real session lives on: {body}"
    );
}

#[tokio::test]
async fn a_bad_revocation_request_is_an_invalid_request_and_ends_nothing() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let token = app.sign_in(&user).await;
    let form = format!("token={token}");
    let cases: Vec<(Option<&str>, Vec<u8>, &str)> = vec![
        (FORM, Vec::new(), "an empty body"),
        (FORM, b"token_type_hint=access_token".to_vec(), "no token"),
        (FORM, b"token=".to_vec(), "an empty token"),
        (
            FORM,
            format!("{form}&token={token}").into_bytes(),
            "the token twice",
        ),
        (None, form.clone().into_bytes(), "no content type"),
        (
            Some("application/json"),
            json!({ "token": token }).to_string().into_bytes(),
            "JSON",
        ),
        (Some("text/plain"), form.clone().into_bytes(), "text/plain"),
        (
            FORM,
            format!("{form}&pad={}", "x".repeat(8 * 1024)).into_bytes(),
            "an oversized body",
        ),
    ];
    for (content_type, body, why) in cases {
        let (status, text) = revoke(&app, content_type, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{why}: {text}"));
        assert_eq!(body["error"], "invalid_request", "{why}: {body}");
        assert!(body["error_description"].is_string(), "{why}: {body}");
    }

    let response = app
        .client
        .get(format!("{}/oauth/revoke?token={token}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "GET");

    let body = app.gql(Some(&token), VIEWER, json!({})).await;
    assert!(body["errors"].is_null(), "still signed in: {body}");
    assert!(app.sessions().await.iter().all(|s| s.revoked_at.is_none()));
}
