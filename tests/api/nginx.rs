//! A real nginx (Debian's package) protects an upstream with
//! `auth_request /auth/check`, configured as the README shows. Without
//! nginx the test says so and passes, except under CI (`CI` set), where it
//! fails: there it must run.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use entity::user::Role;
use reqwest::StatusCode;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::helpers::{TestApp, spawn_app};

/// The README's snippet, with the addresses filled in. Keep the two alike.
const SITE: &str = r#"
    location = /auth/check {
        internal;
        proxy_pass http://SESSION_MANAGER/auth/check;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }

    location / {
        auth_request /auth/check;
        auth_request_set $auth_user_id      $upstream_http_x_auth_user_id;
        auth_request_set $auth_session_id   $upstream_http_x_auth_session_id;
        auth_request_set $auth_email        $upstream_http_x_auth_email;
        auth_request_set $auth_role         $upstream_http_x_auth_role;
        auth_request_set $auth_impersonator $upstream_http_x_auth_impersonator_id;
        # Always set, so a client's own X-Auth-* headers never reach the
        # app (an empty value removes the header).
        proxy_set_header X-Auth-User-Id         $auth_user_id;
        proxy_set_header X-Auth-Session-Id      $auth_session_id;
        proxy_set_header X-Auth-Email           $auth_email;
        proxy_set_header X-Auth-Role            $auth_role;
        proxy_set_header X-Auth-Impersonator-Id $auth_impersonator;
        proxy_pass http://UPSTREAM;
    }
"#;

/// nginx in the foreground, as one process (so killing it ends it all),
/// with everything it writes under a temporary prefix.
struct Nginx {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn start(binary: &Path, session_manager: &str, upstream: &str) -> Self {
        let mut last_error = String::new();
        // The free port is found by binding and letting go: another
        // process may take it meanwhile, so try a few.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let prefix = dir.path().display();
            // As root, nginx would hand its worker to `nobody`; keep it.
            let user = if is_root() { "user root root;" } else { "" };
            let site = SITE
                .replace("SESSION_MANAGER", session_manager)
                .replace("UPSTREAM", upstream);
            let config = format!(
                "{user}
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
{site}
    }}
}}
"
            );
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config).unwrap();
            let child = Command::new(binary)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nginx starts");
            let mut nginx = Self { child, port, dir };
            if nginx.wait_until_listening() {
                return nginx;
            }
            last_error = nginx.error_log();
        }
        panic!("nginx did not start; its error log:\n{last_error}");
    }

    fn wait_until_listening(&mut self) -> bool {
        for _ in 0..200 {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// nginx from `PATH` or where Debian puts it.
fn find_nginx() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    in_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

/// An upstream that answers every request with the request's own head
/// (its request line and headers), and counts the requests it saw.
async fn echo_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut received = Vec::new();
                let mut buf = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    received.extend_from_slice(&buf[..n]);
                    if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at;
                    }
                };
                let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
                // Read the body too, so nginx sees its request taken whole.
                let length = head
                    .lines()
                    .filter_map(|line| line.split_once(':'))
                    .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, value)| value.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = received.len() - (head_end + 4);
                while body < length {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => body += n,
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
                    head.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (address, hits)
}

/// The values of a header in the upstream's echo, lower-cased name.
fn echoed<'a>(echo: &'a str, name: &str) -> Vec<&'a str> {
    echo.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

#[tokio::test]
async fn nginx_auth_request_protects_an_upstream() {
    let Some(binary) = find_nginx() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "nginx is not installed, and CI is set: the gateway test must run in CI \
                 (.ci/run installs Debian's nginx; apt-get install nginx)"
            );
        }
        eprintln!("notice: nginx is not installed; the nginx gateway test is skipped");
        return;
    };
    let app = spawn_app().await;
    let (upstream, hits) = echo_upstream().await;
    let session_manager = app.address.trim_start_matches("http://").to_owned();
    let nginx =
        tokio::task::spawn_blocking(move || Nginx::start(&binary, &session_manager, &upstream))
            .await
            .unwrap();
    let user = app.create_user(Role::User).await;
    let (token, session_id) = app.sign_in_as(&user, "browser/1").await;
    let client = &app.client;
    let id = user.id.to_string();
    let session = session_id.to_string();

    // A bearer token.
    let response = client
        .get(nginx.url("/dashboard?tab=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", nginx.error_log());
    let echo = response.text().await.unwrap();
    assert!(echo.starts_with("GET /dashboard?tab=1 "), "{echo}");
    assert_eq!(echoed(&echo, "x-auth-user-id"), [id.as_str()], "{echo}");
    assert_eq!(echoed(&echo, "x-auth-session-id"), [session.as_str()]);
    assert_eq!(echoed(&echo, "x-auth-email"), [user.email.as_str()]);
    assert_eq!(echoed(&echo, "x-auth-role"), ["user"]);
    assert!(echoed(&echo, "x-auth-impersonator-id").is_empty(), "{echo}");

    // A browser's cookie, among others, on a POST (the subrequest keeps
    // the method and drops the body).
    let response = client
        .post(nginx.url("/form"))
        .header("cookie", format!("theme=dark; sm_session={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=1&b=2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", nginx.error_log());
    let echo = response.text().await.unwrap();
    assert!(echo.starts_with("POST /form "), "{echo}");
    assert_eq!(echoed(&echo, "x-auth-user-id"), [id.as_str()], "{echo}");

    // A client's own X-Auth-* headers are replaced or removed.
    let intruder = uuid::Uuid::new_v4().to_string();
    let response = client
        .get(nginx.url("/"))
        .bearer_auth(&token)
        .header("x-auth-user-id", &intruder)
        .header("X-Auth-Role", "owner")
        .header("x-auth-impersonator-id", &intruder)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echo = response.text().await.unwrap();
    assert_eq!(echoed(&echo, "x-auth-user-id"), [id.as_str()], "{echo}");
    assert_eq!(echoed(&echo, "x-auth-role"), ["user"], "{echo}");
    assert!(echoed(&echo, "x-auth-impersonator-id").is_empty(), "{echo}");
    assert!(!echo.contains(&intruder), "{echo}");

    // Without a session the upstream is never reached.
    let seen = hits.load(Ordering::SeqCst);
    for (spoof, why) in [(false, "no credentials"), (true, "only spoofed headers")] {
        let mut request = client.get(nginx.url("/"));
        if spoof {
            request = request
                .header("x-auth-user-id", &id)
                .header("x-auth-role", "owner");
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer"),
            "{why}: passed on by nginx"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), seen, "the upstream saw none");

    // Revoked: the very next request is refused.
    revoke_from_another_session(&app, &user, session_id).await;
    for (request, why) in [
        (client.get(nginx.url("/")).bearer_auth(&token), "bearer"),
        (
            client
                .get(nginx.url("/"))
                .header("cookie", format!("sm_session={token}")),
            "cookie",
        ),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{why} after revokeSession"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), seen);
}

async fn revoke_from_another_session(
    app: &TestApp,
    user: &crate::helpers::TestUser,
    session_id: uuid::Uuid,
) {
    let other = app.sign_in(user).await;
    let body = app
        .gql(
            Some(&other),
            "mutation($id: UUID!) { revokeSession(id: $id) { id } }",
            json!({ "id": session_id }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
}
