//! The paths gatehouse answers itself, as the config places them: the user API's prefixes,
//! the pages' prefix, the console's and forward-auth's. The request classifier (`gateway::classify`) routes
//! by them; validation refuses a route hidden under one of them.

use super::Config;

/// Forward-auth's endpoints live under this fixed prefix; nothing under it is forwarded.
pub const FORWARD_AUTH_PREFIX: &str = "/_gatehouse/";

/// One prefix gatehouse owns: every path under it is answered locally, whatever the routes
/// say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedPrefix {
    pub prefix: String,
    /// What answers there, for messages (`check-config`, `routes explain`).
    pub what: &'static str,
}

impl Config {
    /// The prefixes gatehouse owns under this config, the user API's first.
    pub fn owned_prefixes(&self) -> Vec<OwnedPrefix> {
        let api = &self.api.prefix;
        let mut owned = vec![
            OwnedPrefix {
                prefix: format!("{api}auth/"),
                what: "the user API",
            },
            OwnedPrefix {
                prefix: format!("{api}token/"),
                what: "the user API",
            },
            OwnedPrefix {
                prefix: FORWARD_AUTH_PREFIX.to_string(),
                what: "forward-auth",
            },
        ];
        if self.web.enabled {
            owned.push(OwnedPrefix {
                prefix: self.web.prefix.clone(),
                what: "the pages ([web])",
            });
        }
        if self.console_on() {
            owned.push(OwnedPrefix {
                prefix: self.console.prefix.clone(),
                what: "the admin console ([console])",
            });
        }
        owned
    }
}

/// Why `prefix` cannot be where gatehouse mounts something: it must be an absolute,
/// normalized directory path (`/a/b/`) with nothing a URL would escape.
pub fn mount_problem(prefix: &str) -> Option<&'static str> {
    if !prefix.starts_with('/') || !prefix.ends_with('/') {
        return Some("must start and end with '/'");
    }
    if prefix.contains("//") || prefix.split('/').any(|s| s == "." || s == "..") {
        return Some("must be a normalized path (no empty, '.' or '..' segments)");
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
    {
        return Some("may hold only letters, digits, '/', '-', '.', '_' and '~'");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_normalized_directories() {
        for good in ["/", "/api/", "/auth/v1/", "/accounts/"] {
            assert_eq!(mount_problem(good), None, "{good}");
        }
        for bad in [
            "api/", "/api", "//api/", "/a/../b/", "/a b/", "/a%2F/", "/a?/",
        ] {
            assert!(mount_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn owned_prefixes_follow_the_config() {
        let mut config = Config::default();
        config.web.enabled = false;
        config.console.enabled = false;
        let names = |c: &Config| {
            c.owned_prefixes()
                .into_iter()
                .map(|o| o.prefix)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&config),
            ["/api/auth/", "/api/token/", "/_gatehouse/"]
        );
        config.api.prefix = "/gh/".into();
        config.web.enabled = true;
        assert_eq!(
            names(&config),
            ["/gh/auth/", "/gh/token/", "/_gatehouse/", "/accounts/"]
        );
        config.console.enabled = true;
        config.console.prefix = "/staff/".into();
        assert_eq!(
            names(&config),
            [
                "/gh/auth/",
                "/gh/token/",
                "/_gatehouse/",
                "/accounts/",
                "/staff/"
            ]
        );
    }
}
