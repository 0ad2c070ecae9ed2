//! The command line: serving, and the subcommands other than serving. It
//! lives in the binary because it prints; the library only returns what
//! there is to print.

mod args;
mod export;
mod seed;

use std::io::Read;

use anyhow::Context;
use session_manager::{
    auth::PasswordHasherPool,
    auth::RequestMeta,
    config::{Config, GlobalArgs, ServeArgs},
    db, graphql,
    service::{
        api_key as api_keys, audit,
        user::{self as users, NewUser},
    },
    startup::Application,
};

pub use args::Cli;
use args::{ApiKeyCommand, AuditCommand, Command, UserCommand};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli {
        global,
        serve,
        command,
    } = cli;
    match command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = Config::new(global.database_url, serve)?;
            let demo = config.demo;
            let app = Application::build(config).await?;
            if demo {
                print_demo_users(&app.state().db, &app.state().hasher).await?;
            }
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let db = connect(global, serve).await?;
            db::migrate(&db).await?;
            eprintln!("migrations are up to date");
        }
        Command::PrintSchema => print!("{}", graphql::sdl()),
        Command::Demo => {
            let db = connect(global, serve).await?;
            db::migrate(&db).await?;
            let db = session_manager::state::database(db).await?;
            print_demo_users(&db, &PasswordHasherPool::new()?).await?;
        }
        Command::Audit(command) => {
            let config = Config::new(global.database_url, serve)?;
            audit_command(&config, command).await?;
        }
        Command::Seed(args) => {
            let config = Config::new(global.database_url, serve)?;
            seed::run(&config, &args).await?;
        }
        Command::ApiKey(command) => {
            let db = connect(global, serve).await?;
            db::migrate(&db).await?;
            let db = session_manager::state::database(db).await?;
            api_key(&db, command).await?;
        }
        Command::User(UserCommand::Add {
            email,
            name,
            role,
            password_stdin: _,
        }) => {
            let role = role.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let password = read_password_from_stdin()?;
            let db = connect(global, serve).await?;
            db::migrate(&db).await?;
            let db = session_manager::state::database(db).await?;
            let hasher = PasswordHasherPool::new()?;
            let user = users::create_user(
                &db,
                &hasher,
                NewUser {
                    email,
                    name,
                    role,
                    password,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "created {} ({}) with role {}",
                user.email,
                user.id,
                user.role.as_str()
            );
        }
    }
    Ok(())
}

/// `api-key …`: done with no actor (the audit log records no user), as
/// `user add` is: whoever holds the shell and the database holds the rights.
async fn api_key(db: &db::Db, command: ApiKeyCommand) -> anyhow::Result<()> {
    let failed = |e: session_manager::error::AppError| anyhow::anyhow!("{e}");
    let meta = RequestMeta::default();
    match command {
        ApiKeyCommand::Create { name, scopes } => {
            let new = api_keys::create(db, None, &name, &scopes, &meta)
                .await
                .map_err(failed)?;
            eprintln!(
                "created API key {} ({}) with scopes {}; it is shown only this once:",
                new.key.name,
                new.key.id,
                new.key
                    .scopes()
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!("{}", new.plaintext);
        }
        ApiKeyCommand::List => {
            for key in api_keys::list(db).await.map_err(failed)? {
                let scopes: Vec<_> = key.scopes().iter().map(|s| s.as_str()).collect();
                let state = match key.revoked_at {
                    Some(at) => format!("revoked {}", at.to_rfc3339()),
                    None => "live".to_owned(),
                };
                let used = key.last_used_at.map_or_else(
                    || "never used".to_owned(),
                    |at| format!("last used {}", at.to_rfc3339()),
                );
                println!(
                    "{}  {}…  {}  [{}]  {}  {}",
                    key.id,
                    key.key_prefix,
                    key.name,
                    scopes.join(" "),
                    used,
                    state
                );
            }
        }
        ApiKeyCommand::Revoke { id } => {
            let key = api_keys::revoke(db, id, None, &meta)
                .await
                .map_err(failed)?;
            println!("revoked API key {} ({})", key.name, key.id);
        }
    }
    Ok(())
}

/// `audit …`.
async fn audit_command(config: &Config, command: AuditCommand) -> anyhow::Result<()> {
    let failed = |e: session_manager::error::AppError| anyhow::anyhow!("{e}");
    let open = || async {
        let pool = db::connect(&config.database_url).await?;
        db::migrate(&pool).await?;
        anyhow::Ok(pool)
    };
    match command {
        AuditCommand::Verify {
            public_keys,
            checkpoints,
        } => {
            let keys = verification_keys(config, &public_keys)?;
            let mut external = Vec::new();
            for path in &checkpoints {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                external.extend(
                    audit::Checkpoint::parse_many(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                );
            }
            anyhow::ensure!(
                external.is_empty() || keys.is_some(),
                "--checkpoint needs --public-key (or the signing key of AUDIT_SIGNING_KEY)"
            );
            let how = audit::Verification {
                keys: keys.as_ref(),
                external: &external,
            };
            let report = audit::verify(&open().await?, &how).await.map_err(failed)?;
            if !report.intact {
                anyhow::bail!(
                    "audit chain broken: {} (first bad event: {}, seq {})",
                    report.problem.unwrap_or_default(),
                    report
                        .first_broken_id
                        .map_or_else(|| "-".to_owned(), |id| id.to_string()),
                    report
                        .first_broken_seq
                        .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                );
            }
            let signed = match (&keys, report.covered_seq) {
                (None, _) => "signatures not checked (no public key given)".to_owned(),
                (Some(_), None) => format!(
                    "{} signed records verified; no checkpoint covers any event yet",
                    report.checkpoints_checked
                ),
                (Some(_), Some(seq)) => format!(
                    "{} signed records verified, covering through seq {seq}",
                    report.checkpoints_checked
                ),
            };
            println!(
                "audit chain intact: {} events checked; {signed}; {} events since the last checkpoint are not signed yet",
                report.checked,
                report.unsigned_events()
            );
        }
        AuditCommand::Export {
            since,
            format,
            checkpoints,
        } => {
            let pool = open().await?;
            if checkpoints {
                export::export_checkpoints(&pool).await?;
            } else {
                export::export(&pool, since, format).await?;
            }
        }
        AuditCommand::Checkpoint => {
            let signer = audit::Signer::load_or_create(&config.audit_signing_key_path())?;
            let db = session_manager::state::database(open().await?).await?;
            let checkpoint = audit::checkpoint(&db, &signer, true)
                .await
                .map_err(failed)?
                .context("no checkpoint was signed")?;
            println!("{}", serde_json::to_string(&checkpoint)?);
        }
        AuditCommand::PublicKey => {
            // The key alone: no database.
            let signer = audit::Signer::load_or_create(&config.audit_signing_key_path())?;
            println!("{}", signer.public_key().to_line());
        }
    }
    Ok(())
}

/// The keys `audit verify` holds checkpoints to: the `--public-key`
/// files, else the signing key's own (if its file exists) and
/// `AUDIT_PUBLIC_KEYS`; `None` when there are none at all.
fn verification_keys(
    config: &Config,
    files: &[std::path::PathBuf],
) -> anyhow::Result<Option<audit::Keyring>> {
    let mut keys = audit::Keyring::default();
    if files.is_empty() {
        let path = config.audit_signing_key_path();
        if path.exists() {
            keys.add(audit::Signer::load(&path)?.public_key().clone());
        }
        for path in &config.audit_public_keys {
            keys.extend(audit::Keyring::load(path)?);
        }
    } else {
        for path in files {
            let ring = audit::Keyring::load(path)?;
            anyhow::ensure!(!ring.is_empty(), "{} holds no public key", path.display());
            keys.extend(ring);
        }
    }
    Ok((!keys.is_empty()).then_some(keys))
}

/// A connection to the configured database, once the settings are valid.
async fn connect(
    global: GlobalArgs,
    serve: ServeArgs,
) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let config = Config::new(global.database_url, serve)?;
    db::connect(&config.database_url).await
}

/// The password is the first line of standard input (a trailing newline is
/// not part of it).
fn read_password_from_stdin() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .context("cannot read the password from standard input")?;
    let password = input.lines().next().unwrap_or("").to_owned();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

async fn print_demo_users(db: &db::Db, hasher: &PasswordHasherPool) -> anyhow::Result<()> {
    let users = users::ensure_demo_users(db, hasher)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("Demo users (sign in with signIn(email, password) in GraphiQL):");
    for ((user, created), (_, _, _, password)) in users.iter().zip(users::DEMO_USERS) {
        println!(
            "  {:<6} {:<20} password: {:<18}{}",
            user.role.as_str(),
            user.email,
            password,
            if *created { " (created now)" } else { "" }
        );
    }
    Ok(())
}
