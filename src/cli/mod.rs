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
        Command::Audit(AuditCommand::Verify) => {
            let db = connect(global, serve).await?;
            db::migrate(&db).await?;
            let report = audit::verify_chain(&db)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if report.intact {
                println!("audit chain intact: {} events checked", report.checked);
            } else {
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
        }
        Command::Audit(AuditCommand::Export { since, format }) => {
            let db = connect(global, serve).await?;
            db::migrate(&db).await?;
            export::export(&db, since, format).await?;
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
