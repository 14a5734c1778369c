//! `gatehouse createsuperuser`: a staff user (`accounts::create_superuser`, validated exactly
//! as a registration is: the same field rules and password policy), from prompts or
//! `--noinput` and the environment.

use super::block_on;
use crate::accounts::{self, Actor};
use crate::app::App;
use crate::config::env::SUPERUSER_PASSWORD_VAR;
use crate::config::Config;
use crate::error::ApiError;
use crate::store::User;
use serde_json::{Map, Value};
use std::io::{BufRead, Write};

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

/// Username, email and password from the flags, the environment or the terminal.
fn ask(
    noinput: bool,
    username: Option<String>,
    email: Option<String>,
) -> Result<(String, String, String), String> {
    if noinput {
        let username = username.ok_or("--noinput needs --username")?;
        let email = email.ok_or("--noinput needs --email")?;
        let password = std::env::var(SUPERUSER_PASSWORD_VAR)
            .ok()
            .filter(|p| !p.is_empty())
            .ok_or(format!(
                "--noinput needs the password in {SUPERUSER_PASSWORD_VAR}"
            ))?;
        return Ok((username, email, password));
    }
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
    Ok((username, email, password))
}

/// Every field error, one per line, as Django's createsuperuser prints them.
fn listed(e: &ApiError) -> String {
    match e {
        ApiError::Validation(fields) => fields
            .iter()
            .flat_map(|(name, error)| {
                error
                    .messages()
                    .into_iter()
                    .map(move |m| format!("{name}: {m}"))
            })
            .collect::<Vec<_>>()
            .join("\n  "),
        other => other.body().to_string(),
    }
}

/// Only the password policy failed: the one thing Django lets an operator bypass.
fn only_password_failed(e: &ApiError) -> bool {
    matches!(e, ApiError::Validation(fields) if fields.iter().all(|(name, _)| name == "password"))
}

/// The superuser from `data`; when only the password policy refuses it and a terminal is
/// there to ask, the operator may bypass the policy, as Django lets them.
async fn create(app: &App, data: &Map<String, Value>, noinput: bool) -> Result<User, String> {
    let system = Actor::system();
    let refused = |e: &ApiError| format!("the user is refused:\n  {}", listed(e));
    match accounts::create_superuser(app, &system, data, true).await {
        Ok(user) => Ok(user),
        Err(e) if only_password_failed(&e) && !noinput => {
            eprintln!("{}", listed(&e));
            let answer = prompt("Bypass password validation and create user anyway? [y/N]: ")?;
            if !answer.eq_ignore_ascii_case("y") {
                return Err("aborted".into());
            }
            accounts::create_superuser(app, &system, data, false)
                .await
                .map_err(|e| refused(&e))
        }
        Err(e @ ApiError::Validation(_)) => Err(refused(&e)),
        Err(e) => Err(listed(&e)),
    }
}

pub fn run(
    config: &Config,
    noinput: bool,
    username: Option<String>,
    email: Option<String>,
) -> Result<(), String> {
    let (username, email, password) = ask(noinput, username, email)?;
    let app = App::open(config.clone())?;
    crate::audit::start(&app.store, &config.audit)?;
    let data: Map<String, Value> = [
        ("username", username),
        ("email", email),
        ("password", password),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::String(v)))
    .collect();
    block_on(async {
        let user = create(&app, &data, noinput).await;
        if let Ok(user) = &user {
            println!("Superuser {} created (id {}).", user.username, user.id);
        }
        // The event's line (with `audit.sink = "stdout"`) after the outcome.
        crate::access_log::flush();
        user.map(|_| ())
    })?
}
