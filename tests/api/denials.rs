//! Refusals in the audit log: one event per action and target in a
//! request (with a count), a caller who keeps being refused is answered
//! `RATE_LIMITED` and no longer recorded, and a session that a request
//! ends is ended for the rest of that request.

use entity::{audit_event::AuditStatus, user::Role};
use serde_json::{Value, json};
use session_manager::service::denials::{DENIAL_WINDOW, DENIALS_PER_WINDOW};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_error_code, spawn_app, spawn_app_with};

const VIEWER: &str = "{ viewer { user { id } } }";

async fn works(app: &TestApp, token: &str) -> bool {
    app.gql(Some(token), VIEWER, json!({})).await["data"]["viewer"].is_object()
}

/// Sends a batch (a JSON array of operations).
async fn batch(app: &TestApp, token: &str, operations: Value) -> Vec<Value> {
    let body: Value = app
        .client
        .post(app.graphql_url())
        .bearer_auth(token)
        .json(&operations)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body.as_array()
        .unwrap_or_else(|| panic!("a batch answer: {body}"))
        .clone()
}

fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("none")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn aliased_denials_of_the_same_target_are_recorded_once_with_their_count() {
    let app = spawn_app_with(|c| c.max_query_fields = 1_000).await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let aliases: String = (0..250)
        .map(|i| format!("a{i}: sessions(userId: $bob) {{ count }} "))
        .collect();
    let query = format!("query($bob: UUID) {{ {aliases} }}");

    let body = app
        .gql(Some(&token), &query, json!({ "bob": bob.id }))
        .await;

    let codes = codes(&body);
    assert_eq!(codes.len(), 250, "every alias is answered: {body}");
    assert!(
        codes.iter().all(|c| c == "FORBIDDEN"),
        "every alias is FORBIDDEN: {codes:?}"
    );
    let denied = app.events_of_type("access.denied").await;
    assert_eq!(denied.len(), 1, "one event, not 250: {denied:?}");
    let event = &denied[0];
    assert_eq!(event.status, AuditStatus::Failed);
    assert_eq!(
        (event.actor_id, event.user_id),
        (Some(alice.id), Some(bob.id))
    );
    assert_eq!(event.metadata["count"], 250, "{:?}", event.metadata);
    assert_eq!(event.metadata["action"], "sessions.view");
}

#[tokio::test]
async fn denials_repeated_across_a_batch_are_recorded_once_and_distinct_ones_each() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    let carol = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let list = "query($u: UUID) { sessions(userId: $u) { count } }";
    let answers = batch(
        &app,
        &token,
        json!([
            { "query": list, "variables": { "u": bob.id } },
            { "query": list, "variables": { "u": bob.id } },
            { "query": list, "variables": { "u": carol.id } },
            { "query": "{ users { users { id } } }" },
            { "query": list, "variables": { "u": bob.id } },
        ]),
    )
    .await;
    for (i, answer) in answers.iter().enumerate() {
        assert_error_code(answer, "FORBIDDEN", &format!("entry {i}"));
    }
    let denied = app.events_of_type("access.denied").await;
    let summary: Vec<(Option<Uuid>, Value, Value)> = denied
        .iter()
        .map(|e| {
            (
                e.user_id,
                e.metadata["action"].clone(),
                e.metadata["count"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Some(bob.id), json!("sessions.view"), json!(3)),
            (Some(carol.id), json!("sessions.view"), json!(1)),
            (None, json!("users.list"), json!(1)),
        ],
        "one event per action and target, in the order first refused"
    );

    // A GET request is one request of its own.
    let response: Value = app
        .client
        .get(app.graphql_url())
        .bearer_auth(&token)
        .query(&[(
            "query",
            format!("{{ a: sessions(userId: \"{0}\") {{ count }} b: sessions(userId: \"{0}\") {{ count }} }}", bob.id),
        )])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(codes(&response), ["FORBIDDEN", "FORBIDDEN"], "{response}");
    let last = app.events_of_type("access.denied").await.pop().unwrap();
    assert_eq!(last.metadata["count"], 2, "{:?}", last.metadata);
    assert_eq!(app.events_of_type("access.denied").await.len(), 4);
}

#[tokio::test]
async fn aliased_revocations_of_random_ids_write_a_bounded_number_of_events() {
    let app = spawn_app_with(|c| c.max_query_fields = 1_000).await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let aliases: String = (0..250)
        .map(|i| format!("r{i}: revokeSession(id: \"{}\") {{ id }} ", Uuid::new_v4()))
        .collect();

    let body = app
        .gql(
            Some(&token),
            &format!("mutation {{ {aliases} }}"),
            json!({}),
        )
        .await;

    let codes = codes(&body);
    assert_eq!(codes.len(), 250, "every alias is answered: {body}");
    let limit = DENIALS_PER_WINDOW as usize;
    assert!(
        codes[..limit].iter().all(|c| c == "NOT_FOUND"),
        "the first {limit} are refused as usual: {codes:?}"
    );
    assert!(
        codes[limit..].iter().all(|c| c == "RATE_LIMITED"),
        "then the caller is throttled: {codes:?}"
    );
    // Refused revocations are failed `session.revoked` events; the
    // throttling itself is `access.denied`.
    let denied = app.refusals().await;
    assert_eq!(
        denied.len(),
        limit + 1,
        "the first {limit} refusals and one event saying the caller is throttled"
    );
    assert!(
        denied[..limit]
            .iter()
            .all(|e| e.event_type == "session.revoked")
    );
    assert_eq!(denied[limit].event_type, "access.denied");
    assert!(
        denied[..limit]
            .iter()
            .all(|e| e.metadata["reason"] == "not_found" && e.actor_id == Some(alice.id))
    );
    let throttled = &denied[limit];
    assert_eq!(throttled.metadata["reason"], "throttled");
    assert_eq!(throttled.actor_id, Some(alice.id));
    assert_eq!(throttled.metadata["limit"], DENIALS_PER_WINDOW);
    assert!(works(&app, &token).await, "what is allowed still works");
}

#[tokio::test]
async fn a_caller_who_keeps_being_denied_is_rate_limited_and_no_longer_audited() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    let carol = app.create_user(Role::User).await;
    let alice_phone = app.sign_in(&alice).await;
    let alice_laptop = app.sign_in(&alice).await;
    let carol_token = app.sign_in(&carol).await;
    let probe = "query($u: UUID) { sessions(userId: $u) { count } }";

    for i in 0..DENIALS_PER_WINDOW {
        let body = app
            .gql(Some(&alice_phone), probe, json!({ "u": bob.id }))
            .await;
        assert_error_code(&body, "FORBIDDEN", &format!("request {i}"));
    }
    assert_eq!(
        app.events_of_type("access.denied").await.len(),
        DENIALS_PER_WINDOW as usize,
        "one event per request"
    );

    let body = app
        .gql(Some(&alice_phone), probe, json!({ "u": bob.id }))
        .await;
    assert_error_code(&body, "RATE_LIMITED", "over the limit");
    let retry = body["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!(
        (1..=DENIAL_WINDOW.as_secs()).contains(&retry),
        "retryAfter within the window: {body}"
    );
    let after_throttle = app.audit_events().await.len();
    let last = app.events_of_type("access.denied").await.pop().unwrap();
    assert_eq!(last.metadata["reason"], "throttled", "recorded once");

    for (token, what) in [
        (&alice_phone, "the same session"),
        (&alice_laptop, "another session of the same account"),
    ] {
        for variables in [json!({ "u": bob.id }), json!({ "u": carol.id })] {
            let body = app.gql(Some(token), probe, variables).await;
            assert_error_code(&body, "RATE_LIMITED", what);
        }
    }
    let body = app
        .gql(Some(&alice_laptop), "{ auditChain { intact } }", json!({}))
        .await;
    assert_error_code(&body, "RATE_LIMITED", "another kind of refusal");
    assert_eq!(
        app.audit_events().await.len(),
        after_throttle,
        "nothing more is written while throttled"
    );

    assert!(works(&app, &alice_phone).await, "allowed operations work");
    let body = app
        .gql(Some(&carol_token), probe, json!({ "u": bob.id }))
        .await;
    assert_error_code(&body, "FORBIDDEN", "other callers are not throttled");
    assert_eq!(app.audit_events().await.len(), after_throttle + 1);
}

#[tokio::test]
async fn a_sign_in_that_ends_the_callers_session_by_the_limit_ends_the_request_there() {
    let app = spawn_app_with(|c| c.max_sessions_per_user = 1).await;
    let admin = app.create_user(Role::Admin).await;
    let bob = app.create_user(Role::User).await;
    let token = app.sign_in(&admin).await;
    let (bob_token, _) = app.sign_in_as(&bob, "bob").await;
    let answers = batch(
        &app,
        &token,
        json!([
            { "query": "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }",
              "variables": { "e": admin.email, "p": admin.password } },
            { "query": "mutation($u: UUID) { revokeSessions(userId: $u) }", "variables": { "u": bob.id } },
        ]),
    )
    .await;
    assert!(
        answers[0]["data"]["signIn"]["token"].is_string(),
        "{}",
        answers[0]
    );
    assert_error_code(
        &answers[1],
        "UNAUTHENTICATED",
        "after the limit ended the session",
    );
    assert!(
        works(&app, &bob_token).await,
        "bob's sessions were not revoked"
    );
    assert!(!works(&app, &token).await, "the old session ended");
}

#[tokio::test]
async fn a_batch_stops_at_the_session_it_ended() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let bob = app.create_user(Role::User).await;
    let token = app.sign_in(&admin).await;
    let (bob_token, bob_session) = app.sign_in_as(&bob, "bob").await;
    let revoke = "mutation($id: UUID!) { revokeSession(id: $id) { id isActive } }";

    let answers = batch(
        &app,
        &token,
        json!([
            { "query": "mutation { revokeSessions(exceptCurrent: false) }" },
            { "query": revoke, "variables": { "id": bob_session } },
            { "query": "{ users { users { id } } }" },
            { "query": "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }",
              "variables": { "e": admin.email, "p": admin.password } },
        ]),
    )
    .await;

    assert_eq!(answers[0]["data"]["revokeSessions"], 1, "{}", answers[0]);
    for (i, answer) in answers.iter().enumerate().skip(1) {
        assert_error_code(answer, "UNAUTHENTICATED", &format!("entry {i}"));
        assert!(answer["data"].is_null(), "entry {i}: nothing ran: {answer}");
    }
    assert!(
        works(&app, &bob_token).await,
        "bob's session was not revoked"
    );
    assert!(!works(&app, &token).await);
    let admin_sessions = app
        .sessions()
        .await
        .into_iter()
        .filter(|s| s.user_id == admin.id)
        .count();
    assert_eq!(admin_sessions, 1, "the sign-in in the batch opened nothing");
}

#[tokio::test]
async fn an_aliased_mutation_stops_at_the_session_it_ended() {
    let app = spawn_app().await;
    let admin = app.create_user(Role::Admin).await;
    let alice = app.create_user(Role::User).await;
    let admin_token = app.sign_in(&admin).await;
    let ends = [
        ("signOut", "a: signOut"),
        ("revokeSession(own id)", "a: revokeSession(id: $own) { id }"),
        (
            "revokeSessions(exceptCurrent: false)",
            "a: revokeSessions(exceptCurrent: false)",
        ),
        ("stopImpersonation", "a: stopImpersonation"),
    ];
    for (what, end) in ends {
        let (alice_other, other_id) = app.sign_in_as(&alice, "phone").await;
        let (token, own) = if what == "stopImpersonation" {
            let started = app
                .gql(
                    Some(&admin_token),
                    "mutation($id: UUID!) { startImpersonation(userId: $id, reason: \"ticket\") { token session { id } } }",
                    json!({ "id": alice.id }),
                )
                .await;
            let payload = &started["data"]["startImpersonation"];
            (
                payload["token"].as_str().unwrap().to_owned(),
                payload["session"]["id"].clone(),
            )
        } else {
            let (token, id) = app.sign_in_as(&alice, "laptop").await;
            (token, json!(id))
        };
        let uses_own = end.contains("$own");
        let query = format!(
            "mutation({}$other: UUID!) {{ {end} b: revokeSession(id: $other) {{ id }} c: signOut }}",
            if uses_own { "$own: UUID!, " } else { "" }
        );
        let mut variables = json!({ "other": other_id });
        if uses_own {
            variables["own"] = own.clone();
        }

        let body = app.gql(Some(&token), &query, variables).await;

        assert!(!body["data"]["a"].is_null(), "{what}: it ran: {body}");
        let errors = body["errors"].as_array().cloned().unwrap_or_default();
        let by_path = |field: &str| {
            errors
                .iter()
                .find(|e| e["path"][0] == field)
                .map(|e| e["extensions"]["code"].clone())
        };
        assert_eq!(
            by_path("b"),
            Some(json!("UNAUTHENTICATED")),
            "{what}: the later revocation is refused: {body}"
        );
        assert_eq!(by_path("c"), Some(json!("UNAUTHENTICATED")), "{what}");
        if !end.contains("revokeSessions") {
            // (revokeSessions ended it itself.)
            assert!(
                works(&app, &alice_other).await,
                "{what}: the other session is still live"
            );
        }
        assert!(!works(&app, &token).await, "{what}: ended");
        // The next test case starts from a clean slate.
        app.gql(
            Some(&alice_other),
            "mutation { revokeSessions(exceptCurrent: false) }",
            json!({}),
        )
        .await;
    }
}
