//! Django's validators, ported: the four default password validators (with Django's 20,000
//! common passwords shipped as data), the username rule and the email address rule.

use std::collections::HashSet;
use std::sync::OnceLock;

pub const TOO_SIMILAR_USERNAME: &str = "The password is too similar to the username.";
pub const TOO_SIMILAR_FIRST_NAME: &str = "The password is too similar to the first name.";
pub const TOO_SIMILAR_LAST_NAME: &str = "The password is too similar to the last name.";
pub const TOO_SIMILAR_EMAIL: &str = "The password is too similar to the email address.";
pub const TOO_SHORT: &str = "This password is too short. It must contain at least 8 characters.";
pub const TOO_COMMON: &str = "This password is too common.";
pub const ENTIRELY_NUMERIC: &str = "This password is entirely numeric.";

const MIN_LENGTH: usize = 8;
const MAX_SIMILARITY: f64 = 0.7;
/// Django's `django/contrib/auth/common-passwords.txt.gz`, one lower-case password a line.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

pub struct UserAttributes<'a> {
    pub username: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// All failures of Django's default validators, in Django's order: attribute similarity,
/// minimum length (8), common password, entirely numeric.
pub fn validate_password(password: &str, user: &UserAttributes<'_>) -> Vec<&'static str> {
    let mut errors = Vec::new();
    if let Some(message) = too_similar(password, user) {
        errors.push(message);
    }
    if password.chars().count() < MIN_LENGTH {
        errors.push(TOO_SHORT);
    }
    if common_passwords().contains(password.to_lowercase().trim()) {
        errors.push(TOO_COMMON);
    }
    // Python's str.isdigit(): non-empty and every character a digit.
    if !password.is_empty() && password.chars().all(char::is_numeric) {
        errors.push(ENTIRELY_NUMERIC);
    }
    errors
}

/// UserAttributeSimilarityValidator: the first attribute (in Django's order) that the
/// password resembles.
fn too_similar(password: &str, user: &UserAttributes<'_>) -> Option<&'static str> {
    let password = password.to_lowercase();
    let attributes = [
        (user.username, TOO_SIMILAR_USERNAME),
        (user.first_name, TOO_SIMILAR_FIRST_NAME),
        (user.last_name, TOO_SIMILAR_LAST_NAME),
        (user.email, TOO_SIMILAR_EMAIL),
    ];
    for (value, message) in attributes {
        if value.is_empty() {
            continue;
        }
        let value = value.to_lowercase();
        // re.split(r"\W+", value) + [value]
        let mut parts: Vec<&str> = value.split(|c: char| !is_word_char(c)).collect();
        parts.push(&value);
        for part in parts {
            if exceeds_maximum_length_ratio(&password, part) {
                continue;
            }
            if quick_ratio(&password, part) >= MAX_SIMILARITY {
                return Some(message);
            }
        }
    }
    None
}

/// Django skips a comparison when the password is far longer than the value: their ratio
/// could never reach the threshold.
fn exceeds_maximum_length_ratio(password: &str, value: &str) -> bool {
    let pwd_len = password.chars().count() as f64;
    let value_len = value.chars().count() as f64;
    let length_bound_similarity = MAX_SIMILARITY / 2.0 * pwd_len;
    pwd_len >= 10.0 * value_len && value_len < length_bound_similarity
}

/// difflib.SequenceMatcher(a, b).quick_ratio(): 2 * (multiset intersection) / (len a + len b).
fn quick_ratio(a: &str, b: &str) -> f64 {
    let total = a.chars().count() + b.chars().count();
    if total == 0 {
        return 1.0;
    }
    let mut available: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
    for c in b.chars() {
        *available.entry(c).or_insert(0) += 1;
    }
    let mut matches = 0usize;
    for c in a.chars() {
        if let Some(n) = available.get_mut(&c) {
            if *n > 0 {
                *n -= 1;
                matches += 1;
            }
        }
    }
    2.0 * matches as f64 / total as f64
}

/// Python's `\w` in Unicode mode: letters, digits, marks and the underscore.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Django's UnicodeUsernameValidator: `^[\w.@+-]+\Z`.
pub fn is_valid_username(username: &str) -> bool {
    !username.is_empty()
        && username
            .chars()
            .all(|c| is_word_char(c) || matches!(c, '.' | '@' | '+' | '-'))
}

/// Django's EmailValidator: a dot-atom or quoted user part, and a domain of LDH labels with
/// an alphabetic (or punycode) TLD, `localhost`, or an `[IP literal]`.
pub fn is_valid_email(email: &str) -> bool {
    if email.is_empty() || email.chars().count() > 320 || email.contains(['\n', '\r']) {
        return false;
    }
    let Some((user, domain)) = email.rsplit_once('@') else {
        return false;
    };
    valid_user_part(user) && valid_domain_part(domain)
}

fn valid_user_part(user: &str) -> bool {
    const ATOM_SPECIALS: &str = "!#$%&'*+/=?^_`{}|~-";
    let atom_char = |c: char| c.is_ascii_alphanumeric() || ATOM_SPECIALS.contains(c);
    let dot_atom = !user.is_empty()
        && user
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atom_char));
    dot_atom || valid_quoted(user)
}

/// `"..."` with printable ASCII (0x01-0x7f except `"` and `\`) or backslash escapes.
fn valid_quoted(user: &str) -> bool {
    let Some(inner) = user.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return false;
    };
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if ('\u{1}'..='\u{7f}').contains(&e) => {}
                _ => return false,
            },
            '"' => return false,
            c if ('\u{1}'..='\u{7f}').contains(&c)
                && c != '\u{9}'
                && c != '\u{a}'
                && c != '\u{d}' => {}
            ' ' | '\t' => {}
            _ => return false,
        }
    }
    true
}

fn valid_domain_part(domain: &str) -> bool {
    if domain == "localhost" {
        return true;
    }
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return literal.parse::<std::net::Ipv4Addr>().is_ok()
            || literal
                .strip_prefix("IPv6:")
                .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok());
    }
    // Django tries the IDNA (punycode) form when the first match fails; non-ASCII letters
    // are accepted as label characters to the same effect.
    let Some((labels, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().count() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    let tld_ok = (tld.chars().count() >= 2
        && tld.chars().count() <= 63
        && tld.chars().all(char::is_alphabetic))
        || (tld.starts_with("xn--") && label_ok(tld));
    tld_ok && labels.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs<'a>(username: &'a str, email: &'a str) -> UserAttributes<'a> {
        UserAttributes {
            username,
            first_name: "",
            last_name: "",
            email,
        }
    }

    #[test]
    fn seed_examples_pass() {
        assert!(
            validate_password("TestPass123", &attrs("testuser", "test@example.com")).is_empty()
        );
        assert!(validate_password("NewPass123", &attrs("testuser", "test@example.com")).is_empty());
    }

    #[test]
    fn each_validator_with_djangos_message() {
        let none = attrs("", "");
        assert_eq!(validate_password("password", &none), vec![TOO_COMMON]);
        assert_eq!(validate_password("short", &none), vec![TOO_SHORT]);
        assert_eq!(
            validate_password("12345678", &none),
            vec![TOO_COMMON, ENTIRELY_NUMERIC]
        );
        assert_eq!(validate_password("83920174", &none), vec![ENTIRELY_NUMERIC]);
        assert_eq!(
            validate_password("alicesmith", &attrs("alice.smith", "")),
            vec![TOO_SIMILAR_USERNAME]
        );
        assert_eq!(
            validate_password("wonderland9", &attrs("u", "wonderland9@example.com")),
            vec![TOO_SIMILAR_EMAIL]
        );
        let names = UserAttributes {
            username: "u",
            first_name: "Quetzalcoatlus",
            last_name: "",
            email: "",
        };
        assert_eq!(
            validate_password("quetzalcoatlus", &names),
            vec![TOO_SIMILAR_FIRST_NAME]
        );
        // All at once, in Django's order.
        assert_eq!(
            validate_password("1234", &attrs("1234", "")),
            vec![
                TOO_SIMILAR_USERNAME,
                TOO_SHORT,
                TOO_COMMON,
                ENTIRELY_NUMERIC
            ]
        );
    }

    #[test]
    fn common_list_is_djangos() {
        assert!(common_passwords().len() >= 10_000);
        assert!(common_passwords().contains("qwerty"));
        assert_eq!(
            validate_password(" Password ", &attrs("", "")),
            vec![TOO_COMMON]
        );
    }

    #[test]
    fn quick_ratio_matches_difflib() {
        assert!((quick_ratio("abcd", "bcde") - 0.75).abs() < 1e-9);
        assert_eq!(quick_ratio("", ""), 1.0);
        assert_eq!(quick_ratio("abc", "xyz"), 0.0);
    }

    #[test]
    fn usernames() {
        for ok in ["alice", "a.b@c+d-e_f", "Ünïcode", "名前", "123"] {
            assert!(is_valid_username(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "a!b", "tab\t"] {
            assert!(!is_valid_username(bad), "{bad}");
        }
    }

    #[test]
    fn emails() {
        for ok in [
            "test@example.com",
            "a@b.co",
            "user@localhost",
            "user@[127.0.0.1]",
            "\"quoted\"@example.com",
            "first.last+tag@sub.example.org",
            "x@xn--bcher-kva.ch",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "no-at-sign",
            "a@b",
            "a@-b.com",
            "a b@c.com",
            "a@b..com",
            "a@b.com\n",
            "@example.com",
            "a@",
            ".a@b.com",
            "a.@b.com",
            "a@b.c0m",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
    }
}
