//! `POST /oauth/introspect` (RFC 7662): a key with `SESSIONS_CHECK` asks
//! whether a session token is live.

use entity::user::Role;
use serde_json::{Value, json};

use crate::{
    api_keys::{create_key, owner_token},
    helpers::{TestApp, spawn_app},
};

async fn introspect(
    app: &TestApp,
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = app
        .client
        .post(format!("{}/oauth/introspect", app.address))
        .form(form);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

#[tokio::test]
async fn a_live_session_is_active_with_its_claims_and_anything_else_is_not() {
    let app = spawn_app().await;
    let (owner, owner_id) = owner_token(&app).await;
    let (key, _) = create_key(&app, &owner, "gateway", &["SESSIONS_CHECK"]).await;
    let bearer = format!("Bearer {key}");
    let alice = app.create_user(Role::User).await;
    let (token, session_id) = app.sign_in_as(&alice, "client/1").await;

    let (status, headers, body) = introspect(&app, Some(&bearer), &[("token", &token)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], alice.id.to_string());
    assert_eq!(body["sid"], session_id.to_string());
    assert_eq!(body["username"], alice.email);
    assert_eq!(body["token_type"], "session");
    assert!(
        body["exp"].as_i64().unwrap() > body["iat"].as_i64().unwrap(),
        "{body}"
    );
    assert!(body.get("act").is_none(), "not an impersonation: {body}");

    let impersonation = app
        .gql(Some(&owner), "mutation($id: UUID!) { startImpersonation(userId: $id, reason: \"ticket 7\") { token } }", json!({ "id": alice.id }))
        .await;
    let as_alice = impersonation["data"]["startImpersonation"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, body) = introspect(&app, Some(&bearer), &[("token", &as_alice)]).await;
    assert_eq!(body["sub"], alice.id.to_string(), "{body}");
    assert_eq!(body["act"], json!({ "sub": owner_id.to_string() }));

    let revoked = app.sign_in(&alice).await;
    app.gql(Some(&revoked), "mutation { signOut }", json!({}))
        .await;
    let unknown = format!("smt_{}", "A".repeat(43));
    let inactive = [
        (revoked.as_str(), "revoked"),
        (unknown.as_str(), "unknown"),
        ("nonsense", "malformed"),
        ("", "empty"),
        (key.as_str(), "an API key"),
    ];
    for (token, why) in inactive {
        let (status, _, body) = introspect(&app, Some(&bearer), &[("token", token)]).await;
        assert_eq!(status, 200, "{why}");
        assert_eq!(body, json!({ "active": false }), "{why}: nothing more");
    }
    // Revocation is immediate.
    app.gql(Some(&token), "mutation { signOut }", json!({}))
        .await;
    let (_, _, body) = introspect(&app, Some(&bearer), &[("token", &token)]).await;
    assert_eq!(body, json!({ "active": false }));
}

#[tokio::test]
async fn the_endpoint_needs_a_live_key_with_sessions_check() {
    let app = spawn_app().await;
    let (owner, _) = owner_token(&app).await;
    let (checker, checker_id) = create_key(&app, &owner, "checker", &["SESSIONS_CHECK"]).await;
    let (issuer, issuer_id) = create_key(&app, &owner, "issuer", &["SESSIONS_ISSUE"]).await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    app.gql(
        Some(&owner),
        "mutation($id: UUID!) { revokeApiKey(id: $id) { id } }",
        json!({ "id": checker_id }),
    )
    .await;

    let unknown = format!("Bearer smk_{}", "A".repeat(43));
    let cases = [
        (None, 401, "no credential"),
        (Some(format!("Bearer {checker}")), 401, "a revoked key"),
        (Some(unknown), 401, "an unknown key"),
        (Some("Bearer smk_short".to_owned()), 401, "a malformed key"),
        (Some(format!("Bearer {token}")), 401, "a session token"),
        (Some(format!("Basic {checker}")), 401, "another scheme"),
        (
            Some(format!("Bearer {issuer}")),
            403,
            "a key without the scope",
        ),
    ];
    for (authorization, status, why) in cases {
        let (got, headers, body) =
            introspect(&app, authorization.as_deref(), &[("token", &token)]).await;
        assert_eq!(got, status, "{why}: {body}");
        assert!(
            body.get("active").is_none(),
            "{why}: says nothing about the token: {body}"
        );
        let challenge = headers["www-authenticate"].to_str().unwrap();
        let expected = if status == 401 {
            "invalid_token"
        } else {
            "insufficient_scope"
        };
        assert!(
            challenge.starts_with("Bearer") && challenge.contains(expected),
            "{why}: {challenge}"
        );
    }
    let refused = app.refusals().await;
    assert!(
        refused
            .iter()
            .any(|e| e.metadata["apiKeyId"] == issuer_id.as_str()),
        "the missing scope is audited: {refused:?}"
    );

    let (live, _) = create_key(&app, &owner, "live checker", &["SESSIONS_CHECK"]).await;
    let bearer = format!("Bearer {live}");
    let (status, _, body) = introspect(&app, Some(&bearer), &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "no token field"
    );
    let (status, _, _) =
        introspect(&app, Some(&bearer), &[("token", &token), ("token", &token)]).await;
    assert_eq!(status, 400, "two token fields");
    let json_body = app
        .client
        .post(format!("{}/oauth/introspect", app.address))
        .header("authorization", &bearer)
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status().as_u16(), 400, "not a form");
}
