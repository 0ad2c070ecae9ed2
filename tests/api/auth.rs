//! Sign-in, bearer tokens, the viewer and sign-out.

use chrono::Utc;
use entity::{audit_event::AuditStatus, session, user::Role};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};
use session_manager::auth::hash_token;

use crate::helpers::{assert_error_code, spawn_app};

const VIEWER: &str = "{ viewer { user { id email role } session { id sessionToken isCurrent isActive } impersonator { id } } }";
const SIGN_IN: &str = "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token session { id sessionToken userId isCurrent ipAddress userAgent user { email } } } }";

#[tokio::test]
async fn sign_in_returns_a_token_that_resolves_the_viewer() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;

    let body = app
        .gql(
            None,
            SIGN_IN,
            json!({ "e": alice.email, "p": alice.password }),
        )
        .await;
    let payload = &body["data"]["signIn"];
    let token = payload["token"].as_str().expect("a token");
    assert!(
        token.starts_with("smt_") && token.len() == 47,
        "token shape: {token}"
    );
    assert_eq!(
        payload["session"]["sessionToken"],
        format!("{}…", &token[..8])
    );
    assert_eq!(payload["session"]["userId"], alice.id.to_string());
    assert_eq!(payload["session"]["user"]["email"], alice.email.as_str());
    assert_eq!(payload["session"]["ipAddress"], "127.0.0.1");

    let viewer = app.gql(Some(token), VIEWER, json!({})).await;
    let v = &viewer["data"]["viewer"];
    assert_eq!(v["user"]["email"], alice.email.as_str(), "{viewer}");
    assert_eq!(v["user"]["role"], "USER");
    assert_eq!(v["session"]["id"], payload["session"]["id"]);
    assert_eq!(v["session"]["isCurrent"], true);
    assert_eq!(v["session"]["isActive"], true);
    assert_eq!(v["impersonator"], Value::Null);
}

#[tokio::test]
async fn sign_in_is_case_insensitive_on_email_and_records_the_client() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let response: Value = app
        .client
        .post(app.graphql_url())
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0")
        .json(&json!({
            "query": SIGN_IN,
            "variables": { "e": format!("  {}  ", alice.email.to_uppercase()), "p": alice.password },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = &response["data"]["signIn"]["session"];
    assert!(
        session["userAgent"]
            .as_str()
            .unwrap()
            .contains("Firefox/131.0"),
        "{response}"
    );
    assert_eq!(session["ipAddress"], "127.0.0.1");
}

#[tokio::test]
async fn the_token_is_stored_only_as_its_hash_and_never_logged_in_audit() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (token, session_id) = app.sign_in_as(&alice, "test").await;

    let stored = session::Entity::find_by_id(session_id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.token_hash, hash_token(&token));
    assert_eq!(stored.token_prefix, &token[..8]);
    let secret_part = &token[8..];
    assert!(
        !format!("{stored:?}").contains(secret_part),
        "session row holds the token"
    );
    for event in app.audit_events().await {
        assert!(
            !format!("{event:?}").contains(secret_part),
            "audit event holds the token: {event:?}"
        );
    }
    // And no later response shows it again.
    let viewer = app.gql(Some(&token), VIEWER, json!({})).await;
    assert!(!viewer.to_string().contains(secret_part), "{viewer}");
}

#[tokio::test]
async fn sign_in_is_audited_in_the_same_transaction_as_the_session() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (_, session_id) = app.sign_in_as(&alice, "audit-check/1").await;

    let events = app.audit_events().await;
    let event = events
        .iter()
        .find(|e| e.event_type == "auth.sign_in")
        .expect("a sign-in event");
    assert_eq!(event.status, AuditStatus::Success);
    assert_eq!(event.session_id, Some(session_id));
    assert_eq!(event.user_id, Some(alice.id));
    assert_eq!(event.actor_id, Some(alice.id));
    assert_eq!(event.ip_address.as_deref(), Some("127.0.0.1"));
    assert_eq!(event.user_agent.as_deref(), Some("audit-check/1"));
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_error_and_are_audited() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;

    let wrong_password = app
        .gql(
            None,
            SIGN_IN,
            json!({ "e": alice.email, "p": "not-the-password" }),
        )
        .await;
    let unknown_email = app
        .gql(
            None,
            SIGN_IN,
            json!({ "e": "nobody@example.com", "p": alice.password }),
        )
        .await;
    assert_error_code(&wrong_password, "UNAUTHENTICATED", "wrong password");
    assert_error_code(&unknown_email, "UNAUTHENTICATED", "unknown email");
    assert_eq!(
        wrong_password["errors"][0]["message"], unknown_email["errors"][0]["message"],
        "the two failures must be indistinguishable"
    );
    assert_eq!(wrong_password["data"], Value::Null);

    let failed: Vec<_> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "auth.sign_in" && e.status == AuditStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(
        failed[0].user_id,
        Some(alice.id),
        "a failed sign-in concerns the account"
    );
    assert_eq!(failed[1].user_id, None);
    for event in &failed {
        assert!(
            event.metadata.get("email").is_none() && event.metadata["emailHash"].is_string(),
            "the email tried is kept only as a keyed hash: {:?}",
            event.metadata
        );
    }
    assert!(app.sessions().await.is_empty(), "no session was opened");
}

#[tokio::test]
async fn sign_in_input_is_validated_with_coded_errors() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let cases = [
        (
            json!({ "e": alice.email, "p": "x".repeat(10_000) }),
            "BAD_USER_INPUT",
            "oversized password",
        ),
        (
            json!({ "e": "", "p": alice.password }),
            "UNAUTHENTICATED",
            "empty email",
        ),
        (
            json!({ "e": alice.email, "p": "" }),
            "UNAUTHENTICATED",
            "empty password",
        ),
        (
            json!({ "e": "x".repeat(5_000), "p": alice.password }),
            "UNAUTHENTICATED",
            "oversized email",
        ),
        (
            json!({ "e": alice.email }),
            "BAD_USER_INPUT",
            "missing password variable",
        ),
        (
            json!({ "e": 42, "p": alice.password }),
            "BAD_USER_INPUT",
            "email of the wrong type",
        ),
    ];
    for (variables, code, why) in cases {
        let body = app.gql(None, SIGN_IN, variables).await;
        assert!(
            body["errors"][0]["extensions"]["code"].is_string(),
            "{why}: no code in {body}"
        );
        assert_error_code(&body, code, why);
    }
    assert!(app.sessions().await.is_empty());
}

#[tokio::test]
async fn bad_bearer_headers_are_unauthenticated_never_anonymous() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let unknown = session_manager::auth::generate_token().unwrap().plaintext;

    let cases = [
        ("Bearer".to_owned(), "no token"),
        ("Bearer ".to_owned(), "empty token"),
        (String::new(), "empty header"),
        (format!("Bearer {altered}"), "altered token"),
        (format!("Bearer {unknown}"), "well-formed but unknown token"),
        (format!("Basic {token}"), "wrong scheme"),
        (token.clone(), "no scheme"),
        (format!("Bearer {}", &token[..20]), "truncated token"),
        (format!("Bearer {token}{token}"), "doubled token"),
    ];
    // Even a query that needs no caller is refused: the client meant to be
    // someone.
    for query in ["{ __typename }", VIEWER] {
        for (header, why) in &cases {
            let body = app.gql_with_authorization(header, query).await;
            assert_error_code(&body, "UNAUTHENTICATED", why);
            assert_eq!(body["data"], Value::Null, "{why}: {body}");
        }
    }
}

#[tokio::test]
async fn viewer_and_sign_out_need_a_caller() {
    let app = spawn_app().await;
    for query in [VIEWER, "mutation { signOut }"] {
        let body = app.gql(None, query, json!({})).await;
        assert_error_code(&body, "UNAUTHENTICATED", query);
    }
}

#[tokio::test]
async fn a_signed_out_token_is_dead_on_the_next_request() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let other = app.sign_in(&alice).await;

    let body = app
        .gql(Some(&token), "mutation { signOut }", json!({}))
        .await;
    assert_eq!(body["data"]["signOut"], true, "{body}");

    let after = app.gql(Some(&token), VIEWER, json!({})).await;
    assert_error_code(&after, "UNAUTHENTICATED", "viewer after sign-out");
    let again = app
        .gql(Some(&token), "mutation { signOut }", json!({}))
        .await;
    assert_error_code(&again, "UNAUTHENTICATED", "second sign-out");
    let still = app.gql(Some(&other), VIEWER, json!({})).await;
    assert_eq!(
        still["data"]["viewer"]["user"]["email"],
        alice.email.as_str(),
        "other sessions live on"
    );

    let revoked: Vec<_> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.event_type == "session.revoked")
        .collect();
    assert_eq!(
        revoked.len(),
        1,
        "exactly one revocation event: {revoked:?}"
    );
    let event = &revoked[0];
    assert_eq!(event.user_id, Some(alice.id));
    assert_eq!(event.actor_id, Some(alice.id));
    for key in [
        "sessionId",
        "userId",
        "userEmail",
        "revokedBy",
        "revokedAt",
        "reason",
    ] {
        assert!(
            event.metadata.get(key).is_some(),
            "metadata lacks {key}: {}",
            event.metadata
        );
    }
    assert_eq!(event.metadata["reason"], "sign_out");
    assert_eq!(event.metadata["userEmail"], alice.email.as_str());

    let row = app
        .sessions()
        .await
        .into_iter()
        .find(|s| Some(s.id) == event.session_id)
        .expect("the row is kept");
    assert!(row.revoked_at.is_some());
    assert_eq!(row.revoked_by, Some(alice.id));
    assert_eq!(row.revoke_reason.as_deref(), Some("sign_out"));
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (token, session_id) = app.sign_in_as(&alice, "test").await;
    let row = session::Entity::find_by_id(session_id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    let mut active: session::ActiveModel = row.into();
    active.expires_at = Set(Utc::now() - chrono::Duration::seconds(1));
    active.update(app.db()).await.unwrap();

    let body = app.gql(Some(&token), VIEWER, json!({})).await;
    assert_error_code(&body, "UNAUTHENTICATED", "expired session");
}

#[tokio::test]
async fn a_short_session_ttl_expires_the_token() {
    let app =
        crate::helpers::spawn_app_with(|c| c.session_ttl = std::time::Duration::from_secs(1)).await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let body = app.gql(Some(&token), VIEWER, json!({})).await;
    assert!(
        body["data"]["viewer"].is_object(),
        "fresh token works: {body}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    let body = app.gql(Some(&token), VIEWER, json!({})).await;
    assert_error_code(&body, "UNAUTHENTICATED", "after SESSION_TTL");
}

#[tokio::test]
async fn roles_are_reported_as_the_schema_enum() {
    let app = spawn_app().await;
    for (role, name) in [
        (Role::User, "USER"),
        (Role::Admin, "ADMIN"),
        (Role::Owner, "OWNER"),
    ] {
        let user = app.create_user(role).await;
        let token = app.sign_in(&user).await;
        let body = app.gql(Some(&token), VIEWER, json!({})).await;
        assert_eq!(body["data"]["viewer"]["user"]["role"], name, "{body}");
    }
}
