//! The `GATEHOUSE_<SECTION>_<KEY>` overlay on the config file, and the names of the
//! environment variables that carry secrets (never written in the file).

use super::{Config, ConfigError};

/// The config file to read when `-c` is not given.
pub const CONFIG_VAR: &str = "GATEHOUSE_CONFIG";
/// The HS256 signing secret (wins over `jwt.secret_file`).
pub const JWT_SECRET_VAR: &str = "GATEHOUSE_JWT_SECRET";
/// `createsuperuser --noinput`'s password (as Django's `DJANGO_SUPERUSER_PASSWORD`).
pub const SUPERUSER_PASSWORD_VAR: &str = "GATEHOUSE_SUPERUSER_PASSWORD";

/// The PostgreSQL URL of `[store] backend = "postgres"` (it holds a password: never in the
/// file, never logged; `store::describe` redacts it).
pub const STORE_URL_VAR: &str = "GATEHOUSE_STORE_URL";
/// The SMTP server of `[email] backend = "smtp"`: `smtp://user:pass@host:587` (STARTTLS),
/// `smtps://host:465` (TLS), `smtp://host:25?tls=none` (plain). Holds a password: never logged.
pub const EMAIL_SMTP_URL_VAR: &str = "GATEHOUSE_EMAIL_SMTP_URL";

/// A PEM file of extra CA certificates for the database's TLS (a private CA).
pub const STORE_CA_FILE_VAR: &str = "GATEHOUSE_STORE_CA_FILE";

/// Environment variables that look like overrides but are not config keys.
const NON_KEY_VARS: &[&str] = &[
    CONFIG_VAR,
    JWT_SECRET_VAR,
    SUPERUSER_PASSWORD_VAR,
    STORE_URL_VAR,
    EMAIL_SMTP_URL_VAR,
    STORE_CA_FILE_VAR,
];

pub(super) fn lookup<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// `GATEHOUSE_<SECTION>_<KEY>=value` sets `[section] key`. The value takes the type of the
/// key's default; an unknown key of a known section is an error, as in the file. A variable
/// whose section is not ours (`GATEHOUSE_BIN` of some script) is someone else's: ignored.
pub(super) fn apply(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    let defaults = toml::Table::try_from(Config::default())
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    for (var, raw) in env {
        let Some(rest) = var.strip_prefix("GATEHOUSE_") else {
            continue;
        };
        if NON_KEY_VARS.contains(&var.as_str()) {
            continue;
        }
        let env_err = |message: String| ConfigError::Env {
            var: var.clone(),
            message,
        };
        let Some((section, key)) = rest.split_once('_') else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let Some(toml::Value::Table(section_defaults)) = defaults.get(&section) else {
            continue;
        };
        let value = match section_defaults.get(&key) {
            Some(toml::Value::Boolean(_)) => match raw.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
                "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
                _ => return Err(env_err(format!("{raw:?} is not true or false"))),
            },
            Some(toml::Value::Integer(_)) => toml::Value::Integer(
                raw.parse()
                    .map_err(|_| env_err(format!("{raw:?} is not an integer")))?,
            ),
            Some(toml::Value::String(_)) => toml::Value::String(raw.clone()),
            Some(toml::Value::Array(_)) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_string()))
                    .collect(),
            ),
            _ => return Err(env_err(format!("unknown config key {section}.{key}"))),
        };
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key, value);
            }
            _ => return Err(env_err(format!("[{section}] in the file is not a table"))),
        }
    }
    Ok(())
}
