//! `gatehouse createsuperuser`: a staff user, validated exactly as a registration is (the same
//! field rules and password policy), from prompts or `--noinput` and the environment.

use super::block_on;
use crate::api::users::{validate_registration, Registration};
use crate::auth::passwords::Passwords;
use crate::clock::now;
use crate::config::env::SUPERUSER_PASSWORD_VAR;
use crate::config::Config;
use crate::error::ApiError;
use crate::store::{NewUser, UserStore};
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

async fn validate(
    store: &dyn UserStore,
    data: &Map<String, Value>,
    noinput: bool,
) -> Result<Registration, String> {
    match validate_registration(store, data, true).await {
        Ok(valid) => Ok(valid),
        Err(e) if only_password_failed(&e) && !noinput => {
            eprintln!("{}", listed(&e));
            let answer = prompt("Bypass password validation and create user anyway? [y/N]: ")?;
            if !answer.eq_ignore_ascii_case("y") {
                return Err("aborted".into());
            }
            validate_registration(store, data, false)
                .await
                .map_err(|e| format!("the user is refused:\n  {}", listed(&e)))
        }
        Err(e) => Err(format!("the user is refused:\n  {}", listed(&e))),
    }
}

pub fn run(
    config: &Config,
    noinput: bool,
    username: Option<String>,
    email: Option<String>,
) -> Result<(), String> {
    let (username, email, password) = ask(noinput, username, email)?;
    let store = crate::store::open(config).map_err(|e| e.to_string())?;
    let passwords = Passwords::new(&config.passwords)?;
    let data: Map<String, Value> = [
        ("username", username),
        ("email", email),
        ("password", password),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::String(v)))
    .collect();
    block_on(async {
        let valid = validate(store.as_ref(), &data, noinput).await?;
        let hash = passwords
            .hash_blocking(&valid.password)
            .map_err(|e| e.to_string())?;
        let user = store
            .create_user(NewUser {
                username: valid.username,
                email: valid.email,
                first_name: String::new(),
                last_name: String::new(),
                password: hash,
                is_staff: true,
                date_joined: now(),
            })
            .await
            .map_err(|e| listed(&ApiError::from(e)))?;
        // The operator vouches for the address: `require_verified_email` must not lock the
        // first admin out.
        let user = store
            .update_user(user.id, &|u| u.email_verified = true)
            .await
            .map_err(|e| listed(&ApiError::from(e)))?;
        println!("Superuser {} created (id {}).", user.username, user.id);
        Ok(())
    })?
}
