//! One module per command.

mod config;
mod data;
mod ident;
mod server;
mod user;

use std::sync::Arc;

use anyhow::{Context, Result};
use apiary_store::Store;
use tracing::warn;

use crate::cli::{Cli, Command, Common, ImportCommand};
use crate::settings::{Overrides, Settings};

pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Server(args) => {
            let settings = load(&args.common, &args.overrides())?;
            server::run(settings).await
        }
        Command::Ident { common, command } => {
            let settings = load(&common, &common.overrides())?;
            let store = open_store(&settings).await?;
            let r = ident::run(&*store, command).await;
            store.close().await;
            r
        }
        Command::User { common, command } => {
            let settings = load(&common, &common.overrides())?;
            let store = open_store(&settings).await?;
            let r = user::run_user(&*store, command).await;
            store.close().await;
            r
        }
        Command::Apikey { common, command } => {
            let settings = load(&common, &common.overrides())?;
            let store = open_store(&settings).await?;
            let r = user::run_apikey(&*store, command).await;
            store.close().await;
            r
        }
        Command::Config { common, command } => config::run(&common, command),
        Command::Migrate { common } => {
            let settings = load(&common, &common.overrides())?;
            let store = open_store(&settings).await?;
            store
                .migrate()
                .await
                .context("while migrating the database")?;
            store.close().await;
            println!(
                "database at {} is up to date",
                redact(&settings.database_url())
            );
            Ok(())
        }
        Command::Renormalize {
            common,
            channel,
            since,
            errors_only,
        } => {
            let settings = load(&common, &common.overrides())?;
            let store = open_store(&settings).await?;
            let r = data::renormalize(&settings, store.clone(), channel, since, errors_only).await;
            store.close().await;
            r
        }
        Command::Backup { common, file } => {
            let settings = load(&common, &common.overrides())?;
            // Opening would create an empty database where none is: say so instead.
            if let Some(path) = settings.database_url().strip_prefix("sqlite://") {
                if !std::path::Path::new(path).exists() {
                    anyhow::bail!(
                        "no database at {path} to back up (check --data-dir or --database-url)"
                    );
                }
            }
            let store = open_store(&settings).await?;
            let r = data::backup(store.clone(), &file).await;
            store.close().await;
            r
        }
        Command::Import { common, command } => {
            let settings = load(&common, &common.overrides())?;
            let store = open_store(&settings).await?;
            let r = match command {
                ImportCommand::Mnemosyne { file } => {
                    data::import_mnemosyne(&settings, store.clone(), &file).await
                }
            };
            store.close().await;
            r
        }
    }
}

/// Loads settings and prints warnings about unknown `APIARY_*` variables.
pub fn load(common: &Common, overrides: &Overrides) -> Result<Settings> {
    let (settings, warnings) =
        Settings::load(common.config.as_deref(), std::env::vars(), overrides)?;
    for w in warnings {
        warn!("{w}");
    }
    Ok(settings)
}

/// Opens the configured store, creating the data directory for the embedded database.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>> {
    let url = settings.database_url();
    if let Some(path) = url.strip_prefix("sqlite://") {
        if let Some(parent) = std::path::Path::new(path).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).with_context(|| {
                    format!("cannot create data directory {}", parent.display())
                })?;
            }
        }
    }
    apiary_store::open(&url)
        .await
        .with_context(|| format!("while opening the database {}", redact(&url)))
}

/// Hides a password in a database URL.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:****{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:pw@h/db"),
            "postgres://u:****@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite:///x.db"), "sqlite:///x.db");
    }
}
