//! The sign-in throttle under bursts: attempts are reserved before the
//! password is checked, on one server and across replicas; password
//! changes go through it too; failed attempts keep only a keyed hash of
//! the email tried.

use entity::{
    audit_event, installation_secret, sign_in_failure, sign_in_throttle_key, user, user::Role,
};
use futures_util::{StreamExt, stream::FuturesUnordered};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use session_manager::service::throttle::{self, Throttle};
use sha2::{Digest, Sha256};

use crate::helpers::{
    TestApp, TestUser, assert_error_code, error_code, spawn_app_with, spawn_replica,
};

const SIGN_IN: &str =
    "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }";

async fn sign_in(app: &TestApp, email: &str, password: &str) -> Value {
    app.gql(None, SIGN_IN, json!({ "e": email, "p": password }))
        .await
}

/// The outcome of one sign-in: its error code, or `OK` with a token.
fn outcome(body: &Value) -> String {
    match error_code(body) {
        Some(code) => code.to_owned(),
        None if body["data"]["signIn"]["token"].is_string() => "OK".to_owned(),
        None => panic!("neither a token nor an error code: {body}"),
    }
}

/// Sends `wrong` sign-ins with wrong passwords for `victim`, all at once,
/// spread over `servers` in turn; as soon as `limit` of them have been
/// answered other than `RATE_LIMITED` (the limit is reached), sends the
/// right password too, to the last server. Returns the outcomes of the
/// wrong ones and that of the right one.
async fn burst_then_right_password(
    servers: &[&TestApp],
    victim: &TestUser,
    wrong: usize,
    limit: usize,
) -> (Vec<String>, String) {
    let mut burst: FuturesUnordered<_> = (0..wrong)
        .map(|i| {
            let server = servers[i % servers.len()];
            let guess = format!("wrong guess number {i}");
            async move { outcome(&sign_in(server, &victim.email, &guess).await) }
        })
        .collect();
    let mut outcomes = Vec::with_capacity(wrong);
    let mut right = None;
    while let Some(answer) = burst.next().await {
        outcomes.push(answer);
        let checked = outcomes.iter().filter(|o| *o != "RATE_LIMITED").count();
        if right.is_none() && checked >= limit {
            let last = servers[servers.len() - 1];
            right = Some(outcome(
                &sign_in(last, &victim.email, &victim.password).await,
            ));
        }
    }
    let right = match right {
        Some(right) => right,
        // Fewer than `limit` were checked: send it now, it is still last.
        None => {
            outcome(&sign_in(servers[servers.len() - 1], &victim.email, &victim.password).await)
        }
    };
    (outcomes, right)
}

fn count(outcomes: &[String], code: &str) -> usize {
    outcomes.iter().filter(|o| *o == code).count()
}

async fn sign_in_events(app: &TestApp) -> Vec<audit_event::Model> {
    app.events_of_type("auth.sign_in").await
}

#[tokio::test]
async fn a_burst_of_guesses_checks_at_most_the_account_limit_and_refuses_the_right_password() {
    let app = spawn_app_with(|c| {
        c.signin_max_failures_per_account = 5;
        c.signin_max_failures_per_ip = 1_000;
    })
    .await;
    let alice = app.create_user(Role::User).await;

    let (outcomes, right) = burst_then_right_password(&[&app], &alice, 199, 5).await;

    assert_eq!(
        count(&outcomes, "UNAUTHENTICATED"),
        5,
        "exactly the limit is checked: {outcomes:?}"
    );
    assert_eq!(count(&outcomes, "RATE_LIMITED"), 194, "{outcomes:?}");
    assert_eq!(right, "RATE_LIMITED", "the right password, past the limit");
    let events = sign_in_events(&app).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.metadata["reason"] == "wrong_password")
            .count(),
        5,
        "five checked and failed"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.metadata["reason"] == "throttled" && e.user_id == Some(alice.id))
            .count(),
        1,
        "the first refusal is audited, about the account, not each of the 195"
    );
    assert!(app.sessions().await.is_empty(), "no session was opened");
}

#[tokio::test]
async fn a_burst_split_over_two_replicas_checks_at_most_the_account_limit() {
    let settings = |c: &mut session_manager::config::Config| {
        c.signin_max_failures_per_account = 5;
        c.signin_max_failures_per_ip = 1_000;
    };
    let app = spawn_app_with(settings).await;
    let replica = spawn_replica(&app, settings).await;
    let alice = app.create_user(Role::User).await;

    let (outcomes, right) = burst_then_right_password(&[&app, &replica], &alice, 199, 5).await;

    assert_eq!(
        count(&outcomes, "UNAUTHENTICATED"),
        5,
        "the replicas share one limit: {outcomes:?}"
    );
    assert_eq!(count(&outcomes, "RATE_LIMITED"), 194, "{outcomes:?}");
    assert_eq!(right, "RATE_LIMITED", "the right password, on the replica");
    assert!(app.sessions().await.is_empty(), "no session was opened");
}

#[tokio::test]
async fn a_burst_from_one_address_checks_at_most_the_address_limit() {
    let app = spawn_app_with(|c| {
        c.signin_max_failures_per_ip = 4;
        c.signin_max_failures_per_account = 100;
    })
    .await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;

    // Forty accounts, one guess each (two real ones among them).
    let mut burst: FuturesUnordered<_> = (0..40)
        .map(|i| {
            let email = match i {
                0 => alice.email.clone(),
                1 => bob.email.clone(),
                _ => format!("guess{i}@example.com"),
            };
            let app = &app;
            async move { outcome(&sign_in(app, &email, "a wrong password").await) }
        })
        .collect();
    let mut outcomes = Vec::new();
    while let Some(answer) = burst.next().await {
        outcomes.push(answer);
    }

    assert_eq!(
        count(&outcomes, "UNAUTHENTICATED"),
        4,
        "one address, many accounts: {outcomes:?}"
    );
    assert_eq!(count(&outcomes, "RATE_LIMITED"), 36, "{outcomes:?}");
    let carol = app.create_user(Role::User).await;
    let body = sign_in(&app, &carol.email, &carol.password).await;
    assert_error_code(&body, "RATE_LIMITED", "another account, same address");
    // One event says the address is throttled; the refusals after it,
    // Carol's among them, are not audited again.
    let throttled: Vec<_> = sign_in_events(&app)
        .await
        .into_iter()
        .filter(|e| e.metadata["reason"] == "throttled")
        .collect();
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(throttled[0].metadata["limit"], "address");
    assert_ne!(throttled[0].user_id, Some(carol.id));
}

#[tokio::test]
async fn a_successful_sign_in_gives_its_reservation_back() {
    let app = spawn_app_with(|c| c.signin_max_failures_per_account = 3).await;
    let alice = app.create_user(Role::User).await;
    for _ in 0..5 {
        app.sign_in(&alice).await;
    }
    for i in 0..2 {
        let body = sign_in(&app, &alice.email, "not her password").await;
        assert_error_code(&body, "UNAUTHENTICATED", &format!("failure {i}"));
    }

    let body = sign_in(&app, &alice.email, &alice.password).await;
    assert!(
        body["data"]["signIn"]["token"].is_string(),
        "five successes and two failures leave one slot of three: {body}"
    );
    let counted = sign_in_failure::Entity::find().all(app.db()).await.unwrap();
    assert_eq!(
        counted.len(),
        2,
        "only the failures are counted: {counted:?}"
    );
    let body = sign_in(&app, &alice.email, "not her password").await;
    assert_error_code(&body, "UNAUTHENTICATED", "the third failure");
    let body = sign_in(&app, &alice.email, &alice.password).await;
    assert_error_code(&body, "RATE_LIMITED", "three failures");
}

const CHANGE_PASSWORD: &str = "changePassword(currentPassword: $c, newPassword: $n)";

async fn password_hash(app: &TestApp, user: &TestUser) -> String {
    user::Entity::find_by_id(user.id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap()
        .password_hash
}

#[tokio::test]
async fn aliased_password_changes_stop_at_the_limit_and_the_account_is_not_taken_over() {
    let app = spawn_app_with(|c| {
        c.signin_max_failures_per_account = 5;
        c.signin_max_failures_per_ip = 1_000;
    })
    .await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let before = password_hash(&app, &alice).await;

    // 60 wrong guesses of the current password, the right one last.
    let mut fields: Vec<String> = (0..60)
        .map(|i| {
            format!("g{i}: changePassword(currentPassword: \"wrong guess {i}\", newPassword: $n)")
        })
        .collect();
    fields.push(format!("right: {}", CHANGE_PASSWORD));
    let document = format!(
        "mutation($c: String!, $n: String!) {{ {} }}",
        fields.join(" ")
    );
    let body = app
        .gql(
            Some(&token),
            &document,
            json!({ "c": alice.password, "n": "the attacker's new password" }),
        )
        .await;

    let errors = body["errors"].as_array().expect("errors");
    let code_of = |alias: &str| {
        errors
            .iter()
            .find(|e| e["path"][0] == alias)
            .and_then(|e| e["extensions"]["code"].as_str())
            .unwrap_or_else(|| panic!("no error for {alias}: {body}"))
            .to_owned()
    };
    for i in 0..5 {
        assert_eq!(
            code_of(&format!("g{i}")),
            "BAD_USER_INPUT",
            "guess {i} is checked"
        );
    }
    for i in 5..60 {
        assert_eq!(
            code_of(&format!("g{i}")),
            "RATE_LIMITED",
            "guess {i}: {body}"
        );
    }
    assert_eq!(
        code_of("right"),
        "RATE_LIMITED",
        "the right one, past the limit"
    );
    assert_eq!(
        password_hash(&app, &alice).await,
        before,
        "the password is unchanged"
    );
    let viewer = app
        .gql(Some(&token), "{ viewer { user { id } } }", json!({}))
        .await;
    assert!(
        viewer["data"]["viewer"].is_object(),
        "still signed in: {viewer}"
    );
    let changes = app.events_of_type("password.changed").await;
    assert_eq!(
        changes
            .iter()
            .filter(|e| e.metadata["reason"] == "throttled")
            .count(),
        1,
        "the first refused change is audited, not each of the 56"
    );
    assert!(
        changes
            .iter()
            .all(|e| e.status == audit_event::AuditStatus::Failed)
    );
}

#[tokio::test]
async fn failed_sign_ins_also_throttle_password_changes() {
    let app = spawn_app_with(|c| c.signin_max_failures_per_account = 2).await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let before = password_hash(&app, &alice).await;
    for _ in 0..2 {
        sign_in(&app, &alice.email, "a wrong password").await;
    }

    let body = app
        .gql(
            Some(&token),
            &format!("mutation($c: String!, $n: String!) {{ {CHANGE_PASSWORD} }}"),
            json!({ "c": alice.password, "n": "a brand new password" }),
        )
        .await;

    assert_error_code(&body, "RATE_LIMITED", "one budget per account");
    assert_eq!(password_hash(&app, &alice).await, before);
}

#[tokio::test]
async fn a_failed_sign_in_for_an_unknown_account_keeps_only_a_keyed_hash_of_the_email() {
    let app = spawn_app_with(|c| c.signin_max_failures_per_ip = 1_000).await;
    let replica = spawn_replica(&app, |c| c.signin_max_failures_per_ip = 1_000).await;
    let typed = [
        "Ghost.User@Example.com",
        "ghost.user@example.com",
        "correct horse battery staple",
    ];
    for email in typed {
        let body = sign_in(&app, email, "some password").await;
        assert_error_code(&body, "UNAUTHENTICATED", email);
    }
    // A replica (or a restarted server) shares the key.
    sign_in(&replica, "ghost.user@example.com", "some password").await;

    let events = sign_in_events(&app).await;
    assert_eq!(events.len(), 4, "{events:?}");
    for event in &events {
        assert_eq!(event.metadata["reason"], "unknown_email");
        assert!(
            event.metadata.get("email").is_none(),
            "{:?}",
            event.metadata
        );
        let stored = format!("{} {}", event.message, event.metadata).to_lowercase();
        for text in typed {
            assert!(
                !stored.contains(&text.to_lowercase()),
                "{text:?} is stored: {stored}"
            );
        }
    }
    let hashes: Vec<&str> = events
        .iter()
        .map(|e| e.metadata["emailHash"].as_str().expect("an emailHash"))
        .collect();
    assert_eq!(hashes[0], hashes[1], "the same address in another case");
    assert_eq!(hashes[1], hashes[3], "the same on the replica");
    assert_ne!(hashes[1], hashes[2], "another text, another hash");
    assert_ne!(
        hashes[1],
        hex::encode(Sha256::digest(b"ghost.user@example.com")),
        "keyed, not a plain digest anyone can recompute"
    );
    let counted = sign_in_failure::Entity::find().all(app.db()).await.unwrap();
    assert_eq!(counted.len(), 4);
    for row in counted {
        assert!(
            hashes.contains(&row.account_key.as_str()),
            "the throttle keeps the hash, not the text: {row:?}"
        );
    }
}

#[tokio::test]
async fn throttled_attempts_keep_only_the_hash_too() {
    let app = spawn_app_with(|c| c.signin_max_failures_per_account = 1).await;
    let alice = app.create_user(Role::User).await;
    sign_in(&app, &alice.email, "a wrong password").await;
    let body = sign_in(&app, &alice.email, &alice.password).await;
    assert_error_code(&body, "RATE_LIMITED", "over the limit");

    let events = sign_in_events(&app).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].metadata["reason"], "throttled");
    for event in &events {
        assert_eq!(
            event.user_id,
            Some(alice.id),
            "the account is named by its id"
        );
        assert!(
            event.metadata.get("email").is_none(),
            "{:?}",
            event.metadata
        );
        assert_eq!(event.metadata["emailHash"], events[0].metadata["emailHash"]);
    }
}

#[tokio::test]
async fn servers_starting_together_agree_on_one_installation_secret() {
    let app = spawn_app_with(|_| {}).await;
    // As on a database no server has started on yet.
    installation_secret::Entity::delete_many()
        .exec(app.db())
        .await
        .unwrap();

    let starts = (0..8).map(|_| Throttle::new(&app.state.db, &app.state.config));
    let throttles = futures_util::future::join_all(starts).await;

    let hashes: Vec<String> = throttles
        .into_iter()
        .map(|t| t.expect("started").email_hash("someone@example.com"))
        .collect();
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    let secrets = installation_secret::Entity::find()
        .all(app.db())
        .await
        .unwrap();
    assert_eq!(secrets.len(), 1, "made once");
    assert_eq!(secrets[0].value.len(), 64, "32 random bytes, hex");
}

#[tokio::test]
async fn maintenance_forgets_old_attempts_and_keys() {
    let app = spawn_app_with(|c| c.signin_max_failures_per_account = 2).await;
    let alice = app.create_user(Role::User).await;
    for _ in 0..2 {
        sign_in(&app, &alice.email, "a wrong password").await;
    }
    let body = sign_in(&app, &alice.email, &alice.password).await;
    assert_error_code(&body, "RATE_LIMITED", "at the limit");

    // As if the window had passed for everything stored so far.
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    let forgotten = throttle::forget_before(&app.state.db, later).await.unwrap();

    assert_eq!(forgotten, 2);
    assert!(
        sign_in_failure::Entity::find()
            .all(app.db())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        sign_in_throttle_key::Entity::find()
            .all(app.db())
            .await
            .unwrap()
            .is_empty()
    );
    let body = sign_in(&app, &alice.email, &alice.password).await;
    assert!(body["data"]["signIn"]["token"].is_string(), "{body}");
}

#[tokio::test]
async fn an_anonymous_flood_of_refused_sign_ins_writes_one_event_per_throttled_key() {
    let app = spawn_app_with(|_| {}).await;
    let alice = app.create_user(Role::User).await;
    // 2 x 120 aliases x 2 fields: just under MAX_QUERY_FIELDS.
    let aliased = (0..120)
        .map(|i| format!("s{i}: signIn(email: $e, password: \"wrong {i}\") {{ token }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let document = format!("mutation($e: String!) {{ {aliased} }}");
    let entry = json!({ "query": document, "variables": { "e": alice.email } });
    let before = app.audit_events().await.len();
    let body: Value = app
        .client
        .post(app.graphql_url())
        .json(&json!([entry, entry]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refused = body
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["errors"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["extensions"]["code"] == "RATE_LIMITED")
        .count();
    assert!(refused >= 230, "the flood is refused: {refused} in {body}");
    let written = app.audit_events().await.len() - before;
    // Five checked failures, then one event for the account's throttling
    // (and at most one for the address's).
    assert!(written <= 7, "{written} events for 240 attempts");
    let throttled = sign_in_events(&app)
        .await
        .into_iter()
        .filter(|e| e.metadata["reason"] == "throttled")
        .count();
    assert_eq!(throttled, 1, "one throttled event for the account");
}
