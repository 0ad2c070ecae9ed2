//! OpenID Shared Signals: the transmitter's metadata and JWK Set as a
//! receiver reads them from the running server, and SETs signed with the
//! server's key checked by PyJWT (PyPI `pyjwt[crypto]`, run as
//! `tests/api/verify_sets.py`), a standard JOSE library, against the JWK
//! Set fetched over HTTP — not by the server's code. Without the library
//! the checks say so and are skipped, except under CI (`CI` set), where
//! the tests fail (`.ci/run` installs it).

use std::path::{Path, PathBuf};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use entity::{user, user::Role};
use sea_orm::EntityTrait;
use session_manager::service::ssf::{self, set};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, spawn_app_with, spawn_replica};

async fn get_json(app: &TestApp, path: &str) -> (reqwest::StatusCode, String, Value) {
    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.json().await.unwrap())
}

fn key_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[tokio::test]
async fn the_configuration_document_names_the_endpoints_that_answer() {
    let app = spawn_app().await;
    let (status, _, doc) = get_json(&app, "/.well-known/ssf-configuration").await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], app.address.as_str());
    assert_eq!(doc["jwks_uri"], format!("{}/jwks.json", app.address));
    assert_eq!(
        doc["delivery_methods_supported"],
        json!(["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"])
    );
    assert_eq!(
        doc["authorization_schemes"][0]["spec_urn"],
        "urn:ietf:rfc:6750"
    );
    // Every endpoint it names answers (401 without a key), none is a 404.
    for field in [
        "configuration_endpoint",
        "status_endpoint",
        "add_subject_endpoint",
        "remove_subject_endpoint",
        "verification_endpoint",
    ] {
        let url = doc[field].as_str().unwrap();
        assert!(url.starts_with(&app.address), "{field}: {url}");
        let response = app.client.post(url).json(&json!({})).send().await.unwrap();
        assert_eq!(response.status(), 401, "{field}");
    }
}

#[tokio::test]
async fn the_jwks_publishes_the_signing_key_under_its_rfc_7638_thumbprint() {
    let dir = tempfile::tempdir().unwrap();
    let path = key_in(dir.path(), "keys/ssf.pem");
    let app = spawn_app_with(|c| c.ssf_signing_key = Some(path.clone())).await;
    let (status, kind, jwks) = get_json(&app, "/jwks.json").await;
    assert_eq!(status, 200);
    assert_eq!(kind, "application/jwk-set+json");
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let key = &keys[0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert!(
        key.get("d").is_none(),
        "no private part is published: {key}"
    );
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        key["x"].as_str().unwrap(),
        key["y"].as_str().unwrap()
    );
    let thumbprint = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    assert_eq!(key["kid"], thumbprint.as_str());
    assert_eq!(app.state.ssf_keys.kid(), thumbprint);

    // The key was made, readable by its owner only, and is kept: a second
    // server on the same file (a replica, or a restart) publishes the same.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let replica = spawn_replica(&app, |c| c.ssf_signing_key = Some(path.clone())).await;
    let (_, _, again) = get_json(&replica, "/jwks.json").await;
    assert_eq!(again, jwks);
}

#[tokio::test]
async fn sets_signed_by_the_server_verify_with_pyjwt_and_survive_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let old_path = key_in(dir.path(), "old.pem");
    let new_path = key_in(dir.path(), "new.pem");
    let old = spawn_app_with(|c| c.ssf_signing_key = Some(old_path.clone())).await;
    let issuer = old.address.clone();
    let claims = json!({
        "iss": issuer,
        "aud": "https://receiver.test",
        "iat": 1_700_000_000,
        "jti": "a-jti",
        "events": {},
    });
    let signed = old.state.ssf_keys.sign("secevent+jwt", &claims).unwrap();
    let (_, _, jwks) = get_json(&old, "/jwks.json").await;
    let Some(results) = verify(&jwks, &issuer, Some("https://receiver.test"), &[&signed]) else {
        return;
    };
    assert_eq!(results[0]["claims"], claims, "{results:?}");
    assert_eq!(results[0]["header"]["typ"], "secevent+jwt");
    assert_eq!(results[0]["header"]["alg"], "ES256");
    assert_eq!(results[0]["header"]["kid"], old.state.ssf_keys.kid());

    // Tampered claims, another audience or another issuer do not verify.
    let mut parts: Vec<String> = signed.split('.').map(str::to_owned).collect();
    let mut forged = claims.clone();
    forged["jti"] = json!("forged");
    parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
    let tampered = parts.join(".");
    let results = verify(&jwks, &issuer, Some("https://receiver.test"), &[&tampered]).unwrap();
    assert!(results[0].get("error").is_some(), "{results:?}");
    let results = verify(&jwks, &issuer, Some("https://other.test"), &[&signed]).unwrap();
    assert!(results[0].get("error").is_some(), "{results:?}");
    let results = verify(&jwks, "https://other.test", None, &[&signed]).unwrap();
    assert!(results[0].get("error").is_some(), "{results:?}");

    // Rotated: a server on a new key with the old one listed in
    // SSF_PREVIOUS_KEYS publishes both; what the old key signed still
    // verifies, and so does what the new one signs.
    let rotated = spawn_replica(&old, |c| {
        c.ssf_signing_key = Some(new_path.clone());
        c.ssf_previous_keys = vec![old_path.clone()];
    })
    .await;
    assert_ne!(rotated.state.ssf_keys.kid(), old.state.ssf_keys.kid());
    let fresh = rotated
        .state
        .ssf_keys
        .sign("secevent+jwt", &claims)
        .unwrap();
    let (_, _, both) = get_json(&rotated, "/jwks.json").await;
    let kids: Vec<&str> = both["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [rotated.state.ssf_keys.kid(), old.state.ssf_keys.kid()]
    );
    let results = verify(
        &both,
        &issuer,
        Some("https://receiver.test"),
        &[&signed, &fresh],
    )
    .unwrap();
    assert!(results.iter().all(|r| r["claims"] == claims), "{results:?}");
    // Once the old key is dropped from the list, its SETs no longer verify.
    let dropped = spawn_replica(&old, |c| c.ssf_signing_key = Some(new_path.clone())).await;
    let (_, _, only_new) = get_json(&dropped, "/jwks.json").await;
    let results = verify(
        &only_new,
        &issuer,
        Some("https://receiver.test"),
        &[&signed, &fresh],
    )
    .unwrap();
    assert!(results[0].get("error").is_some(), "{results:?}");
    assert_eq!(results[1]["claims"], claims, "{results:?}");
}

/// The SETs the server would send to a stream (`stream`, for `audience`)
/// for the committed audit events after `after`, signed with its key.
async fn sets_after(app: &TestApp, after: i64, audience: &str, stream: Uuid) -> Vec<String> {
    let issuer = app.address.clone();
    let mut sets = Vec::new();
    for event in app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.seq > after)
    {
        let email = event
            .metadata
            .get("userEmail")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let email = match email {
            Some(email) => Some(email),
            None => match event.user_id {
                Some(id) => user::Entity::find_by_id(id)
                    .one(app.db())
                    .await
                    .unwrap()
                    .map(|u| u.email),
                None => None,
            },
        };
        let subject = set::User {
            email: email.as_deref(),
            external_id: None,
        };
        if let Some(claims) = set::claims(&event, subject, &issuer, audience, stream) {
            sets.push(app.state.ssf_keys.sign(ssf::SET_TYP, &claims).unwrap());
        }
    }
    sets
}

#[tokio::test]
async fn revocations_and_password_changes_make_caep_sets_that_pyjwt_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_in(dir.path(), "ssf.pem");
    let app = spawn_app_with(|c| c.ssf_signing_key = Some(key.clone())).await;
    let alice = app.create_user(Role::User).await;
    let (token, _) = app.sign_in_as(&alice, "laptop").await;
    let (_, phone) = app.sign_in_as(&alice, "phone").await;
    let start = app.audit_events().await.last().unwrap().seq;
    let body = app
        .gql(
            Some(&token),
            "mutation($id: UUID!) { revokeSession(id: $id) { id } }",
            json!({ "id": phone }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let body = app
        .gql(
            Some(&token),
            "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }",
            json!({ "c": alice.password, "n": "a-new-long-password-1" }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");

    let stream = Uuid::now_v7();
    let sets = sets_after(&app, start, "https://receiver.test", stream).await;
    let (_, _, jwks) = get_json(&app, "/jwks.json").await;
    let Some(results) = verify(&jwks, &app.address, Some("https://receiver.test"), &sets) else {
        return;
    };
    let kinds: Vec<String> = results
        .iter()
        .map(|r| {
            assert_eq!(r["header"]["typ"], "secevent+jwt", "{r}");
            let events = r["claims"]["events"].as_object().expect("verified");
            assert_eq!(events.len(), 1, "{r}");
            events.keys().next().unwrap().clone()
        })
        .collect();
    assert_eq!(
        kinds,
        [ssf::SESSION_REVOKED, ssf::CREDENTIAL_CHANGE],
        "{results:?}"
    );
    let revoked = &results[0]["claims"];
    assert_eq!(revoked["sub_id"]["format"], "complex");
    assert_eq!(revoked["sub_id"]["user"]["email"], alice.email.as_str());
    assert_eq!(revoked["sub_id"]["session"]["id"], phone.to_string());
    assert!(revoked["events"][ssf::SESSION_REVOKED]["event_timestamp"].is_i64());
    let changed = &results[1]["claims"]["events"][ssf::CREDENTIAL_CHANGE];
    assert_eq!(changed["credential_type"], "password");
    assert_eq!(changed["change_type"], "update");
    // The jtis are distinct, and the same again for the same stream.
    let again = sets_after(&app, start, "https://receiver.test", stream).await;
    let again = verify(&jwks, &app.address, Some("https://receiver.test"), &again).unwrap();
    let jtis: Vec<&Value> = results.iter().map(|r| &r["claims"]["jti"]).collect();
    assert_ne!(jtis[0], jtis[1]);
    assert_eq!(
        jtis,
        again
            .iter()
            .map(|r| &r["claims"]["jti"])
            .collect::<Vec<_>>()
    );
}

/// What PyJWT makes of `sets` against `jwks`; `None` when the library is
/// missing outside CI.
pub fn verify(
    jwks: &Value,
    issuer: &str,
    audience: Option<&str>,
    sets: &[impl AsRef<str>],
) -> Option<Vec<Value>> {
    use std::{io::Write, process::Stdio};
    let installed = std::process::Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        if std::env::var_os("CI").is_some() {
            panic!(
                "PyJWT is missing, and CI is set: SETs must be verified in CI \
                 (.ci/run installs it; pip install 'pyjwt[crypto]')"
            );
        }
        eprintln!("notice: python3 PyJWT is missing; SET verification is skipped");
        return None;
    }
    let sets: Vec<&str> = sets.iter().map(AsRef::as_ref).collect();
    let request = json!({ "jwks": jwks, "issuer": issuer, "audience": audience, "sets": sets });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/verify_sets.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the verifier failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).expect("the verifier's JSON"))
}

// ---------------------------------------------------------------------
// Streams over the management API, delivered by push and poll.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, response::IntoResponse};

use crate::api_keys::{create_key, owner_token};

const PUSH: &str = "urn:ietf:rfc:8935";
const POLL: &str = "urn:ietf:rfc:8936";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
const REVOKE: &str = "mutation($id: UUID!) { revokeSession(id: $id) { id } }";

/// Fast retries and polls; private addresses allowed (the receiver is on
/// 127.0.0.1).
fn fast(config: &mut session_manager::config::Config) {
    config.webhook_allow_private = true;
    config.webhook_retry_base = Duration::from_millis(50);
    config.outbox_poll = Duration::from_millis(20);
    config.webhook_timeout = Duration::from_secs(1);
    config.outbox_lease = Duration::from_secs(3);
}

/// A push receiver (RFC 8935) inside the test: logs every request and
/// answers the scripted statuses, then 202.
/// (status answered, content type, authorization, body) of one request.
type Received = (u16, String, String, String);

#[derive(Clone, Default)]
struct PushReceiver {
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl PushReceiver {
    async fn start() -> (Self, String) {
        let receiver = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .fallback(push_receive)
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, format!("http://{addr}/ssf/events"))
    }

    /// (status answered, content type, authorization, body) of every request.
    fn log(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// The SETs acknowledged (202), in order.
    fn accepted(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|r| r.0 == 202)
            .map(|r| r.3)
            .collect()
    }

    async fn wait_for_accepted(&self, n: usize) -> Vec<String> {
        for _ in 0..1_000 {
            let accepted = self.accepted();
            if accepted.len() >= n {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the receiver never accepted {n} SETs: {:#?}", self.log());
    }
}

async fn push_receive(
    State(receiver): State<PushReceiver>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let status = receiver.script.lock().unwrap().pop_front().unwrap_or(202);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    receiver.log.lock().unwrap().push((
        status,
        header("content-type"),
        header("authorization"),
        String::from_utf8_lossy(&body).into_owned(),
    ));
    axum::http::StatusCode::from_u16(status)
        .unwrap()
        .into_response()
}

async fn db_streams(app: &TestApp) -> Vec<entity::ssf_stream::Model> {
    entity::ssf_stream::Entity::find()
        .all(app.db())
        .await
        .unwrap()
}

/// A key with `scopes` (GraphQL names).
pub(crate) async fn ssf_key(app: &TestApp, scopes: &[&str]) -> String {
    let (owner, _) = owner_token(app).await;
    let name = format!("receiver {}", Uuid::new_v4());
    create_key(app, &owner, &name, scopes).await.0
}

/// A request to an SSF endpoint with `key`: (status, JSON body or null).
pub(crate) async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.client.request(method, format!("{}{path}", app.address));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn create_stream(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, stream) = call(
        app,
        reqwest::Method::POST,
        "/ssf/stream",
        Some(key),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{stream}");
    stream
}

/// `verify` without blocking the runtime the server under test runs on.
async fn verify_async(
    jwks: Value,
    issuer: String,
    audience: String,
    sets: Vec<String>,
) -> Option<Vec<Value>> {
    tokio::task::spawn_blocking(move || verify(&jwks, &issuer, Some(&audience), &sets))
        .await
        .unwrap()
}

/// The event types and claims of SETs verified by PyJWT.
fn events_of(results: &[Value]) -> Vec<(String, Value)> {
    results
        .iter()
        .map(|r| {
            let claims = &r["claims"];
            let events = claims["events"]
                .as_object()
                .unwrap_or_else(|| panic!("verified: {r}"));
            (events.keys().next().unwrap().clone(), claims.clone())
        })
        .collect()
}

#[tokio::test]
async fn stream_management_refuses_missing_and_wrong_keys_and_keys_without_the_scope() {
    let app = spawn_app().await;
    let body = json!({ "aud": "https://r.test", "delivery": { "method": POLL } });
    for (what, key) in [
        ("no key", None),
        ("a malformed key", Some("nope")),
        (
            "an unknown key",
            Some("smk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
    ] {
        let (status, error) = call(
            &app,
            reqwest::Method::POST,
            "/ssf/stream",
            key,
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 401, "{what}: {error}");
        assert_eq!(error["err"], "invalid_token", "{what}");
    }
    // A session token is no API key either.
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let (status, _) = call(
        &app,
        reqwest::Method::GET,
        "/ssf/stream",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 401);

    let key = ssf_key(&app, &["AUDIT_READ"]).await;
    let before = app.refusals().await.len();
    let (status, error) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/stream",
        Some(&key),
        Some(body),
    )
    .await;
    assert_eq!(status, 403, "{error}");
    assert_eq!(error["err"], "insufficient_scope");
    let refusals = app.refusals().await;
    assert_eq!(refusals.len(), before + 1, "the refusal is audited");
    assert!(
        refusals.last().unwrap().metadata.get("apiKeyId").is_some(),
        "{:?}",
        refusals.last()
    );
    assert!(app.events_of_type("ssf.stream_created").await.is_empty());
}

#[tokio::test]
async fn bad_stream_input_is_400_audited_an_unknown_stream_404_and_a_second_stream_for_an_audience_409()
 {
    let app = spawn_app().await;
    let key = ssf_key(&app, &["SSF_MANAGE"]).await;
    let cases = [
        (json!({ "delivery": { "method": POLL } }), "aud", "no aud"),
        (
            json!({ "aud": "https://r.test" }),
            "delivery",
            "no delivery",
        ),
        (
            json!({ "aud": "https://r.test", "delivery": { "method": "urn:x" } }),
            "delivery",
            "unknown method",
        ),
        (
            json!({ "aud": 7, "delivery": { "method": POLL } }),
            "aud",
            "aud not a string",
        ),
        (
            json!({ "aud": "x".repeat(300), "delivery": { "method": POLL } }),
            "aud",
            "aud too long",
        ),
        (
            json!({ "aud": "https://r.test", "delivery": { "method": PUSH } }),
            "endpoint_url",
            "push without url",
        ),
        (
            json!({ "aud": "https://r.test", "delivery": { "method": PUSH, "endpoint_url": "ftp://r.test/x" } }),
            "endpoint_url",
            "not http",
        ),
        (
            json!({ "aud": "https://r.test", "delivery": { "method": PUSH, "endpoint_url": "http://127.0.0.1:9/x" } }),
            "endpoint_url",
            "private without WEBHOOK_ALLOW_PRIVATE",
        ),
        (
            json!({ "aud": "https://r.test", "delivery": { "method": PUSH, "endpoint_url": format!("https://r.test/{}", "x".repeat(3000)) } }),
            "endpoint_url",
            "absurdly long",
        ),
        (
            json!({ "aud": "https://r.test", "delivery": { "method": POLL }, "events_requested": "all" }),
            "events_requested",
            "not a list",
        ),
    ];
    for (body, field, what) in cases {
        let before = app.events_of_type("ssf.stream_created").await.len();
        let (status, error) = call(
            &app,
            reqwest::Method::POST,
            "/ssf/stream",
            Some(&key),
            Some(body),
        )
        .await;
        assert_eq!(status, 400, "{what}: {error}");
        assert_eq!(error["err"], "invalid_request", "{what}");
        assert!(
            error["description"].as_str().unwrap().starts_with(field),
            "{what}: {error}"
        );
        let refused = app.events_of_type("ssf.stream_created").await;
        assert_eq!(refused.len(), before + 1, "{what}: audited");
        let last = refused.last().unwrap();
        assert_eq!(
            last.status,
            entity::audit_event::AuditStatus::Failed,
            "{what}"
        );
        assert_eq!(last.metadata["field"], field, "{what}");
    }
    let (status, _) = call(&app, reqwest::Method::POST, "/ssf/stream", Some(&key), None).await;
    assert_eq!(status, 400, "no body at all: aud is required");
    let response = app
        .client
        .post(format!("{}/ssf/stream", app.address))
        .bearer_auth(&key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "malformed JSON");
    assert!(db_streams(&app).await.is_empty(), "nothing was made");

    let unknown = Uuid::new_v4();
    for (method, path, body) in [
        (
            reqwest::Method::GET,
            format!("/ssf/stream?stream_id={unknown}"),
            None,
        ),
        (
            reqwest::Method::DELETE,
            format!("/ssf/stream?stream_id={unknown}"),
            None,
        ),
        (
            reqwest::Method::PATCH,
            "/ssf/stream".into(),
            Some(json!({ "stream_id": unknown, "description": "x" })),
        ),
        (
            reqwest::Method::GET,
            format!("/ssf/status?stream_id={unknown}"),
            None,
        ),
        (
            reqwest::Method::POST,
            "/ssf/verify".into(),
            Some(json!({ "stream_id": unknown })),
        ),
        (
            reqwest::Method::POST,
            "/ssf/subjects:add".into(),
            Some(
                json!({ "stream_id": unknown, "subject": { "format": "email", "email": "a@b.c" } }),
            ),
        ),
        (
            reqwest::Method::POST,
            format!("/ssf/poll/{unknown}"),
            Some(json!({})),
        ),
    ] {
        let (status, error) = call(&app, method.clone(), &path, Some(&key), body).await;
        assert_eq!(status, 404, "{method} {path}: {error}");
        assert_eq!(error["err"], "not_found");
    }
    let (status, _) = call(
        &app,
        reqwest::Method::GET,
        "/ssf/stream?stream_id=nope",
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 400, "a stream_id that is no id");

    let body = json!({ "aud": "https://r.test", "delivery": { "method": POLL } });
    create_stream(&app, &key, body.clone()).await;
    let (status, error) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/stream",
        Some(&key),
        Some(body),
    )
    .await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(db_streams(&app).await.len(), 1);
}

#[tokio::test]
async fn a_stream_is_created_read_changed_paused_and_deleted_every_change_audited() {
    let app = spawn_app_with(fast).await;
    let key = ssf_key(&app, &["SSF_MANAGE"]).await;
    let (_, url) = PushReceiver::start().await;
    let stream = create_stream(
        &app,
        &key,
        json!({
            "aud": "https://receiver.test",
            "description": "CRM",
            "delivery": { "method": PUSH, "endpoint_url": url, "authorization_header": "Bearer r-secret" },
            "events_requested": [ssf::SESSION_REVOKED, "https://example.com/unsupported"],
        }),
    )
    .await;
    let id = stream["stream_id"].as_str().unwrap().to_owned();
    assert_eq!(stream["iss"], app.address.as_str());
    assert_eq!(stream["aud"], "https://receiver.test");
    assert_eq!(stream["events_delivered"], json!([ssf::SESSION_REVOKED]));
    assert_eq!(
        stream["events_supported"],
        json!([ssf::SESSION_REVOKED, ssf::CREDENTIAL_CHANGE])
    );
    assert_eq!(stream["delivery"]["endpoint_url"], url.as_str());
    assert!(
        !stream.to_string().contains("r-secret"),
        "the authorization header is never answered"
    );

    let (status, one) = call(
        &app,
        reqwest::Method::GET,
        &format!("/ssf/stream?stream_id={id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!((status, &one), (200, &stream));
    let (_, all) = call(&app, reqwest::Method::GET, "/ssf/stream", Some(&key), None).await;
    assert_eq!(all, json!([stream]));

    let (status, patched) = call(
        &app,
        reqwest::Method::PATCH,
        "/ssf/stream",
        Some(&key),
        Some(json!({ "stream_id": id, "events_requested": [ssf::SESSION_REVOKED, ssf::CREDENTIAL_CHANGE] })),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["events_delivered"],
        json!([ssf::SESSION_REVOKED, ssf::CREDENTIAL_CHANGE])
    );
    assert_eq!(
        patched["description"], "CRM",
        "PATCH keeps what it does not name"
    );
    let (status, replaced) = call(
        &app,
        reqwest::Method::PUT,
        "/ssf/stream",
        Some(&key),
        Some(json!({ "stream_id": id, "aud": "https://receiver.test", "delivery": { "method": POLL } })),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert!(
        replaced.get("description").is_none(),
        "PUT replaces: {replaced}"
    );
    assert_eq!(replaced["events_delivered"], json!([]));
    assert_eq!(
        replaced["delivery"]["endpoint_url"],
        format!("{}/ssf/poll/{id}", app.address)
    );

    let (status, body) = call(
        &app,
        reqwest::Method::GET,
        &format!("/ssf/status?stream_id={id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("enabled")));
    let (status, body) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/status",
        Some(&key),
        Some(json!({ "stream_id": id, "status": "paused", "reason": "maintenance" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "stream_id": id, "status": "paused", "reason": "maintenance" })
    );
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/status",
        Some(&key),
        Some(json!({ "stream_id": id, "status": "off" })),
    )
    .await;
    assert_eq!(status, 400);

    let subject =
        json!({ "format": "complex", "user": { "format": "email", "email": "Alice@Example.com" } });
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/subjects:add",
        Some(&key),
        Some(json!({ "stream_id": id, "subject": subject })),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/subjects:add",
        Some(&key),
        Some(json!({ "stream_id": id, "subject": { "format": "phone" } })),
    )
    .await;
    assert_eq!(status, 400);
    let email = json!({ "format": "email", "email": "alice@example.com" });
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/subjects:remove",
        Some(&key),
        Some(json!({ "stream_id": id, "subject": email })),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/subjects:remove",
        Some(&key),
        Some(json!({ "stream_id": id, "subject": email })),
    )
    .await;
    assert_eq!(status, 404, "no longer listed");

    let (status, _) = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/ssf/stream?stream_id={id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &app,
        reqwest::Method::GET,
        &format!("/ssf/stream?stream_id={id}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(status, 404);

    let kinds: Vec<(String, entity::audit_event::AuditStatus)> = app
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.event_type.starts_with("ssf."))
        .map(|e| (e.event_type, e.status))
        .collect();
    use entity::audit_event::AuditStatus::{Failed, Success};
    assert_eq!(
        kinds,
        [
            ("ssf.stream_created".to_owned(), Success),
            ("ssf.stream_updated".to_owned(), Success),
            ("ssf.stream_updated".to_owned(), Success),
            ("ssf.stream_status_changed".to_owned(), Success),
            ("ssf.stream_status_changed".to_owned(), Failed),
            ("ssf.subject_added".to_owned(), Success),
            ("ssf.subject_added".to_owned(), Failed),
            ("ssf.subject_removed".to_owned(), Success),
            ("ssf.stream_deleted".to_owned(), Success),
        ]
    );
    assert!(
        !app.audit_events()
            .await
            .iter()
            .any(|e| e.metadata.to_string().contains("r-secret")),
        "the authorization header is not in the audit log"
    );
}

#[tokio::test]
async fn a_revocation_reaches_a_push_receiver_signed_and_verifiable() {
    let app = spawn_app_with(fast).await;
    let key = ssf_key(&app, &["SSF_MANAGE"]).await;
    let (receiver, url) = PushReceiver::start().await;
    let stream = create_stream(
        &app,
        &key,
        json!({
            "aud": "https://receiver.test",
            "delivery": { "method": PUSH, "endpoint_url": url, "authorization_header": "Bearer r-secret" },
        }),
    )
    .await;
    let id = stream["stream_id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/verify",
        Some(&key),
        Some(json!({ "stream_id": id, "state": "s-123" })),
    )
    .await;
    assert_eq!(status, 204);
    let alice = app.create_user(Role::User).await;
    let (token, _) = app.sign_in_as(&alice, "laptop").await;
    let (_, phone) = app.sign_in_as(&alice, "phone").await;
    let body = app.gql(Some(&token), REVOKE, json!({ "id": phone })).await;
    assert!(body.get("errors").is_none(), "{body}");
    // Sign-out ends a session too.
    let body = app
        .gql(Some(&token), "mutation { signOut }", json!({}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");

    let sets = receiver.wait_for_accepted(3).await;
    let log = receiver.log();
    assert!(
        log.iter()
            .all(|r| r.1 == "application/secevent+jwt" && r.2 == "Bearer r-secret"),
        "{log:?}"
    );
    let (_, _, jwks) = get_json(&app, "/jwks.json").await;
    let Some(results) = verify_async(
        jwks,
        app.address.clone(),
        "https://receiver.test".into(),
        sets.clone(),
    )
    .await
    else {
        return;
    };
    let events = events_of(&results);
    assert_eq!(events[0].0, VERIFICATION, "{results:?}");
    assert_eq!(events[0].1["events"][VERIFICATION]["state"], "s-123");
    assert_eq!(
        events[0].1["sub_id"],
        json!({ "format": "opaque", "id": id })
    );
    assert_eq!(events[1].0, ssf::SESSION_REVOKED);
    assert_eq!(events[1].1["sub_id"]["session"]["id"], phone.to_string());
    assert_eq!(events[1].1["sub_id"]["user"]["email"], alice.email.as_str());
    assert_eq!(events[2].0, ssf::SESSION_REVOKED);
    let revoked = app.events_of_type("session.revoked").await;
    assert_eq!(
        events[1].1["jti"],
        set::jti(revoked[0].id, Uuid::parse_str(&id).unwrap()).as_str(),
        "the jti is derived from the audit event"
    );
    assert_eq!(results[0]["header"]["typ"], "secevent+jwt");
}

#[tokio::test]
async fn a_failing_push_receiver_is_retried_in_order_and_only_listed_subjects_are_sent() {
    let app = spawn_app_with(fast).await;
    let key = ssf_key(&app, &["SSF_MANAGE"]).await;
    let (receiver, url) = PushReceiver::start().await;
    receiver.script.lock().unwrap().extend([500, 503, 200]);
    let stream = create_stream(
        &app,
        &key,
        json!({ "aud": "https://receiver.test", "delivery": { "method": PUSH, "endpoint_url": url } }),
    )
    .await;
    let id = stream["stream_id"].as_str().unwrap().to_owned();
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/subjects:add",
        Some(&key),
        Some(json!({ "stream_id": id, "subject": { "format": "email", "email": alice.email } })),
    )
    .await;
    assert_eq!(status, 200);
    let (alice_token, _) = app.sign_in_as(&alice, "laptop").await;
    let (_, first) = app.sign_in_as(&alice, "phone").await;
    let (_, second) = app.sign_in_as(&alice, "tablet").await;
    let (bob_token, bobs) = app.sign_in_as(&bob, "phone").await;
    let _ = app
        .gql(Some(&bob_token), REVOKE, json!({ "id": bobs }))
        .await;
    for session in [first, second] {
        let body = app
            .gql(Some(&alice_token), REVOKE, json!({ "id": session }))
            .await;
        assert!(body.get("errors").is_none(), "{body}");
    }
    let sets = receiver.wait_for_accepted(2).await;
    // 500, 503 and 200 (not the 202 RFC 8935 asks for) were failures: the
    // first event was sent four times, then the second, in order.
    assert_eq!(receiver.log().len(), 5, "{:?}", receiver.log());
    let (_, _, jwks) = get_json(&app, "/jwks.json").await;
    let Some(results) = verify_async(
        jwks,
        app.address.clone(),
        "https://receiver.test".into(),
        sets,
    )
    .await
    else {
        return;
    };
    let sessions: Vec<Value> = events_of(&results)
        .iter()
        .map(|(_, c)| c["sub_id"]["session"]["id"].clone())
        .collect();
    assert_eq!(
        sessions,
        [json!(first.to_string()), json!(second.to_string())],
        "bob is not listed"
    );
    // Deliveries are recorded in batches (at most half a second after the
    // last one), so the fifth attempt may reach the table a little after
    // the receiver saw it.
    let mut recorded = 0;
    for _ in 0..150 {
        recorded = entity::outbox_attempt::Entity::find()
            .all(app.db())
            .await
            .unwrap()
            .len();
        if recorded >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recorded, 5, "every attempt is recorded, once");
}

#[tokio::test]
async fn a_poll_stream_answers_sets_until_they_are_acknowledged() {
    let app = spawn_app_with(fast).await;
    let key = ssf_key(&app, &["SSF_MANAGE"]).await;
    let stream = create_stream(
        &app,
        &key,
        json!({ "aud": "https://poller.test", "delivery": { "method": POLL } }),
    )
    .await;
    let id = stream["stream_id"].as_str().unwrap().to_owned();
    let poll = format!("/ssf/poll/{id}");
    let (status, empty) = call(
        &app,
        reqwest::Method::POST,
        &poll,
        Some(&key),
        Some(json!({ "returnImmediately": true })),
    )
    .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty, json!({ "sets": {}, "moreAvailable": false }));

    let alice = app.create_user(Role::User).await;
    let (token, _) = app.sign_in_as(&alice, "laptop").await;
    let mut ended = Vec::new();
    for device in ["phone", "tablet", "tv"] {
        let (_, session) = app.sign_in_as(&alice, device).await;
        let body = app
            .gql(Some(&token), REVOKE, json!({ "id": session }))
            .await;
        assert!(body.get("errors").is_none(), "{body}");
        ended.push(session);
    }
    let (_, page) = call(
        &app,
        reqwest::Method::POST,
        &poll,
        Some(&key),
        Some(json!({ "maxEvents": 2, "returnImmediately": true })),
    )
    .await;
    assert_eq!(page["moreAvailable"], true, "{page}");
    let sets = page["sets"].as_object().unwrap().clone();
    assert_eq!(sets.len(), 2);
    // Not acknowledged: the same again.
    let (_, again) = call(
        &app,
        reqwest::Method::POST,
        &poll,
        Some(&key),
        Some(json!({ "maxEvents": 2, "returnImmediately": true })),
    )
    .await;
    assert_eq!(again["sets"], Value::Object(sets.clone()));
    let jtis: Vec<String> = sets.keys().cloned().collect();
    let (_, rest) = call(
        &app,
        reqwest::Method::POST,
        &poll,
        Some(&key),
        Some(json!({ "ack": [jtis[0]], "setErrs": { jtis[1].clone(): { "err": "invalid_request", "description": "x" } }, "returnImmediately": true })),
    )
    .await;
    assert_eq!(rest["moreAvailable"], false, "{rest}");
    let rest = rest["sets"].as_object().unwrap().clone();
    assert_eq!(rest.len(), 1, "{rest:?}");
    let mut all: Vec<String> = sets
        .values()
        .chain(rest.values())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let last: Vec<String> = rest.keys().cloned().collect();
    let (_, done) = call(
        &app,
        reqwest::Method::POST,
        &poll,
        Some(&key),
        Some(json!({ "ack": last, "returnImmediately": true })),
    )
    .await;
    assert_eq!(done, json!({ "sets": {}, "moreAvailable": false }));

    // A long poll waits for the next event (bounded by the server).
    let waiting = {
        let client = app.client.clone();
        let url = format!("{}{poll}", app.address);
        let key = key.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, session) = app.sign_in_as(&alice, "watch").await;
    let body = app
        .gql(Some(&token), REVOKE, json!({ "id": session }))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let woke = waiting.await.unwrap();
    let woke = woke["sets"].as_object().unwrap().clone();
    assert_eq!(woke.len(), 1, "{woke:?}");
    all.extend(woke.values().map(|v| v.as_str().unwrap().to_owned()));
    ended.push(session);

    let (_, _, jwks) = get_json(&app, "/jwks.json").await;
    let Some(results) =
        verify_async(jwks, app.address.clone(), "https://poller.test".into(), all).await
    else {
        return;
    };
    // A JSON object has no order: compare the sessions named as sets.
    let mut sessions: Vec<String> = events_of(&results)
        .iter()
        .map(|(_, c)| c["sub_id"]["session"]["id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = ended.iter().map(Uuid::to_string).collect();
    sessions.sort();
    expected.sort();
    assert_eq!(sessions, expected);
    // Bad poll input.
    for body in [
        json!({ "maxEvents": -1 }),
        json!({ "ack": "x" }),
        json!({ "returnImmediately": "yes" }),
    ] {
        let (status, _) = call(
            &app,
            reqwest::Method::POST,
            &poll,
            Some(&key),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body}");
    }
}

#[tokio::test]
async fn a_password_change_and_a_disabled_account_are_announced_to_a_push_receiver() {
    let app = spawn_app_with(fast).await;
    let key = ssf_key(&app, &["SSF_MANAGE"]).await;
    let (receiver, url) = PushReceiver::start().await;
    create_stream(
        &app,
        &key,
        json!({ "aud": "https://receiver.test", "delivery": { "method": PUSH, "endpoint_url": url } }),
    )
    .await;
    let owner = app.create_user(Role::Owner).await;
    let owner_token = app.sign_in(&owner).await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    let (token, _) = app.sign_in_as(&alice, "laptop").await;
    let (_, phone) = app.sign_in_as(&alice, "phone").await;
    let (_, bobs) = app.sign_in_as(&bob, "phone").await;
    let body = app
        .gql(
            Some(&token),
            "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }",
            json!({ "c": alice.password, "n": "a-new-long-password-1" }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let body = app
        .gql(
            Some(&owner_token),
            "mutation($id: UUID!) { disableUser(id: $id, reason: \"left\") { id } }",
            json!({ "id": bob.id }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let expected: Vec<&str> = app
        .audit_events()
        .await
        .iter()
        .filter(|e| set::announced(e))
        .map(|e| e.event_type.as_str().to_owned())
        .map(|t| {
            if t == "password.changed" {
                ssf::CREDENTIAL_CHANGE
            } else {
                ssf::SESSION_REVOKED
            }
        })
        .collect();
    let sets = receiver.wait_for_accepted(expected.len()).await;
    let (_, _, jwks) = get_json(&app, "/jwks.json").await;
    let Some(results) = verify_async(
        jwks,
        app.address.clone(),
        "https://receiver.test".into(),
        sets,
    )
    .await
    else {
        return;
    };
    let got = events_of(&results);
    let kinds: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, expected);
    assert!(kinds.contains(&ssf::CREDENTIAL_CHANGE), "{kinds:?}");
    let sessions: Vec<&Value> = got
        .iter()
        .map(|(_, c)| &c["sub_id"]["session"]["id"])
        .collect();
    assert!(
        sessions.contains(&&json!(phone.to_string())),
        "the password change ended the phone's session"
    );
    assert!(
        sessions.contains(&&json!(bobs.to_string())),
        "disabling bob ended his session"
    );
}

#[tokio::test]
async fn a_push_stream_failing_for_the_retry_window_is_disabled_and_audited() {
    let app = spawn_app_with(|c| {
        fast(c);
        c.webhook_retry_for = Duration::from_secs(1);
    })
    .await;
    let key = ssf_key(&app, &["SSF_MANAGE"]).await;
    let (receiver, url) = PushReceiver::start().await;
    receiver.script.lock().unwrap().extend([500; 10_000]);
    let stream = create_stream(
        &app,
        &key,
        json!({ "aud": "https://receiver.test", "delivery": { "method": PUSH, "endpoint_url": url } }),
    )
    .await;
    let id = stream["stream_id"].as_str().unwrap().to_owned();
    let alice = app.create_user(Role::User).await;
    let (token, _) = app.sign_in_as(&alice, "laptop").await;
    let body = app
        .gql(Some(&token), "mutation { signOut }", json!({}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let mut status = Value::Null;
    for _ in 0..1_000 {
        (_, status) = call(
            &app,
            reqwest::Method::GET,
            &format!("/ssf/status?stream_id={id}"),
            Some(&key),
            None,
        )
        .await;
        if status["status"] == "disabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status["status"], "disabled", "{status}");
    assert!(
        status["reason"].as_str().unwrap().contains("HTTP 500"),
        "{status}"
    );
    let disabled = app.events_of_type("ssf.stream_disabled").await;
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].metadata["streamId"], id.as_str());
    assert!(receiver.log().len() >= 2, "retried before giving up");
    assert!(receiver.accepted().is_empty());
}

#[tokio::test]
async fn owners_and_ssf_keys_list_streams_with_their_health_and_others_are_refused() {
    let app = spawn_app().await;
    let key = ssf_key(&app, &["SSF_MANAGE"]).await;
    let stream = create_stream(
        &app,
        &key,
        json!({ "aud": "https://poller.test", "description": "SIEM", "delivery": { "method": POLL } }),
    )
    .await;
    const STREAMS: &str = "{ ssfStreams { id audience description delivery endpointUrl eventsDelivered status statusReason subjectsRestricted cursorSeq failures lastSuccessAt lag } }";
    let owner = app.create_user(Role::Owner).await;
    let owner_token = app.sign_in(&owner).await;
    let body = app.gql(Some(&owner_token), STREAMS, json!({})).await;
    let listed = &body["data"]["ssfStreams"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{body}");
    let one = &listed[0];
    assert_eq!(one["id"], stream["stream_id"]);
    assert_eq!(one["audience"], "https://poller.test");
    assert_eq!(one["delivery"], "poll");
    assert_eq!(one["endpointUrl"], stream["delivery"]["endpoint_url"]);
    assert_eq!(one["status"], "enabled");
    assert_eq!(one["subjectsRestricted"], false);
    assert!(one["lag"].as_i64().unwrap() >= 0);
    let body = app
        .gql_with_authorization(&format!("Bearer {key}"), STREAMS)
        .await;
    assert_eq!(
        body["data"]["ssfStreams"][0]["id"], stream["stream_id"],
        "{body}"
    );
    for role in [Role::User, Role::Admin] {
        let someone = app.create_user(role).await;
        let token = app.sign_in(&someone).await;
        let body = app.gql(Some(&token), STREAMS, json!({})).await;
        crate::helpers::assert_error_code(&body, "FORBIDDEN", &format!("{role:?}"));
    }
    let other = ssf_key(&app, &["WEBHOOKS_MANAGE"]).await;
    let body = app
        .gql_with_authorization(&format!("Bearer {other}"), STREAMS)
        .await;
    crate::helpers::assert_error_code(&body, "FORBIDDEN", "a key without SSF_MANAGE");
}

/// The claims of a SET, read without verifying it (the other tests verify).
fn claims_of(set: &str) -> Value {
    let payload = set.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_stream_changed_while_it_is_delivered_applies_the_change_from_the_next_event() {
    let app = spawn_app_with(fast).await;
    let key = ssf_key(&app, &["SSF_MANAGE"]).await;
    let (receiver, url) = PushReceiver::start().await;
    let stream = create_stream(
        &app,
        &key,
        json!({ "aud": "https://receiver.test", "delivery": { "method": PUSH, "endpoint_url": url } }),
    )
    .await;
    let id = stream["stream_id"].as_str().unwrap().to_owned();
    let alice = app.create_user(Role::User).await;
    let (token, _) = app.sign_in_as(&alice, "laptop").await;
    let (_, first) = app.sign_in_as(&alice, "phone").await;
    let (_, second) = app.sign_in_as(&alice, "tablet").await;
    let body = app.gql(Some(&token), REVOKE, json!({ "id": first })).await;
    assert!(body.get("errors").is_none(), "{body}");
    // Committed in this order: the change, a revocation it excludes, a
    // verification request. Whatever turn is running sees them in order.
    let (status, _) = call(
        &app,
        reqwest::Method::PATCH,
        "/ssf/stream",
        Some(&key),
        Some(json!({ "stream_id": id, "events_requested": [ssf::CREDENTIAL_CHANGE] })),
    )
    .await;
    assert_eq!(status, 200);
    let body = app.gql(Some(&token), REVOKE, json!({ "id": second })).await;
    assert!(body.get("errors").is_none(), "{body}");
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/ssf/verify",
        Some(&key),
        Some(json!({ "stream_id": id, "state": "after" })),
    )
    .await;
    assert_eq!(status, 204);
    // The change applies at the latest from the event after it: the
    // first revocation went out unless the turn opened the stream after
    // the change committed (a turn reads the stream as it is then); the
    // second never does, and the verification after it does.
    let mut claims: Vec<Value> = Vec::new();
    for _ in 0..1_000 {
        claims = receiver.accepted().iter().map(|s| claims_of(s)).collect();
        if claims
            .iter()
            .any(|c| c["events"][VERIFICATION]["state"] == "after")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = claims.last().expect("the verification was delivered");
    assert_eq!(last["events"][VERIFICATION]["state"], "after", "{claims:?}");
    assert!(
        claims
            .iter()
            .all(|c| c["sub_id"]["session"]["id"] != second.to_string().as_str()),
        "the revocation after the change was not sent: {claims:?}"
    );
    if claims.len() == 2 {
        assert_eq!(claims[0]["sub_id"]["session"]["id"], first.to_string());
    }
}

#[tokio::test]
async fn two_replicas_push_each_revocation_once_in_order_signed_with_the_shared_key() {
    // Replicas behind one name: one issuer, one key file.
    let behind_one_name = |config: &mut session_manager::config::Config| {
        fast(config);
        config.ssf_issuer = Some("https://sessions.example.com".into());
    };
    let app = spawn_app_with(behind_one_name).await;
    let replica = spawn_replica(&app, behind_one_name).await;
    let key = ssf_key(&app, &["SSF_MANAGE"]).await;
    let (receiver, url) = PushReceiver::start().await;
    let stream = create_stream(
        &replica,
        &key,
        json!({
            "aud": "https://receiver.test",
            "delivery": { "method": PUSH, "endpoint_url": url },
            "events_requested": [ssf::SESSION_REVOKED],
        }),
    )
    .await;
    let id = Uuid::parse_str(stream["stream_id"].as_str().unwrap()).unwrap();
    let alice = app.create_user(Role::User).await;
    let mut sessions = Vec::new();
    for i in 0..10_usize {
        let server = if i.is_multiple_of(2) { &app } else { &replica };
        let (token, session) = server.sign_in_as(&alice, "laptop").await;
        let body = server
            .gql(Some(&token), REVOKE, json!({ "id": session }))
            .await;
        assert!(body.get("errors").is_none(), "{body}");
        sessions.push(session.to_string());
    }
    let sets = receiver.wait_for_accepted(sessions.len()).await;
    // Nothing more comes: each revocation once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.accepted().len(),
        sessions.len(),
        "{:#?}",
        receiver.log()
    );
    let revoked = app.events_of_type("session.revoked").await;
    let (_, _, jwks) = get_json(&replica, "/jwks.json").await;
    let Some(results) = verify_async(
        jwks,
        "https://sessions.example.com".into(),
        "https://receiver.test".into(),
        sets,
    )
    .await
    else {
        return;
    };
    let events = events_of(&results);
    let announced: Vec<String> = events
        .iter()
        .map(|(kind, claims)| {
            assert_eq!(kind, ssf::SESSION_REVOKED);
            claims["sub_id"]["session"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(announced, sessions, "each once, in the order they ended");
    let jtis: Vec<&str> = events
        .iter()
        .map(|(_, c)| c["jti"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = revoked.iter().map(|e| set::jti(e.id, id)).collect();
    assert_eq!(jtis, expected, "the jti of each is its audit event's");
}
