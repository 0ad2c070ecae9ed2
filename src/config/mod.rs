//! Typed configuration: every setting is a flag with an environment
//! fallback, parsed and validated once at start-up.
//!
//! [`ServeArgs`] declares the server's settings and their defaults (once,
//! in the clap attributes); [`Config`] embeds them as given and adds what
//! is resolved from them, after validating the lot.

mod args;
mod duration;

use std::{
    ops::{Deref, DerefMut},
    path::PathBuf,
    time::Duration,
};

pub use args::{DEFAULT_DATABASE_URL, GlobalArgs, LogFormat, ServeArgs, Signup};
pub use duration::{DURATION_BOUNDS, MAX_CHRONO, format_duration, parse_duration};

/// Everything the server needs, validated.
///
/// The settings are the embedded [`ServeArgs`], as given, which
/// `config.session_ttl` and the like reach through `Deref`: some sixty
/// places (transports, services, tasks, tests) read a setting as a field of
/// the configuration, whichever clap group declares it, and a new setting
/// is one field of `ServeArgs` and nothing here. `graphiql` and
/// `introspection` are the configuration's own, resolved against
/// `production`; the flags' unresolved values under those names are
/// private to this module.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    /// The settings as given (`ServeArgs::default()` for none).
    pub serve: ServeArgs,
    /// GRAPHIQL, else on unless PRODUCTION.
    pub graphiql: bool,
    /// INTROSPECTION, else on unless PRODUCTION.
    pub introspection: bool,
}

impl Deref for Config {
    type Target = ServeArgs;

    fn deref(&self) -> &ServeArgs {
        &self.serve
    }
}

impl DerefMut for Config {
    fn deref_mut(&mut self) -> &mut ServeArgs {
        &mut self.serve
    }
}

impl Config {
    /// The configuration of a command line, validated.
    pub fn new(database_url: impl Into<String>, serve: ServeArgs) -> anyhow::Result<Self> {
        let config = Self::from_args(database_url.into(), serve);
        config.validate()?;
        Ok(config)
    }

    /// A configuration for tests and embedding: defaults, the given database.
    pub fn with_database(database_url: impl Into<String>) -> Self {
        Self::from_args(database_url.into(), ServeArgs::default())
    }

    fn from_args(database_url: String, serve: ServeArgs) -> Self {
        Self {
            database_url,
            graphiql: serve.graphiql.unwrap_or(!serve.production),
            introspection: serve.introspection.unwrap_or(!serve.production),
            serve,
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
            (1..=1_000_000).contains(&self.audit_checkpoint_every),
            "AUDIT_CHECKPOINT_EVERY must be between 1 and 1000000"
        );
        anyhow::ensure!(
            self.audit_checkpoint_interval >= Duration::from_secs(1)
                && self.audit_checkpoint_interval <= Duration::from_secs(86_400),
            "AUDIT_CHECKPOINT_INTERVAL must be between 1s and 1d"
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
            is_cookie_name(&self.session_cookie),
            "SESSION_COOKIE `{}` must be a cookie name: 1 to 64 letters, digits or !#$%&'*+-.^_`|~",
            self.session_cookie
        );
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
        anyhow::ensure!(
            self.webhook_timeout >= Duration::from_millis(100)
                && self.webhook_timeout <= Duration::from_secs(60),
            "WEBHOOK_TIMEOUT must be between 100ms and 60s"
        );
        anyhow::ensure!(
            self.webhook_retry_base >= Duration::from_millis(10)
                && self.webhook_retry_base <= Duration::from_secs(3_600),
            "WEBHOOK_RETRY_BASE must be between 10ms and 1h"
        );
        anyhow::ensure!(
            self.webhook_retry_for >= Duration::from_secs(1)
                && self.webhook_retry_for <= Duration::from_secs(30 * 86_400),
            "WEBHOOK_RETRY_FOR must be between 1s and 30d"
        );
        // An attempt must end well inside the lease it was started under
        // (renewed just before it), or a second replica could take the
        // destination while the first is still sending.
        anyhow::ensure!(
            self.outbox_lease >= self.webhook_timeout * 2 + Duration::from_secs(1)
                && self.outbox_lease <= Duration::from_secs(3_600),
            "OUTBOX_LEASE must be at least twice WEBHOOK_TIMEOUT plus 1s, and at most 1h"
        );
        anyhow::ensure!(
            self.outbox_poll >= Duration::from_millis(10)
                && self.outbox_poll <= Duration::from_secs(60),
            "OUTBOX_POLL must be between 10ms and 60s"
        );
        if let Some(issuer) = &self.ssf_issuer {
            anyhow::ensure!(
                (issuer.starts_with("https://") || issuer.starts_with("http://"))
                    && url::Url::parse(issuer).is_ok_and(|u| {
                        u.query().is_none() && u.fragment().is_none() && u.host().is_some()
                    })
                    && !issuer.ends_with('/'),
                "SSF_ISSUER must be an http(s) URL without a query, a fragment or a trailing slash, \
                 like https://auth.example.com"
            );
        }
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

    /// The audit signing key's file: `AUDIT_SIGNING_KEY`, else
    /// `audit-signing.key` in the SQLite file's directory, else under
    /// `./data/` (where the default database lives).
    pub fn audit_signing_key_path(&self) -> PathBuf {
        self.audit_signing_key.clone().unwrap_or_else(|| {
            self.sqlite_dir()
                .unwrap_or_else(|| PathBuf::from("data"))
                .join("audit-signing.key")
        })
    }

    /// Where the Shared Signals signing key is kept: `SSF_SIGNING_KEY`,
    /// else `ssf-signing-key.pem` beside a SQLite database file, else in
    /// `./data`.
    pub fn ssf_signing_key_path(&self) -> PathBuf {
        self.ssf_signing_key.clone().unwrap_or_else(|| {
            self.sqlite_dir()
                .filter(|dir| !dir.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from("data"))
                .join("ssf-signing-key.pem")
        })
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

/// A cookie name as RFC 6265 §4.1.1 allows it (an RFC 9110 token), and
/// short: the gateway check compares it against every cookie a browser
/// sends.
fn is_cookie_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

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

#[cfg(test)]
mod tests {
    use super::{duration::DAY, *};

    #[test]
    fn every_duration_setting_has_an_upper_bound_named_in_the_error() {
        for (i, (name, max)) in DURATION_BOUNDS.iter().enumerate() {
            let mut config = Config::with_database("sqlite::memory:");
            assert!(config.validate().is_ok(), "the defaults are valid");
            let over = *max + Duration::from_secs(1);
            let serve = &mut config.serve;
            let fields = [
                &mut serve.session_ttl,
                &mut serve.session_idle_timeout,
                &mut serve.activity_write_interval,
                &mut serve.impersonation_ttl,
                &mut serve.session_retention,
                &mut serve.audit_retention,
                &mut serve.signin_failure_window,
                &mut serve.request_timeout,
                &mut serve.ws_init_timeout,
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
    fn the_session_cookie_must_be_a_cookie_name() {
        let mut config = Config::with_database("sqlite::memory:");
        assert_eq!(config.session_cookie, "sm_session");
        for good in ["sm_session", "__Host-sm", "a", "x.y~z"] {
            config.session_cookie = good.to_owned();
            assert!(config.validate().is_ok(), "{good:?} is a cookie name");
        }
        let long = "c".repeat(65);
        for bad in ["", "a b", "a=b", "a;b", "é", "a\tb", "\"q\"", long.as_str()] {
            config.session_cookie = bad.to_owned();
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains("SESSION_COOKIE"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn the_ssf_issuer_must_be_a_plain_url_and_the_key_sits_beside_the_database() {
        let mut config = Config::with_database(DEFAULT_DATABASE_URL);
        assert_eq!(
            config.ssf_signing_key_path(),
            PathBuf::from("data/ssf-signing-key.pem")
        );
        assert_eq!(
            Config::with_database("postgres://localhost/test").ssf_signing_key_path(),
            PathBuf::from("data/ssf-signing-key.pem")
        );
        config.ssf_signing_key = Some(PathBuf::from("/etc/sm/ssf.pem"));
        assert_eq!(
            config.ssf_signing_key_path(),
            PathBuf::from("/etc/sm/ssf.pem")
        );
        for good in [
            "https://auth.example.com",
            "http://127.0.0.1:8000",
            "https://x.test/ssf",
        ] {
            config.ssf_issuer = Some(good.to_owned());
            assert!(config.validate().is_ok(), "{good}");
        }
        for bad in [
            "auth.example.com",
            "https://a.test/",
            "https://a.test?x=1",
            "ftp://a.test",
            "https://",
        ] {
            config.ssf_issuer = Some(bad.to_owned());
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains("SSF_ISSUER"), "{bad}: {error}");
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
