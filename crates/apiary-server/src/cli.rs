//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::settings::Overrides;

/// Apiary: honeypot management — hpfeeds broker, ingest, web app and API in one program.
#[derive(Debug, Parser)]
#[command(name = "apiary", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command shares: where the configuration and the database are.
#[derive(Debug, Args, Clone, Default)]
pub struct Common {
    /// TOML configuration file.
    #[arg(long, global = true, env = "APIARY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (default ./apiary-data).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL (default sqlite://<data-dir>/apiary.db).
    #[arg(long, global = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: hpfeeds broker, ingest and HTTP in one process.
    Server(ServerArgs),
    /// Manage hpfeeds credentials.
    Ident {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: IdentCommand,
    },
    /// Manage web app users.
    User {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API keys.
    Apikey {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Configuration helpers.
    Config {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        common: Common,
    },
    /// Re-run the normalizers over stored raw messages (after a normalizer fix).
    Renormalize {
        #[command(flatten)]
        common: Common,
        /// Only this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only messages received at or after this time (RFC 3339, or YYYY-MM-DD).
        #[arg(long, value_parser = parse_time)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only messages whose normalization failed.
        #[arg(long)]
        errors_only: bool,
    },
    /// Write a consistent copy of the embedded database (and its roll-up file) while the
    /// server runs; restore by putting both files in place of the originals.
    Backup {
        #[command(flatten)]
        common: Common,
        /// The new database file (never overwritten); its roll-up file is FILE-rollups.
        file: PathBuf,
    },
    /// Import data from other systems.
    Import {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: ImportCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A `mongoexport` JSON-lines dump of MHN mnemosyne's `hpfeed` collection.
    Mnemosyne {
        /// The dump file.
        file: PathBuf,
    },
}

/// Parses RFC 3339 or a bare date (midnight UTC).
pub fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
        .ok_or_else(|| format!("{s:?} is not an RFC 3339 time or YYYY-MM-DD date"))
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub common: Common,
    /// hpfeeds listen address (default 0.0.0.0:10000).
    #[arg(long)]
    pub hpfeeds_listen: Option<SocketAddr>,
    /// hpfeeds TLS listen address (needs --hpfeeds-tls-cert and --hpfeeds-tls-key).
    #[arg(long)]
    pub hpfeeds_tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for the TLS listener.
    #[arg(long)]
    pub hpfeeds_tls_cert: Option<PathBuf>,
    /// PEM private key for the TLS listener.
    #[arg(long)]
    pub hpfeeds_tls_key: Option<PathBuf>,
    /// HTTP listen address (default 0.0.0.0:8080).
    #[arg(long)]
    pub http_listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum IdentCommand {
    /// Add (or replace) an ident. Without --secret a strong one is generated and printed.
    Add {
        /// The identifier.
        ident: String,
        /// Shared secret.
        #[arg(long)]
        secret: Option<String>,
        /// Channels it may publish to (comma-separated).
        #[arg(long, value_delimiter = ',')]
        publish: Vec<String>,
        /// Channels it may subscribe to (comma-separated).
        #[arg(long, value_delimiter = ',')]
        subscribe: Vec<String>,
        /// Owner (free text).
        #[arg(long, default_value = "")]
        owner: String,
    },
    /// List idents and their channels (secrets are not shown).
    List,
    /// Remove an ident; its open connections are closed.
    Remove {
        /// The identifier.
        ident: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. The password is read from APIARY_PASSWORD or, if unset, from the first
    /// line of standard input.
    Add {
        /// Sign-in email.
        email: String,
        /// admin or analyst (read-only).
        #[arg(long, default_value = "analyst")]
        role: String,
    },
    /// List users.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key for a user and print it (it is not stored, only its hash).
    Create {
        /// The user's email.
        email: String,
        /// Label to tell keys apart.
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the documented example configuration.
    Example,
    /// Load and validate the configuration, then print the effective settings.
    Check,
}

impl Common {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            ..Default::default()
        }
    }
}

impl ServerArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            hpfeeds_listen: self.hpfeeds_listen,
            hpfeeds_tls_listen: self.hpfeeds_tls_listen,
            hpfeeds_tls_cert: self.hpfeeds_tls_cert.clone(),
            hpfeeds_tls_key: self.hpfeeds_tls_key.clone(),
            http_listen: self.http_listen,
            ..self.common.overrides()
        }
    }
}
