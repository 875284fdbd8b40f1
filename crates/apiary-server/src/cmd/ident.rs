//! `apiary ident add|list|remove`: hpfeeds credentials in the store. A running server
//! notices the change within `hpfeeds.ident_reload_secs`.

use anyhow::{bail, Context, Result};
use apiary_model::{Ident, Secret};
use apiary_store::Store;
use rand::RngCore;

use crate::cli::IdentCommand;

/// A 32-byte random secret, hex-encoded.
pub fn generate_secret() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn check_name(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 255 {
        bail!("{what} must be 1 to 255 bytes: {s:?}");
    }
    if s.chars().any(|c| c.is_control()) {
        bail!("{what} must not contain control characters: {s:?}");
    }
    Ok(())
}

pub async fn run(store: &dyn Store, command: IdentCommand) -> Result<()> {
    match command {
        IdentCommand::Add {
            ident,
            secret,
            publish,
            subscribe,
            owner,
        } => {
            check_name("ident", &ident)?;
            let publish: Vec<String> = publish.into_iter().filter(|c| !c.is_empty()).collect();
            let subscribe: Vec<String> = subscribe.into_iter().filter(|c| !c.is_empty()).collect();
            for c in publish.iter().chain(&subscribe) {
                check_name("channel", c)?;
            }
            let generated = secret.is_none();
            let secret = secret.unwrap_or_else(generate_secret);
            if secret.is_empty() {
                bail!("--secret must not be empty");
            }
            let record = Ident {
                ident: ident.clone(),
                secret: Secret::new(secret.clone()),
                publish,
                subscribe,
                owner,
            };
            store
                .upsert_ident(&record)
                .await
                .context("while saving the ident")?;
            println!("ident {ident} saved");
            println!("  publish:   {}", record.publish.join(","));
            println!("  subscribe: {}", record.subscribe.join(","));
            if generated {
                println!("  secret:    {secret}");
            }
            Ok(())
        }
        IdentCommand::List => {
            let idents = store.list_idents().await.context("while listing idents")?;
            println!(
                "{:<32} {:<40} {:<40} owner",
                "ident", "publish", "subscribe"
            );
            for i in idents {
                println!(
                    "{:<32} {:<40} {:<40} {}",
                    i.ident,
                    i.publish.join(","),
                    i.subscribe.join(","),
                    i.owner
                );
            }
            Ok(())
        }
        IdentCommand::Remove { ident } => {
            if store.delete_ident(&ident).await? {
                println!("ident {ident} removed");
                Ok(())
            } else {
                bail!("no ident named {ident:?}")
            }
        }
    }
}
