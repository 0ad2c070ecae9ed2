//! Settings at start-up: every duration has an upper bound, named in the
//! error, and a server at the bounds works.

use std::{
    process::{Command, Output, Stdio},
    time::Duration,
};

use entity::user::Role;
use serde_json::json;
use session_manager::{config::Config, tasks};

use crate::helpers::{assert_error_code, spawn_app_with};

const BIN: &str = env!("CARGO_BIN_EXE_session-manager");

/// Runs the server binary with `env` and returns its output once it has
/// exited, or `None` if it was still running (it started) after a long
/// while, when it is killed.
fn serve_with(env: &[(&str, &str)]) -> Option<Output> {
    let mut command = Command::new(BIN);
    command
        .env("DATABASE_URL", "sqlite::memory:")
        .env("AUDIT_SIGNING_KEY", crate::helpers::scratch_signing_key())
        .env("BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the binary runs");
    for _ in 0..600 {
        if child.try_wait().expect("waiting works").is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Each duration setting, its largest allowed value, and a value just past it.
const BOUNDS: [(&str, &str, &str); 9] = [
    ("SESSION_TTL", "366d", "367d"),
    ("SESSION_IDLE_TIMEOUT", "366d", "367d"),
    ("ACTIVITY_WRITE_INTERVAL", "1d", "86401s"),
    ("IMPERSONATION_TTL", "1d", "25h"),
    ("SESSION_RETENTION", "3660d", "3661d"),
    ("AUDIT_RETENTION", "36600d", "36601d"),
    ("SIGNIN_FAILURE_WINDOW", "1d", "1441m"),
    ("REQUEST_TIMEOUT", "1h", "3601s"),
    ("WS_INIT_TIMEOUT", "10m", "601s"),
];

#[test]
fn oversized_durations_are_refused_at_start_up_naming_the_setting_and_its_bound() {
    for (name, max, over) in BOUNDS {
        // The idle timeout must exceed the activity interval: keep it long.
        let idle = ("SESSION_IDLE_TIMEOUT", "30d");
        for value in [over, "100000000d"] {
            let mut env = vec![(name, value)];
            if name == "ACTIVITY_WRITE_INTERVAL" {
                env.push(idle);
            }
            let out =
                serve_with(&env).unwrap_or_else(|| panic!("{name}={value}: the server started"));
            assert!(!out.status.success(), "{name}={value} should be refused");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(name) && stderr.contains(&format!("at most {max}")),
                "{name}={value}: the error names neither the setting nor its bound: {stderr}"
            );
        }
    }
}

#[test]
fn durations_too_large_to_represent_are_refused_by_the_parser() {
    for (name, _, _) in BOUNDS {
        let out = serve_with(&[(name, "100000000000000000000d")])
            .unwrap_or_else(|| panic!("{name}: the server started"));
        assert!(!out.status.success(), "{name} should be refused");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(name) && stderr.contains("too large"),
            "{name}: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_server_at_the_largest_allowed_durations_signs_in_impersonates_and_maintains() {
    let app = spawn_app_with(|config| {
        let max = |name: &str| {
            let (_, max, _) = BOUNDS.iter().find(|(n, _, _)| *n == name).unwrap();
            session_manager::config::parse_duration(max).unwrap()
        };
        config.session_ttl = max("SESSION_TTL");
        config.session_idle_timeout = max("SESSION_IDLE_TIMEOUT");
        config.activity_write_interval = max("ACTIVITY_WRITE_INTERVAL");
        config.impersonation_ttl = max("IMPERSONATION_TTL");
        config.session_retention = max("SESSION_RETENTION");
        config.audit_retention = max("AUDIT_RETENTION");
        config.signin_failure_window = max("SIGNIN_FAILURE_WINDOW");
        config.request_timeout = max("REQUEST_TIMEOUT");
        config.ws_init_timeout = max("WS_INIT_TIMEOUT");
        let check: &Config = config;
        check.validate().expect("the largest values are allowed");
    })
    .await;
    let admin = app.create_user(Role::Admin).await;
    let user = app.create_user(Role::User).await;

    // A failed sign-in counts against the (day-long) throttle window.
    let body = app
        .gql(
            None,
            "mutation($e: String!) { signIn(email: $e, password: \"wrong-password-1\") { token } }",
            json!({ "e": user.email }),
        )
        .await;
    assert_error_code(&body, "UNAUTHENTICATED", "wrong password");

    let token = app.sign_in(&user).await;
    let body = app
        .gql(
            Some(&token),
            "{ viewer { session { expires } } }",
            json!({}),
        )
        .await;
    assert!(
        body["data"]["viewer"]["session"]["expires"].is_string(),
        "{body}"
    );

    let admin_token = app.sign_in(&admin).await;
    let body = app
        .gql(
            Some(&admin_token),
            "mutation($u: UUID!) { startImpersonation(userId: $u, reason: \"support ticket 1\") { token } }",
            json!({ "u": user.id }),
        )
        .await;
    assert!(
        body["data"]["startImpersonation"]["token"].is_string(),
        "{body}"
    );

    let report = tasks::run_once(&app.state).await;
    assert!(!report.failed, "{report:?}");
}

#[test]
fn a_metrics_token_too_short_to_be_a_secret_is_refused_without_echoing_it() {
    for value in ["", "short-token", "sixteen chars ok"] {
        let out = serve_with(&[("METRICS_TOKEN", value)])
            .unwrap_or_else(|| panic!("METRICS_TOKEN={value:?}: the server started"));
        assert!(
            !out.status.success(),
            "METRICS_TOKEN={value:?} should be refused"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("METRICS_TOKEN"), "{value:?}: {stderr}");
        if !value.is_empty() {
            assert!(!stderr.contains(value), "the value is echoed: {stderr}");
        }
    }
}
