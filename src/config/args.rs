//! The settings as flags: each with its environment variable and its
//! default, written once, in the clap attributes. The command line's own
//! grammar (its subcommands) belongs to the binary; these are what the
//! library is configured with.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, FromArgMatches, ValueEnum, builder::BoolishValueParser};

use super::{Secret, duration::parse_duration};

/// Default SQLite database: a file under `./data/`, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/session-manager.db?mode=rwc";

/// Settings of every subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Database URL: `sqlite://path?mode=rwc` or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,
    /// Log output format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Whether anyone may make an account (`signUp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Signup {
    /// Accounts are made by admins (`createUser`), trusted backends
    /// (`upsertUser`) and the command line only.
    Closed,
    /// `signUp` makes a user's account and signs it in.
    Open,
}

/// The server's settings as given; [`Config`](super::Config) embeds them,
/// validated.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "BIND", default_value = "127.0.0.1:8000", global = true)]
    pub bind: SocketAddr,
    /// Absolute lifetime of a session, e.g. `30d`, `12h`.
    #[arg(long, env = "SESSION_TTL", default_value = "30d", value_parser = parse_duration, global = true)]
    pub session_ttl: Duration,
    /// Create the demo users (if missing) at start-up and print their credentials.
    #[arg(long, global = true)]
    pub demo: bool,
    /// A session unused for this long ends.
    #[arg(long, env = "SESSION_IDLE_TIMEOUT", default_value = "7d", value_parser = parse_duration, global = true)]
    pub session_idle_timeout: Duration,
    /// Last activity is written at most this often (must be shorter than the idle timeout).
    #[arg(long, env = "ACTIVITY_WRITE_INTERVAL", default_value = "60s", value_parser = parse_duration, global = true)]
    pub activity_write_interval: Duration,
    /// Most active sessions a user may hold; signing in beyond it ends the oldest (0: no cap).
    #[arg(
        long,
        env = "MAX_SESSIONS_PER_USER",
        default_value_t = 0,
        global = true
    )]
    pub max_sessions_per_user: u32,
    /// Ended sessions are deleted this long after they ended.
    #[arg(long, env = "SESSION_RETENTION", default_value = "30d", value_parser = parse_duration, global = true)]
    pub session_retention: Duration,
    /// Longest life of a session opened by impersonation.
    #[arg(long, env = "IMPERSONATION_TTL", default_value = "1h", value_parser = parse_duration, global = true)]
    pub impersonation_ttl: Duration,
    /// How long audit events are kept before the background task purges them.
    #[arg(long, env = "AUDIT_RETENTION", default_value = "365d", value_parser = parse_duration, global = true)]
    pub audit_retention: Duration,
    /// The key that signs audit checkpoints (Ed25519), created owner-only
    /// if missing; keep it outside the database's reach (default:
    /// `audit-signing.key` beside the SQLite file, or under `./data/`).
    #[arg(long, env = "AUDIT_SIGNING_KEY", global = true)]
    pub audit_signing_key: Option<PathBuf>,
    /// Files of further public keys whose checkpoints `auditChain` accepts
    /// (keys rotated out, other replicas' keys), comma-separated.
    #[arg(long, env = "AUDIT_PUBLIC_KEYS", value_delimiter = ',', global = true)]
    pub audit_public_keys: Vec<PathBuf>,
    /// A checkpoint is signed once this many events were appended since the last…
    #[arg(
        long,
        env = "AUDIT_CHECKPOINT_EVERY",
        default_value_t = 1_000,
        global = true
    )]
    pub audit_checkpoint_every: u64,
    /// …or this long after it, if any event was.
    #[arg(long, env = "AUDIT_CHECKPOINT_INTERVAL", default_value = "10s", value_parser = parse_duration, global = true)]
    pub audit_checkpoint_interval: Duration,
    /// Production defaults: GraphiQL, introspection and "did you mean" suggestions off.
    #[arg(long, env = "PRODUCTION", value_parser = BoolishValueParser::new(), default_value = "false", global = true)]
    pub production: bool,
    // `graphiql` and `introspection` are unset unless given: `Config`
    // resolves them against `production` into fields of its own, which
    // `config.graphiql` reaches. Private, so no reader outside `config`
    // meets the unresolved value under the same name.
    /// Serve GraphiQL at GET /graphql (default: on unless PRODUCTION).
    #[arg(long, env = "GRAPHIQL", value_parser = BoolishValueParser::new(), global = true)]
    pub(super) graphiql: Option<bool>,
    /// Answer introspection queries (default: on unless PRODUCTION).
    #[arg(long, env = "INTROSPECTION", value_parser = BoolishValueParser::new(), global = true)]
    pub(super) introspection: Option<bool>,
    /// Most operations in one batched request.
    #[arg(long, env = "MAX_BATCH", default_value_t = 10, global = true)]
    pub max_batch: usize,
    /// Most field selections in a request or a whole batch (aliases and __typename count).
    #[arg(long, env = "MAX_QUERY_FIELDS", default_value_t = 500, global = true)]
    pub max_query_fields: usize,
    /// Deepest selection nesting.
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = 15, global = true)]
    pub max_query_depth: usize,
    /// A request running longer is cut off with 408.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub request_timeout: Duration,
    /// Browser origins allowed by CORS, comma-separated (default: none).
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', global = true)]
    pub cors_origins: Vec<String>,
    /// Failed sign-ins per account within the window before it is throttled.
    #[arg(
        long,
        env = "SIGNIN_MAX_FAILURES_PER_ACCOUNT",
        default_value_t = 5,
        global = true
    )]
    pub signin_max_failures_per_account: u32,
    /// Failed sign-ins per client IP within the window before it is throttled.
    #[arg(
        long,
        env = "SIGNIN_MAX_FAILURES_PER_IP",
        default_value_t = 20,
        global = true
    )]
    pub signin_max_failures_per_ip: u32,
    /// The sliding window of sign-in throttling.
    #[arg(long, env = "SIGNIN_FAILURE_WINDOW", default_value = "15m", value_parser = parse_duration, global = true)]
    pub signin_failure_window: Duration,
    /// Take the client IP from the last X-Forwarded-For entry (only behind a proxy that sets it).
    #[arg(long, env = "TRUST_FORWARDED_FOR", value_parser = BoolishValueParser::new(), default_value = "false", global = true)]
    pub trust_forwarded_for: bool,
    /// The cookie `GET /auth/check` reads the session token from when no
    /// `Authorization` header is sent (browser apps behind a gateway).
    #[arg(
        long,
        env = "SESSION_COOKIE",
        default_value = "sm_session",
        global = true
    )]
    pub session_cookie: String,
    /// A WebSocket must send `connection_init` within this time.
    #[arg(long, env = "WS_INIT_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub ws_init_timeout: Duration,
    /// Open subscription sockets per user (per server process).
    #[arg(
        long,
        env = "MAX_WS_CONNECTIONS_PER_USER",
        default_value_t = 5,
        global = true
    )]
    pub max_ws_connections_per_user: usize,
    /// Subscriptions on one socket.
    #[arg(
        long,
        env = "MAX_SUBSCRIPTIONS_PER_CONNECTION",
        default_value_t = 10,
        global = true
    )]
    pub max_subscriptions_per_connection: usize,
    /// Events a subscriber may fall behind before its socket is closed.
    #[arg(long, env = "SUBSCRIBER_BUFFER", default_value_t = 1024, global = true)]
    pub subscriber_buffer: usize,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_body_bytes: usize,
    /// Self-registration (`signUp`): `closed` (the mutation answers
    /// FORBIDDEN) or `open`.
    #[arg(long, env = "SIGNUP", value_enum, default_value_t = Signup::Closed, global = true)]
    pub signup: Signup,
    /// Let webhook endpoints resolve to loopback, private, link-local,
    /// unique-local, multicast or unspecified addresses (off: such
    /// destinations are refused at creation and at every connection).
    #[arg(long, env = "WEBHOOK_ALLOW_PRIVATE", value_parser = BoolishValueParser::new(), default_value = "false", global = true)]
    pub webhook_allow_private: bool,
    /// Each delivery attempt to a webhook endpoint gives up after this long.
    #[arg(long, env = "WEBHOOK_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub webhook_timeout: Duration,
    /// The first retry of a failed delivery waits about this long; each
    /// further one twice as long (with jitter), at most an hour.
    #[arg(long, env = "WEBHOOK_RETRY_BASE", default_value = "5s", value_parser = parse_duration, global = true)]
    pub webhook_retry_base: Duration,
    /// An endpoint whose oldest undelivered event has failed for this long
    /// is disabled (audited as `webhook.disabled`).
    #[arg(long, env = "WEBHOOK_RETRY_FOR", default_value = "1d", value_parser = parse_duration, global = true)]
    pub webhook_retry_for: Duration,
    /// How long a server holds an outbound destination after its last
    /// renewal: a replica that dies hands its destinations on after this.
    #[arg(long, env = "OUTBOX_LEASE", default_value = "30s", value_parser = parse_duration, global = true)]
    pub outbox_lease: Duration,
    /// How often the outbound worker looks for due deliveries when no new
    /// event wakes it (retries fall due on this tick).
    #[arg(long, env = "OUTBOX_POLL", default_value = "1s", value_parser = parse_duration, global = true)]
    pub outbox_poll: Duration,
    /// The Shared Signals transmitter's signing key (ES256, a PKCS#8 PEM
    /// file), created with mode 0600 when missing. Default:
    /// `ssf-signing-key.pem` in the SQLite database's directory, else in
    /// `./data`.
    #[arg(long, env = "SSF_SIGNING_KEY", global = true)]
    pub ssf_signing_key: Option<PathBuf>,
    /// Earlier signing keys (PEM files, private or public), comma-separated:
    /// their public keys stay in `/jwks.json` so receivers can still verify
    /// what was signed with them (see the README on rotation).
    #[arg(long, env = "SSF_PREVIOUS_KEYS", value_delimiter = ',', global = true)]
    pub ssf_previous_keys: Vec<PathBuf>,
    /// The transmitter's issuer (`iss` of every SET, and the base of the
    /// URLs `/.well-known/ssf-configuration` names), e.g.
    /// `https://auth.example.com`. Default: `http://` and the host the
    /// request for the document was sent to.
    #[arg(long, env = "SSF_ISSUER", global = true)]
    pub ssf_issuer: Option<String>,
    /// When set, `GET /metrics` requires `Authorization: Bearer <this token>`.
    #[arg(long, env = "METRICS_TOKEN", value_parser = parse_secret, hide_env_values = true, global = true)]
    pub metrics_token: Option<Secret>,
}

impl Default for ServeArgs {
    /// The flags' own defaults, read from the attributes above by parsing
    /// an empty command line with every environment variable detached:
    /// tests set `SESSION_TTL` and the like for the binaries they spawn,
    /// and a server embedded in a test or another program must not pick
    /// them up from its caller's environment.
    fn default() -> Self {
        let command = Self::augment_args(clap::Command::new("defaults"))
            .mut_args(|arg| arg.env(None::<&str>));
        let matches = command
            .try_get_matches_from(["defaults"])
            .expect("the flags' defaults parse");
        Self::from_arg_matches(&matches).expect("the flags' defaults parse")
    }
}

fn parse_secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process of
    /// [`the_defaults_ignore_the_environment`]; the test checks instead
    /// of spawning when it sees it.
    const IN_CHILD: &str = "SESSION_MANAGER_DEFAULTS_TEST_CHILD";

    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn the_defaults_ignore_the_environment() {
        // `std::env::set_var` is unsafe while other test threads may read
        // the environment, so the variables go to a child process running
        // just this test instead.
        if std::env::var_os(IN_CHILD).is_none() {
            let module = module_path!().split_once("::").expect("a crate path").1;
            let output = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    &format!("{module}::the_defaults_ignore_the_environment"),
                    "--test-threads=1",
                ])
                .env(IN_CHILD, "1")
                .env("SESSION_TTL", "1h")
                .env("BIND", "0.0.0.0:9")
                .env("PRODUCTION", "true")
                .env("CORS_ORIGINS", "https://app.example.com")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && stdout.contains("1 passed"),
                "the child test failed:\n{stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            return;
        }
        // The command line does read the variables…
        let parsed = <Flags as clap::Parser>::try_parse_from(["session-manager"])
            .unwrap()
            .serve;
        assert_eq!(parsed.session_ttl, Duration::from_secs(3_600));
        assert_eq!(parsed.bind, "0.0.0.0:9".parse().unwrap());
        assert!(parsed.production);
        assert_eq!(parsed.cors_origins, ["https://app.example.com"]);
        // …and the defaults do not.
        let defaults = ServeArgs::default();
        assert_eq!(defaults.session_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(defaults.bind, "127.0.0.1:8000".parse().unwrap());
        assert!(!defaults.production);
        assert!(defaults.cors_origins.is_empty());
    }
}
