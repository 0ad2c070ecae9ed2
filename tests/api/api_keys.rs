//! API keys: owners make, list and revoke them (GraphQL and the command
//! line); refusals answer with a code and are audited.

use entity::user::Role;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error_code, spawn_app};

const CREATE: &str = "mutation($n: String!, $s: [ApiScope!]!) { createApiKey(name: $n, scopes: $s) { key apiKey { id name prefix scopes isActive createdBy { id } createdAt lastUsedAt revokedAt } } }";
const LIST: &str = "{ apiKeys { id name prefix scopes isActive createdBy { id } revokedAt revokedBy { id } lastUsedAt } }";
const REVOKE: &str =
    "mutation($id: UUID!) { revokeApiKey(id: $id) { id isActive revokedAt revokedBy { id } } }";

/// An owner's token.
pub async fn owner_token(app: &TestApp) -> (String, uuid::Uuid) {
    let owner = app.create_user(Role::Owner).await;
    (app.sign_in(&owner).await, owner.id)
}

/// Makes a key with `scopes` (GraphQL names) through the API; returns the
/// key and its id.
pub async fn create_key(
    app: &TestApp,
    owner: &str,
    name: &str,
    scopes: &[&str],
) -> (String, String) {
    let body = app
        .gql(Some(owner), CREATE, json!({ "n": name, "s": scopes }))
        .await;
    let payload = &body["data"]["createApiKey"];
    assert!(payload.is_object(), "key created: {body}");
    (
        payload["key"].as_str().unwrap().to_owned(),
        payload["apiKey"]["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn an_owner_creates_a_key_shown_once_and_stored_hashed() {
    let app = spawn_app().await;
    let (owner, owner_id) = owner_token(&app).await;
    let body = app
        .gql(
            Some(&owner),
            CREATE,
            json!({ "n": "billing backend", "s": ["SESSIONS_ISSUE", "SESSIONS_CHECK"] }),
        )
        .await;
    let payload = &body["data"]["createApiKey"];
    let key = payload["key"].as_str().expect("the key");
    assert!(key.starts_with("smk_") && key.len() == 47, "{key}");
    let listed = &payload["apiKey"];
    assert_eq!(listed["name"], "billing backend");
    assert_eq!(listed["prefix"], format!("{}…", &key[..12]));
    assert_eq!(
        listed["scopes"],
        json!(["SESSIONS_ISSUE", "SESSIONS_CHECK"])
    );
    assert_eq!(listed["isActive"], true);
    assert_eq!(listed["createdBy"]["id"], owner_id.to_string());
    assert_eq!(listed["lastUsedAt"], Value::Null);

    let list = app.gql(Some(&owner), LIST, json!({})).await;
    let keys = list["data"]["apiKeys"].as_array().expect("a list");
    assert_eq!(keys.len(), 1, "{list}");
    assert!(
        !list.to_string().contains(&key[12..]),
        "never the key again: {list}"
    );

    let stored = entity::api_key::Entity::find().all(app.db()).await.unwrap();
    assert_eq!(stored[0].key_hash.len(), 64);
    assert!(!stored[0].key_hash.contains(&key[4..]));
    assert_eq!(stored[0].scopes, "sessions:issue sessions:check");

    let created = app.events_of_type("api_key.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].actor_id, Some(owner_id));
    assert_eq!(created[0].metadata["apiKeyName"], "billing backend");
    assert_eq!(created[0].metadata["apiKeyId"], listed["id"]);
    assert!(!created[0].metadata.to_string().contains(&key[12..]));
}

use sea_orm::EntityTrait;

#[tokio::test]
async fn revoking_a_key_is_audited_and_idempotent() {
    let app = spawn_app().await;
    let (owner, owner_id) = owner_token(&app).await;
    let (_, id) = create_key(&app, &owner, "ci", &["AUDIT_READ"]).await;
    let body = app.gql(Some(&owner), REVOKE, json!({ "id": id })).await;
    let revoked = &body["data"]["revokeApiKey"];
    assert_eq!(revoked["isActive"], false, "{body}");
    assert_eq!(revoked["revokedBy"]["id"], owner_id.to_string());
    let at = revoked["revokedAt"].clone();
    assert!(at.is_string());

    let again = app.gql(Some(&owner), REVOKE, json!({ "id": id })).await;
    assert_eq!(again["data"]["revokeApiKey"]["revokedAt"], at, "unchanged");
    assert_eq!(app.events_of_type("api_key.revoked").await.len(), 1);

    let unknown = app
        .gql(Some(&owner), REVOKE, json!({ "id": uuid::Uuid::new_v4() }))
        .await;
    assert_error_code(&unknown, "NOT_FOUND", "an unknown key");

    // The name of a revoked key is free again.
    create_key(&app, &owner, "ci", &["AUDIT_READ"]).await;
}

#[tokio::test]
async fn only_owners_manage_keys_and_refusals_are_audited() {
    let app = spawn_app().await;
    let (owner, _) = owner_token(&app).await;
    let (_, id) = create_key(&app, &owner, "ci", &["AUDIT_READ"]).await;
    for role in [Role::User, Role::Admin] {
        let user = app.create_user(role).await;
        let token = app.sign_in(&user).await;
        let cases = [
            (
                CREATE,
                json!({ "n": "mine", "s": ["SESSIONS_ISSUE"] }),
                "createApiKey",
            ),
            (LIST, json!({}), "apiKeys"),
            (REVOKE, json!({ "id": id }), "revokeApiKey"),
        ];
        for (query, variables, what) in cases {
            let body = app.gql(Some(&token), query, variables).await;
            assert_error_code(&body, "FORBIDDEN", &format!("{what} by {role:?}"));
        }
        let refusals: Vec<_> = app
            .refusals()
            .await
            .into_iter()
            .filter(|e| e.actor_id == Some(user.id))
            .collect();
        assert!(
            refusals
                .iter()
                .all(|e| e.metadata["action"] == "api_keys.manage"),
            "{refusals:?}"
        );
        assert!(!refusals.is_empty(), "{role:?}'s refusals are audited");
    }
    let anonymous = app.gql(None, LIST, json!({})).await;
    assert_error_code(&anonymous, "UNAUTHENTICATED", "no session");
    let list = app.gql(Some(&owner), LIST, json!({})).await;
    assert_eq!(list["data"]["apiKeys"][0]["isActive"], true, "not revoked");
    assert_eq!(
        list["data"]["apiKeys"].as_array().unwrap().len(),
        1,
        "none made"
    );
}

#[tokio::test]
async fn bad_names_and_scopes_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (owner, _) = owner_token(&app).await;
    create_key(&app, &owner, "taken", &["AUDIT_READ"]).await;
    let long = "x".repeat(65);
    let cases = [
        ("", json!(["AUDIT_READ"]), "name", "an empty name"),
        ("   ", json!(["AUDIT_READ"]), "name", "a blank name"),
        (
            long.as_str(),
            json!(["AUDIT_READ"]),
            "name",
            "a name too long",
        ),
        ("a\nb", json!(["AUDIT_READ"]), "name", "a control character"),
        ("<b>x</b>", json!(["AUDIT_READ"]), "name", "markup"),
        ("ok", json!([]), "scopes", "no scope"),
        (
            "ok",
            json!(["AUDIT_READ", "AUDIT_READ"]),
            "scopes",
            "a scope twice",
        ),
        (
            "taken",
            json!(["SESSIONS_CHECK"]),
            "name",
            "a live key's name",
        ),
    ];
    for (name, scopes, field, why) in cases {
        let body = app
            .gql(Some(&owner), CREATE, json!({ "n": name, "s": scopes }))
            .await;
        assert_error_code(&body, "BAD_USER_INPUT", why);
        assert_eq!(
            body["errors"][0]["extensions"]["field"], field,
            "{why}: {body}"
        );
    }
    let unknown_scope = app
        .gql(
            Some(&owner),
            CREATE,
            json!({ "n": "x", "s": ["EVERYTHING"] }),
        )
        .await;
    assert_error_code(&unknown_scope, "BAD_USER_INPUT", "an unknown scope");
    let list = app.gql(Some(&owner), LIST, json!({})).await;
    assert_eq!(
        list["data"]["apiKeys"].as_array().unwrap().len(),
        1,
        "{list}"
    );
    assert_eq!(app.events_of_type("api_key.created").await.len(), 1);
}

#[tokio::test]
async fn live_keys_are_capped() {
    let app = spawn_app().await;
    let (owner, _) = owner_token(&app).await;
    let max = session_manager::service::api_key::MAX_LIVE_KEYS;
    let mut last = String::new();
    for i in 0..max {
        last = create_key(&app, &owner, &format!("key {i}"), &["AUDIT_READ"])
            .await
            .1;
    }
    let over = app
        .gql(
            Some(&owner),
            CREATE,
            json!({ "n": "one more", "s": ["AUDIT_READ"] }),
        )
        .await;
    assert_error_code(&over, "BAD_USER_INPUT", "over the cap");
    assert!(over.to_string().contains("revoke one first"), "{over}");
    app.gql(Some(&owner), REVOKE, json!({ "id": last })).await;
    create_key(&app, &owner, "one more", &["AUDIT_READ"]).await;
}

#[tokio::test]
async fn the_event_types_list_names_the_key_events() {
    let app = spawn_app().await;
    let (owner, _) = owner_token(&app).await;
    let body = app
        .gql(Some(&owner), "{ auditEventTypes }", json!({}))
        .await;
    let types = body["data"]["auditEventTypes"].to_string();
    assert!(
        types.contains("api_key.created") && types.contains("api_key.revoked"),
        "{body}"
    );
}

#[tokio::test]
async fn the_command_line_creates_lists_and_revokes_keys() {
    use crate::cli::{run, text};
    let app = spawn_app().await;
    let out = run(
        &app,
        &[
            "api-key",
            "create",
            "--name",
            "gateway",
            "--scope",
            "sessions:issue",
            "--scope",
            "Sessions:Check",
        ],
        "",
    )
    .await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let key = text(&out.stdout).trim().to_owned();
    assert!(
        key.starts_with("smk_") && key.len() == 47,
        "only the key on stdout: {key}"
    );
    assert!(
        text(&out.stderr).contains("only this once"),
        "{}",
        text(&out.stderr)
    );

    let list = run(&app, &["api-key", "list"], "").await;
    assert!(list.status.success(), "{}", text(&list.stderr));
    let listed = text(&list.stdout);
    assert!(
        listed.contains("gateway") && listed.contains("sessions:issue sessions:check"),
        "{listed}"
    );
    assert!(
        listed.contains(&key[..12]) && !listed.contains(&key[12..]),
        "{listed}"
    );
    let id = listed.split_whitespace().next().unwrap().to_owned();

    let revoke = run(&app, &["api-key", "revoke", &id], "").await;
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    assert!(text(&run(&app, &["api-key", "list"], "").await.stdout).contains("revoked"));
    let events = app.events_of_type("api_key.created").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id, None, "no user on the command line");
    assert_eq!(app.events_of_type("api_key.revoked").await.len(), 1);

    let cases: [(&[&str], &str, &str); 4] = [
        (
            &[
                "api-key",
                "create",
                "--name",
                "x",
                "--scope",
                "sessions:all",
            ],
            "unknown scope",
            "a bad scope",
        ),
        (&["api-key", "create", "--name", "x"], "--scope", "no scope"),
        (
            &["api-key", "create", "--name", "", "--scope", "audit:read"],
            "name",
            "an empty name",
        ),
        (&["api-key", "revoke", "not-a-uuid"], "invalid", "a bad id"),
    ];
    for (args, expected, why) in cases {
        let out = run(&app, args, "").await;
        assert!(!out.status.success(), "{why}: should fail");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(expected),
            "{why}: stderr lacks {expected:?}: {stderr}"
        );
    }
}

/// Sends `query` with `Authorization: Bearer <credential>`; the HTTP status
/// and the body.
pub async fn call(app: &TestApp, credential: &str, query: &str, variables: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.graphql_url())
        .bearer_auth(credential)
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_key_is_refused_every_operation_for_users_as_forbidden_and_audited_as_itself() {
    let app = spawn_app().await;
    let (owner, owner_id) = owner_token(&app).await;
    let alice = app.create_user(Role::User).await;
    let (key, key_id) = create_key(
        &app,
        &owner,
        "all scopes",
        &[
            "SESSIONS_ISSUE",
            "SESSIONS_CHECK",
            "USERS_PROVISION",
            "AUDIT_READ",
        ],
    )
    .await;
    let alice_id = alice.id.to_string();
    let cases = [
        ("{ viewer { user { id } } }", json!({}), "viewer"),
        ("{ sessions { count } }", json!({}), "sessions"),
        (
            "query($u: UUID) { sessions(userId: $u) { count } }",
            json!({ "u": alice_id }),
            "another user's sessions",
        ),
        ("mutation { signOut }", json!({}), "signOut"),
        (
            "mutation($u: UUID) { revokeSessions(userId: $u) }",
            json!({ "u": alice_id }),
            "revokeSessions",
        ),
        (
            "mutation($u: UUID!) { startImpersonation(userId: $u, reason: \"x\") { token } }",
            json!({ "u": alice_id }),
            "impersonation",
        ),
        (
            "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }",
            json!({ "e": alice.email, "p": alice.password }),
            "signIn",
        ),
        ("{ users { pagination { total } } }", json!({}), "users"),
        ("{ auditChain { intact } }", json!({}), "auditChain"),
        ("{ apiKeys { id } }", json!({}), "apiKeys"),
        (
            CREATE,
            json!({ "n": "child", "s": ["AUDIT_READ"] }),
            "a key making keys",
        ),
        (REVOKE, json!({ "id": key_id }), "a key revoking itself"),
        (
            "mutation { changePassword(currentPassword: \"a\", newPassword: \"b\") }",
            json!({}),
            "changePassword",
        ),
    ];
    for (query, variables, why) in cases {
        let (status, body) = call(&app, &key, query, variables).await;
        assert_eq!(status, 200, "{why}: authenticated: {body}");
        assert_error_code(&body, "FORBIDDEN", why);
    }
    assert!(
        app.sessions().await.iter().all(|s| s.user_id != alice.id),
        "no session for alice"
    );
    let list = app.gql(Some(&owner), LIST, json!({})).await;
    assert_eq!(
        list["data"]["apiKeys"].as_array().unwrap().len(),
        1,
        "no key made"
    );
    assert_eq!(list["data"]["apiKeys"][0]["isActive"], true, "not revoked");

    let refusals: Vec<_> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| {
            e.metadata["apiKeyId"] == key_id.as_str()
                && e.status == entity::audit_event::AuditStatus::Failed
        })
        .collect();
    assert!(refusals.len() >= 3, "{refusals:?}");
    for event in &refusals {
        assert_eq!(event.actor_id, None, "a key is no account: {event:?}");
        assert_ne!(event.actor_id, Some(owner_id), "never its creator");
        assert_eq!(event.metadata["apiKeyName"], "all scopes");
        assert_eq!(event.metadata["callerRole"], "api_key");
    }
}

#[tokio::test]
async fn unknown_revoked_and_malformed_keys_are_unauthenticated() {
    let app = spawn_app().await;
    let (owner, _) = owner_token(&app).await;
    let (key, id) = create_key(&app, &owner, "soon revoked", &["AUDIT_READ"]).await;
    let query = "{ sessionAudit { pagination { total } } }";
    let (status, body) = call(&app, &key, query, json!({})).await;
    assert_eq!(status, 200, "live: {body}");
    app.gql(Some(&owner), REVOKE, json!({ "id": id })).await;

    let unknown = format!("smk_{}", "A".repeat(43));
    let cases = [
        (key.clone(), "revoked"),
        (unknown, "unknown"),
        (key[..key.len() - 1].to_owned(), "truncated"),
        (format!("{key}x"), "too long"),
        (format!("{}=", &key[..key.len() - 1]), "a bad character"),
        ("smk_".to_owned(), "the prefix alone"),
    ];
    for (credential, why) in cases {
        let (status, body) = call(&app, &credential, query, json!({})).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert_error_code(&body, "UNAUTHENTICATED", why);
        assert!(body.to_string().contains("API key"), "{why}: {body}");
    }
}

#[tokio::test]
async fn audit_read_reads_every_event_and_other_keys_are_refused() {
    let app = spawn_app().await;
    let (owner, owner_id) = owner_token(&app).await;
    let alice = app.create_user(Role::User).await;
    app.sign_in(&alice).await;
    let (reader, _) = create_key(&app, &owner, "siem", &["AUDIT_READ"]).await;
    let (issuer, issuer_id) = create_key(&app, &owner, "issuer", &["SESSIONS_ISSUE"]).await;
    let query = "{ sessionAudit(limit: 500) { logs { eventType userId ipAddress actor { id } } pagination { total } } auditEventTypes }";
    let (_, body) = call(&app, &reader, query, json!({})).await;
    let logs = body["data"]["sessionAudit"]["logs"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let stored = app.audit_events().await.len();
    assert_eq!(logs.len(), stored, "every event: {body}");
    assert!(logs.iter().any(|e| e["userId"] == alice.id.to_string()));
    assert!(
        logs.iter()
            .any(|e| e["actor"]["id"] == owner_id.to_string()),
        "people resolved"
    );
    assert!(body["data"]["auditEventTypes"].is_array());

    let (_, refused) = call(&app, &issuer, query, json!({})).await;
    assert_error_code(&refused, "FORBIDDEN", "a key without AUDIT_READ");
    let events = app.audit_events().await;
    assert!(
        events.iter().any(
            |e| e.metadata["apiKeyId"] == issuer_id.as_str() && e.event_type == "access.denied"
        ),
        "audited"
    );
}

#[tokio::test]
async fn a_key_records_its_last_use_at_most_once_per_interval() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.activity_write_interval = std::time::Duration::from_secs(3600);
    })
    .await;
    let (owner, _) = owner_token(&app).await;
    let (key, _) = create_key(&app, &owner, "busy", &["AUDIT_READ"]).await;
    let query = "{ auditEventTypes }";
    call(&app, &key, query, json!({})).await;
    let first = entity::api_key::Entity::find().all(app.db()).await.unwrap()[0].last_used_at;
    assert!(first.is_some(), "the first use is recorded");
    let ((), statements) = app
        .count_queries(async {
            for _ in 0..5 {
                call(&app, &key, query, json!({})).await;
            }
        })
        .await;
    assert_eq!(statements, 5, "one read per request, no write");
    let later = entity::api_key::Entity::find().all(app.db()).await.unwrap()[0].last_used_at;
    assert_eq!(first, later);
    let list = app.gql(Some(&owner), LIST, json!({})).await;
    assert!(
        list["data"]["apiKeys"][0]["lastUsedAt"].is_string(),
        "{list}"
    );
}

#[tokio::test]
async fn a_key_cannot_open_a_subscription() {
    use crate::subscriptions::{open, receive, send};
    let app = spawn_app().await;
    let (owner, _) = owner_token(&app).await;
    let (key, _) = create_key(&app, &owner, "socket", &["AUDIT_READ"]).await;
    let mut socket = open(&app).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {key}") } })).await;
    let message = receive(&mut socket).await;
    assert_eq!(message["close"], 4403, "{message}");
    assert!(
        message["reason"]
            .as_str()
            .unwrap()
            .contains("API keys are accepted over HTTP only"),
        "{message}"
    );
}

const ISSUE: &str = "mutation($u: UserRef!, $ip: String, $ua: String, $ttl: String) { issueSession(user: $u, ipAddress: $ip, userAgent: $ua, ttl: $ttl) { token session { id userId expires ipAddress userAgent } } }";
const UPSERT: &str = "mutation($x: String!, $e: String!, $n: String!) { upsertUser(externalId: $x, email: $e, name: $n) { id email name role externalId } }";

#[tokio::test]
async fn a_backend_issues_a_session_by_id_email_or_external_id_and_it_works() {
    let app = spawn_app().await;
    let (owner, _) = owner_token(&app).await;
    let (key, key_id) = create_key(
        &app,
        &owner,
        "app backend",
        &["SESSIONS_ISSUE", "USERS_PROVISION"],
    )
    .await;
    let alice = app.create_user(Role::User).await;
    let (_, provisioned) = call(
        &app,
        &key,
        UPSERT,
        json!({ "x": "ext-42", "e": "Pat@Example.com", "n": "Pat" }),
    )
    .await;
    let pat_id = provisioned["data"]["upsertUser"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{provisioned}"))
        .to_owned();
    let refs = [
        (json!({ "id": alice.id }), alice.id.to_string(), "by id"),
        (
            json!({ "email": alice.email.to_uppercase() }),
            alice.id.to_string(),
            "by email",
        ),
        (
            json!({ "externalId": "ext-42" }),
            pat_id.clone(),
            "by external id",
        ),
    ];
    for (user, expected, why) in refs {
        let (_, body) = call(
            &app,
            &key,
            ISSUE,
            json!({ "u": user, "ip": "203.0.113.9", "ua": "Firefox/131", "ttl": "1h" }),
        )
        .await;
        let payload = &body["data"]["issueSession"];
        assert_eq!(payload["session"]["userId"], expected, "{why}: {body}");
        assert_eq!(payload["session"]["ipAddress"], "203.0.113.9", "{why}");
        let token = payload["token"].as_str().unwrap();
        let viewer = app
            .gql(Some(token), "{ viewer { user { id } } }", json!({}))
            .await;
        assert_eq!(
            viewer["data"]["viewer"]["user"]["id"], expected,
            "{why}: the token works: {viewer}"
        );
        let expires: chrono::DateTime<chrono::Utc> = payload["session"]["expires"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            expires <= chrono::Utc::now() + chrono::Duration::hours(1),
            "{why}: ttl honoured"
        );
    }
    let issued = app.events_of_type("auth.session_issued").await;
    assert_eq!(issued.len(), 3);
    for event in &issued {
        assert_eq!(event.actor_id, None);
        assert_eq!(event.metadata["apiKeyId"], key_id.as_str());
        assert_eq!(event.metadata["apiKeyName"], "app backend");
        assert!(event.session_id.is_some() && event.user_id.is_some());
    }
}

#[tokio::test]
async fn issue_session_refuses_bad_references_ttls_roles_and_scopes() {
    let app = spawn_app().await;
    let (owner, owner_id) = owner_token(&app).await;
    let (key, _) = create_key(&app, &owner, "issuer", &["SESSIONS_ISSUE"]).await;
    let (checker, _) = create_key(&app, &owner, "checker", &["SESSIONS_CHECK"]).await;
    let alice = app.create_user(Role::User).await;
    let admin = app.create_user(Role::Admin).await;
    let id = json!({ "id": alice.id });
    let cases = [
        (json!({ "u": {} }), "BAD_USER_INPUT", "no field of UserRef"),
        (
            json!({ "u": { "id": alice.id, "email": alice.email } }),
            "BAD_USER_INPUT",
            "two fields of UserRef",
        ),
        (
            json!({ "u": { "email": alice.email, "externalId": "x" } }),
            "BAD_USER_INPUT",
            "email and externalId",
        ),
        (
            json!({ "u": { "id": uuid::Uuid::new_v4() } }),
            "NOT_FOUND",
            "an unknown id",
        ),
        (
            json!({ "u": { "email": "nobody@example.com" } }),
            "NOT_FOUND",
            "an unknown email",
        ),
        (
            json!({ "u": { "externalId": "nope" } }),
            "NOT_FOUND",
            "an unknown external id",
        ),
        (
            json!({ "u": id, "ttl": "31d" }),
            "BAD_USER_INPUT",
            "a ttl over SESSION_TTL",
        ),
        (
            json!({ "u": id, "ttl": "soon" }),
            "BAD_USER_INPUT",
            "an unreadable ttl",
        ),
        (
            json!({ "u": id, "ip": "not an ip" }),
            "BAD_USER_INPUT",
            "a bad ipAddress",
        ),
        (json!({ "u": { "id": admin.id } }), "FORBIDDEN", "an admin"),
        (json!({ "u": { "id": owner_id } }), "FORBIDDEN", "an owner"),
    ];
    for (variables, code, why) in cases {
        let (_, body) = call(&app, &key, ISSUE, variables).await;
        assert_error_code(&body, code, why);
    }
    let (_, wrong_scope) = call(&app, &checker, ISSUE, json!({ "u": id })).await;
    assert_error_code(&wrong_scope, "FORBIDDEN", "a key without SESSIONS_ISSUE");
    let alice_token = app.sign_in(&alice).await;
    let as_user = app.gql(Some(&alice_token), ISSUE, json!({ "u": id })).await;
    assert_error_code(&as_user, "FORBIDDEN", "a user's session");
    let owners = app.gql(Some(&owner), ISSUE, json!({ "u": id })).await;
    assert_error_code(&owners, "FORBIDDEN", "even an owner's session");
    let anonymous = app.gql(None, ISSUE, json!({ "u": id })).await;
    assert_error_code(&anonymous, "UNAUTHENTICATED", "no credential");

    let sessions = app.sessions().await;
    assert!(
        sessions.iter().all(|s| s.user_id != admin.id),
        "no session for the admin"
    );
    assert_eq!(
        sessions.iter().filter(|s| s.user_id == alice.id).count(),
        1,
        "only alice's own sign-in"
    );
    let refused = app.events_of_type("auth.session_issued").await;
    assert_eq!(refused.len(), 2, "the refused roles: {refused:?}");
    assert!(
        refused
            .iter()
            .all(|e| e.status == entity::audit_event::AuditStatus::Failed)
    );
    assert!(
        app.refusals()
            .await
            .iter()
            .any(|e| e.metadata["apiKeyName"] == "checker"
                && e.metadata["action"] == "api_key.operation"),
        "the wrong scope is audited"
    );
}

#[tokio::test]
async fn issued_sessions_obey_the_session_cap_even_when_issued_at_once() {
    let app = crate::helpers::spawn_app_with(|c| c.max_sessions_per_user = 2).await;
    let (owner, _) = owner_token(&app).await;
    let (key, _) = create_key(&app, &owner, "issuer", &["SESSIONS_ISSUE"]).await;
    let alice = app.create_user(Role::User).await;
    let first = app.sign_in(&alice).await;
    let issues = (0..6).map(|_| call(&app, &key, ISSUE, json!({ "u": { "id": alice.id } })));
    let results = futures_util::future::join_all(issues).await;
    for (_, body) in &results {
        assert!(body["data"]["issueSession"]["token"].is_string(), "{body}");
    }
    let now = chrono::Utc::now();
    let live = app
        .sessions()
        .await
        .into_iter()
        .filter(|s| s.user_id == alice.id && s.is_active(now))
        .count();
    assert_eq!(live, 2, "the cap holds");
    let old = app
        .gql(Some(&first), "{ viewer { user { id } } }", json!({}))
        .await;
    assert_error_code(&old, "UNAUTHENTICATED", "the oldest session ended");
}

#[tokio::test]
async fn upsert_user_creates_then_updates_by_external_id_and_refuses_conflicts() {
    let app = spawn_app().await;
    let (owner, _) = owner_token(&app).await;
    let (key, key_id) = create_key(&app, &owner, "directory sync", &["USERS_PROVISION"]).await;
    let (issuer, _) = create_key(&app, &owner, "issuer", &["SESSIONS_ISSUE"]).await;
    let taken = app.create_user(Role::User).await;

    let (_, created) = call(
        &app,
        &key,
        UPSERT,
        json!({ "x": "u-1", "e": "Sam@Example.com", "n": "Sam" }),
    )
    .await;
    let sam = &created["data"]["upsertUser"];
    assert_eq!(sam["email"], "sam@example.com", "{created}");
    assert_eq!(sam["role"], "USER");
    assert_eq!(sam["externalId"], "u-1");
    let (_, same) = call(
        &app,
        &key,
        UPSERT,
        json!({ "x": "u-1", "e": "sam@example.com", "n": "Sam" }),
    )
    .await;
    assert_eq!(
        same["data"]["upsertUser"]["id"], sam["id"],
        "the same account"
    );
    let (_, renamed) = call(
        &app,
        &key,
        UPSERT,
        json!({ "x": "u-1", "e": "samuel@example.com", "n": "Samuel" }),
    )
    .await;
    assert_eq!(renamed["data"]["upsertUser"]["name"], "Samuel", "{renamed}");
    assert_eq!(renamed["data"]["upsertUser"]["id"], sam["id"]);

    let created_events = app.events_of_type("user.created").await;
    let by_key: Vec<_> = created_events
        .iter()
        .filter(|e| e.metadata["apiKeyId"] == key_id.as_str())
        .collect();
    assert_eq!(by_key.len(), 1);
    let updated = app.events_of_type("user.updated").await;
    assert_eq!(updated.len(), 1, "nothing written when nothing changed");
    assert_eq!(updated[0].metadata["changed"], json!(["email", "name"]));

    let signin = app
        .gql(None, "mutation { signIn(email: \"samuel@example.com\", password: \"whatever-password\") { token } }", json!({}))
        .await;
    assert_error_code(&signin, "UNAUTHENTICATED", "no password: no sign-in");

    let cases = [
        (
            json!({ "x": "u-2", "e": taken.email, "n": "X" }),
            "BAD_USER_INPUT",
            "email",
            "a new account with a taken email",
        ),
        (
            json!({ "x": "u-1", "e": taken.email, "n": "X" }),
            "BAD_USER_INPUT",
            "email",
            "moving to a taken email",
        ),
        (
            json!({ "x": "", "e": "a@example.com", "n": "X" }),
            "BAD_USER_INPUT",
            "externalId",
            "an empty external id",
        ),
        (
            json!({ "x": "u-3", "e": "nope", "n": "X" }),
            "BAD_USER_INPUT",
            "email",
            "a malformed email",
        ),
        (
            json!({ "x": "u-3", "e": "a@example.com", "n": "" }),
            "BAD_USER_INPUT",
            "name",
            "an empty name",
        ),
    ];
    for (variables, code, field, why) in cases {
        let (_, body) = call(&app, &key, UPSERT, variables).await;
        assert_error_code(&body, code, why);
        assert_eq!(
            body["errors"][0]["extensions"]["field"], field,
            "{why}: {body}"
        );
        assert!(
            !body.to_string().contains("UNIQUE") && !body.to_string().contains("duplicate key"),
            "{why}: no SQL: {body}"
        );
    }
    let (_, wrong) = call(
        &app,
        &issuer,
        UPSERT,
        json!({ "x": "u-9", "e": "z@example.com", "n": "Z" }),
    )
    .await;
    assert_error_code(&wrong, "FORBIDDEN", "a key without USERS_PROVISION");
    let owners = app
        .gql(
            Some(&owner),
            UPSERT,
            json!({ "x": "u-9", "e": "z@example.com", "n": "Z" }),
        )
        .await;
    assert_error_code(&owners, "FORBIDDEN", "a user's session");
}

#[tokio::test]
async fn concurrent_upserts_of_one_external_id_make_one_account() {
    let app = spawn_app().await;
    let (owner, _) = owner_token(&app).await;
    let (key, _) = create_key(&app, &owner, "sync", &["USERS_PROVISION"]).await;
    let upserts = (0..6).map(|i| {
        call(
            &app,
            &key,
            UPSERT,
            json!({ "x": "same", "e": "same@example.com", "n": format!("N{i}") }),
        )
    });
    let results = futures_util::future::join_all(upserts).await;
    let ids: std::collections::HashSet<_> = results
        .iter()
        .map(|(_, body)| {
            body["data"]["upsertUser"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{body}"))
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{results:?}");
}
