//! `apiary config example|check`.

use anyhow::Result;

use crate::cli::{Common, ConfigCommand};
use crate::settings::EXAMPLE;

pub fn run(common: &Common, command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Example => {
            print!("{EXAMPLE}");
            Ok(())
        }
        ConfigCommand::Check => {
            let settings = super::load(common, &common.overrides())?;
            let mut text = toml::to_string_pretty(&settings)?;
            text = text.replace(
                &settings.database_url,
                &super::redact(&settings.database_url),
            );
            print!("{text}");
            Ok(())
        }
    }
}
