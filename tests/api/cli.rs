//! The command line: adding users, the demo accounts, the schema.

use std::process::{Command, Output, Stdio};

use entity::user::Role;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

const BIN: &str = env!("CARGO_BIN_EXE_session-manager");

pub(crate) async fn run(app: &TestApp, args: &[&str], stdin: &str) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = app
        .command()
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .await
        .unwrap();
    child.wait_with_output().await.unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn user_add_creates_an_account_that_can_sign_in() {
    let app = spawn_app().await;
    let out = run(
        &app,
        &[
            "user",
            "add",
            "--email",
            "Carol@Example.com",
            "--name",
            "Carol",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "a-long-enough-password\n",
    )
    .await;
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("carol@example.com"),
        "{}",
        text(&out.stdout)
    );

    let body = app
        .gql(
            None,
            "mutation { signIn(email: \"carol@example.com\", password: \"a-long-enough-password\") { session { user { role } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["signIn"]["session"]["user"]["role"], "ADMIN",
        "{body}"
    );
}

#[tokio::test]
async fn user_add_refuses_bad_input_with_a_clear_message() {
    let app = spawn_app().await;
    let taken = app.create_user(Role::User).await;
    let cases: [(&[&str], &str, &str, &str); 5] = [
        (
            &["--email", &taken.email, "--name", "Dup", "--role", "user"],
            "a-long-enough-password\n",
            "already exists",
            "duplicate email",
        ),
        (
            &[
                "--email",
                "new@example.com",
                "--name",
                "X",
                "--role",
                "root",
            ],
            "a-long-enough-password\n",
            "unknown role",
            "bad role",
        ),
        (
            &[
                "--email",
                "new@example.com",
                "--name",
                "X",
                "--role",
                "user",
            ],
            "short\n",
            "at least 12",
            "short password",
        ),
        (
            &["--email", "not-an-email", "--name", "X", "--role", "user"],
            "a-long-enough-password\n",
            "email",
            "malformed email",
        ),
        (
            &[
                "--email",
                "new@example.com",
                "--name",
                "X",
                "--role",
                "user",
            ],
            "",
            "no password",
            "empty stdin",
        ),
    ];
    for (args, stdin, expected, why) in cases {
        let mut full = vec!["user", "add"];
        full.extend_from_slice(args);
        full.push("--password-stdin");
        let out = run(&app, &full, stdin).await;
        assert!(!out.status.success(), "{why}: should fail");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(expected),
            "{why}: stderr lacks {expected:?}: {stderr}"
        );
    }
    // Nothing was half-written: only the pre-existing account exists.
    let body = app
        .gql(None, "mutation { signIn(email: \"new@example.com\", password: \"a-long-enough-password\") { token } }", json!({}))
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn demo_creates_four_accounts_once_and_prints_their_passwords() {
    let app = spawn_app().await;
    let first = run(&app, &["demo"], "").await;
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stdout = text(&first.stdout);
    for email in [
        "owner@example.com",
        "admin@example.com",
        "alice@example.com",
        "bob@example.com",
    ] {
        assert!(stdout.contains(email), "{stdout}");
    }
    assert_eq!(stdout.matches("(created now)").count(), 4, "{stdout}");
    let second = run(&app, &["demo"], "").await;
    assert!(second.status.success());
    assert_eq!(
        text(&second.stdout).matches("(created now)").count(),
        0,
        "demo is idempotent"
    );

    let body = app
        .gql(None, "mutation { signIn(email: \"owner@example.com\", password: \"owner-password-1\") { session { user { role } } } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["signIn"]["session"]["user"]["role"], "OWNER",
        "{body}"
    );
}

#[test]
fn print_schema_writes_the_sdl() {
    let out = Command::new(BIN).arg("print-schema").output().unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), session_manager::graphql::sdl());
}

#[test]
fn invalid_configuration_fails_fast_with_a_reason() {
    let cases = [
        (vec!["--bind", "nonsense"], "bind"),
        (vec!["--session-ttl", "30x"], "unknown unit"),
        (vec!["--log-format", "xml"], "xml"),
    ];
    for (args, expected) in cases {
        let out = Command::new(BIN)
            .args(&args)
            .arg("migrate")
            .env("DATABASE_URL", "sqlite::memory:")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = Command::new(BIN)
        .arg("migrate")
        .env("DATABASE_URL", "mysql://x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("DATABASE_URL"),
        "{}",
        text(&out.stderr)
    );
}
