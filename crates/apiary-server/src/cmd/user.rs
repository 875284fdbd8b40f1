//! `apiary user add|list`, `apiary apikey create`, and the first admin on server start.

use std::io::BufRead;

use anyhow::{anyhow, bail, Context, Result};
use apiary_model::Role;
use apiary_store::Store;

use crate::cli::{ApikeyCommand, UserCommand};

fn web(e: apiary_web::error::AppError) -> anyhow::Error {
    anyhow!("{}", e.parts().1)
}

/// On a store without users, creates an admin from `APIARY_ADMIN_EMAIL` /
/// `APIARY_ADMIN_PASSWORD`, or with a generated password printed once to stderr.
pub async fn bootstrap_admin(store: &dyn Store) -> Result<()> {
    let email = std::env::var("APIARY_ADMIN_EMAIL").ok();
    let password = std::env::var("APIARY_ADMIN_PASSWORD").ok();
    match apiary_web::auth::bootstrap_admin(store, email, password)
        .await
        .map_err(web)
        .context("while creating the first admin")?
    {
        None => {}
        Some((email, None)) => {
            tracing::info!(%email, "created the first admin from APIARY_ADMIN_EMAIL/APIARY_ADMIN_PASSWORD")
        }
        Some((email, Some(password))) => {
            // Printed once, to the operator's terminal, never to the log.
            eprintln!("\n  First start: created admin user {email} with password: {password}\n  Change it under Settings after signing in; it will not be shown again.\n");
        }
    }
    Ok(())
}

fn read_password() -> Result<String> {
    if let Ok(p) = std::env::var("APIARY_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("while reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn run_user(store: &dyn Store, command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Add { email, role } => {
            let role =
                Role::parse(&role).ok_or_else(|| anyhow!("--role must be admin or analyst"))?;
            let password = read_password()?;
            apiary_web::auth::check_new_password(&password).map_err(web)?;
            let hash = tokio::task::spawn_blocking(move || {
                apiary_web::auth::hash_password(&password, &Default::default())
            })
            .await?
            .map_err(web)?;
            let user = store
                .create_user(&email, role, &hash)
                .await
                .context("while saving the user")?;
            println!("user {} added with role {}", user.email, user.role);
            Ok(())
        }
        UserCommand::List => {
            for u in store.list_users().await? {
                println!("{:<6} {:<40} {}", u.id, u.email, u.role);
            }
            Ok(())
        }
    }
}

pub async fn run_apikey(store: &dyn Store, command: ApikeyCommand) -> Result<()> {
    match command {
        ApikeyCommand::Create { email, label } => {
            let Some((user, _)) = store.user_with_password(&email).await? else {
                bail!("no user {email:?}");
            };
            let (key, _) = apiary_web::auth::create_api_key(store, user.id, &label)
                .await
                .map_err(web)?;
            println!("{key}");
            Ok(())
        }
    }
}
