//! Django 5.2's account-input rules, ported by hand to std-only Rust: the four default password
//! validators (`validate_password`), `UnicodeUsernameValidator` and `EmailValidator`.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

pub const TOO_SIMILAR_USERNAME: &str = "The password is too similar to the username.";
pub const TOO_SIMILAR_FIRST_NAME: &str = "The password is too similar to the first name.";
pub const TOO_SIMILAR_LAST_NAME: &str = "The password is too similar to the last name.";
pub const TOO_SIMILAR_EMAIL: &str = "The password is too similar to the email address.";
pub const TOO_SHORT: &str = "This password is too short. It must contain at least 8 characters.";
pub const TOO_COMMON: &str = "This password is too common.";
pub const ENTIRELY_NUMERIC: &str = "This password is entirely numeric.";

/// `MinimumLengthValidator`'s default `min_length` (the message above spells it out).
const MIN_LENGTH: usize = 8;
/// `UserAttributeSimilarityValidator`'s default `max_similarity`.
const MAX_SIMILARITY: f64 = 0.7;
/// `EmailValidator`: "The maximum length of an email is 320 characters per RFC 3696 section 3."
const MAX_EMAIL_LENGTH: usize = 320;
/// `django.utils.ipv6.MAX_IPV6_ADDRESS_LENGTH`: longer literals are refused before parsing.
const MAX_IPV6_LENGTH: usize = 39;

/// The user fields Django's similarity check reads; an empty string means "not set".
#[derive(Debug, Clone, Copy)]
pub struct UserAttributes<'a> {
    pub username: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
}

/// All failures of Django's four default validators, in Django's order:
/// UserAttributeSimilarityValidator, MinimumLengthValidator(8), CommonPasswordValidator,
/// NumericPasswordValidator. Empty means the password is acceptable.
pub fn validate_password(password: &str, user: &UserAttributes<'_>) -> Vec<&'static str> {
    let mut errors = Vec::new();
    errors.extend(too_similar(password, user));
    // Python's len() counts code points, not UTF-8 bytes.
    if password.chars().count() < MIN_LENGTH {
        errors.push(TOO_SHORT);
    }
    if common_passwords().contains(py_strip(&password.to_lowercase())) {
        errors.push(TOO_COMMON);
    }
    if is_py_digit_string(password) {
        errors.push(ENTIRELY_NUMERIC);
    }
    errors
}

/// Django's UnicodeUsernameValidator: r"^[\w.@+-]+\Z" (Python `re` without flags, so `\w` is
/// Unicode letters, digits and `_` -- but not combining marks, see `is_word_char`).
pub fn is_valid_username(username: &str) -> bool {
    !username.is_empty()
        && username
            .chars()
            .all(|c| is_word_char(c) || matches!(c, '.' | '@' | '+' | '-'))
}

/// Django's EmailValidator with its default allowlist (`["localhost"]`): split at the last `@`,
/// a dot-atom or quoted-string user part, then a hostname with a TLD or an `[ip]` literal.
pub fn is_valid_email(email: &str) -> bool {
    if email.is_empty() || email.chars().count() > MAX_EMAIL_LENGTH {
        return false;
    }
    let Some((user_part, domain_part)) = email.rsplit_once('@') else {
        return false;
    };
    is_email_user_part(user_part)
        && (domain_part == "localhost" || is_email_domain_part(domain_part))
}

// ---------------------------------------------------------------------------------------------
// UserAttributeSimilarityValidator

/// The first attribute the password is too similar to, as Django raises on the first hit.
fn too_similar(password: &str, user: &UserAttributes<'_>) -> Option<&'static str> {
    let password = password.to_lowercase();
    let password_len = password.chars().count();
    let password_counts = char_counts(&password);
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
        let value_lower = value.to_lowercase();
        // re.split(r"\W+", value_lower) + [value_lower]
        let mut parts = split_non_word(&value_lower);
        parts.push(&value_lower);
        for part in parts {
            let part_len = part.chars().count();
            if exceeds_maximum_length_ratio(password_len, part_len) {
                continue;
            }
            let matches = common_char_count(&password_counts, part);
            if quick_ratio(matches, password_len + part_len) >= MAX_SIMILARITY {
                return Some(message);
            }
        }
    }
    None
}

/// Django's shortcut: a part this much shorter than the password can never reach the ratio,
/// so it is skipped (which also means an empty part is only compared to an empty password).
fn exceeds_maximum_length_ratio(password_len: usize, value_len: usize) -> bool {
    let length_bound_similarity = MAX_SIMILARITY / 2.0 * password_len as f64;
    password_len >= value_len.saturating_mul(10) && (value_len as f64) < length_bound_similarity
}

/// difflib's `_calculate_ratio`: 2*M/T, and 1.0 when both sequences are empty.
fn quick_ratio(matches: usize, total_len: usize) -> f64 {
    if total_len == 0 {
        return 1.0;
    }
    2.0 * matches as f64 / total_len as f64
}

fn char_counts(s: &str) -> HashMap<char, usize> {
    let mut counts = HashMap::new();
    for c in s.chars() {
        *counts.entry(c).or_insert(0) += 1;
    }
    counts
}

/// The M of `SequenceMatcher.quick_ratio()`: the size of the multiset intersection of the two
/// strings' characters (order is ignored, which is what makes it "quick").
fn common_char_count(password_counts: &HashMap<char, usize>, part: &str) -> usize {
    char_counts(part)
        .iter()
        .map(|(c, n)| (*n).min(password_counts.get(c).copied().unwrap_or(0)))
        .sum()
}

/// `re.split(r"\W+", s)`: runs of non-word characters separate parts, and a leading or trailing
/// run leaves an empty first or last part (`"a."` -> `["a", ""]`, `""` -> `[""]`).
fn split_non_word(s: &str) -> Vec<&str> {
    // str::split cuts at every separator char; dropping the empty pieces *between* separators
    // (but not the first and last piece) turns that into Python's split on runs.
    let pieces: Vec<&str> = s.split(|c: char| !is_word_char(c)).collect();
    let last = pieces.len().saturating_sub(1);
    pieces
        .into_iter()
        .enumerate()
        .filter(|&(i, piece)| !piece.is_empty() || i == 0 || i == last)
        .map(|(_, piece)| piece)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// CommonPasswordValidator

/// Django's list (`{x.strip() for x in f}` of its lower-cased common-passwords.txt.gz).
fn common_passwords() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("common-passwords.txt")
            .lines()
            .map(py_strip)
            .collect()
    })
}

/// Python's `str.strip()`: `str.isspace()` is Rust's White_Space plus the information
/// separators U+001C..U+001F.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}'))
}

// ---------------------------------------------------------------------------------------------
// NumericPasswordValidator

/// Python's `str.isdigit()`: non-empty and every character has Numeric_Type Digit or Decimal.
fn is_py_digit_string(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_py_digit)
}

/// Rust's `is_numeric` is Nd|Nl|No, wider than `isdigit`: fractions, Roman numerals, CJK
/// counting rods and the like are taken out again (`'²'` and `'①'` stay digits, `'½'` is not).
fn is_py_digit(c: char) -> bool {
    c.is_numeric() && !in_ranges(c, NUMERIC_NOT_DIGIT)
}

// ---------------------------------------------------------------------------------------------
// Python `re`'s Unicode `\w`

/// Python's `\w` for str patterns is `isalnum() or '_'`, and `isalnum` is built on the general
/// categories L* and N*. Rust's `is_alphanumeric` uses the Alphabetic property, which also
/// takes in Other_Alphabetic marks and symbols (Indic vowel signs, `'Ⓐ'`), so those are removed.
fn is_word_char(c: char) -> bool {
    c == '_' || (c.is_alphanumeric() && !in_ranges(c, ALPHANUMERIC_NOT_WORD))
}

/// Whether `c` falls in one of the sorted, disjoint, inclusive `ranges`.
fn in_ranges(c: char, ranges: &[(u32, u32)]) -> bool {
    let c = u32::from(c);
    ranges
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                Ordering::Less
            } else if lo > c {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        })
        .is_ok()
}

// ---------------------------------------------------------------------------------------------
// EmailValidator

/// `user_regex`: a dot-atom (`^[atext]+(\.[atext]+)*\Z`) or a quoted string.
fn is_email_user_part(user: &str) -> bool {
    let dot_atom = user
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
    dot_atom || is_quoted_string(user)
}

/// `^"(qtext|\\quoted-pair)*"\Z`. Neither alternative can consume an unescaped `"`, so a
/// greedy left-to-right scan decides exactly what the backtracking regex does.
fn is_quoted_string(user: &str) -> bool {
    let Some(inner) = user.strip_prefix('"').and_then(|u| u.strip_suffix('"')) else {
        return false;
    };
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        let ok = if c == '\\' {
            chars.next().is_some_and(is_quoted_pair_char)
        } else {
            is_qtext(c)
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The four non-ASCII characters that Python's IGNORECASE folds onto ASCII letters
/// (`İ`, `ı`, `ſ`, Kelvin `K`), so a case-insensitive `[a-z]` class accepts them too.
fn is_ignorecase_ascii_letter(c: char) -> bool {
    matches!(c, '\u{130}' | '\u{131}' | '\u{17f}' | '\u{212a}')
}

/// `[-!#$%&'*+/=?^_`{}|~0-9A-Z]` with re.IGNORECASE.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-!#$%&'*+/=?^_`{}|~".contains(c) || is_ignorecase_ascii_letter(c)
}

/// `[\001-\010\013\014\016-\037!#-\[\]-\177]`: printable ASCII and controls except NUL, TAB,
/// LF, CR, space, `"` and `\`.
fn is_qtext(c: char) -> bool {
    let controls = matches!(c, '\u{1}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}');
    let printable = matches!(c, '!' | '#'..='[' | ']'..='\u{7f}');
    controls || printable || is_ignorecase_ascii_letter(c)
}

/// `\\[\001-\011\013\014\016-\177]`: what may follow a backslash (anything ASCII but NUL, LF, CR).
fn is_quoted_pair_char(c: char) -> bool {
    matches!(c, '\u{1}'..='\u{9}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{7f}')
        || is_ignorecase_ascii_letter(c)
}

/// `domain_regex` (hostname, more labels, then a TLD with no trailing dot), else a `[ip]` literal.
fn is_email_domain_part(domain: &str) -> bool {
    is_hostname_with_tld(domain) || is_ip_literal(domain)
}

/// `^hostname_re domain_re tld_no_fqdn_re\Z`. No character class contains `.`, so each label
/// is exactly one piece of `split('.')`: the first is the hostname, the last the TLD.
fn is_hostname_with_tld(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    match labels.as_slice() {
        [host, middle @ .., tld] => {
            is_dns_label(host) && middle.iter().all(|label| is_dns_label(label)) && is_tld(tld)
        }
        _ => false,
    }
}

/// `[a-z\u00a1-\uffff0-9]` (IGNORECASE): ASCII letters and digits or any BMP char from U+00A1.
/// Django's `ul` range stands in for IDNA: non-ASCII labels are accepted as they are, never
/// punycode-encoded or checked against IDNA rules.
fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || is_ul(c)
}

fn is_ul(c: char) -> bool {
    ('\u{a1}'..='\u{ffff}').contains(&c)
}

/// hostname_re and domain_re labels: 1 to 63 of `[a-z ul 0-9-]`, not starting or ending with `-`.
fn is_dns_label(label: &str) -> bool {
    let len = label.chars().count();
    (1..=63).contains(&len)
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.chars().all(|c| c == '-' || is_label_char(c))
}

/// `\.(?!-)(?:[a-z ul -]{2,63}|xn--[a-z0-9]{1,59})(?<!-)`: letters only (no ASCII digits)
/// unless it is a punycode label.
fn is_tld(label: &str) -> bool {
    if label.starts_with('-') || label.ends_with('-') {
        return false;
    }
    let len = label.chars().count();
    let plain = (2..=63).contains(&len)
        && label
            .chars()
            .all(|c| c == '-' || c.is_ascii_alphabetic() || is_ul(c));
    plain || is_punycode_tld(label)
}

/// `xn--[a-z0-9]{1,59}` with re.IGNORECASE (so `XN--` too).
fn is_punycode_tld(label: &str) -> bool {
    let mut chars = label.chars();
    let prefix: String = chars.by_ref().take(4).collect();
    let rest = chars.as_str();
    let rest_len = rest.chars().count();
    prefix.eq_ignore_ascii_case("xn--")
        && (1..=59).contains(&rest_len)
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || is_ignorecase_ascii_letter(c))
}

/// `literal_regex` `\[([A-F0-9:.]+)\]\Z` (IGNORECASE), then `validate_ipv46_address`.
fn is_ip_literal(domain: &str) -> bool {
    let Some(ip) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) else {
        return false;
    };
    !ip.is_empty()
        && ip
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        && (parse_ipv4(ip).is_some() || is_ipv6(ip))
}

/// `ipaddress.IPv4Address(s)`: exactly four dot-separated octets, each 1-3 ASCII digits, no
/// leading zero (bpo-36384), at most 255.
fn parse_ipv4(s: &str) -> Option<u32> {
    let octets: Vec<&str> = s.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    octets
        .iter()
        .try_fold(0u32, |ip, octet| Some(ip << 8 | parse_octet(octet)?))
}

fn parse_octet(octet: &str) -> Option<u32> {
    if octet.is_empty()
        || octet.len() > 3
        || !octet.bytes().all(|b| b.is_ascii_digit())
        || (octet != "0" && octet.starts_with('0'))
    {
        return None;
    }
    octet.parse().ok().filter(|&n| n <= 255)
}

/// Django's `is_valid_ipv6_address`: at most 39 characters, then `ipaddress.IPv6Address`'s
/// `_ip_int_from_string`, step by step. (`%scope` and `/` cannot get past `literal_regex`.)
fn is_ipv6(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_IPV6_LENGTH {
        return false;
    }
    let mut parts: Vec<String> = s.split(':').map(str::to_owned).collect();
    // At least two colons.
    if parts.len() < 3 {
        return false;
    }
    // A dotted IPv4 tail stands for the last two hextets.
    if parts.last().is_some_and(|p| p.contains('.')) {
        let Some(v4) = parts.pop().and_then(|p| parse_ipv4(&p)) else {
            return false;
        };
        parts.push(format!("{:x}", v4 >> 16));
        parts.push(format!("{:x}", v4 & 0xffff));
    }
    // At most eight colons.
    let n = parts.len();
    if n > 9 {
        return false;
    }
    // At most one empty part between the endpoints: the "::".
    let mut skip_index = None;
    for (i, part) in parts.iter().enumerate().take(n - 1).skip(1) {
        if part.is_empty() {
            if skip_index.is_some() {
                return false;
            }
            skip_index = Some(i);
        }
    }
    // How many hextets come before and after the "::".
    let (parts_hi, parts_lo) = match skip_index {
        Some(i) => {
            let mut parts_hi = i;
            let mut parts_lo = n - i - 1;
            // A leading or trailing ':' is only allowed as half of that "::".
            if parts[0].is_empty() {
                parts_hi -= 1;
                if parts_hi != 0 {
                    return false;
                }
            }
            if parts[n - 1].is_empty() {
                parts_lo -= 1;
                if parts_lo != 0 {
                    return false;
                }
            }
            // "::" must stand for at least one hextet.
            if parts_hi + parts_lo >= 8 {
                return false;
            }
            (parts_hi, parts_lo)
        }
        None => {
            if n != 8 || parts[0].is_empty() || parts[n - 1].is_empty() {
                return false;
            }
            (n, 0)
        }
    };
    parts[..parts_hi]
        .iter()
        .chain(&parts[n - parts_lo..])
        .all(|hextet| is_hextet(hextet))
}

/// `_parse_hextet`: 1-4 ASCII hex digits (an empty one fails in `int("", 16)`).
fn is_hextet(hextet: &str) -> bool {
    (1..=4).contains(&hextet.len()) && hextet.bytes().all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------------------------
// Unicode tables, generated by comparing Rust 1.95 (Unicode 17) against Python 3.13
// (Unicode 15.1) over every code point. Each range is sorted and inclusive; a range may run
// over code points where the Rust predicate is false anyway, which keeps the tables short.
// Code points unassigned in Unicode 15.1 follow Rust's predicate unchanged.

/// Alphabetic but not `\w` in Python: Other_Alphabetic combining marks (Mn/Mc) and the
/// circled/squared Latin letters (So).
#[rustfmt::skip]
const ALPHANUMERIC_NOT_WORD: &[(u32, u32)] = &[
    (0x0345, 0x036F), (0x05B0, 0x05C7), (0x0610, 0x061A), (0x064B, 0x065F), (0x0670, 0x0670),
    (0x06D6, 0x06E4), (0x06E7, 0x06ED), (0x0711, 0x0711), (0x0730, 0x073F), (0x07A6, 0x07B0),
    (0x0816, 0x0817), (0x081B, 0x0823), (0x0825, 0x0827), (0x0829, 0x082C), (0x08D4, 0x0903),
    (0x093A, 0x093B), (0x093E, 0x094F), (0x0955, 0x0957), (0x0962, 0x0963), (0x0981, 0x0983),
    (0x09BE, 0x09CC), (0x09D7, 0x09D7), (0x09E2, 0x09E3), (0x0A01, 0x0A03), (0x0A3E, 0x0A51),
    (0x0A70, 0x0A71), (0x0A75, 0x0A83), (0x0ABE, 0x0ACC), (0x0AE2, 0x0AE3), (0x0AFA, 0x0B03),
    (0x0B3E, 0x0B57), (0x0B62, 0x0B63), (0x0B82, 0x0B82), (0x0BBE, 0x0BCC), (0x0BD7, 0x0BD7),
    (0x0C00, 0x0C04), (0x0C3E, 0x0C56), (0x0C62, 0x0C63), (0x0C81, 0x0C83), (0x0CBE, 0x0CD6),
    (0x0CE2, 0x0CE3), (0x0CF3, 0x0D03), (0x0D3E, 0x0D4C), (0x0D57, 0x0D57), (0x0D62, 0x0D63),
    (0x0D81, 0x0D83), (0x0DCF, 0x0DDF), (0x0DF2, 0x0DF3), (0x0E31, 0x0E31), (0x0E34, 0x0E3A),
    (0x0E4D, 0x0E4D), (0x0EB1, 0x0EB1), (0x0EB4, 0x0EBC), (0x0ECD, 0x0ECD), (0x0F71, 0x0F83),
    (0x0F8D, 0x0FBC), (0x102B, 0x103E), (0x1056, 0x1059), (0x105E, 0x1060), (0x1062, 0x1064),
    (0x1067, 0x106D), (0x1071, 0x1074), (0x1082, 0x108D), (0x108F, 0x108F), (0x109A, 0x109D),
    (0x1712, 0x1713), (0x1732, 0x1733), (0x1752, 0x1753), (0x1772, 0x1773), (0x17B6, 0x17C8),
    (0x1885, 0x1886), (0x18A9, 0x18A9), (0x1920, 0x1938), (0x1A17, 0x1A1B), (0x1A55, 0x1A74),
    (0x1ABF, 0x1B04), (0x1B35, 0x1B43), (0x1B80, 0x1B82), (0x1BA1, 0x1BAD), (0x1BE7, 0x1BF1),
    (0x1C24, 0x1C36), (0x1DD3, 0x1DF4), (0x24B6, 0x24E9), (0x2DE0, 0x2DFF), (0xA674, 0xA67B),
    (0xA69E, 0xA69F), (0xA802, 0xA802), (0xA80B, 0xA80B), (0xA823, 0xA827), (0xA880, 0xA881),
    (0xA8B4, 0xA8C5), (0xA8FF, 0xA8FF), (0xA926, 0xA92A), (0xA947, 0xA952), (0xA980, 0xA983),
    (0xA9B4, 0xA9BF), (0xA9E5, 0xA9E5), (0xAA29, 0xAA36), (0xAA43, 0xAA43), (0xAA4C, 0xAA4D),
    (0xAA7B, 0xAA7D), (0xAAB0, 0xAAB0), (0xAAB2, 0xAAB4), (0xAAB7, 0xAAB8), (0xAABE, 0xAABE),
    (0xAAEB, 0xAAEF), (0xAAF5, 0xAAF5), (0xABE3, 0xABEA), (0xFB1E, 0xFB1E), (0x10376, 0x1037A),
    (0x10A01, 0x10A0F), (0x10D24, 0x10D27), (0x10EAB, 0x10EAC), (0x11000, 0x11002), (0x11038, 0x11045),
    (0x11073, 0x11074), (0x11080, 0x11082), (0x110B0, 0x110C2), (0x11100, 0x11102), (0x11127, 0x11132),
    (0x11145, 0x11146), (0x11180, 0x11182), (0x111B3, 0x111BF), (0x111CE, 0x111CF), (0x1122C, 0x1123E),
    (0x11241, 0x11241), (0x112DF, 0x112E8), (0x11300, 0x11303), (0x1133E, 0x1134C), (0x11357, 0x11357),
    (0x11362, 0x11363), (0x11435, 0x11445), (0x114B0, 0x114C1), (0x115AF, 0x115BE), (0x115DC, 0x115DD),
    (0x11630, 0x11640), (0x116AB, 0x116B5), (0x1171D, 0x1172A), (0x1182C, 0x11838), (0x11930, 0x1193C),
    (0x11940, 0x11940), (0x11942, 0x11942), (0x119D1, 0x119DF), (0x119E4, 0x119E4), (0x11A01, 0x11A0A),
    (0x11A35, 0x11A39), (0x11A3B, 0x11A3E), (0x11A51, 0x11A5B), (0x11A8A, 0x11A97), (0x11C2F, 0x11C3E),
    (0x11C92, 0x11CB6), (0x11D31, 0x11D43), (0x11D47, 0x11D47), (0x11D8A, 0x11D96), (0x11EF3, 0x11F01),
    (0x11F03, 0x11F03), (0x11F34, 0x11F40), (0x16F4F, 0x16F4F), (0x16F51, 0x16F92), (0x16FF0, 0x16FF1),
    (0x1BC9E, 0x1BC9E), (0x1E000, 0x1E02A), (0x1E08F, 0x1E08F), (0x1E947, 0x1E947), (0x1F130, 0x1F189),
];

/// Numeric (Nl/No) but not `str.isdigit()` in Python: fractions, Roman numerals, ideographic
/// and other numbers whose Numeric_Type is Numeric rather than Digit or Decimal.
#[rustfmt::skip]
const NUMERIC_NOT_DIGIT: &[(u32, u32)] = &[
    (0x00BC, 0x00BE), (0x09F4, 0x09F9), (0x0B72, 0x0B77), (0x0BF0, 0x0BF2), (0x0C78, 0x0C7E),
    (0x0D58, 0x0D5E), (0x0D70, 0x0D78), (0x0F2A, 0x0F33), (0x1372, 0x16F0), (0x17F0, 0x17F9),
    (0x2150, 0x2189), (0x2469, 0x2473), (0x247D, 0x2487), (0x2491, 0x249B), (0x24EB, 0x24F4),
    (0x24FE, 0x24FE), (0x277F, 0x277F), (0x2789, 0x2789), (0x2793, 0x32BF), (0xA6E6, 0xA835),
    (0x10107, 0x103D5), (0x10858, 0x109FF), (0x10A44, 0x10CFF), (0x10E69, 0x10FCB), (0x1105B, 0x11065),
    (0x111E1, 0x111F4), (0x1173A, 0x1173B), (0x118EA, 0x118F2), (0x11C5A, 0x11C6C), (0x11FC0, 0x1246E),
    (0x16B5B, 0x16B61), (0x16E80, 0x16E96), (0x1D2C0, 0x1D378), (0x1E8C7, 0x1E8CF), (0x1EC71, 0x1ED3D),
    (0x1F10B, 0x1F10C),
];

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_USER: UserAttributes<'static> = UserAttributes {
        username: "testuser",
        first_name: "",
        last_name: "",
        email: "test@example.com",
    };

    fn user<'a>(
        username: &'a str,
        first: &'a str,
        last: &'a str,
        email: &'a str,
    ) -> UserAttributes<'a> {
        UserAttributes {
            username,
            first_name: first,
            last_name: last,
            email,
        }
    }

    #[test]
    fn seed_passwords_pass() {
        assert!(validate_password("TestPass123", &SEED_USER).is_empty());
        assert!(validate_password("NewPass123", &SEED_USER).is_empty());
    }

    #[test]
    fn common_password() {
        assert_eq!(validate_password("password", &SEED_USER), [TOO_COMMON]);
        // lower() then strip() before the lookup.
        assert_eq!(
            validate_password("  PassWord\t\n", &SEED_USER),
            [TOO_COMMON]
        );
        assert_eq!(
            validate_password("\u{1f}password\u{1c}", &SEED_USER),
            [TOO_COMMON]
        );
        // Non-ASCII entries of the list work too.
        assert_eq!(
            validate_password("ПАРОЛЬ", &SEED_USER),
            [TOO_SHORT, TOO_COMMON]
        );
    }

    #[test]
    fn common_and_numeric() {
        assert_eq!(
            validate_password("12345678", &SEED_USER),
            [TOO_COMMON, ENTIRELY_NUMERIC]
        );
    }

    #[test]
    fn too_short_counts_characters() {
        assert_eq!(validate_password("short", &SEED_USER), [TOO_SHORT]);
        // 7 characters but 14 bytes: still too short; 8 characters is enough.
        assert_eq!(validate_password("ééééééé", &SEED_USER), [TOO_SHORT]);
        assert!(validate_password("éééééééé", &SEED_USER).is_empty());
        assert_eq!(validate_password("", &SEED_USER), [TOO_SHORT]);
    }

    #[test]
    fn numeric_is_python_isdigit() {
        let nobody = user("", "", "", "");
        assert_eq!(validate_password("90817263", &nobody), [ENTIRELY_NUMERIC]);
        // Arabic-Indic digits and superscripts are digits to Python...
        assert_eq!(validate_password("٣٤٥٦٧٨٩٠", &nobody), [ENTIRELY_NUMERIC]);
        assert_eq!(validate_password("²²²²²²²²", &nobody), [ENTIRELY_NUMERIC]);
        // ...fractions and Roman numerals are numeric but not digits.
        assert!(validate_password("½½½½½½½½", &nobody).is_empty());
        assert!(validate_password("ⅧⅧⅧⅧⅧⅧⅧⅧ", &nobody).is_empty());
        assert!(validate_password("9081726a", &nobody).is_empty());
        assert!(!is_py_digit_string(""));
    }

    #[test]
    fn similar_to_username() {
        let alice = user("alice.smith", "", "", "");
        assert_eq!(
            validate_password("alicesmith", &alice),
            [TOO_SIMILAR_USERNAME]
        );
        // Each part of the username counts on its own.
        assert_eq!(
            validate_password("Smith123", &alice),
            [TOO_SIMILAR_USERNAME, TOO_COMMON]
        );
        assert!(validate_password("correct horse battery", &alice).is_empty());
    }

    #[test]
    fn similar_to_each_attribute_and_only_the_first_is_reported() {
        let u = user("zz", "Marguerite", "Vandermeer", "quixotic@example.com");
        assert_eq!(
            validate_password("marguerite1", &u),
            [TOO_SIMILAR_FIRST_NAME]
        );
        assert_eq!(
            validate_password("vandermeer1", &u),
            [TOO_SIMILAR_LAST_NAME]
        );
        assert_eq!(validate_password("quixotic99", &u), [TOO_SIMILAR_EMAIL]);
        // Matches username and first name: Django raises on the first attribute only.
        let both = user("marguerite", "Marguerite", "", "");
        assert_eq!(
            validate_password("marguerite1", &both),
            [TOO_SIMILAR_USERNAME]
        );
        // Empty attributes are skipped, not compared.
        let empty = user("", "", "", "");
        assert!(validate_password("marguerite1", &empty).is_empty());
    }

    #[test]
    fn similarity_keeps_pythons_empty_parts() {
        // re.split leaves "" after a trailing separator; only an empty password is "similar".
        let u = user("alice.", "", "", "");
        assert_eq!(validate_password("", &u), [TOO_SIMILAR_USERNAME, TOO_SHORT]);
        let plain = user("alice", "", "", "");
        assert_eq!(validate_password("", &plain), [TOO_SHORT]);
    }

    #[test]
    fn split_matches_python_re_split() {
        assert_eq!(split_non_word("alice.smith"), ["alice", "smith"]);
        assert_eq!(split_non_word("a..b"), ["a", "b"]);
        assert_eq!(split_non_word("a."), ["a", ""]);
        assert_eq!(split_non_word("..a"), ["", "a"]);
        assert_eq!(split_non_word("."), ["", ""]);
        assert_eq!(split_non_word(""), [""]);
        assert_eq!(
            split_non_word("josé_01@exämple.com"),
            ["josé_01", "exämple", "com"]
        );
    }

    #[test]
    fn length_ratio_and_quick_ratio() {
        // A 1-char part against a 10-char password is skipped; against 9 chars it is not.
        assert!(exceeds_maximum_length_ratio(10, 1));
        assert!(!exceeds_maximum_length_ratio(9, 1));
        assert!(!exceeds_maximum_length_ratio(0, 0));
        assert_eq!(quick_ratio(0, 0), 1.0);
        let counts = char_counts("abcd");
        assert_eq!(common_char_count(&counts, "bcdx"), 3);
        assert_eq!(common_char_count(&counts, "aaaa"), 1);
    }

    #[test]
    fn common_list_is_loaded() {
        assert!(common_passwords().len() >= 10_000);
        assert!(common_passwords().contains("123456"));
        assert!(!common_passwords().contains(""));
    }

    #[test]
    fn usernames() {
        for ok in [
            "testuser",
            "alice.smith",
            "a@b+c-d_e",
            "Ñandú",
            "用户名",
            "٣",
            "_",
        ] {
            assert!(is_valid_username(ok), "{ok:?}");
        }
        // Combining marks are not \w in Python's re: Django refuses "नमस्ते" and a
        // decomposed "é" (e + U+0301).
        for bad in [
            "",
            "a b",
            "user\n",
            "a!",
            "a/b",
            "नमस्ते",
            "e\u{301}",
            "Ⓐ",
            "a\u{0}",
        ] {
            assert!(!is_valid_username(bad), "{bad:?}");
        }
    }

    #[test]
    fn django_email_examples() {
        for ok in [
            "test@example.com",
            "a@b.co",
            "user@localhost",
            "user@[127.0.0.1]",
            "\"quoted\"@example.com",
        ] {
            assert!(is_valid_email(ok), "{ok:?}");
        }
        for bad in [
            "no-at-sign",
            "a@b",
            "a@-b.com",
            "a b@c.com",
            "a@b..com",
            "a@b.co\n",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn email_user_part() {
        for ok in [
            "first.last@example.com",
            "!#$%&'*+/=?^_`{}|~-@example.com",
            "\"\"@example.com",
            "\"a\\ b\\\"c\\\\\"@example.com",
            "\"with@at\"@example.com",
        ] {
            assert!(is_valid_email(ok), "{ok:?}");
        }
        for bad in [
            "@example.com",
            ".a@example.com",
            "a.@example.com",
            "a..b@example.com",
            "\"@example.com",
            "\"a\"b\"@example.com",
            "\"a\\\"@example.com",
            "\"tab\there\"@example.com",
            "josé@example.com",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn email_domain_part() {
        for ok in [
            "a@sub.example.co.uk",
            "a@EXAMPLE.COM",
            "a@1.example.com",
            "a@example.xn--p1ai",
            "a@пример.рф",
            "a@x.xn--1",
            "a@[::1]",
            "a@[2001:DB8::1]",
            "a@[::ffff:1.2.3.4]",
            "a@[0000:0000:0000:0000:0000:ffff:1.2.3.4]",
        ] {
            assert!(is_valid_email(ok), "{ok:?}");
        }
        for bad in [
            "a@",
            "a@LOCALHOST",
            "a@example.com.",
            "a@.example.com",
            "a@example-.com",
            "a@example.c",
            "a@example.c0m",
            "a@example.-com",
            "a@exa_mple.com",
            "a@[1.2.3]",
            "a@[01.2.3.4]",
            "a@[256.1.1.1]",
            "a@[1::2::3]",
            "a@[1:2:3:4:5:6:7:8:9]",
            "a@[0000:0000:0000:0000:0000:ffff:255.255.255.255]",
            "\"a b\"@example.com",
            "a@127.0.0.1",
            "a@[]",
        ] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
        let long_label = format!("a@{}.com", "x".repeat(64));
        assert!(!is_valid_email(&long_label));
        assert!(is_valid_email(&format!("a@{}.com", "x".repeat(63))));
    }

    #[test]
    fn email_length_limit_counts_characters() {
        let at_limit = format!("{}@example.com", "a".repeat(320 - 12));
        assert!(is_valid_email(&at_limit));
        let over = format!("{}@example.com", "a".repeat(321 - 12));
        assert!(!is_valid_email(&over));
        assert!(!is_valid_email(""));
    }

    #[test]
    fn ip_literals() {
        assert_eq!(parse_ipv4("192.0.2.1"), Some(0xc000_0201));
        assert_eq!(parse_ipv4("0.0.0.0"), Some(0));
        for bad in ["", "1.2.3", "1.2.3.4.5", "1..2.3", "1.2.3.1000", "00.1.2.3"] {
            assert_eq!(parse_ipv4(bad), None, "{bad:?}");
        }
        for ok in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
        ] {
            assert!(is_ipv6(ok), "{ok:?}");
        }
        for bad in [
            ":",
            ":1::2",
            "1::2:",
            "1:2:3:4:5:6:7:8::",
            "12345::",
            "1:2:3:4:5:6:7",
            "::1.2.3",
        ] {
            assert!(!is_ipv6(bad), "{bad:?}");
        }
    }

    #[test]
    fn unicode_tables_are_sorted_and_disjoint() {
        for table in [ALPHANUMERIC_NOT_WORD, NUMERIC_NOT_DIGIT] {
            assert!(table.iter().all(|&(lo, hi)| lo <= hi));
            assert!(table.windows(2).all(|w| w[0].1 < w[1].0));
        }
        assert!(is_word_char('a') && is_word_char('_') && is_word_char('é') && is_word_char('٣'));
        assert!(!is_word_char('\u{93e}') && !is_word_char('\u{24b6}') && !is_word_char('-'));
    }

    #[test]
    fn no_panics_on_odd_input() {
        let huge = "ab.".repeat(200_000);
        let odd = [
            "",
            "\0",
            "@",
            "@@",
            "[",
            "]",
            "\"",
            "\\",
            "..",
            "\u{10ffff}",
            "İ",
            "ß",
            "Σ",
        ];
        for s in odd.iter().copied().chain([huge.as_str()]) {
            let u = user(s, s, s, s);
            let _ = validate_password(s, &u);
            let _ = is_valid_username(s);
            let _ = is_valid_email(s);
            let _ = is_valid_email(&format!("a@[{s}]"));
        }
    }
}
