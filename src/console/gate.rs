//! Who may open the console (SPEC §18, §17): the decision on a request's session alone (bearer
//! tokens are no way in), and where a browser that may not goes instead. No I/O.

use crate::accounts::mfa::{console_entry, ConsoleEntry};
use crate::web::next;

/// What the session cookie says of the caller. Only an active user has a live session
/// (SPEC §15), so a deactivated staff user arrives here as nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub is_staff: bool,
    /// The sign-in used a second factor.
    pub mfa: bool,
}

/// Where a console request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Nobody signed in: the sign-in page, back here after.
    SignIn,
    /// Signed in, not staff: a 403 page (never a redirect, which could loop).
    Refuse,
    /// Staff without a second factor while `[console] require_mfa`: set one up first.
    Enrol,
    /// Staff with a second factor this sign-in did not use: the code first.
    StepUp,
    Enter,
}

/// The gate for `caller` (`None`: no live session), `require_mfa` (`[console]`) and whether
/// the user has a second factor on (read only when it matters).
pub fn gate(caller: Option<Caller>, require_mfa: bool, has_factor: bool) -> Gate {
    match caller {
        None => Gate::SignIn,
        Some(c) if !c.is_staff => Gate::Refuse,
        Some(c) => match console_entry(require_mfa, c.mfa, has_factor) {
            ConsoleEntry::Enter => Gate::Enter,
            ConsoleEntry::Enrol => Gate::Enrol,
            ConsoleEntry::StepUp => Gate::StepUp,
        },
    }
}

/// The gate needs to know whether the user has a second factor: staff, signed in without
/// one, and the console requires it.
pub fn asks_factor(caller: Option<Caller>, require_mfa: bool) -> bool {
    caller.is_some_and(|c| c.is_staff && !c.mfa) && require_mfa
}

/// Where a browser stopped at the gate goes, by `[web] prefix` (`web_prefix`), to come back
/// to `here` (the console path it asked for) after: `None` for `Refuse` and `Enter`.
pub fn detour(gate: Gate, web_prefix: &str, here: &str) -> Option<String> {
    match gate {
        Gate::SignIn => Some(next::login_url(None, web_prefix, here)),
        Gate::StepUp => Some(next::page_url(
            None,
            web_prefix,
            next::SECOND_FACTOR_PAGE,
            here,
        )),
        Gate::Enrol => Some(format!(
            "{}#{}",
            next::page_url(None, web_prefix, "", here),
            crate::web::kit::TWO_FACTOR_SECTION
        )),
        Gate::Refuse | Gate::Enter => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAFF: Caller = Caller {
        is_staff: true,
        mfa: false,
    };
    const STAFF_MFA: Caller = Caller {
        is_staff: true,
        mfa: true,
    };
    const USER_MFA: Caller = Caller {
        is_staff: false,
        mfa: true,
    };

    #[test]
    fn only_staff_enter_and_with_a_second_factor_when_required() {
        for require in [false, true] {
            for factor in [false, true] {
                assert_eq!(gate(None, require, factor), Gate::SignIn);
                assert_eq!(gate(Some(USER_MFA), require, factor), Gate::Refuse);
                assert_eq!(gate(Some(STAFF_MFA), require, factor), Gate::Enter);
                assert_eq!(gate(Some(STAFF), false, factor), Gate::Enter);
            }
        }
        assert_eq!(gate(Some(STAFF), true, false), Gate::Enrol);
        assert_eq!(gate(Some(STAFF), true, true), Gate::StepUp);
    }

    #[test]
    fn the_factor_is_looked_up_only_when_it_decides() {
        assert!(asks_factor(Some(STAFF), true));
        assert!(!asks_factor(Some(STAFF), false));
        assert!(!asks_factor(Some(STAFF_MFA), true));
        assert!(!asks_factor(Some(USER_MFA), true));
        assert!(!asks_factor(None, true));
    }

    #[test]
    fn detours_lead_back_to_the_console() {
        let here = "/admin/users/3/?x=1";
        assert_eq!(
            detour(Gate::SignIn, "/accounts/", here).as_deref(),
            Some("/accounts/login/?next=/admin/users/3/%3Fx%3D1")
        );
        assert_eq!(
            detour(Gate::StepUp, "/accounts/", "/admin/").as_deref(),
            Some("/accounts/login/code/?next=/admin/")
        );
        assert_eq!(
            detour(Gate::Enrol, "/accounts/", "/admin/").as_deref(),
            Some("/accounts/?next=/admin/#two-factor")
        );
        assert_eq!(detour(Gate::Refuse, "/accounts/", here), None);
        assert_eq!(detour(Gate::Enter, "/accounts/", here), None);
    }
}
