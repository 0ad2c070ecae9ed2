//! The command line's grammar: the subcommands, around the library's
//! settings (`session_manager::config`).

use clap::{Args, Parser, Subcommand, ValueEnum};
use session_manager::config::{GlobalArgs, ServeArgs};

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
    /// Manage the API keys trusted backends call with.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a key and print it, this once.
    Create {
        /// What the key is for, e.g. the backend using it.
        #[arg(long)]
        name: String,
        /// A scope the key holds (repeat for more): sessions:issue,
        /// sessions:check, users:provision, audit:read,
        /// webhooks:manage, ssf:manage.
        #[arg(long = "scope", required = true, value_parser = parse_scope)]
        scopes: Vec<entity::api_key::ApiScope>,
    },
    /// List every key, revoked ones too, newest first.
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id, as `api-key list` shows it.
        id: uuid::Uuid,
    },
}

fn parse_scope(text: &str) -> Result<entity::api_key::ApiScope, String> {
    text.parse()
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain and hold it to the signed checkpoints; exit 0
    /// when intact, 1 naming the first bad event.
    Verify {
        /// A file of public keys (`audit public-key` output, one a line;
        /// repeat for more) that checkpoints must be signed by. Default:
        /// the key of AUDIT_SIGNING_KEY, if that file exists, and
        /// AUDIT_PUBLIC_KEYS.
        #[arg(long = "public-key")]
        public_keys: Vec<std::path::PathBuf>,
        /// A checkpoint kept outside the database (`audit checkpoint`
        /// output; a file may hold several, one a line; repeat for more):
        /// the chain must still hold what it vouches for.
        #[arg(long = "checkpoint")]
        checkpoints: Vec<std::path::PathBuf>,
    },
    /// Write events (with their hashes) to standard output, oldest first.
    Export {
        /// Only events from this instant on (RFC 3339, or a date YYYY-MM-DD).
        #[arg(long, value_parser = parse_instant)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Ndjson)]
        format: ExportFormat,
        /// Write the signed checkpoints and purge records instead, one
        /// JSON object a line, oldest first (as `audit verify --checkpoint`
        /// reads them).
        #[arg(long, conflicts_with_all = ["since", "format"])]
        checkpoints: bool,
    },
    /// Sign a checkpoint of the chain's head now (with AUDIT_SIGNING_KEY)
    /// and print it as one line of JSON, for storage outside.
    Checkpoint,
    /// Print the public key of AUDIT_SIGNING_KEY, for `audit verify --public-key`.
    #[command(name = "public-key")]
    PublicKey,
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

/// Sizes for `seed`; see [`super::seed`].
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
