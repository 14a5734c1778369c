//! The command line: `serve`, `createsuperuser`, `check-config`. Everything else is in the
//! library.

use clap::{Parser, Subcommand};
use gatehouse::auth::passwords::Passwords;
use gatehouse::auth::policy::{self, UserAttributes};
use gatehouse::clock::now;
use gatehouse::config::Config;
use gatehouse::store::{NewUser, StoreError, UserStore};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc instead of glibc's malloc. The proxy path allocates and frees ~125 small blocks
/// per request (most inside Pingora): jemalloc takes ~15-20% off the worker's user CPU, and
/// does not fragment the way glibc did once sled's page cache churns at 1M users
/// (benches/README.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options (read before the first allocation; `_rjem_` is the prefix
/// tikv-jemalloc-sys builds with). A background thread returns freed memory to the OS within
/// about a second, so argon2's 19 MiB blocks do not stay resident in idle hashing threads'
/// arenas; without it purging waits for allocation activity in the same arena.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: Option<&u8> =
    Some(&b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0]);

use gatehouse::config::env::SUPERUSER_PASSWORD_VAR;

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
}

fn main() -> ExitCode {
    let Cli { config, command } = Cli::parse();
    let result = Config::load(config.as_deref())
        .map_err(|e| e.to_string())
        .inspect(|config| {
            // RUST_LOG, when set, wins over log.level, except that Pingora's proxy and
            // protocol modules stay at info: at debug they print whole request heads,
            // Authorization and Cookie included.
            let mut logger = env_logger::Builder::from_env(
                env_logger::Env::default().default_filter_or(config.log.level.as_str()),
            );
            for module in gatehouse::NOISY_MODULES {
                logger.filter_module(module, log::LevelFilter::Info);
            }
            logger.init();
        })
        .and_then(|config| match command {
            Command::Serve { upgrade } => gatehouse::serve(config, upgrade),
            Command::Createsuperuser {
                noinput,
                username,
                email,
            } => createsuperuser(&config, noinput, username, email),
            Command::CheckConfig => check_config(&config),
            Command::Import { dump } => import(&config, &dump),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gatehouse: {message}");
            ExitCode::FAILURE
        }
    }
}

fn import(config: &Config, dump: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(dump)
        .map_err(|e| format!("cannot read {}: {e}", dump.display()))?;
    let store = gatehouse::app::open_store(config).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let report = runtime
        .block_on(gatehouse::import::import(&store, &text))
        .map_err(|e| format!("{}: {e}", dump.display()))?;
    println!("{}", report.summary());
    Ok(())
}

/// Validates what `serve` would load besides the file: the signing keys or secret file
/// (a generated secret is left alone: checking must not create it).
fn check_config(config: &Config) -> Result<(), String> {
    let jwt = &config.jwt;
    let env_secret = std::env::var(gatehouse::config::env::JWT_SECRET_VAR).ok();
    if !jwt.algorithm.is_symmetric() || !jwt.secret_file.is_empty() || env_secret.is_some() {
        gatehouse::auth::keys::Keys::load(jwt, &config.server.data_dir, env_secret.as_deref())?;
    }
    print!("config OK\n{}", config.explain());
    Ok(())
}

fn prompt(label: &str) -> Result<String, String> {
    print!("{label}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(line.trim().to_string())
}

fn createsuperuser(
    config: &Config,
    noinput: bool,
    username: Option<String>,
    email: Option<String>,
) -> Result<(), String> {
    let (username, email, password) = if noinput {
        let username = username.ok_or("--noinput needs --username")?;
        let email = email.ok_or("--noinput needs --email")?;
        let password = std::env::var(SUPERUSER_PASSWORD_VAR)
            .ok()
            .filter(|p| !p.is_empty())
            .ok_or(format!(
                "--noinput needs the password in {SUPERUSER_PASSWORD_VAR}"
            ))?;
        (username, email, password)
    } else {
        let username = match username {
            Some(u) => u,
            None => prompt("Username: ")?,
        };
        let email = match email {
            Some(e) => e,
            None => prompt("Email address: ")?,
        };
        let password = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Password (again): ").map_err(|e| e.to_string())?;
        if password != again {
            return Err("Error: Your passwords didn't match.".into());
        }
        (username, email, password)
    };
    if username.is_empty()
        || !policy::is_valid_username(&username)
        || username.chars().count() > 150
    {
        return Err(format!(
            "invalid username {username:?}: up to 150 letters, digits and @/./+/-/_"
        ));
    }
    if !policy::is_valid_email(&email) {
        return Err(format!("invalid email address {email:?}"));
    }
    let problems = policy::validate_password(
        &password,
        &UserAttributes {
            username: &username,
            first_name: "",
            last_name: "",
            email: &email,
        },
    );
    if !problems.is_empty() {
        let listed = problems.join("\n  ");
        if noinput {
            return Err(format!("the password is refused:\n  {listed}"));
        }
        eprintln!("{listed}");
        let answer = prompt("Bypass password validation and create user anyway? [y/N]: ")?;
        if !answer.eq_ignore_ascii_case("y") {
            return Err("aborted".into());
        }
    }
    let store = gatehouse::app::open_store(config).map_err(|e| e.to_string())?;
    let hash = Passwords::new(&config.passwords)?.hash_blocking(&password);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    let created = runtime.block_on(store.create_user(NewUser {
        username: username.clone(),
        email,
        first_name: String::new(),
        last_name: String::new(),
        password: hash,
        is_staff: true,
        date_joined: now(),
    }));
    match created {
        Ok(user) => {
            println!("Superuser {} created (id {}).", user.username, user.id);
            Ok(())
        }
        Err(StoreError::UsernameTaken) => {
            Err(format!("Error: That username is already taken: {username}"))
        }
        Err(StoreError::EmailTaken) => Err("Error: That email address is already in use.".into()),
        Err(e) => Err(e.to_string()),
    }
}
