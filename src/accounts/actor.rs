//! Who makes a change, and from where: what the operations check permissions on, and what
//! the audit log records with every event (`Actor::event`).

use crate::error::ApiError;
use crate::store::{Action, Event};
use std::net::IpAddr;

/// The longest user agent an event keeps (as a session does).
const USER_AGENT_MAX: usize = 200;
/// `actor_username` of the operator on the command line.
pub const SYSTEM_ACTOR: &str = "(system)";

/// Who acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// Nobody signed in (register, sign-in, the link mails).
    Anonymous,
    /// A signed-in user, as the request authenticated them.
    User { id: u64, is_staff: bool },
    /// The operator, through the command line (createsuperuser, import).
    System,
}

/// Who acts and the request they act through (what is known of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub principal: Principal,
    /// The client (the peer, or the hop `trusted_proxies` chose): throttles and the audit log.
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
    pub user_agent: Option<String>,
    /// The signed-in user's username, as the request authenticated them.
    pub username: Option<String>,
}

impl Actor {
    /// Nobody signed in, from `client_ip`.
    pub fn anonymous(client_ip: Option<IpAddr>) -> Actor {
        Actor::of(Principal::Anonymous, client_ip)
    }

    /// User `id` (staff or not, as the request authenticated them), from `client_ip`.
    pub fn user(id: u64, is_staff: bool, client_ip: Option<IpAddr>) -> Actor {
        Actor::of(Principal::User { id, is_staff }, client_ip)
    }

    /// Whoever makes a request: `who` as the request authenticated them, or nobody; from
    /// `client_ip`, with the request's id (empty: none) and user agent.
    pub fn of_request(
        who: Option<&crate::auth::Identity>,
        client_ip: Option<IpAddr>,
        request_id: &str,
        user_agent: Option<&str>,
    ) -> Actor {
        let base = match who {
            Some(w) => Actor {
                username: Some(w.username.to_string()),
                ..Actor::user(w.user_id, w.is_staff, client_ip)
            },
            None => Actor::anonymous(client_ip),
        };
        Actor {
            request_id: Some(request_id.to_string()).filter(|id| !id.is_empty()),
            user_agent: user_agent.map(str::to_string),
            ..base
        }
    }

    /// The same request, proven to come from `user` by what it carries (a password, a
    /// refresh token in the body) rather than by its credentials.
    pub fn proven_as(&self, user: &crate::store::User) -> Actor {
        Actor {
            principal: Principal::User {
                id: user.id,
                is_staff: user.is_staff,
            },
            username: Some(user.username.clone()),
            ..self.clone()
        }
    }

    /// The operator on the command line.
    pub fn system() -> Actor {
        Actor::of(Principal::System, None)
    }

    fn of(principal: Principal, client_ip: Option<IpAddr>) -> Actor {
        Actor {
            principal,
            client_ip,
            request_id: None,
            user_agent: None,
            username: None,
        }
    }

    /// The event of `action` on `target` by this actor, now, with no details yet.
    pub fn event(&self, action: Action, target: Option<u64>) -> Event {
        let (actor_id, actor_username) = match self.principal {
            Principal::User { id, .. } => (Some(id), self.username.clone().unwrap_or_default()),
            Principal::Anonymous => (None, String::new()),
            Principal::System => (None, SYSTEM_ACTOR.to_string()),
        };
        Event {
            id: 0,
            time: crate::clock::now_ms(),
            action,
            actor_id,
            actor_username,
            target_id: target,
            ip: self.client_ip.map(|ip| ip.to_string()),
            user_agent: self
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(USER_AGENT_MAX).collect()),
            request_id: self.request_id.clone(),
            details: serde_json::Map::new(),
        }
    }

    /// The signed-in user acting on their own account.
    pub fn user_id(&self) -> Result<u64, ApiError> {
        match self.principal {
            Principal::User { id, .. } => Ok(id),
            Principal::Anonymous | Principal::System => Err(ApiError::NotAuthenticated),
        }
    }

    /// Staff, or the operator: who may change other users.
    pub fn require_staff(&self) -> Result<(), ApiError> {
        match self.principal {
            Principal::User { is_staff: true, .. } | Principal::System => Ok(()),
            Principal::User { .. } => Err(ApiError::PermissionDenied),
            Principal::Anonymous => Err(ApiError::NotAuthenticated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_do_what() {
        let user = Actor::user(7, false, None);
        assert_eq!(user.user_id(), Ok(7));
        assert_eq!(user.require_staff(), Err(ApiError::PermissionDenied));
        assert_eq!(Actor::user(8, true, None).require_staff(), Ok(()));
        assert_eq!(Actor::system().require_staff(), Ok(()));
        assert_eq!(Actor::system().user_id(), Err(ApiError::NotAuthenticated));
        let nobody = Actor::anonymous(None);
        assert_eq!(nobody.user_id(), Err(ApiError::NotAuthenticated));
        assert_eq!(nobody.require_staff(), Err(ApiError::NotAuthenticated));
    }
}
