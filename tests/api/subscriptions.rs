//! Live session events over graphql-transport-ws.

use std::time::Duration;

use entity::user::Role;
use futures_util::{SinkExt, StreamExt};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use session_manager::{
    db,
    service::audit::{self, NewEvent},
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest},
};

use crate::helpers::{TestApp, assert_error_code, spawn_app, spawn_app_with, spawn_replica};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

const EVENTS: &str = "subscription($u: UUID) { sessionEvents(userId: $u) { eventType status userId actorId sessionId metadata } }";
const REVOKE: &str = "mutation($id: UUID!) { revokeSession(id: $id) { id } }";

pub(crate) async fn open(app: &TestApp) -> Socket {
    let url = format!("{}/graphql/ws", app.address.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (socket, response) = connect_async(request).await.expect("the upgrade succeeds");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    socket
}

pub(crate) async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The next protocol message, or the close frame as `{"close": code, "reason": …}`.
pub(crate) async fn receive(socket: &mut Socket) -> Value {
    loop {
        // Generous: a hostile message (tests/api/hostile.rs) may take a
        // moment to be refused on a loaded machine.
        let next = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s");
        match next {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).unwrap(),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame.map_or((0, String::new()), |f| {
                    (u16::from(f.code), f.reason.to_string())
                });
                return json!({ "close": code, "reason": reason });
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return json!({ "close": 0, "reason": "connection dropped" }),
        }
    }
}

/// Opens a socket and authenticates it.
pub(crate) async fn connect(app: &TestApp, token: &str) -> Socket {
    let mut socket = open(app).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } })).await;
    assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    socket
}

pub(crate) async fn subscribe(socket: &mut Socket, id: &str, variables: Value) {
    send(socket, json!({ "id": id, "type": "subscribe", "payload": { "query": EVENTS, "variables": variables } })).await;
}

/// Reads until a `next` whose event is of `event_type`.
pub(crate) async fn next_event(socket: &mut Socket, event_type: &str) -> Value {
    for _ in 0..50 {
        let message = receive(socket).await;
        assert!(
            message.get("close").is_none(),
            "closed while waiting for {event_type}: {message}"
        );
        if message["type"] == "next"
            && message["payload"]["data"]["sessionEvents"]["eventType"] == event_type
        {
            return message;
        }
    }
    panic!("no {event_type} event");
}

/// The next message that is not an event (events committed just before a
/// subscription started may still arrive on it).
async fn skip_events(socket: &mut Socket) -> Value {
    loop {
        let message = receive(socket).await;
        if message["type"] != "next" {
            return message;
        }
    }
}

#[tokio::test]
async fn a_user_sees_the_revocation_of_one_of_their_sessions_as_it_happens() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (laptop, _) = app.sign_in_as(&alice, "laptop").await;
    let (_, phone) = app.sign_in_as(&alice, "phone").await;
    let mut socket = connect(&app, &laptop).await;
    subscribe(&mut socket, "1", json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = std::time::Instant::now();
    app.gql(Some(&laptop), REVOKE, json!({ "id": phone })).await;
    let message = next_event(&mut socket, "session.revoked").await;
    assert_eq!(message["id"], "1");
    let event = &message["payload"]["data"]["sessionEvents"];
    assert_eq!(event["sessionId"], phone.to_string());
    assert_eq!(event["userId"], alice.id.to_string());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "delivered within a second: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn revoking_the_subscribing_session_closes_its_socket_with_a_reason() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let (watched, watched_id) = app.sign_in_as(&alice, "watched").await;
    let (other, _) = app.sign_in_as(&alice, "other").await;
    let mut socket = connect(&app, &watched).await;
    subscribe(&mut socket, "s", json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.gql(Some(&other), REVOKE, json!({ "id": watched_id }))
        .await;

    let mut saw_error = false;
    loop {
        let message = receive(&mut socket).await;
        if message["type"] == "error" {
            assert_eq!(message["id"], "s");
            assert_eq!(
                message["payload"][0]["extensions"]["code"],
                "UNAUTHENTICATED"
            );
            assert!(
                message["payload"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("revoked")
            );
            saw_error = true;
        }
        if let Some(code) = message.get("close") {
            assert_eq!(code, 4403, "{message}");
            assert!(message["reason"].as_str().unwrap().contains("revoked"));
            break;
        }
    }
    assert!(
        saw_error,
        "each running operation is told why before the close"
    );
}

#[tokio::test]
async fn bad_or_missing_connection_init_closes_with_the_protocol_codes() {
    let app = spawn_app_with(|c| c.ws_init_timeout = Duration::from_millis(300)).await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let revoked = app.sign_in(&alice).await;
    app.gql(Some(&revoked), "mutation { signOut }", json!({}))
        .await;

    let cases = [
        (json!({ "type": "connection_init" }), 4403, "no payload"),
        (
            json!({ "type": "connection_init", "payload": {} }),
            4403,
            "no authorization",
        ),
        (
            json!({ "type": "connection_init", "payload": { "authorization": "Bearer nonsense" } }),
            4403,
            "malformed token",
        ),
        (
            json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {revoked}") } }),
            4403,
            "revoked token",
        ),
        (
            json!({ "type": "connection_init", "payload": { "authorization": token.clone() } }),
            4403,
            "no Bearer scheme",
        ),
        (
            json!({ "id": "1", "type": "subscribe", "payload": { "query": EVENTS } }),
            4401,
            "subscribe before init",
        ),
        (json!({ "type": "what" }), 4400, "unknown message"),
    ];
    for (first, code, why) in cases {
        let mut socket = open(&app).await;
        send(&mut socket, first).await;
        let message = receive(&mut socket).await;
        assert_eq!(message["close"], code, "{why}: {message}");
    }
    let mut socket = open(&app).await;
    socket
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    assert_eq!(receive(&mut socket).await["close"], 4400, "invalid JSON");

    let mut silent = open(&app).await;
    let message = receive(&mut silent).await;
    assert_eq!(
        message["close"], 4408,
        "no connection_init in time: {message}"
    );

    let mut twice = connect(&app, &token).await;
    send(&mut twice, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } })).await;
    assert_eq!(
        receive(&mut twice).await["close"],
        4429,
        "a second connection_init"
    );

    let mut pinging = connect(&app, &token).await;
    send(&mut pinging, json!({ "type": "ping" })).await;
    assert_eq!(receive(&mut pinging).await["type"], "pong");
}

#[tokio::test]
async fn a_user_cannot_watch_someone_else_but_an_admin_can_watch_everyone() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let bob = app.create_user(Role::User).await;
    let admin = app.create_user(Role::Admin).await;
    let alice_token = app.sign_in(&alice).await;
    let admin_token = app.sign_in(&admin).await;

    let mut socket = connect(&app, &alice_token).await;
    subscribe(&mut socket, "spy", json!({ "u": bob.id })).await;
    let message = receive(&mut socket).await;
    assert_eq!(message["type"], "next", "{message}");
    assert_error_code(&message["payload"], "FORBIDDEN", "watching someone else");
    assert_eq!(
        receive(&mut socket).await["type"],
        "complete",
        "the refused operation ends"
    );
    let denied = app
        .events_of_type("access.denied")
        .await
        .pop()
        .expect("the attempt is audited");
    assert_eq!(
        (denied.actor_id, denied.user_id),
        (Some(alice.id), Some(bob.id))
    );

    // Alice's own stream does not carry Bob's events.
    subscribe(&mut socket, "mine", json!({})).await;
    let mut admin_socket = connect(&app, &admin_token).await;
    subscribe(&mut admin_socket, "all", json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.sign_in(&bob).await;
    loop {
        let seen = next_event(&mut admin_socket, "auth.sign_in").await;
        if seen["payload"]["data"]["sessionEvents"]["userId"] == bob.id.to_string() {
            break; // the admin sees Bob's sign-in
        }
    }
    app.sign_in(&alice).await;
    loop {
        let mine = next_event(&mut socket, "auth.sign_in").await;
        let user = &mine["payload"]["data"]["sessionEvents"]["userId"];
        assert_eq!(
            user,
            &json!(alice.id.to_string()),
            "alice's stream carries only her events"
        );
        if mine["payload"]["data"]["sessionEvents"]["metadata"]["email"] == alice.email.as_str() {
            break;
        }
    }
}

#[tokio::test]
async fn an_event_made_on_one_replica_reaches_a_subscriber_on_another() {
    let app = spawn_app().await;
    let replica = spawn_replica(&app, |_| {}).await;
    let alice = app.create_user(Role::User).await;
    let (token, _) = app.sign_in_as(&alice, "a").await;
    let (_, other) = app.sign_in_as(&alice, "b").await;
    let mut socket = connect(&replica, &token).await;
    subscribe(&mut socket, "1", json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    app.gql(Some(&token), REVOKE, json!({ "id": other })).await;
    let message = next_event(&mut socket, "session.revoked").await;
    assert_eq!(
        message["payload"]["data"]["sessionEvents"]["sessionId"],
        other.to_string()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_socket_closes_when_its_session_expires() {
    let app = spawn_app_with(|c| c.session_ttl = Duration::from_secs(2)).await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let mut socket = connect(&app, &token).await;
    subscribe(&mut socket, "1", json!({})).await;
    let started = std::time::Instant::now();
    loop {
        let message = receive(&mut socket).await;
        if message.get("close").is_some() {
            assert_eq!(message["close"], 4403);
            assert!(
                message["reason"].as_str().unwrap().contains("expired"),
                "{message}"
            );
            break;
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connections_per_user_and_operations_per_connection_are_limited() {
    let app = spawn_app_with(|c| {
        c.max_ws_connections_per_user = 1;
        c.max_subscriptions_per_connection = 2;
    })
    .await;
    let alice = app.create_user(Role::User).await;
    let token = app.sign_in(&alice).await;
    let mut first = connect(&app, &token).await;
    let mut second = open(&app).await;
    send(&mut second, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } })).await;
    let message = receive(&mut second).await;
    assert_eq!(message["close"], 4403, "{message}");
    assert!(message["reason"].as_str().unwrap().contains("too many"));

    subscribe(&mut first, "a", json!({})).await;
    subscribe(&mut first, "b", json!({})).await;
    subscribe(&mut first, "c", json!({})).await;
    let message = skip_events(&mut first).await;
    assert_eq!(
        (message["id"].as_str(), message["type"].as_str()),
        (Some("c"), Some("error")),
        "{message}"
    );
    assert_eq!(message["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    send(&mut first, json!({ "id": "a", "type": "complete" })).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    subscribe(&mut first, "d", json!({})).await;
    send(&mut first, json!({ "type": "ping" })).await;
    let message = skip_events(&mut first).await;
    assert_eq!(
        message["type"], "pong",
        "d was accepted after a completed: {message}"
    );
    subscribe(&mut first, "b", json!({})).await;
    let message = skip_events(&mut first).await;
    assert_eq!(message["close"], 4409, "a duplicate id: {message}");

    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _again = connect(&app, &token).await; // the slot was freed
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_closed_with_a_reason() {
    let app = spawn_app_with(|c| c.subscriber_buffer = 8).await;
    let admin = app.create_user(Role::Admin).await;
    let token = app.sign_in(&admin).await;
    let mut socket = connect(&app, &token).await;
    subscribe(&mut socket, "all", json!({})).await;
    tokio::time::sleep(Duration::from_millis(150)).await;

    // A burst far larger than the buffer, committed at once.
    let txn = app.state.db.transaction().await.unwrap();
    for i in 0..100 {
        audit::record(&txn, NewEvent::success("test.burst", format!("burst {i}")))
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();

    loop {
        let message = receive(&mut socket).await;
        if let Some(code) = message.get("close") {
            assert_eq!(code, 1013, "{message}");
            break;
        }
        if message["type"] == "next" && !message["payload"]["errors"].is_null() {
            assert_error_code(
                &message["payload"],
                "RATE_LIMITED",
                "the lag is reported before the close",
            );
        }
    }
}

#[tokio::test]
async fn the_client_address_honours_trust_forwarded_for_on_sockets_too() {
    for (trusted, expected) in [(true, "203.0.113.7"), (false, "127.0.0.1")] {
        let app = spawn_app_with(|c| c.trust_forwarded_for = trusted).await;
        let alice = app.create_user(Role::User).await;
        let bob = app.create_user(Role::User).await;
        let token = app.sign_in(&alice).await;
        let url = format!("{}/graphql/ws", app.address.replace("http://", "ws://"));
        let mut request = url.into_client_request().unwrap();
        let headers = request.headers_mut();
        headers.insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        headers.insert(
            "x-forwarded-for",
            "198.51.100.1, 203.0.113.7".parse().unwrap(),
        );
        let (mut socket, _) = connect_async(request).await.unwrap();
        send(&mut socket, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } })).await;
        assert_eq!(receive(&mut socket).await["type"], "connection_ack");
        subscribe(&mut socket, "spy", json!({ "u": bob.id })).await;
        assert_error_code(
            &receive(&mut socket).await["payload"],
            "FORBIDDEN",
            "watching bob",
        );
        let denied = app.events_of_type("access.denied").await.pop().unwrap();
        assert_eq!(
            denied.ip_address.as_deref(),
            Some(expected),
            "trusted: {trusted}"
        );

        // And over HTTP: only the last, proxy-appended entry counts, and only when trusted.
        app.client
            .post(app.graphql_url())
            .header("x-forwarded-for", "198.51.100.1, 203.0.113.7")
            .json(&json!({ "query": "mutation { signIn(email: \"nobody@example.com\", password: \"wrong password\") { token } }" }))
            .send()
            .await
            .unwrap();
        let failed = app.events_of_type("auth.sign_in").await.pop().unwrap();
        assert_eq!(
            failed.ip_address.as_deref(),
            Some(expected),
            "HTTP, trusted: {trusted}"
        );
    }
}

/// On both databases an append committed by another connection (another
/// process, as far as this server knows) reaches subscribers, and a rolled
/// back one never does. How it is woken differs: on PostgreSQL the commit
/// notifies the event channel (checked with a listener of our own); on
/// SQLite there is no channel, so the event can only have come through the
/// tail reading the log.
#[tokio::test]
async fn an_append_committed_elsewhere_reaches_subscribers_and_a_rolled_back_one_never_does() {
    let app = spawn_app().await;
    let postgres = app.database_url.starts_with("postgres");
    let mut listener = if postgres {
        let mut listener = sea_orm::sqlx::postgres::PgListener::connect(&app.database_url)
            .await
            .expect("listener connects");
        listener
            .listen(session_manager::events::CHANNEL)
            .await
            .expect("LISTEN");
        Some(listener)
    } else {
        None
    };
    let admin = app.create_user(Role::Admin).await;
    let token = app.sign_in(&admin).await;
    let mut socket = connect(&app, &token).await;
    subscribe(&mut socket, "all", json!({})).await;
    if let Some(listener) = listener.as_mut() {
        // The sign-in notified too; drain that first.
        while tokio::time::timeout(Duration::from_millis(300), listener.recv())
            .await
            .is_ok()
        {}
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    let elsewhere = sea_orm::Database::connect(&app.database_url)
        .await
        .expect("a second connection");
    let txn = sea_orm::TransactionTrait::begin(&elsewhere).await.unwrap();
    audit::record(
        &txn,
        NewEvent::success("test.rolled_back", "never committed"),
    )
    .await
    .unwrap();
    txn.rollback().await.unwrap();
    let elsewhere = db::Db::new(elsewhere, None).await.unwrap();
    audit::record_alone(&elsewhere, NewEvent::success("test.committed", "committed"))
        .await
        .unwrap();

    let mut seen = Vec::new();
    loop {
        let message = receive(&mut socket).await;
        assert!(message.get("close").is_none(), "closed: {message}");
        let event_type = message["payload"]["data"]["sessionEvents"]["eventType"].clone();
        if event_type == "test.committed" {
            break;
        }
        seen.push(event_type);
    }
    assert!(
        !seen.iter().any(|t| t == "test.rolled_back"),
        "the rolled-back append was announced: {seen:?}"
    );
    match listener.as_mut() {
        Some(listener) => {
            let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
                .await
                .expect("the committed append notifies the channel")
                .expect("the listener is alive");
            assert_eq!(notification.channel(), session_manager::events::CHANNEL);
        }
        None => assert_eq!(
            sea_orm::ConnectionTrait::get_database_backend(app.db()),
            sea_orm::DatabaseBackend::Sqlite,
            "no channel: only SQLite goes without one"
        ),
    }
    elsewhere.close().await.unwrap();
}

#[tokio::test]
async fn live_events_name_their_people_as_sessionaudit_does() {
    let app = spawn_app().await;
    let alice = app.create_user(Role::User).await;
    let admin = app.create_user(Role::Admin).await;
    let (laptop, _) = app.sign_in_as(&alice, "laptop").await;
    let (_, phone) = app.sign_in_as(&alice, "phone").await;
    let (_, tablet) = app.sign_in_as(&alice, "tablet").await;
    let admin_token = app.sign_in(&admin).await;
    let mut socket = connect(&app, &laptop).await;
    send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": {
        "query": "subscription { sessionEvents { eventType actor { email name role } user { email } } }",
    } }))
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let body = app
        .gql(Some(&admin_token), REVOKE, json!({ "id": phone }))
        .await;
    assert!(body["errors"].is_null(), "{body}");

    let message = next_event(&mut socket, "session.revoked").await;
    let event = &message["payload"]["data"]["sessionEvents"];
    assert!(message["payload"]["errors"].is_null(), "{message}");
    assert_eq!(event["actor"]["email"], admin.email.as_str(), "{message}");
    assert_eq!(event["actor"]["role"], "ADMIN");
    assert_eq!(event["user"]["email"], alice.email.as_str());

    // The subscription keeps no copy of the accounts it has named: a
    // renamed admin shows with the new name on the next event.
    entity::user::Entity::update_many()
        .col_expr(
            entity::user::Column::Name,
            sea_orm::sea_query::Expr::value("Renamed Admin"),
        )
        .filter(entity::user::Column::Id.eq(admin.id))
        .exec(app.db())
        .await
        .unwrap();
    app.gql(Some(&admin_token), REVOKE, json!({ "id": tablet }))
        .await;
    let message = next_event(&mut socket, "session.revoked").await;
    assert_eq!(
        message["payload"]["data"]["sessionEvents"]["actor"]["name"], "Renamed Admin",
        "{message}"
    );
}

#[tokio::test]
async fn concurrent_revocations_on_two_replicas_reach_a_subscriber_in_chain_order() {
    let app = spawn_app().await;
    let replica = spawn_replica(&app, |_| {}).await;
    let alice = app.create_user(Role::User).await;
    let (token, _) = app.sign_in_as(&alice, "watching").await;
    let mut targets = Vec::new();
    for i in 0..16 {
        targets.push(app.sign_in_as(&alice, &format!("device {i}")).await.1);
    }
    let mut socket = connect(&replica, &token).await;
    subscribe(&mut socket, "1", json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let revocations = targets.iter().enumerate().map(|(i, id)| {
        let (server, token) = (if i % 2 == 0 { &app } else { &replica }, &token);
        async move { server.gql(Some(token), REVOKE, json!({ "id": id })).await }
    });
    futures_util::future::join_all(revocations).await;

    let mut delivered = Vec::new();
    while delivered.len() < targets.len() {
        let message = next_event(&mut socket, "session.revoked").await;
        delivered.push(
            message["payload"]["data"]["sessionEvents"]["sessionId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let in_chain: Vec<String> = app
        .events_of_type("session.revoked")
        .await
        .iter()
        .map(|e| e.session_id.unwrap().to_string())
        .collect();
    assert_eq!(delivered, in_chain, "delivered in chain order, each once");
}
