//! The command line: one file per command. `run` parses the arguments, loads the config once
//! and hands it to the command; `main.rs` only sets the allocator and calls `run`.

pub mod check_config;
pub mod createsuperuser;
pub mod import;
pub mod migrate;
pub mod reload;
pub mod routes_explain;
pub mod store_copy;

use crate::config::Config;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Authentication gateway: a DRF/simplejwt-compatible user API and a JWT-checking reverse proxy"
)]
struct Cli {
    /// Config file (default: $GATEHOUSE_CONFIG, else conf/gatehouse.toml).
    #[arg(short = 'c', long = "config", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Take over the listening sockets of a running gatehouse (Pingora graceful upgrade).
        #[arg(short = 'u', long)]
        upgrade: bool,
    },
    /// Create a staff user (prompts, or --noinput with GATEHOUSE_SUPERUSER_PASSWORD).
    Createsuperuser {
        #[arg(long)]
        noinput: bool,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        email: Option<String>,
    },
    /// Validate the config and explain what it sets up.
    CheckConfig,
    /// Import users from a Django `manage.py dumpdata` JSON file (server stopped).
    Import {
        /// The dumpdata file (accounts.user or auth.user entries).
        dump: PathBuf,
    },
    /// Create or upgrade the PostgreSQL schema ([store] backend = "postgres").
    Migrate,
    /// Make the running gatehouse re-read its config and certificates (SIGHUP via the pid
    /// file); the server's log says what changed or why nothing did.
    Reload,
    /// The route table.
    Routes {
        #[command(subcommand)]
        command: RoutesCommand,
    },
    /// The user store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy everything from the configured sled store into an empty PostgreSQL database
    /// (migrated first; ids kept). The server must be stopped.
    Copy {
        /// postgres://user:password@host:5432/db?sslmode=require
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum RoutesCommand {
    /// Which route PATH takes, its auth mode and requirements, and with --user the decision
    /// for that user (reads the store: the server must be stopped for sled).
    Explain {
        /// The request's method (default GET).
        #[arg(long)]
        method: Option<String>,
        /// A username: decide for this user as the proxy would, with a valid token.
        #[arg(long)]
        user: Option<String>,
        /// The request path, as a client would send it.
        path: String,
    },
}

/// Runs the command line; the exit code says whether it worked.
pub fn run() -> ExitCode {
    let Cli { config, command } = Cli::parse();
    let config_path = config.clone();
    let result = Config::load(config.as_deref())
        .map_err(|e| e.to_string())
        .inspect(init_logging)
        .and_then(|config| match command {
            Command::Serve { upgrade } => crate::serve(config, upgrade, config_path),
            Command::Createsuperuser {
                noinput,
                username,
                email,
            } => createsuperuser::run(&config, noinput, username, email),
            Command::CheckConfig => check_config::run(&config),
            Command::Import { dump } => import::run(&config, &dump),
            Command::Migrate => migrate::run(&config),
            Command::Store {
                command: StoreCommand::Copy { to },
            } => store_copy::run(&config, &to),
            Command::Reload => reload::run(&config),
            Command::Routes {
                command: RoutesCommand::Explain { method, user, path },
            } => routes_explain::run(&config, method.as_deref(), user.as_deref(), &path),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gatehouse: {message}");
            ExitCode::FAILURE
        }
    }
}

/// RUST_LOG, when set, wins over log.level, except that Pingora's proxy and protocol modules
/// stay at info: at debug they print whole request heads, Authorization and Cookie included.
fn init_logging(config: &Config) {
    let mut logger = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(config.log.level.as_str()),
    );
    for module in crate::NOISY_MODULES {
        logger.filter_module(module, log::LevelFilter::Info);
    }
    // Upstream health changes are logged by gatehouse itself, in one short line each.
    logger.filter_module(
        crate::gateway::health::REPLACED_LOG_MODULE,
        log::LevelFilter::Error,
    );
    logger.init();
}

/// Runs one async store operation from a command (no server runtime here).
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    Ok(runtime.block_on(f))
}
