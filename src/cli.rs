//! The command line's subcommands other than serving.

use std::io::Read;

use anyhow::Context;

use crate::{
    auth::PasswordHasherPool,
    config::{Command, Config, GlobalArgs, ServeArgs, UserCommand},
    db, graphql,
    service::user::{self as users, NewUser},
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
            print_demo_users(&db, &PasswordHasherPool::new()?).await?;
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

async fn print_demo_users(
    db: &sea_orm::DatabaseConnection,
    hasher: &PasswordHasherPool,
) -> anyhow::Result<()> {
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
