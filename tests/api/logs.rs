//! What the server logs: even at `RUST_LOG=trace`, no bearer token or
//! password that came over the wire.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use entity::user::Role;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{
    connect_async,
    tungstenite::{Message, client::IntoClientRequest},
};

use crate::helpers::spawn_app;

const BIN: &str = env!("CARGO_BIN_EXE_session-manager");

/// The server binary, its standard error collected as it comes.
struct Server {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(database_url: &str, rust_log: &str) -> Self {
        let mut child = Command::new(BIN)
            .env("DATABASE_URL", database_url)
            .env("AUDIT_SIGNING_KEY", crate::helpers::scratch_signing_key())
            .env("BIND", "127.0.0.1:0")
            .env("RUST_LOG", rust_log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let collected = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut all = collected.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Self {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    /// The address it listens on, from its start-up line.
    async fn address(&mut self) -> String {
        for _ in 0..600 {
            if let Some(address) = self
                .stderr
                .lock()
                .unwrap()
                .split("GraphiQL at http://")
                .nth(1)
                .and_then(|rest| rest.split("/graphql").next())
            {
                return address.to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the server exited ({status}): {}",
                    self.stderr.lock().unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not start: {}", self.stderr.lock().unwrap());
    }

    /// Stops the server and returns all it wrote to standard error.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn trace_logging_never_prints_bearer_tokens_or_passwords_from_the_wire() {
    let app = spawn_app().await;
    let user = app.create_user(Role::User).await;
    let token = app.sign_in(&user).await;
    let inline_password = "inline-password-never-logged-7d1f";

    for rust_log in [
        "trace",
        "tungstenite=trace,tokio_tungstenite::compat=trace,axum=trace,info",
    ] {
        let mut server = Server::start(&app.database_url, rust_log);
        let address = server.address().await;

        // Over HTTP: the token in a header, a password inline in the body.
        let body: Value = app
            .client
            .post(format!("http://{address}/graphql"))
            .bearer_auth(&token)
            .json(&json!({ "query": format!(
                "mutation {{ signIn(email: \"{}\", password: \"{inline_password}\") {{ token }} }}",
                user.email
            ) }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            body["errors"].is_array() || body["data"].is_object(),
            "{body}"
        );

        // Over a WebSocket: the token in connection_init, a password inline
        // in an operation.
        let mut request = format!("ws://{address}/graphql/ws")
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (mut socket, _) = connect_async(request).await.expect("the upgrade succeeds");
        let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
        socket
            .send(Message::Text(init.to_string().into()))
            .await
            .unwrap();
        let ack = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an answer to connection_init");
        assert!(
            matches!(&ack, Some(Ok(Message::Text(text))) if text.contains("connection_ack")),
            "{ack:?}"
        );
        let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": format!(
            "mutation {{ signIn(email: \"{}\", password: \"{inline_password}\") {{ token }} }}",
            user.email
        ) } });
        socket
            .send(Message::Text(subscribe.to_string().into()))
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an answer to subscribe");
        assert!(matches!(answer, Some(Ok(_))), "{answer:?}");
        let _ = socket.close(None).await;

        let stderr = server.stop();
        // The filter really was at trace for the wire's neighbours.
        assert!(
            stderr.contains(" TRACE "),
            "{rust_log}: trace output expected"
        );
        assert!(!stderr.contains(&token), "{rust_log}: the token was logged");
        assert!(
            !stderr.contains(&token[..20]),
            "{rust_log}: part of the token was logged"
        );
        assert!(
            !stderr.contains(inline_password),
            "{rust_log}: the password was logged"
        );
        for line in stderr.lines() {
            assert!(
                !(line.contains(" TRACE ") && line.contains("tungstenite")),
                "{rust_log}: a tungstenite trace line: {line}"
            );
        }
    }
}
