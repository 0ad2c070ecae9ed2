//! Webhooks: endpoints over the API, deliveries of committed audit events
//! to a receiver inside the test (axum on 127.0.0.1:0), their signatures
//! checked by the official Standard Webhooks library (PyPI
//! `standardwebhooks`, run as `tests/api/verify_webhooks.py`), not by the
//! server's code. Without the library the signature checks say so and are
//! skipped, except under CI (`CI` set), where the tests fail: there they
//! must run (`.ci/run` installs it).

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use entity::user::Role;
use serde_json::{Value, json};
use session_manager::config::Config;

use crate::{
    api_keys::{create_key, owner_token},
    helpers::{TestApp, assert_error_code, spawn_app, spawn_app_with, spawn_replica},
};

const CREATE: &str = "mutation($url: String!, $types: [String!], $d: String) { createWebhookEndpoint(url: $url, eventTypes: $types, description: $d) { secret endpoint { id url description eventTypes enabled cursorSeq lag createdById } } }";
const ENDPOINTS: &str = "{ webhookEndpoints { id url eventTypes enabled disabledReason failures cursorSeq lag lastSuccessAt } }";
const DELIVERIES: &str = "query($id: UUID!, $limit: Int! = 50, $after: UUID) { webhookDeliveries(endpointId: $id, limit: $limit, after: $after) { id eventId eventSeq eventType attempt status responseCode latencyMs error createdAt } }";
const REVOKE: &str = "mutation($id: UUID!) { revokeSession(id: $id) { id } }";

/// Fast retries and polls, a short lease, private addresses allowed (the
/// receiver is on 127.0.0.1).
fn fast(config: &mut Config) {
    config.webhook_allow_private = true;
    config.webhook_retry_base = Duration::from_millis(50);
    config.outbox_poll = Duration::from_millis(20);
    config.webhook_timeout = Duration::from_secs(1);
    config.outbox_lease = Duration::from_secs(3);
}

// ---------------------------------------------------------------------
// The receiver.

/// What the receiver answers one delivery.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// 204.
    Ok,
    Status(u16),
    /// 307 to another address.
    Redirect,
    /// This status with a 2 MB body.
    Huge(u16),
    /// No answer for a minute.
    Hang,
}

/// One request the receiver got, with what it answered (0 for no answer).
#[derive(Clone, Debug)]
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: String,
    status: u16,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    fn acknowledged(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<Delivery>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    delay: Mutex<Duration>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

struct Receiver {
    url: String,
    shared: Arc<Shared>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    /// On `addr` (a port a test held closed until now).
    async fn start_on(addr: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        Self::serve(listener)
    }

    fn serve(listener: tokio::net::TcpListener) -> Self {
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(receive).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}/hooks/session-manager"),
            shared,
        }
    }

    /// Answers these, in order, then the default (204 unless set).
    fn script(&self, replies: &[Reply]) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    fn answer(&self, reply: Reply) {
        *self.shared.default.lock().unwrap() = Some(reply);
    }

    fn log(&self) -> Vec<Delivery> {
        self.shared.log.lock().unwrap().clone()
    }

    fn acknowledged(&self) -> Vec<Delivery> {
        self.log()
            .into_iter()
            .filter(Delivery::acknowledged)
            .collect()
    }

    /// Waits (bounded) until `done` holds of the requests received.
    async fn wait_for(&self, what: &str, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        for _ in 0..2_000 {
            let log = self.log();
            if done(&log) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the receiver never got {what}: {:#?}", self.log());
    }

    /// Waits until the event `id` was acknowledged.
    async fn wait_for_event(&self, id: &str) -> Delivery {
        let log = self
            .wait_for(&format!("event {id} acknowledged"), |log| {
                log.iter().any(|d| d.id == id && d.acknowledged())
            })
            .await;
        log.into_iter()
            .find(|d| d.id == id && d.acknowledged())
            .unwrap()
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let reply = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or(*shared.default.lock().unwrap())
        .unwrap_or(Reply::Ok);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let status = match reply {
        Reply::Ok => 204,
        Reply::Status(code) | Reply::Huge(code) => code,
        Reply::Redirect => 307,
        Reply::Hang => 0,
    };
    let delivery = Delivery {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
    };
    let delay = *shared.delay.lock().unwrap();
    if let Reply::Hang = reply {
        shared.log.lock().unwrap().push(delivery);
        tokio::time::sleep(Duration::from_secs(60)).await;
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::NO_CONTENT.into_response();
    }
    tokio::time::sleep(delay).await;
    // Logged as it is answered, so the log's order is the order answered.
    shared.log.lock().unwrap().push(delivery);
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    let code = StatusCode::from_u16(status).unwrap();
    match reply {
        Reply::Redirect => (
            code,
            [(header::LOCATION, "http://127.0.0.1:9/elsewhere")],
            "moved",
        )
            .into_response(),
        Reply::Huge(_) => (code, "x".repeat(2 * 1024 * 1024)).into_response(),
        _ => (code, "received").into_response(),
    }
}

// ---------------------------------------------------------------------
// Helpers.

/// The signatures of `deliveries` as the official library judges them
/// with `secret`; `None` when the library is missing outside CI.
fn verify(secret: &str, deliveries: &[Delivery]) -> Option<Vec<bool>> {
    use std::{io::Write, process::Stdio};
    let installed = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        if std::env::var_os("CI").is_some() {
            panic!(
                "the Standard Webhooks library is missing, and CI is set: signatures must be \
                 checked in CI (.ci/run installs it; pip install standardwebhooks)"
            );
        }
        eprintln!("notice: python3 standardwebhooks is missing; signature checks are skipped");
        return None;
    }
    let request = json!({
        "secret": secret,
        "deliveries": deliveries.iter().map(|d| json!({
            "headers": {
                "webhook-id": d.id,
                "webhook-timestamp": d.timestamp,
                "webhook-signature": d.signature,
            },
            "body": d.body,
        })).collect::<Vec<_>>(),
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/verify_webhooks.py");
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

#[track_caller]
fn assert_verified(secret: &str, deliveries: &[Delivery], expected: bool, context: &str) {
    if let Some(results) = verify(secret, deliveries) {
        assert!(
            results.iter().all(|ok| *ok == expected),
            "{context}: the library says {results:?} for {deliveries:#?}"
        );
    }
}

/// Makes an endpoint; returns its id and secret.
async fn create_endpoint(
    app: &TestApp,
    token: &str,
    url: &str,
    types: Option<&[&str]>,
) -> (String, String) {
    let body = app
        .gql(Some(token), CREATE, json!({ "url": url, "types": types }))
        .await;
    let payload = &body["data"]["createWebhookEndpoint"];
    assert!(payload.is_object(), "endpoint created: {body}");
    (
        payload["endpoint"]["id"].as_str().unwrap().to_owned(),
        payload["secret"].as_str().unwrap().to_owned(),
    )
}

/// Signs `user` in and revokes that session; returns the id of the
/// `session.revoked` event.
async fn revocation(app: &TestApp, user: &crate::helpers::TestUser) -> String {
    let (token, session) = app.sign_in_as(user, "test-client/1.0").await;
    let body = app
        .gql(Some(&token), REVOKE, json!({ "id": session }))
        .await;
    assert!(body["data"]["revokeSession"].is_object(), "{body}");
    let event = app
        .events_of_type("session.revoked")
        .await
        .into_iter()
        .rfind(|e| e.session_id == Some(session))
        .expect("the revocation is audited");
    event.id.to_string()
}

async fn deliveries(app: &TestApp, token: &str, endpoint: &str) -> Vec<Value> {
    let body = app
        .gql(Some(token), DELIVERIES, json!({ "id": endpoint }))
        .await;
    body["data"]["webhookDeliveries"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone()
}

/// Waits (bounded) until the endpoint's attempts satisfy `done`.
async fn wait_for_attempts(
    app: &TestApp,
    token: &str,
    endpoint: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..2_000 {
        let found = deliveries(app, token, endpoint).await;
        if done(&found) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "never saw {what}: {:#?}",
        deliveries(app, token, endpoint).await
    );
}

const ROTATE: &str = "mutation($id: UUID!, $keep: String) { rotateWebhookSecret(id: $id, keepPreviousFor: $keep) { secret endpoint { id previousSecretUntil } } }";

/// Gives the endpoint a new secret, the replaced one signing beside it
/// for `keep` (the server's default when `None`); returns the new secret
/// and the endpoint's `previousSecretUntil`.
async fn rotate_secret(
    app: &TestApp,
    token: &str,
    endpoint: &str,
    keep: Option<&str>,
) -> (String, Value) {
    let body = app
        .gql(Some(token), ROTATE, json!({ "id": endpoint, "keep": keep }))
        .await;
    let payload = &body["data"]["rotateWebhookSecret"];
    let secret = payload["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    (secret, payload["endpoint"]["previousSecretUntil"].clone())
}

/// Sets the endpoint's filter to sign-ins alone.
async fn only_sign_ins(app: &TestApp, token: &str, endpoint: &str) {
    let body = app
        .gql(
            Some(token),
            "mutation($id: UUID!) { updateWebhookEndpoint(id: $id, eventTypes: [\"auth.sign_in\"]) { eventTypes } }",
            json!({ "id": endpoint }),
        )
        .await;
    assert_eq!(
        body["data"]["updateWebhookEndpoint"]["eventTypes"],
        json!(["auth.sign_in"]),
        "{body}"
    );
}

async fn endpoints(app: &TestApp, token: &str) -> Vec<Value> {
    let body = app.gql(Some(token), ENDPOINTS, json!({})).await;
    body["data"]["webhookEndpoints"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone()
}

// ---------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn a_revocation_is_delivered_signed_with_the_standard_headers_and_the_audit_event() {
    let app = spawn_app_with(fast).await;
    let (owner, owner_id) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    let body = app
        .gql(
            Some(&owner),
            CREATE,
            json!({ "url": receiver.url, "d": "CRM cache" }),
        )
        .await;
    let payload = &body["data"]["createWebhookEndpoint"];
    let secret = payload["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(secret.starts_with("whsec_"), "{secret}");
    let endpoint = &payload["endpoint"];
    assert_eq!(endpoint["url"], receiver.url);
    assert_eq!(endpoint["description"], "CRM cache");
    assert!(endpoint["eventTypes"].is_null(), "every type");
    assert_eq!(endpoint["enabled"], true);
    assert_eq!(endpoint["createdById"], owner_id.to_string());
    let created = app.events_of_type("webhook.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].actor_id, Some(owner_id));
    assert!(
        !created[0].metadata.to_string().contains(secret),
        "the secret is not audited"
    );
    assert_eq!(endpoint["cursorSeq"], created[0].seq, "from now on");

    let alice = app.create_user(Role::User).await;
    let id = revocation(&app, &alice).await;
    let delivery = receiver.wait_for_event(&id).await;

    assert_eq!(delivery.content_type, "application/json");
    assert!(delivery.signature.starts_with("v1,"), "{delivery:?}");
    let sent_at: i64 = delivery.timestamp.parse().expect("Unix seconds");
    assert!((sent_at - chrono::Utc::now().timestamp()).abs() < 300);
    assert_verified(
        secret,
        std::slice::from_ref(&delivery),
        true,
        "the right secret",
    );
    assert_verified(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        std::slice::from_ref(&delivery),
        false,
        "another secret",
    );
    let mut tampered = delivery.clone();
    tampered.body = tampered.body.replace("session.revoked", "session.REVOKED");
    assert_verified(secret, &[tampered], false, "a changed body");

    // The body is the event as `sessionAudit` answers it, with `type` and
    // `timestamp`.
    let audit = app
        .gql(
            Some(&owner),
            "query($t: String) { sessionAudit(filter: { eventType: $t }) { logs { id seq eventType status message createdAt actorId userId sessionId ipAddress userAgent metadata hash } } }",
            json!({ "t": "session.revoked" }),
        )
        .await;
    let listed = audit["data"]["sessionAudit"]["logs"][0].clone();
    let mut sent = delivery.json();
    assert_eq!(sent["type"], "session.revoked");
    assert_eq!(sent["timestamp"], listed["createdAt"]);
    let object = sent.as_object_mut().unwrap();
    object.remove("type");
    object.remove("timestamp");
    assert_eq!(sent, listed, "the body is the audit event");
    assert_eq!(sent["metadata"]["userEmail"], alice.email);

    let listed = endpoints(&app, &owner).await;
    assert_eq!(listed.len(), 1);
    assert!(
        !listed[0].to_string().contains("whsec_"),
        "never shown again"
    );
}

#[tokio::test]
async fn only_the_event_types_asked_for_are_delivered_and_unknown_types_are_refused() {
    let app = spawn_app_with(fast).await;
    let (owner, _) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    let (endpoint, _) =
        create_endpoint(&app, &owner, &receiver.url, Some(&["session.revoked"])).await;
    let everything = Receiver::start().await;
    create_endpoint(&app, &owner, &everything.url, None).await;

    let alice = app.create_user(Role::User).await;
    let first = revocation(&app, &alice).await;
    let second = revocation(&app, &alice).await;
    everything.wait_for_event(&second).await;
    receiver.wait_for_event(&second).await;
    let types: Vec<String> = receiver
        .acknowledged()
        .iter()
        .map(|d| d.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["session.revoked", "session.revoked"]);
    let ids: Vec<String> = receiver
        .acknowledged()
        .iter()
        .map(|d| d.id.clone())
        .collect();
    assert_eq!(ids, [first, second.clone()], "in order");
    let all_types: Vec<String> = everything
        .acknowledged()
        .iter()
        .map(|d| d.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        all_types.contains(&"auth.sign_in".to_owned()),
        "{all_types:?}"
    );

    let cases: &[(Value, &str)] = &[
        (json!([]), "an empty list"),
        (json!(["session.nope"]), "an unknown type"),
        (
            json!(["session.revoked", "session.revoked"]),
            "a type twice",
        ),
        (json!([""]), "an empty type"),
    ];
    for (types, what) in cases {
        let body = app
            .gql(
                Some(&owner),
                CREATE,
                json!({ "url": receiver.url, "types": types }),
            )
            .await;
        assert_error_code(&body, "BAD_USER_INPUT", what);
        assert_eq!(
            body["errors"][0]["extensions"]["field"], "eventTypes",
            "{what}"
        );
    }
    // A change of filter applies from the next event on.
    only_sign_ins(&app, &owner, &endpoint).await;
    let bob = app.create_user(Role::User).await;
    app.sign_in(&bob).await;
    let sign_in = app.events_of_type("auth.sign_in").await.pop().unwrap();
    receiver.wait_for_event(&sign_in.id.to_string()).await;
    let refused = app.events_of_type("webhook.created").await;
    assert_eq!(
        refused
            .iter()
            .filter(|e| e.status == entity::audit_event::AuditStatus::Failed)
            .count(),
        cases.len(),
        "each refusal is audited"
    );
    assert_eq!(app.events_of_type("webhook.updated").await.len(), 1);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_in_order_until_it_acknowledges() {
    let app = spawn_app_with(fast).await;
    let (owner, _) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    receiver.script(&[Reply::Status(500), Reply::Status(503)]);
    let (endpoint, secret) =
        create_endpoint(&app, &owner, &receiver.url, Some(&["session.revoked"])).await;
    let alice = app.create_user(Role::User).await;
    let first = revocation(&app, &alice).await;
    let second = revocation(&app, &alice).await;
    receiver.wait_for_event(&second).await;

    let log = receiver.log();
    let order: Vec<(&str, u16)> = log.iter().map(|d| (d.id.as_str(), d.status)).collect();
    assert_eq!(
        order,
        [
            (first.as_str(), 500),
            (first.as_str(), 503),
            (first.as_str(), 204),
            (second.as_str(), 204)
        ],
        "the second waits behind the first"
    );
    assert_verified(&secret, &log, true, "every attempt is signed");
    let ids: std::collections::HashSet<&str> = log.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "retries keep the webhook-id");

    let attempts =
        wait_for_attempts(&app, &owner, &endpoint, "four attempts", |a| a.len() == 4).await;
    // Newest first.
    let seen: Vec<(i64, &str, i64)> = attempts
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["status"].as_str().unwrap(),
                a["responseCode"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "SUCCESS", 204),
            (3, "SUCCESS", 204),
            (2, "FAILED", 503),
            (1, "FAILED", 500)
        ]
    );
    assert_eq!(attempts[3]["eventId"], first);
    assert!(attempts[3]["error"].as_str().unwrap().contains("500"));
    assert!(attempts[0]["error"].is_null());
    assert!(attempts[0]["latencyMs"].as_i64().unwrap() >= 0);
    // Paging on with `after`.
    let body = app
        .gql(
            Some(&owner),
            DELIVERIES,
            json!({ "id": endpoint, "limit": 2, "after": attempts[1]["id"] }),
        )
        .await;
    let older = body["data"]["webhookDeliveries"].as_array().unwrap();
    assert_eq!(older.len(), 2);
    assert_eq!(older[0]["id"], attempts[2]["id"]);
    for limit in [0, -1, 101] {
        let body = app
            .gql(
                Some(&owner),
                DELIVERIES,
                json!({ "id": endpoint, "limit": limit }),
            )
            .await;
        assert_error_code(&body, "BAD_USER_INPUT", &format!("limit {limit}"));
    }
    let body = app
        .gql(
            Some(&owner),
            DELIVERIES,
            json!({ "id": uuid::Uuid::new_v4() }),
        )
        .await;
    assert_error_code(&body, "NOT_FOUND", "an unknown endpoint");
    let listed = endpoints(&app, &owner).await;
    assert_eq!(listed[0]["failures"], 0, "forgotten once delivered");
    assert!(listed[0]["lastSuccessAt"].is_string());
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_event_once_it_is_up() {
    let app = spawn_app_with(fast).await;
    let (owner, _) = owner_token(&app).await;
    // A port nobody listens on, until the receiver starts on it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let url = format!("http://{addr}/hooks");
    let (endpoint, secret) = create_endpoint(&app, &owner, &url, Some(&["session.revoked"])).await;
    let alice = app.create_user(Role::User).await;
    let id = revocation(&app, &alice).await;
    let attempts = wait_for_attempts(&app, &owner, &endpoint, "two refused connections", |a| {
        a.len() >= 2
    })
    .await;
    for attempt in &attempts {
        assert_eq!(attempt["status"], "FAILED");
        assert!(attempt["responseCode"].is_null());
        let error = attempt["error"].as_str().unwrap();
        assert!(error.contains("cannot connect"), "{error}");
    }
    let listed = endpoints(&app, &owner).await;
    assert!(listed[0]["failures"].as_i64().unwrap() >= 2, "{listed:?}");
    assert_eq!(listed[0]["enabled"], true, "still retrying");

    let receiver = Receiver::start_on(addr).await;
    let delivery = receiver.wait_for_event(&id).await;
    assert_verified(&secret, &[delivery], true, "after the outage");
    assert_eq!(receiver.acknowledged().len(), 1);
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_counts_as_a_failure() {
    let app = spawn_app_with(fast).await;
    let (owner, _) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    receiver.answer(Reply::Redirect);
    let (endpoint, _) =
        create_endpoint(&app, &owner, &receiver.url, Some(&["session.revoked"])).await;
    let alice = app.create_user(Role::User).await;
    let id = revocation(&app, &alice).await;
    let attempts =
        wait_for_attempts(&app, &owner, &endpoint, "two redirects", |a| a.len() >= 2).await;
    for attempt in &attempts {
        assert_eq!(attempt["status"], "FAILED");
        assert_eq!(attempt["responseCode"], 307);
        assert!(
            attempt["error"].as_str().unwrap().contains("not followed"),
            "{attempt}"
        );
    }
    receiver.answer(Reply::Ok);
    receiver.wait_for_event(&id).await;
    assert!(
        receiver.log().iter().all(|d| d.id == id),
        "nothing else was sent"
    );
}

#[tokio::test]
async fn a_huge_answer_is_read_only_in_part_and_a_silent_receiver_times_out() {
    let app = spawn_app_with(fast).await;
    let (owner, _) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    receiver.script(&[Reply::Huge(500), Reply::Hang, Reply::Huge(200)]);
    let (endpoint, _) =
        create_endpoint(&app, &owner, &receiver.url, Some(&["session.revoked"])).await;
    let alice = app.create_user(Role::User).await;
    let id = revocation(&app, &alice).await;
    receiver.wait_for_event(&id).await;
    let attempts =
        wait_for_attempts(&app, &owner, &endpoint, "three attempts", |a| a.len() == 3).await;
    let huge_error = attempts[2]["error"].as_str().unwrap();
    assert!(
        huge_error.starts_with("HTTP 500") && huge_error.len() < 400,
        "the answer's excerpt is short: {huge_error}"
    );
    let timeout = attempts[1]["error"].as_str().unwrap();
    assert!(timeout.contains("timed out"), "{timeout}");
    assert!(attempts[1]["responseCode"].is_null());
    assert_eq!(attempts[0]["status"], "SUCCESS", "a huge 2xx is a success");
    assert_eq!(attempts[0]["responseCode"], 200);
}

#[tokio::test]
async fn private_destinations_are_refused_without_the_flag_at_creation_and_at_connection() {
    let app = spawn_app().await;
    let (owner, owner_id) = owner_token(&app).await;
    let cases = [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost:8080/hook", "a name for loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        (
            "http://169.254.169.254/latest/meta-data",
            "link-local (cloud metadata)",
        ),
        ("http://[::1]/hook", "IPv6 loopback"),
        ("http://[fd00::1]/hook", "unique local"),
        ("http://[fe80::1]/hook", "IPv6 link-local"),
        ("http://[::ffff:127.0.0.1]/hook", "IPv4-mapped loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://224.0.0.1/hook", "multicast"),
        ("ftp://example.com/hook", "not http"),
        ("file:///etc/passwd", "a file"),
        ("https://user:pw@example.com/hook", "credentials in the URL"),
        ("no url at all", "malformed"),
        ("http://host.invalid/hook", "a host that does not resolve"),
    ];
    let long = format!("https://example.com/{}", "a".repeat(2100));
    let mut all: Vec<(&str, &str)> = cases.to_vec();
    all.push((&long, "absurdly long"));
    for (url, what) in &all {
        let body = app.gql(Some(&owner), CREATE, json!({ "url": url })).await;
        assert_error_code(&body, "BAD_USER_INPUT", what);
        assert_eq!(body["errors"][0]["extensions"]["field"], "url", "{what}");
    }
    let refused = app.events_of_type("webhook.created").await;
    assert_eq!(refused.len(), all.len(), "each refusal is audited");
    assert!(refused.iter().all(|e| {
        e.status == entity::audit_event::AuditStatus::Failed && e.actor_id == Some(owner_id)
    }));
    assert!(endpoints(&app, &owner).await.is_empty(), "nothing was made");

    // Made where private addresses were allowed, delivered by a server
    // where they are not: refused at connection, by address or by name.
    let receiver = Receiver::start().await;
    let allowing = spawn_replica(&app, fast).await;
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let (literal, _) =
        create_endpoint(&allowing, &owner, &receiver.url, Some(&["session.revoked"])).await;
    let by_name = format!("http://localhost:{port}/hooks");
    let (named, _) = create_endpoint(&allowing, &owner, &by_name, Some(&["session.revoked"])).await;
    allowing.kill();
    let strict = spawn_replica(&app, |c| {
        fast(c);
        c.webhook_allow_private = false;
    })
    .await;
    let alice = strict.create_user(Role::User).await;
    revocation(&strict, &alice).await;
    for endpoint in [&literal, &named] {
        let attempts = wait_for_attempts(&strict, &owner, endpoint, "a refused attempt", |a| {
            !a.is_empty()
        })
        .await;
        let error = attempts[0]["error"].as_str().unwrap();
        assert!(
            error.contains("not a public address") || error.contains("non-public"),
            "{endpoint}: {error}"
        );
    }
    assert!(receiver.log().is_empty(), "nothing reached the receiver");
}

#[tokio::test]
async fn only_owners_and_keys_with_the_scope_manage_webhooks_and_refusals_are_audited() {
    let app = spawn_app_with(fast).await;
    let (owner, _) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    let admin = app.create_user(Role::Admin).await;
    let admin_token = app.sign_in(&admin).await;
    let user = app.create_user(Role::User).await;
    let user_token = app.sign_in(&user).await;
    let (other_key, _) = create_key(&app, &owner, "introspector", &["SESSIONS_CHECK"]).await;
    let (key, key_id) = create_key(&app, &owner, "hooks admin", &["WEBHOOKS_MANAGE"]).await;
    let (endpoint, _) = create_endpoint(&app, &owner, &receiver.url, None).await;

    let operations = [
        (CREATE, json!({ "url": receiver.url })),
        (ENDPOINTS, json!({})),
        (DELIVERIES, json!({ "id": endpoint })),
        (
            "mutation($id: UUID!) { deleteWebhookEndpoint(id: $id) }",
            json!({ "id": endpoint }),
        ),
        (
            "mutation($id: UUID!) { rotateWebhookSecret(id: $id) { secret } }",
            json!({ "id": endpoint }),
        ),
        (
            "mutation($id: UUID!) { replayWebhook(endpointId: $id, fromSeq: 1) { id } }",
            json!({ "id": endpoint }),
        ),
        (
            "mutation($id: UUID!) { updateWebhookEndpoint(id: $id, enabled: false) { id } }",
            json!({ "id": endpoint }),
        ),
    ];
    let denied_before = app.events_of_type("access.denied").await.len();
    for (query, variables) in &operations {
        for (token, who) in [
            (&admin_token, "an admin"),
            (&user_token, "a user"),
            (&other_key, "a key without the scope"),
        ] {
            let body = app.gql(Some(token), query, variables.clone()).await;
            assert_error_code(&body, "FORBIDDEN", &format!("{who}: {query}"));
        }
        let body = app.gql(None, query, variables.clone()).await;
        assert_error_code(&body, "UNAUTHENTICATED", &format!("anonymous: {query}"));
    }
    let denied = app.events_of_type("access.denied").await;
    let new: Vec<_> = denied[denied_before..].to_vec();
    assert_eq!(new.len(), operations.len() * 3, "each refusal is audited");
    assert!(
        new.iter()
            .all(|e| e.metadata["action"] == "webhooks.manage"),
        "{:?}",
        new.iter().map(|e| &e.metadata).collect::<Vec<_>>()
    );
    assert!(
        endpoints(&app, &owner).await[0]["enabled"] == true,
        "nothing changed"
    );

    // A key with the scope does it all, named in the audit log.
    let body = app
        .gql(Some(&key), CREATE, json!({ "url": receiver.url }))
        .await;
    let made = &body["data"]["createWebhookEndpoint"]["endpoint"];
    assert!(made["createdById"].is_null(), "{body}");
    let event = app.events_of_type("webhook.created").await.pop().unwrap();
    assert_eq!(event.actor_id, None);
    assert_eq!(event.metadata["apiKeyId"], key_id);
    assert_eq!(endpoints(&app, &key).await.len(), 2);
    let body = app
        .gql(
            Some(&key),
            "mutation($id: UUID!) { deleteWebhookEndpoint(id: $id) }",
            json!({ "id": made["id"] }),
        )
        .await;
    assert_eq!(body["data"]["deleteWebhookEndpoint"], true, "{body}");
    // …and nothing else.
    let body = app
        .gql(Some(&key), "{ viewer { user { id } } }", json!({}))
        .await;
    assert_error_code(&body, "FORBIDDEN", "a webhook key is no user");
}

#[tokio::test]
async fn a_rotated_secret_signs_every_delivery_after_it() {
    let app = spawn_app_with(fast).await;
    let (owner, _) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    let (endpoint, old) =
        create_endpoint(&app, &owner, &receiver.url, Some(&["session.revoked"])).await;
    let alice = app.create_user(Role::User).await;
    let before = revocation(&app, &alice).await;
    let first = receiver.wait_for_event(&before).await;
    assert_eq!(first.signature.split(' ').count(), 1, "{first:?}");

    // The default: the replaced secret keeps signing for a day, beside
    // the new one, so either verifies.
    let (new, until) = rotate_secret(&app, &owner, &endpoint, None).await;
    assert!(new.starts_with("whsec_") && new != old);
    let until = chrono::DateTime::parse_from_rfc3339(until.as_str().expect("an overlap"))
        .unwrap()
        .with_timezone(&chrono::Utc);
    let day = chrono::Utc::now() + chrono::Duration::hours(24) - until;
    assert!(day.num_seconds().abs() < 600, "a day from now: {until}");
    let after = revocation(&app, &alice).await;
    let second = receiver.wait_for_event(&after).await;
    assert_eq!(second.signature.split(' ').count(), 2, "{second:?}");
    assert_verified(
        &old,
        std::slice::from_ref(&first),
        true,
        "before: the old secret",
    );
    assert_verified(
        &new,
        std::slice::from_ref(&second),
        true,
        "after: the new secret",
    );
    assert_verified(
        &old,
        std::slice::from_ref(&second),
        true,
        "after: the old one too, for now",
    );

    // Rotated again with no overlap: only the newest signs; the one
    // replaced now and the one before it do not.
    let (newest, until) = rotate_secret(&app, &owner, &endpoint, Some("0s")).await;
    assert_eq!(until, Value::Null);
    let last = revocation(&app, &alice).await;
    let third = receiver.wait_for_event(&last).await;
    assert_eq!(third.signature.split(' ').count(), 1, "{third:?}");
    assert_verified(&newest, std::slice::from_ref(&third), true, "the newest");
    assert_verified(
        &new,
        std::slice::from_ref(&third),
        false,
        "not the one replaced",
    );
    assert_verified(&old, &[third], false, "not the first");

    let rotated = app.events_of_type("webhook.secret_rotated").await;
    assert_eq!(rotated.len(), 2);
    for event in &rotated {
        let metadata = event.metadata.to_string();
        assert!(
            ![&old, &new, &newest]
                .iter()
                .any(|s| metadata.contains(s.as_str()))
        );
    }
    assert!(rotated[0].metadata["previousSecretUntil"].is_string());
    assert!(rotated[1].metadata.get("previousSecretUntil").is_none());

    for (keep, what) in [("8d", "longer than 7 days"), ("soon", "not a duration")] {
        let body = app
            .gql(
                Some(&owner),
                ROTATE,
                json!({ "id": endpoint, "keep": keep }),
            )
            .await;
        assert_error_code(&body, "BAD_USER_INPUT", what);
        assert_eq!(
            body["errors"][0]["extensions"]["field"], "keepPreviousFor",
            "{what}: {body}"
        );
    }
    let refused = app.events_of_type("webhook.secret_rotated").await;
    assert_eq!(
        refused
            .iter()
            .filter(|e| e.status == entity::audit_event::AuditStatus::Failed)
            .count(),
        2,
        "each refusal is audited"
    );
    let body = app
        .gql(Some(&owner), ROTATE, json!({ "id": uuid::Uuid::new_v4() }))
        .await;
    assert_error_code(&body, "NOT_FOUND", "an unknown endpoint");
}

#[tokio::test]
async fn a_change_made_while_a_delivery_is_under_way_applies_from_the_next_event_on() {
    // The worker opened the endpoint (filter and secret) for the delivery
    // under way; the change commits meanwhile, and the events after it must
    // be judged and signed as changed, not as opened.
    let app = spawn_app_with(|config| {
        fast(config);
        // The delivery under way takes 1.5 s: well within its timeout.
        config.webhook_timeout = Duration::from_secs(5);
        config.outbox_lease = Duration::from_secs(12);
    })
    .await;
    let (owner, _) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    *receiver.shared.delay.lock().unwrap() = Duration::from_millis(1_500);
    let (endpoint, old) =
        create_endpoint(&app, &owner, &receiver.url, Some(&["session.revoked"])).await;
    let alice = app.create_user(Role::User).await;
    let before = revocation(&app, &alice).await;
    for _ in 0..1_000 {
        if receiver.shared.in_flight.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        receiver.shared.in_flight.load(Ordering::SeqCst) > 0,
        "a delivery is under way"
    );
    only_sign_ins(&app, &owner, &endpoint).await;
    let (new, _) = rotate_secret(&app, &owner, &endpoint, Some("0s")).await;
    *receiver.shared.delay.lock().unwrap() = Duration::ZERO;
    let bob = app.create_user(Role::User).await;
    app.sign_in(&bob).await;
    let sign_in = app.events_of_type("auth.sign_in").await.pop().unwrap();
    let after = receiver.wait_for_event(&sign_in.id.to_string()).await;
    let first = receiver.wait_for_event(&before).await;
    assert_verified(&old, &[first], true, "under way: the old secret");
    assert_verified(
        &new,
        std::slice::from_ref(&after),
        true,
        "after: the new secret",
    );
    assert_verified(&old, &[after], false, "after: not the old secret");
    let ids: Vec<String> = receiver
        .acknowledged()
        .iter()
        .map(|d| d.id.clone())
        .collect();
    assert_eq!(
        ids,
        [before, sign_in.id.to_string()],
        "the revocation under way, then only the new filter's events"
    );
}

#[tokio::test]
async fn a_replay_sends_the_events_again_in_order_with_their_ids() {
    let app = spawn_app_with(fast).await;
    let (owner, _) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    let (endpoint, secret) =
        create_endpoint(&app, &owner, &receiver.url, Some(&["session.revoked"])).await;
    let alice = app.create_user(Role::User).await;
    let first = revocation(&app, &alice).await;
    let second = revocation(&app, &alice).await;
    receiver.wait_for_event(&second).await;
    let from = app
        .events_of_type("session.revoked")
        .await
        .into_iter()
        .find(|e| e.id.to_string() == first)
        .unwrap()
        .seq;
    let body = app
        .gql(
            Some(&owner),
            "mutation($id: UUID!, $from: Int!) { replayWebhook(endpointId: $id, fromSeq: $from) { cursorSeq } }",
            json!({ "id": endpoint, "from": from }),
        )
        .await;
    assert_eq!(
        body["data"]["replayWebhook"]["cursorSeq"],
        from - 1,
        "{body}"
    );
    let log = receiver
        .wait_for("both events twice", |log| log.len() == 4)
        .await;
    let ids: Vec<&str> = log.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, [&first, &second, &first, &second]);
    assert_verified(&secret, &log, true, "replays are signed");
    let replayed = app.events_of_type("webhook.replayed").await;
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].metadata["fromSeq"], from);

    let head = app.audit_events().await.last().unwrap().seq;
    for bad in [0, -5, head + 2] {
        let body = app
            .gql(
                Some(&owner),
                "mutation($id: UUID!, $from: Int!) { replayWebhook(endpointId: $id, fromSeq: $from) { id } }",
                json!({ "id": endpoint, "from": bad }),
            )
            .await;
        assert_error_code(&body, "BAD_USER_INPUT", &format!("fromSeq {bad}"));
    }
}

#[tokio::test]
async fn a_deleted_endpoint_gets_nothing_more_and_a_disabled_one_waits() {
    let app = spawn_app_with(|c| {
        fast(c);
        c.webhook_retry_for = Duration::from_secs(1);
    })
    .await;
    let (owner, _) = owner_token(&app).await;
    let witness = Receiver::start().await;
    create_endpoint(&app, &owner, &witness.url, Some(&["session.revoked"])).await;
    let doomed = Receiver::start().await;
    doomed.answer(Reply::Status(500));
    let (deleted, _) = create_endpoint(&app, &owner, &doomed.url, Some(&["session.revoked"])).await;
    let alice = app.create_user(Role::User).await;
    let first = revocation(&app, &alice).await;
    witness.wait_for_event(&first).await;
    doomed.wait_for("an attempt", |log| !log.is_empty()).await;
    let body = app
        .gql(
            Some(&owner),
            "mutation($id: UUID!) { deleteWebhookEndpoint(id: $id) }",
            json!({ "id": deleted }),
        )
        .await;
    assert_eq!(body["data"]["deleteWebhookEndpoint"], true, "{body}");
    let attempts_at_delete = doomed.log().len();
    let second = revocation(&app, &alice).await;
    witness.wait_for_event(&second).await;
    // At most the attempt under way when it was deleted ends after it.
    assert!(doomed.log().len() <= attempts_at_delete + 1);
    assert!(doomed.log().iter().all(|d| d.id == first));
    assert_eq!(endpoints(&app, &owner).await.len(), 1);
    let body = app
        .gql(
            Some(&owner),
            "mutation($id: UUID!) { deleteWebhookEndpoint(id: $id) }",
            json!({ "id": deleted }),
        )
        .await;
    assert_error_code(&body, "NOT_FOUND", "deleted already");
    assert_eq!(app.events_of_type("webhook.deleted").await.len(), 1);

    // Failing past WEBHOOK_RETRY_FOR disables an endpoint, audited; turned
    // on again, it delivers from where it stopped.
    let failing = Receiver::start().await;
    failing.answer(Reply::Status(502));
    let (endpoint, _) =
        create_endpoint(&app, &owner, &failing.url, Some(&["session.revoked"])).await;
    let third = revocation(&app, &alice).await;
    let mut disabled = None;
    for _ in 0..2_000 {
        let listed = endpoints(&app, &owner).await;
        let found = listed
            .into_iter()
            .find(|e| e["id"] == endpoint.as_str())
            .unwrap();
        if found["enabled"] == false {
            disabled = Some(found);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let disabled = disabled.expect("the endpoint is disabled");
    assert!(
        disabled["disabledReason"].as_str().unwrap().contains("502"),
        "{disabled}"
    );
    let events = app.events_of_type("webhook.disabled").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].metadata["endpointId"], endpoint);
    failing.answer(Reply::Ok);
    let body = app
        .gql(
            Some(&owner),
            "mutation($id: UUID!) { updateWebhookEndpoint(id: $id, enabled: true) { enabled failures } }",
            json!({ "id": endpoint }),
        )
        .await;
    assert_eq!(
        body["data"]["updateWebhookEndpoint"],
        json!({ "enabled": true, "failures": 0 }),
        "{body}"
    );
    failing.wait_for_event(&third).await;
}

#[tokio::test]
async fn a_crash_mid_delivery_loses_nothing_the_next_server_resumes_from_the_cursor() {
    let app = spawn_app_with(fast).await;
    let (owner, _) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    receiver.script(&[Reply::Hang]);
    let (_, secret) =
        create_endpoint(&app, &owner, &receiver.url, Some(&["session.revoked"])).await;
    let alice = app.create_user(Role::User).await;
    let first = revocation(&app, &alice).await;
    let second = revocation(&app, &alice).await;
    receiver
        .wait_for("the first event in flight", |log| {
            log.iter().any(|d| d.id == first)
        })
        .await;
    app.kill();

    let next = spawn_replica(&app, fast).await;
    let third = revocation(&next, &alice).await;
    receiver.wait_for_event(&third).await;
    let acknowledged: Vec<String> = receiver
        .acknowledged()
        .iter()
        .map(|d| d.id.clone())
        .collect();
    assert_eq!(
        acknowledged,
        [first, second, third],
        "each once, in order, after the crash"
    );
    assert_verified(&secret, &receiver.acknowledged(), true, "after the crash");
}

#[tokio::test]
async fn two_replicas_deliver_each_event_once_in_order_never_concurrently() {
    let app = spawn_app_with(fast).await;
    let replica = spawn_replica(&app, fast).await;
    let (owner, _) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    // Slow enough that two servers sending at once would overlap.
    *receiver.shared.delay.lock().unwrap() = Duration::from_millis(30);
    let (_, secret) =
        create_endpoint(&replica, &owner, &receiver.url, Some(&["session.revoked"])).await;
    let alice = app.create_user(Role::User).await;
    let mut expected = Vec::new();
    for i in 0..12 {
        let server = if i % 2 == 0 { &app } else { &replica };
        expected.push(revocation(server, &alice).await);
    }
    receiver.wait_for_event(expected.last().unwrap()).await;
    let log = receiver.log();
    let ids: Vec<&str> = log.iter().map(|d| d.id.as_str()).collect();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(ids, expected, "each once, in order");
    assert_eq!(
        receiver.shared.max_in_flight.load(Ordering::SeqCst),
        1,
        "never two deliveries to the endpoint at once"
    );
    assert_verified(&secret, &log, true, "from either replica");
}

#[tokio::test]
async fn changes_are_checked_as_at_creation_and_unknown_endpoints_are_not_found() {
    let app = spawn_app_with(fast).await;
    let (owner, _) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = create_endpoint(&app, &owner, &receiver.url, None).await;
    let update = "mutation($id: UUID!, $url: String, $d: String) { updateWebhookEndpoint(id: $id, url: $url, description: $d) { url description } }";
    let cases = [
        (json!({ "url": "gopher://example.com/" }), "url", "not http"),
        (json!({ "url": "" }), "url", "empty"),
        (
            json!({ "d": "a\u{7}b" }),
            "description",
            "a control character",
        ),
        (json!({ "d": "x".repeat(300) }), "description", "too long"),
    ];
    for (change, field, what) in &cases {
        let mut variables = change.clone();
        variables["id"] = json!(endpoint);
        let body = app.gql(Some(&owner), update, variables).await;
        assert_error_code(&body, "BAD_USER_INPUT", what);
        assert_eq!(body["errors"][0]["extensions"]["field"], *field, "{what}");
    }
    let failed = app.events_of_type("webhook.updated").await;
    assert_eq!(failed.len(), cases.len(), "each refusal is audited");
    assert!(
        failed
            .iter()
            .all(|e| e.metadata["endpointId"] == endpoint.as_str())
    );
    let listed = endpoints(&app, &owner).await;
    assert_eq!(listed[0]["url"], receiver.url, "nothing changed");

    // A query string is the receiver's business, kept out of the audit log.
    let with_token = format!("{}?token=s3cret", receiver.url);
    let body = app
        .gql(
            Some(&owner),
            update,
            json!({ "id": endpoint, "url": with_token, "d": "CRM" }),
        )
        .await;
    assert_eq!(
        body["data"]["updateWebhookEndpoint"],
        json!({ "url": with_token, "description": "CRM" }),
        "{body}"
    );
    let event = app.events_of_type("webhook.updated").await.pop().unwrap();
    assert_eq!(event.metadata["changed"], "url description");
    assert!(!event.metadata.to_string().contains("s3cret"));
    assert!(!event.message.contains("s3cret"));
    let body = app
        .gql(
            Some(&owner),
            "mutation($id: UUID!) { updateWebhookEndpoint(id: $id, description: null) { description } }",
            json!({ "id": endpoint }),
        )
        .await;
    assert!(
        body["data"]["updateWebhookEndpoint"]["description"].is_null(),
        "{body}"
    );

    let unknown = uuid::Uuid::new_v4();
    for (query, what) in [
        (
            "mutation($id: UUID!) { updateWebhookEndpoint(id: $id, enabled: false) { id } }",
            "update",
        ),
        (
            "mutation($id: UUID!) { replayWebhook(endpointId: $id, fromSeq: 1) { id } }",
            "replay",
        ),
        (
            "mutation($id: UUID!) { deleteWebhookEndpoint(id: $id) }",
            "delete",
        ),
    ] {
        let body = app.gql(Some(&owner), query, json!({ "id": unknown })).await;
        assert_error_code(&body, "NOT_FOUND", what);
    }
    let body = app.gql(Some(&owner), CREATE, json!({ "url": 42 })).await;
    assert_error_code(&body, "BAD_USER_INPUT", "a URL of the wrong type");
}

#[tokio::test]
async fn a_busy_endpoint_keeps_its_lease_between_events_and_hands_it_back_once_idle() {
    // Caught up, the worker's turn waits for the next event holding the
    // lease: it does not claim, record and release the endpoint (three
    // commits) for every event that comes. Idle for a quarter of the
    // lease (0.75 s here), it hands the lease back.
    use sea_orm::EntityTrait;
    let app = spawn_app_with(fast).await;
    let (owner, _) = owner_token(&app).await;
    let receiver = Receiver::start().await;
    let (endpoint, _) =
        create_endpoint(&app, &owner, &receiver.url, Some(&["session.revoked"])).await;
    let id: uuid::Uuid = endpoint.parse().unwrap();
    let lease_owner = || async {
        entity::outbox_cursor::Entity::find_by_id(id)
            .one(app.db())
            .await
            .unwrap()
            .expect("the endpoint's cursor")
            .lease_owner
    };
    let alice = app.create_user(Role::User).await;
    let first = revocation(&app, &alice).await;
    receiver.wait_for_event(&first).await;
    let holder = lease_owner().await.expect("leased while delivering");
    for round in 0..4 {
        // Between two events the turn is caught up, and keeps the lease.
        for _ in 0..5 {
            assert_eq!(
                lease_owner().await.as_deref(),
                Some(holder.as_str()),
                "caught up before event {round}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let next = revocation(&app, &alice).await;
        receiver.wait_for_event(&next).await;
    }
    let mut released = false;
    for _ in 0..150 {
        if lease_owner().await.is_none() {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(released, "idle, the lease is handed back");
    let revocations = receiver
        .acknowledged()
        .iter()
        .filter(|d| d.json()["type"] == "session.revoked")
        .count();
    assert_eq!(revocations, 5, "each revocation delivered once");
}

#[tokio::test]
async fn an_endpoint_disabled_or_deleted_while_its_turn_waits_gets_nothing_more() {
    // The worker's turn on a caught-up endpoint holds the lease and waits
    // for the next event; disabling or deleting the endpoint meanwhile
    // must still stop its deliveries from the next event on (and, turned
    // on again, it delivers what it missed).
    use sea_orm::EntityTrait;
    let app = spawn_app_with(|config| {
        fast(config);
        // A turn waits up to a quarter of this before it hands back.
        config.outbox_lease = Duration::from_secs(20);
    })
    .await;
    let (owner, _) = owner_token(&app).await;
    let witness = Receiver::start().await;
    create_endpoint(&app, &owner, &witness.url, Some(&["session.revoked"])).await;
    let paused = Receiver::start().await;
    let (paused_id, _) =
        create_endpoint(&app, &owner, &paused.url, Some(&["session.revoked"])).await;
    let gone = Receiver::start().await;
    let (gone_id, _) = create_endpoint(&app, &owner, &gone.url, Some(&["session.revoked"])).await;
    let alice = app.create_user(Role::User).await;
    let first = revocation(&app, &alice).await;
    paused.wait_for_event(&first).await;
    gone.wait_for_event(&first).await;
    let cursor =
        entity::outbox_cursor::Entity::find_by_id(paused_id.parse::<uuid::Uuid>().unwrap())
            .one(app.db())
            .await
            .unwrap()
            .unwrap();
    assert!(
        cursor.lease_owner.is_some(),
        "its turn waits, holding the lease"
    );

    let body = app
        .gql(
            Some(&owner),
            "mutation($id: UUID!) { updateWebhookEndpoint(id: $id, enabled: false) { enabled } }",
            json!({ "id": paused_id }),
        )
        .await;
    assert_eq!(
        body["data"]["updateWebhookEndpoint"]["enabled"], false,
        "{body}"
    );
    let body = app
        .gql(
            Some(&owner),
            "mutation($id: UUID!) { deleteWebhookEndpoint(id: $id) }",
            json!({ "id": gone_id }),
        )
        .await;
    assert_eq!(body["data"]["deleteWebhookEndpoint"], true, "{body}");
    let second = revocation(&app, &alice).await;
    witness.wait_for_event(&second).await;
    // The other endpoints' turns had as long as the witness's.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = |r: &Receiver| r.log().into_iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(
        ids(&paused),
        std::slice::from_ref(&first),
        "disabled: nothing more"
    );
    assert_eq!(
        ids(&gone),
        std::slice::from_ref(&first),
        "deleted: nothing more"
    );

    let body = app
        .gql(
            Some(&owner),
            "mutation($id: UUID!) { updateWebhookEndpoint(id: $id, enabled: true) { enabled } }",
            json!({ "id": paused_id }),
        )
        .await;
    assert_eq!(
        body["data"]["updateWebhookEndpoint"]["enabled"], true,
        "{body}"
    );
    paused.wait_for_event(&second).await;
    assert_eq!(
        ids(&paused),
        [first, second],
        "turned on again: what it missed, once"
    );
}
