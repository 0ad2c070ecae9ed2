//! The command line's subcommands other than serving.

use std::io::Read;

use anyhow::Context;

use crate::{
    auth::PasswordHasherPool,
    config::{AuditCommand, Command, Config, ExportFormat, GlobalArgs, ServeArgs, UserCommand},
    db, graphql,
    service::{
        audit,
        user::{self as users, NewUser},
    },
    startup::Application,
};

pub async fn run(
    global: GlobalArgs,
    serve: ServeArgs,
    command: Option<Command>,
) -> anyhow::Result<()> {
    match command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = Config::new(&global, &serve)?;
            let app = Application::build(config).await?;
            if serve.demo {
                print_demo_users(&app.state().db, &app.state().hasher).await?;
            }
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let db = connect(&global, &serve).await?;
            db::migrate(&db).await?;
            eprintln!("migrations are up to date");
        }
        Command::PrintSchema => print!("{}", graphql::sdl()),
        Command::Demo => {
            let db = connect(&global, &serve).await?;
            db::migrate(&db).await?;
            let db = crate::state::database(db).await?;
            print_demo_users(&db, &PasswordHasherPool::new()?).await?;
        }
        Command::Audit(AuditCommand::Verify) => {
            let db = connect(&global, &serve).await?;
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
            let db = connect(&global, &serve).await?;
            db::migrate(&db).await?;
            export(&db, since, format).await?;
        }
        Command::Seed(args) => {
            let config = Config::new(&global, &serve)?;
            crate::service::seed::run(&config, &args).await?;
        }
        Command::User(UserCommand::Add {
            email,
            name,
            role,
            password_stdin: _,
        }) => {
            let role = role.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let password = read_password_from_stdin()?;
            let db = connect(&global, &serve).await?;
            db::migrate(&db).await?;
            let db = crate::state::database(db).await?;
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

async fn connect(
    global: &GlobalArgs,
    serve: &ServeArgs,
) -> anyhow::Result<sea_orm::DatabaseConnection> {
    let config = Config::new(global, serve)?;
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

const CSV_COLUMNS: [&str; 14] = [
    "seq",
    "id",
    "created_at",
    "event_type",
    "status",
    "message",
    "actor_id",
    "user_id",
    "session_id",
    "ip_address",
    "user_agent",
    "metadata",
    "prev_hash",
    "hash",
];

/// Streams the log to standard output, a page at a time.
async fn export(
    db: &sea_orm::DatabaseConnection,
    since: Option<chrono::DateTime<chrono::Utc>>,
    format: ExportFormat,
) -> anyhow::Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if format == ExportFormat::Csv {
        writeln!(out, "{}", CSV_COLUMNS.join(","))?;
    }
    let count = audit::for_each_event(db, since, |event| match format {
        ExportFormat::Ndjson => {
            let line = serde_json::json!({
                "seq": event.seq,
                "id": event.id,
                "createdAt": event.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "eventType": event.event_type,
                "status": event.status.as_str(),
                "message": event.message,
                "actorId": event.actor_id,
                "userId": event.user_id,
                "sessionId": event.session_id,
                "ipAddress": event.ip_address,
                "userAgent": event.user_agent,
                "metadata": event.metadata,
                "prevHash": event.prev_hash,
                "hash": event.hash,
            });
            writeln!(out, "{line}")
        }
        ExportFormat::Csv => {
            let opt = |id: Option<uuid::Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
            let fields = [
                event.seq.to_string(),
                event.id.to_string(),
                event
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                event.event_type.clone(),
                event.status.as_str().to_owned(),
                event.message.clone(),
                opt(event.actor_id),
                opt(event.user_id),
                opt(event.session_id),
                event.ip_address.clone().unwrap_or_default(),
                event.user_agent.clone().unwrap_or_default(),
                event.metadata.to_string(),
                event.prev_hash.clone(),
                event.hash.clone(),
            ];
            let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            writeln!(out, "{}", row.join(","))
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    out.flush()?;
    eprintln!("exported {count} events");
    Ok(())
}

/// RFC 4180 quoting; a leading formula character is neutralised so a
/// spreadsheet never runs what an attacker put in a User-Agent.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
