use std::{
    path::PathBuf,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use entity::{audit_event, session, user::Role};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryOrder};
use serde_json::{Value, json};
use session_manager::{
    auth::PasswordHasherPool,
    config::Config,
    service::user::{NewUser, create_user},
    startup::Application,
    state::AppState,
};
use uuid::Uuid;

/// A running server with its own database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub database_url: String,
    /// Statements the server has run so far.
    pub queries: Arc<AtomicUsize>,
    /// The audit signing key's file (`AUDIT_SIGNING_KEY`), shared with
    /// replicas; give it to the command line as the server has it.
    pub signing_key: PathBuf,
    _keys: Arc<tempfile::TempDir>,
    /// The server's task: [`TestApp::kill`] stops it as a crash would.
    server: tokio::task::AbortHandle,
    _db: TestDatabase,
}

/// A test user: the account and the password it was created with.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub password: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the server with a configuration the test may adjust.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    init_logs();
    let db = TestDatabase::create().await;
    let keys = Arc::new(tempfile::tempdir().expect("temporary directory"));
    start(db, keys, adjust).await
}

/// A second server process-alike on the same database as `app` (a replica
/// behind a load balancer).
pub async fn spawn_replica(app: &TestApp, adjust: impl FnOnce(&mut Config)) -> TestApp {
    start(
        TestDatabase {
            url: app.database_url.clone(),
            kind: DatabaseKind::Borrowed,
        },
        app._keys.clone(),
        adjust,
    )
    .await
}

async fn start(
    db: TestDatabase,
    keys: Arc<tempfile::TempDir>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::with_database(db.url.clone());
    config.bind = "127.0.0.1:0".parse().unwrap();
    // A key of the test's own, and no checkpoint signed on the server's
    // own unless a test asks for it: a checkpoint is an audit event, and
    // tests count events and statements.
    let signing_key = keys.path().join("audit-signing.key");
    config.audit_signing_key = Some(signing_key.clone());
    config.audit_checkpoint_every = 1_000_000;
    config.audit_checkpoint_interval = std::time::Duration::from_secs(86_400);
    adjust(&mut config);
    let mut state = AppState::new(config).await.expect("the database is ready");
    let queries = Arc::new(AtomicUsize::new(0));
    let counter = queries.clone();
    let count = Arc::new(move |info: &sea_orm::metric::Info<'_>| {
        // The live-event tail polls the audit log in the background; it is
        // no part of any request's cost.
        let sql = info.statement.sql.as_str();
        let tail = sql.contains("FROM \"audit_events\"") && sql.contains("\"seq\" ASC");
        // Nor is the outbound worker's look for due deliveries (the head
        // of the log, and the cursors).
        let outbox =
            sql.contains("outbox_cursors") || sql.contains("MAX(\"audit_events\".\"seq\")");
        if !tail && !outbox {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    state.db.set_metric_callback(move |info| count(info));
    let app = Application::from_state(state)
        .await
        .expect("the app builds");
    let address = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    let server = tokio::spawn(app.run_until_stopped()).abort_handle();
    TestApp {
        server,
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        state,
        database_url: db.url.clone(),
        queries,
        signing_key,
        _keys: keys,
        _db: db,
    }
}

fn init_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,sqlx=warn")
                .with_test_writer()
                .try_init();
        }
    });
}

/// An audit signing key for servers the tests start as child processes
/// with no test app of their own (one for the whole test binary), so
/// that none creates its key under the working directory's `./data/`.
pub fn scratch_signing_key() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temporary directory"))
        .path()
        .join("audit-signing.key")
}

/// One hasher for the whole test binary: its dummy hash costs a hash.
fn hasher() -> &'static PasswordHasherPool {
    static HASHER: OnceLock<PasswordHasherPool> = OnceLock::new();
    HASHER.get_or_init(|| PasswordHasherPool::new().unwrap())
}

impl TestApp {
    /// Stops the server at once, as a crash would: no request or delivery
    /// under way finishes, nothing is cleaned up (its leases stay until
    /// they run out). The database stays for other servers on it.
    pub fn kill(&self) {
        self.server.abort();
    }

    pub fn db(&self) -> &DatabaseConnection {
        self.state.db.pool()
    }

    /// The binary, on this app's database and signing key. Asynchronous:
    /// waiting for it blocks nothing, since a test's runtime also runs the
    /// server it talks to (a blocking wait would stall that server, with
    /// whatever database locks its tasks hold, for as long as the command
    /// waits for them).
    pub fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_session-manager"));
        command
            .env("DATABASE_URL", &self.database_url)
            .env("AUDIT_SIGNING_KEY", &self.signing_key)
            .env("RUST_LOG", "error");
        command
    }

    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.address)
    }

    /// Sends a GraphQL request and returns the response body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(self.graphql_url())
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let body = response.text().await.unwrap();
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON (HTTP {status}): {body}"))
    }

    /// Sends a request with a raw `Authorization` header value.
    pub async fn gql_with_authorization(&self, authorization: &str, query: &str) -> Value {
        self.client
            .post(self.graphql_url())
            .header("authorization", authorization)
            .json(&json!({ "query": query }))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("JSON body")
    }

    pub async fn create_user(&self, role: Role) -> TestUser {
        let id = Uuid::new_v4().simple().to_string();
        let email = format!("{}-{}@example.com", role.as_str(), &id[..12]);
        let password = format!("pw-{id}");
        let user = create_user(
            &self.state.db,
            hasher(),
            NewUser {
                email: email.clone(),
                name: format!("Test {}", role.as_str()),
                role,
                password: password.clone(),
            },
        )
        .await
        .expect("user created");
        TestUser {
            id: user.id,
            email,
            password,
        }
    }

    /// Signs in through the API with a given User-Agent; returns the
    /// token and the session id.
    pub async fn sign_in_as(&self, user: &TestUser, user_agent: &str) -> (String, Uuid) {
        let body: Value = self
            .client
            .post(self.graphql_url())
            .header("user-agent", user_agent)
            .json(&json!({
                "query": "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token session { id } } }",
                "variables": { "e": user.email, "p": user.password },
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let payload = &body["data"]["signIn"];
        assert!(payload.is_object(), "sign-in failed: {body}");
        (
            payload["token"].as_str().unwrap().to_owned(),
            payload["session"]["id"].as_str().unwrap().parse().unwrap(),
        )
    }

    pub async fn sign_in(&self, user: &TestUser) -> String {
        self.sign_in_as(user, "test-client/1.0").await.0
    }

    /// The whole audit log, oldest first.
    pub async fn audit_events(&self) -> Vec<audit_event::Model> {
        audit_event::Entity::find()
            .order_by_asc(audit_event::Column::Seq)
            .all(self.db())
            .await
            .unwrap()
    }

    /// Refused attempts, oldest first: `access.denied`, and refused
    /// revocations, which are failed `session.revoked` events.
    pub async fn refusals(&self) -> Vec<audit_event::Model> {
        self.audit_events()
            .await
            .into_iter()
            .filter(|e| {
                e.status == audit_event::AuditStatus::Failed
                    && (e.event_type == "access.denied" || e.event_type == "session.revoked")
            })
            .collect()
    }

    pub async fn sessions(&self) -> Vec<session::Model> {
        session::Entity::find().all(self.db()).await.unwrap()
    }
}

impl TestApp {
    /// Runs `f` and returns how many statements the server ran meanwhile.
    /// The maintenance pass that runs at start-up is waited for first, so
    /// its statements are not counted even on a loaded machine.
    pub async fn count_queries<T>(&self, f: impl std::future::Future<Output = T>) -> (T, usize) {
        self.after_start_up_maintenance().await;
        let before = self.queries.load(Ordering::SeqCst);
        let out = f.await;
        (out, self.queries.load(Ordering::SeqCst) - before)
    }

    /// Waits for the maintenance pass that runs at start-up: rows a test
    /// writes with old timestamps would otherwise race its clean-up.
    pub async fn after_start_up_maintenance(&self) {
        let runs = &self.state.metrics.maintenance_runs;
        for _ in 0..500 {
            if runs.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            runs.load(Ordering::SeqCst) > 0,
            "the start-up maintenance pass did not finish"
        );
    }

    /// Events of one type, oldest first.
    pub async fn events_of_type(&self, event_type: &str) -> Vec<audit_event::Model> {
        self.audit_events()
            .await
            .into_iter()
            .filter(|e| e.event_type == event_type)
            .collect()
    }
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

#[track_caller]
pub fn assert_error_code(body: &Value, code: &str, context: &str) {
    assert_eq!(error_code(body), Some(code), "{context}: {body}");
}

/// A fresh database: a temporary SQLite file, or a new PostgreSQL database
/// (dropped afterwards) when `TEST_DATABASE_URL` names a server.
struct TestDatabase {
    url: String,
    kind: DatabaseKind,
}

enum DatabaseKind {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    /// Another test app's database: nothing to clean up.
    Borrowed,
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDatabase {
    async fn create() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if admin_url.starts_with("postgres") => {
                let name = format!("sm_test_{}", Uuid::new_v4().simple());
                let admin = Database::connect(&admin_url)
                    .await
                    .expect("PostgreSQL reachable");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("test database created");
                admin.close().await.ok();
                Self {
                    url: replace_database(&admin_url, &name),
                    kind: DatabaseKind::Postgres { admin_url, name },
                }
            }
            _ => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let path: PathBuf = dir.path().join("test.db");
                Self {
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    kind: DatabaseKind::Sqlite(dir),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let DatabaseKind::Postgres { admin_url, name } = &self.kind {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime; use a thread with its own.
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok(admin) = Database::connect(&admin_url).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                        admin.close().await.ok();
                    }
                });
            })
            .join()
            .ok();
        }
    }
}

/// `postgres://u@h:5432/test?x=y` with the database name replaced.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map(|i| scheme_end + i);
    let host_part = path_start.map_or(base, |i| &base[..i]);
    match query {
        Some(query) => format!("{host_part}/{name}?{query}"),
        None => format!("{host_part}/{name}"),
    }
}
