//! Typed configuration: every setting is a flag with an environment
//! fallback, parsed and validated once at start-up.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum, builder::BoolishValueParser};

/// Default SQLite database: a file under `./data/`, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/session-manager.db?mode=rwc";

#[derive(Debug, Parser)]
#[command(
    name = "session-manager",
    version,
    about = "GraphQL API for login sessions: inventory, revocation, impersonation, audit"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Run the database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL) to standard output.
    PrintSchema,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Create the demo users if missing and print their credentials.
    Demo,
    /// Check or export the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Fill the database with benchmark data and print its tokens as JSON.
    Seed(SeedArgs),
}

/// Sizes for `seed`; see `service::seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Seeded users, besides the three benchmark accounts.
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Active sessions of each seeded user.
    #[arg(long, default_value_t = 5)]
    pub sessions_per_user: usize,
    /// Audit events appended to the chain.
    #[arg(long, default_value_t = 1_000_000)]
    pub audit_events: usize,
    /// Sessions of bench-revoke@example.com, to revoke one per request.
    #[arg(long, default_value_t = 0)]
    pub revocable_sessions: usize,
    /// Audit events about bench@example.com (at most half of all).
    #[arg(long, default_value_t = 5_000)]
    pub bench_user_events: usize,
    /// Rows per write transaction (the audit chain head moves once per batch).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch: u64,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; exit 0 when intact, 1 naming the first bad event.
    Verify,
    /// Write events (with their hashes) to standard output, oldest first.
    Export {
        /// Only events from this instant on (RFC 3339, or a date YYYY-MM-DD).
        #[arg(long, value_parser = parse_instant)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Ndjson)]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Ndjson,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// user, admin or owner.
        #[arg(long, default_value = "user")]
        role: String,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

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
    /// Production defaults: GraphiQL, introspection and "did you mean" suggestions off.
    #[arg(long, env = "PRODUCTION", value_parser = BoolishValueParser::new(), default_value = "false", global = true)]
    pub production: bool,
    /// Serve GraphiQL at GET /graphql (default: on unless PRODUCTION).
    #[arg(long, env = "GRAPHIQL", value_parser = BoolishValueParser::new(), global = true)]
    pub graphiql: Option<bool>,
    /// Answer introspection queries (default: on unless PRODUCTION).
    #[arg(long, env = "INTROSPECTION", value_parser = BoolishValueParser::new(), global = true)]
    pub introspection: Option<bool>,
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
    /// When set, `GET /metrics` requires `Authorization: Bearer <this token>`.
    #[arg(long, env = "METRICS_TOKEN", value_parser = parse_secret, hide_env_values = true, global = true)]
    pub metrics_token: Option<Secret>,
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8000".parse().expect("valid default address"),
            session_ttl: Duration::from_secs(30 * 86_400),
            audit_retention: Duration::from_secs(365 * 86_400),
            impersonation_ttl: Duration::from_secs(3_600),
            session_idle_timeout: Duration::from_secs(7 * 86_400),
            activity_write_interval: Duration::from_secs(60),
            max_sessions_per_user: 0,
            session_retention: Duration::from_secs(30 * 86_400),
            production: false,
            graphiql: None,
            introspection: None,
            max_batch: 10,
            max_query_fields: 500,
            max_query_depth: 15,
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            signin_max_failures_per_account: 5,
            signin_max_failures_per_ip: 20,
            signin_failure_window: Duration::from_secs(15 * 60),
            trust_forwarded_for: false,
            ws_init_timeout: Duration::from_secs(10),
            max_ws_connections_per_user: 5,
            max_subscriptions_per_connection: 10,
            subscriber_buffer: 1024,
            demo: false,
            max_body_bytes: 1024 * 1024,
            metrics_token: None,
        }
    }
}

/// Everything the server needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub bind: SocketAddr,
    pub session_ttl: Duration,
    pub audit_retention: Duration,
    pub impersonation_ttl: Duration,
    pub session_idle_timeout: Duration,
    pub activity_write_interval: Duration,
    pub max_sessions_per_user: u32,
    pub session_retention: Duration,
    pub production: bool,
    pub graphiql: bool,
    pub introspection: bool,
    pub max_batch: usize,
    pub max_query_fields: usize,
    pub max_query_depth: usize,
    pub request_timeout: Duration,
    pub cors_origins: Vec<String>,
    pub signin_max_failures_per_account: u32,
    pub signin_max_failures_per_ip: u32,
    pub signin_failure_window: Duration,
    pub trust_forwarded_for: bool,
    pub ws_init_timeout: Duration,
    pub max_ws_connections_per_user: usize,
    pub max_subscriptions_per_connection: usize,
    pub subscriber_buffer: usize,
    pub max_body_bytes: usize,
    /// Required as a bearer token by `GET /metrics` when set.
    pub metrics_token: Option<Secret>,
}

impl Config {
    pub fn new(global: &GlobalArgs, serve: &ServeArgs) -> anyhow::Result<Self> {
        let config = Self::from_args(global.database_url.clone(), serve);
        config.validate()?;
        Ok(config)
    }

    /// A configuration for tests and embedding: defaults, the given database.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        Self::from_args(database_url.into(), &ServeArgs::default())
    }

    fn from_args(database_url: String, serve: &ServeArgs) -> Self {
        Self {
            database_url,
            bind: serve.bind,
            session_ttl: serve.session_ttl,
            audit_retention: serve.audit_retention,
            impersonation_ttl: serve.impersonation_ttl,
            session_idle_timeout: serve.session_idle_timeout,
            activity_write_interval: serve.activity_write_interval,
            max_sessions_per_user: serve.max_sessions_per_user,
            session_retention: serve.session_retention,
            production: serve.production,
            graphiql: serve.graphiql.unwrap_or(!serve.production),
            introspection: serve.introspection.unwrap_or(!serve.production),
            max_batch: serve.max_batch,
            max_query_fields: serve.max_query_fields,
            max_query_depth: serve.max_query_depth,
            request_timeout: serve.request_timeout,
            cors_origins: serve.cors_origins.clone(),
            signin_max_failures_per_account: serve.signin_max_failures_per_account,
            signin_max_failures_per_ip: serve.signin_max_failures_per_ip,
            signin_failure_window: serve.signin_failure_window,
            trust_forwarded_for: serve.trust_forwarded_for,
            ws_init_timeout: serve.ws_init_timeout,
            max_ws_connections_per_user: serve.max_ws_connections_per_user,
            max_subscriptions_per_connection: serve.max_subscriptions_per_connection,
            subscriber_buffer: serve.subscriber_buffer,
            max_body_bytes: serve.max_body_bytes,
            metrics_token: serve.metrics_token.clone(),
        }
    }

    /// Durations as chrono needs them. Start-up bounds every duration
    /// setting (see [`DURATION_BOUNDS`]), and this caps whatever it is given
    /// at [`MAX_CHRONO`] besides, so `now ± Config::chrono(d)` can never
    /// overflow (chrono panics when a `DateTime` leaves its range), whatever
    /// a caller that skipped validation passed in.
    pub fn chrono(duration: Duration) -> chrono::Duration {
        chrono::Duration::from_std(duration.min(MAX_CHRONO)).unwrap_or(chrono::Duration::MAX)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, value, max) in self.duration_bounds() {
            anyhow::ensure!(
                value <= max,
                "{name} must be at most {} (got {})",
                format_duration(max),
                format_duration(value)
            );
        }
        anyhow::ensure!(
            self.session_ttl >= Duration::from_secs(1),
            "SESSION_TTL must be at least 1s"
        );
        anyhow::ensure!(
            self.impersonation_ttl >= Duration::from_secs(1)
                && self.impersonation_ttl <= Duration::from_secs(86_400),
            "IMPERSONATION_TTL must be between 1s and 1d"
        );
        anyhow::ensure!(
            self.session_idle_timeout >= Duration::from_secs(1),
            "SESSION_IDLE_TIMEOUT must be at least 1s"
        );
        anyhow::ensure!(
            self.activity_write_interval < self.session_idle_timeout,
            "ACTIVITY_WRITE_INTERVAL ({:?}) must be shorter than SESSION_IDLE_TIMEOUT ({:?}), \
             or sessions in use would expire as idle",
            self.activity_write_interval,
            self.session_idle_timeout
        );
        anyhow::ensure!(
            self.session_retention >= Duration::from_secs(1),
            "SESSION_RETENTION must be at least 1s"
        );
        anyhow::ensure!(
            self.audit_retention >= Duration::from_secs(60),
            "AUDIT_RETENTION must be at least 1m"
        );
        anyhow::ensure!(
            (1..=100).contains(&self.max_batch),
            "MAX_BATCH must be between 1 and 100"
        );
        anyhow::ensure!(
            (50..=100_000).contains(&self.max_query_fields),
            "MAX_QUERY_FIELDS must be between 50 and 100000"
        );
        anyhow::ensure!(
            (5..=100).contains(&self.max_query_depth),
            "MAX_QUERY_DEPTH must be between 5 and 100"
        );
        anyhow::ensure!(
            self.request_timeout >= Duration::from_secs(1),
            "REQUEST_TIMEOUT must be at least 1s"
        );
        for origin in &self.cors_origins {
            anyhow::ensure!(
                (origin.starts_with("http://") || origin.starts_with("https://"))
                    && axum::http::HeaderValue::from_str(origin).is_ok(),
                "CORS_ORIGINS entry `{origin}` must be an origin like https://app.example.com"
            );
        }
        anyhow::ensure!(
            self.signin_max_failures_per_account >= 1 && self.signin_max_failures_per_ip >= 1,
            "SIGNIN_MAX_FAILURES_PER_ACCOUNT and SIGNIN_MAX_FAILURES_PER_IP must be at least 1"
        );
        anyhow::ensure!(
            self.signin_failure_window >= Duration::from_secs(1),
            "SIGNIN_FAILURE_WINDOW must be at least 1s"
        );
        anyhow::ensure!(
            self.ws_init_timeout >= Duration::from_millis(100),
            "WS_INIT_TIMEOUT must be at least 100ms"
        );
        anyhow::ensure!(
            self.max_ws_connections_per_user >= 1 && self.max_subscriptions_per_connection >= 1,
            "MAX_WS_CONNECTIONS_PER_USER and MAX_SUBSCRIPTIONS_PER_CONNECTION must be at least 1"
        );
        anyhow::ensure!(
            (8..=1_000_000).contains(&self.subscriber_buffer),
            "SUBSCRIBER_BUFFER must be between 8 and 1000000"
        );
        anyhow::ensure!(
            self.max_body_bytes >= 1024,
            "MAX_BODY_BYTES must be at least 1024"
        );
        if let Some(token) = &self.metrics_token {
            let token = token.expose();
            anyhow::ensure!(
                (MIN_METRICS_TOKEN_LEN..=MAX_METRICS_TOKEN_LEN).contains(&token.len())
                    && token.bytes().all(|b| b.is_ascii_graphic()),
                "METRICS_TOKEN must be {MIN_METRICS_TOKEN_LEN} to {MAX_METRICS_TOKEN_LEN} \
                 printable ASCII characters without spaces"
            );
        }
        anyhow::ensure!(
            self.database_url.starts_with("sqlite:")
                || self.database_url.starts_with("postgres://")
                || self.database_url.starts_with("postgresql://"),
            "DATABASE_URL must start with sqlite:, postgres:// or postgresql://"
        );
        Ok(())
    }

    /// Every duration setting with its value and its upper bound, in
    /// the order of [`DURATION_BOUNDS`].
    fn duration_bounds(&self) -> [(&'static str, Duration, Duration); 9] {
        let values = [
            self.session_ttl,
            self.session_idle_timeout,
            self.activity_write_interval,
            self.impersonation_ttl,
            self.session_retention,
            self.audit_retention,
            self.signin_failure_window,
            self.request_timeout,
            self.ws_init_timeout,
        ];
        std::array::from_fn(|i| (DURATION_BOUNDS[i].0, values[i], DURATION_BOUNDS[i].1))
    }

    /// The directory a SQLite URL points into, when it is a file.
    pub fn sqlite_dir(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        let path = rest.trim_start_matches("//").split('?').next()?;
        if path.is_empty() || path == ":memory:" || path.starts_with(":memory:") {
            return None;
        }
        PathBuf::from(path).parent().map(PathBuf::from)
    }
}

const DAY: u64 = 86_400;

/// The upper bound of each duration setting, checked at start-up. The
/// lifetimes stay within a year, so that expiry instants are always close
/// to now; retention reaches back 10 years for sessions and 100 for the
/// audit log (a record kept "for ever" in practice); the rest are the
/// longest a sane deployment would wait.
pub const DURATION_BOUNDS: [(&str, Duration); 9] = [
    ("SESSION_TTL", Duration::from_secs(366 * DAY)),
    ("SESSION_IDLE_TIMEOUT", Duration::from_secs(366 * DAY)),
    ("ACTIVITY_WRITE_INTERVAL", Duration::from_secs(DAY)),
    ("IMPERSONATION_TTL", Duration::from_secs(DAY)),
    ("SESSION_RETENTION", Duration::from_secs(3_660 * DAY)),
    ("AUDIT_RETENTION", Duration::from_secs(36_600 * DAY)),
    ("SIGNIN_FAILURE_WINDOW", Duration::from_secs(DAY)),
    ("REQUEST_TIMEOUT", Duration::from_secs(3_600)),
    ("WS_INIT_TIMEOUT", Duration::from_secs(600)),
];

/// No duration reaches chrono beyond this (1 000 years), so adding it to or
/// subtracting it from any instant of this millennium stays in range.
pub const MAX_CHRONO: Duration = Duration::from_secs(366_000 * DAY);

const MIN_METRICS_TOKEN_LEN: usize = 16;
const MAX_METRICS_TOKEN_LEN: usize = 512;

/// A setting that must never be logged: its `Debug` shows no value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

fn parse_secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

/// A duration in the largest unit that divides it, as settings read it.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !millis.is_multiple_of(1_000) {
        return format!("{millis}ms");
    }
    let secs = duration.as_secs();
    for (unit, per) in [("d", DAY), ("h", 3_600), ("m", 60)] {
        if secs >= per && secs.is_multiple_of(per) {
            return format!("{}{unit}", secs / per);
        }
    }
    format!("{secs}s")
}

/// Parses `30d`, `1h`, `15m`, `2s`, `500ms` (one number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write it like 30d, 1h, 15m, 2s or 500ms"))?;
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!("`{text}` does not start with a whole number"));
    }
    // All digits: the only way to fail is not to fit in 64 bits.
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is too large"))?;
    let seconds_per_unit = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use d, h, m, s or ms"
            ));
        }
    };
    n.checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses an RFC 3339 instant or a plain date (midnight UTC).
pub fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let text = text.trim();
    if let Ok(instant) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(instant.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|date| date.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("`{text}` is neither an RFC 3339 instant nor a YYYY-MM-DD date"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        let cases = [
            ("30d", 30 * 86_400_000),
            ("1h", 3_600_000),
            ("15m", 900_000),
            ("2s", 2_000),
            ("500ms", 500),
            (" 7d ", 7 * 86_400_000),
        ];
        for (text, millis) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(millis)),
                "parsing {text:?}"
            );
        }
    }

    #[test]
    fn malformed_durations_are_refused_with_a_reason() {
        for (text, why) in [
            ("", "empty"),
            ("30", "no unit"),
            ("d", "no number"),
            ("1w", "unknown unit"),
            ("-1s", "negative"),
            ("1.5h", "fraction"),
            ("99999999999999999999d", "overflow"),
            ("100000000000000000000d", "more digits than 64 bits hold"),
            ("213503982334602d", "seconds overflow"),
        ] {
            assert!(
                parse_duration(text).is_err(),
                "{text:?} ({why}) should fail"
            );
        }
        assert_eq!(
            parse_duration("100000000000000000000d"),
            Err("`100000000000000000000d` is too large".to_owned())
        );
    }

    #[test]
    fn every_duration_setting_has_an_upper_bound_named_in_the_error() {
        for (i, (name, max)) in DURATION_BOUNDS.iter().enumerate() {
            let mut config = Config::with_database("sqlite::memory:");
            assert!(config.validate().is_ok(), "the defaults are valid");
            let over = *max + Duration::from_secs(1);
            let fields = [
                &mut config.session_ttl,
                &mut config.session_idle_timeout,
                &mut config.activity_write_interval,
                &mut config.impersonation_ttl,
                &mut config.session_retention,
                &mut config.audit_retention,
                &mut config.signin_failure_window,
                &mut config.request_timeout,
                &mut config.ws_init_timeout,
            ];
            *fields.into_iter().nth(i).unwrap() = over;
            let error = config.validate().unwrap_err().to_string();
            assert!(
                error.contains(name) && error.contains(&format_duration(*max)),
                "{name}: {error}"
            );
        }
    }

    #[test]
    fn chrono_durations_cannot_overflow_instants() {
        let now = chrono::Utc::now();
        for duration in [
            Duration::MAX,
            Duration::from_secs(100_000_000 * DAY),
            MAX_CHRONO,
        ] {
            let d = Config::chrono(duration);
            assert!(now.checked_add_signed(d).is_some(), "{duration:?}");
            assert!(now.checked_sub_signed(d).is_some(), "{duration:?}");
        }
        assert_eq!(
            Config::chrono(Duration::from_secs(30 * DAY)),
            chrono::Duration::days(30)
        );
    }

    #[test]
    fn durations_format_in_the_largest_whole_unit() {
        for (millis, text) in [
            (366 * DAY * 1_000, "366d"),
            (3_600_000, "1h"),
            (600_000, "10m"),
            (90_000, "90s"),
            (1_500, "1500ms"),
            (0, "0s"),
        ] {
            assert_eq!(format_duration(Duration::from_millis(millis)), text);
            assert_eq!(parse_duration(text), Ok(Duration::from_millis(millis)));
        }
    }

    #[test]
    fn the_metrics_token_is_never_shown_and_must_be_long_enough() {
        let mut config = Config::with_database("sqlite::memory:");
        config.metrics_token = Some(Secret::new("a-very-secret-metrics-token"));
        assert!(config.validate().is_ok());
        assert!(!format!("{config:?}").contains("a-very-secret"));
        for bad in [
            "",
            "short",
            "has a space in it ok",
            "tab\tseparated-token-value",
        ] {
            config.metrics_token = Some(Secret::new(bad));
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains("METRICS_TOKEN"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn sqlite_dir_is_found_for_file_urls_only() {
        let dir = |url: &str| Config::with_database(url).sqlite_dir();
        assert_eq!(dir(DEFAULT_DATABASE_URL), Some(PathBuf::from("data")));
        assert_eq!(dir("sqlite::memory:"), None);
        assert_eq!(dir("postgres://localhost/test"), None);
    }
}
