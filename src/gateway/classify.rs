//! Who answers a request: the user API, the pages, the admin console, forward-auth, or a
//! proxied route. The one
//! place that decides it, on the normalized path; the proxy, forward-auth (for the asked
//! request) and `gatehouse routes explain` all ask it, so they cannot disagree.

use crate::api::router::{self, Route};
use crate::config::owned::FORWARD_AUTH_PREFIX;
use crate::config::{Config, EscapedPaths};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The path holds an encoded slash, backslash or dot and `proxy.escaped_paths` rejects
    /// such paths (SPEC §13): 400, never forwarded.
    Escaped,
    /// The user API: an endpoint, a 308 to its slashed path, or a 404 under its prefixes.
    Api(Route),
    /// The pages under `[web] prefix` (when `web.enabled`).
    Pages,
    /// The admin console under `[console] prefix` (when it and the pages are on).
    Console,
    /// gatehouse's forward-auth endpoints.
    ForwardAuth,
    /// Everything else: the route table decides (a route, or 404).
    Proxy,
    /// Nothing on this listener: 404. The console's prefix on the public listeners when the
    /// console has its own (`console.listen`), and on that one everything but the console
    /// and the pages.
    Missing,
}

/// A classified request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The path every later decision uses (`router::normalize_path`).
    pub path: String,
    pub target: Target,
}

/// The classifier of one configuration (the prefixes need a restart to change).
#[derive(Debug, Clone)]
pub struct Classifier {
    api_prefix: String,
    pages_prefix: Option<String>,
    console_prefix: Option<String>,
    reject_escaped: bool,
    /// The console is served on a listener of its own (`console.listen`).
    console_elsewhere: bool,
    /// This is that listener: the console and its pages, nothing else.
    console_only: bool,
}

impl Classifier {
    pub fn new(config: &Config) -> Classifier {
        Classifier {
            api_prefix: config.api.prefix.clone(),
            pages_prefix: config.web.enabled.then(|| config.web.prefix.clone()),
            console_prefix: config.console_on().then(|| config.console.prefix.clone()),
            reject_escaped: config.proxy.escaped_paths == EscapedPaths::Reject,
            console_elsewhere: config.console_listener().is_some(),
            console_only: false,
        }
    }

    /// The classifier of the console's own listener (`console.listen`): the console and the
    /// pages it signs in with; every other path is [`Target::Missing`].
    pub fn for_console(config: &Config) -> Classifier {
        Classifier {
            console_elsewhere: false,
            console_only: true,
            ..Classifier::new(config)
        }
    }

    /// Where the request for `raw_path` (as sent, query removed) goes.
    pub fn classify(&self, raw_path: &str) -> Classified {
        let escaped = self.reject_escaped && router::is_escaped(raw_path);
        // Normalized once: every decision after this one uses this path.
        let path = router::normalize_path(raw_path);
        let target = if escaped {
            Target::Escaped
        } else {
            self.target(&path)
        };
        Classified { path, target }
    }

    /// The target of a normalized path.
    fn target(&self, path: &str) -> Target {
        if self.console_only {
            return if under(self.pages_prefix.as_deref(), path) {
                Target::Pages
            } else if under(self.console_prefix.as_deref(), path) {
                Target::Console
            } else {
                Target::Missing
            };
        }
        if path.starts_with(FORWARD_AUTH_PREFIX) {
            return Target::ForwardAuth;
        }
        match router::route(path, &self.api_prefix) {
            Route::NotOurs => {}
            api => return Target::Api(api),
        }
        if under(self.pages_prefix.as_deref(), path) {
            return Target::Pages;
        }
        if under(self.console_prefix.as_deref(), path) {
            return if self.console_elsewhere {
                Target::Missing
            } else {
                Target::Console
            };
        }
        Target::Proxy
    }
}

/// `path` is under `prefix` (or is the prefix without its slash).
fn under(prefix: Option<&str>, path: &str) -> bool {
    prefix.is_some_and(|p| path.starts_with(p) || path == p.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::router::Endpoint;

    fn classifier(edit: impl FnOnce(&mut Config)) -> Classifier {
        let mut config = Config::default();
        edit(&mut config);
        Classifier::new(&config)
    }

    #[test]
    fn each_path_has_one_answerer() {
        let c = classifier(|c| c.web.enabled = true);
        let target = |p: &str| c.classify(p).target;
        assert_eq!(
            target("/api/token/"),
            Target::Api(Route::Api(Endpoint::TokenObtain))
        );
        assert_eq!(target("/api/auth/nope/"), Target::Api(Route::NotFound));
        assert_eq!(target("/_gatehouse/auth"), Target::ForwardAuth);
        assert_eq!(target("/accounts/login/"), Target::Pages);
        assert_eq!(target("/accounts"), Target::Pages);
        assert_eq!(target("/accountsx"), Target::Proxy);
        assert_eq!(target("/admin/"), Target::Console);
        assert_eq!(target("/admin"), Target::Console);
        assert_eq!(target("/admin/users/3/"), Target::Console);
        assert_eq!(target("/administrator"), Target::Proxy);
        assert_eq!(target("/orders/1"), Target::Proxy);
        assert_eq!(target("/a/..%2f/api/token/"), Target::Escaped);
        // Spellings of an owned path are that path.
        let c2 = c.classify("//api/%61uth/profile/");
        assert_eq!(c2.path, "/api/auth/profile/");
        assert_eq!(c2.target, Target::Api(Route::Api(Endpoint::Profile)));
    }

    #[test]
    fn a_console_of_its_own_listener_leaves_the_public_one() {
        let own = |c: &mut Config| {
            c.web.enabled = true;
            c.console.listen = "127.0.0.1:8090".parse().ok();
        };
        let public = classifier(own);
        assert_eq!(public.classify("/admin/").target, Target::Missing);
        assert_eq!(public.classify("/admin/users/3/").target, Target::Missing);
        assert_eq!(public.classify("/accounts/login/").target, Target::Pages);
        assert_eq!(public.classify("/orders/1").target, Target::Proxy);
        let mut config = Config::default();
        own(&mut config);
        let console = Classifier::for_console(&config);
        let target = |p: &str| console.classify(p).target;
        assert_eq!(target("/admin/"), Target::Console);
        assert_eq!(target("/admin/groups/"), Target::Console);
        assert_eq!(target("/accounts/login/"), Target::Pages);
        assert_eq!(target("/accounts/static/gatehouse.css"), Target::Pages);
        for elsewhere in [
            "/",
            "/orders/1",
            "/api/token/",
            "/api/auth/profile/",
            "/_gatehouse/auth",
        ] {
            assert_eq!(target(elsewhere), Target::Missing, "{elsewhere}");
        }
    }

    #[test]
    fn the_pages_are_proxied_until_enabled_and_prefixes_move() {
        let off = classifier(|c| c.web.enabled = false);
        assert_eq!(off.classify("/accounts/login/").target, Target::Proxy);
        assert_eq!(off.classify("/admin/").target, Target::Proxy);
        let no_console = classifier(|c| c.console.enabled = false);
        assert_eq!(no_console.classify("/admin/").target, Target::Proxy);
        let moved = classifier(|c| {
            c.api.prefix = "/gh/".into();
            c.web.enabled = true;
            c.web.prefix = "/signin/".into();
            c.console.prefix = "/staff/".into();
        });
        assert_eq!(moved.classify("/staff/").target, Target::Console);
        assert_eq!(moved.classify("/admin/").target, Target::Proxy);
        assert_eq!(moved.classify("/api/token/").target, Target::Proxy);
        assert_eq!(
            moved.classify("/gh/token/").target,
            Target::Api(Route::Api(Endpoint::TokenObtain))
        );
        assert_eq!(moved.classify("/signin/").target, Target::Pages);
        assert_eq!(moved.classify("/accounts/").target, Target::Proxy);
    }

    #[test]
    fn escaped_paths_are_forwarded_when_configured() {
        let c = classifier(|c| c.proxy.escaped_paths = EscapedPaths::Forward);
        assert_eq!(c.classify("/a%2Fb").target, Target::Proxy);
    }
}
