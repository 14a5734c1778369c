//! The users list as CSV (RFC 4180): the header row, one row per user, and each cell made
//! safe for spreadsheets. Plain functions; `users` streams their output.

use crate::clock::iso_ms;
use crate::store::User;

/// The export's columns, in order.
pub const HEADER: [&str; 12] = [
    "id",
    "username",
    "email",
    "first_name",
    "last_name",
    "active",
    "staff",
    "groups",
    "two_factor",
    "email_verified",
    "date_joined",
    "last_login",
];

/// `text` as one CSV cell: a cell a spreadsheet would read as a formula (starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, so it shows as text
/// (OWASP's CSV injection advice); then a cell holding `"`, `,`, a line break or that quote is
/// quoted, its `"` doubled (RFC 4180).
pub fn cell(text: &str) -> String {
    let neutral = match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_string(),
    };
    if neutral.contains(['"', ',', '\n', '\r', '\'']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

/// One line of cells, ended by CRLF (RFC 4180).
pub fn line<S: AsRef<str>>(cells: &[S]) -> String {
    let mut out = cells
        .iter()
        .map(|c| cell(c.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}

/// The header line.
pub fn header() -> String {
    line(&HEADER)
}

/// `user`'s line (`two_factor`: their second factor is on). Times are ISO 8601 UTC; a
/// never-used sign-in is an empty cell.
pub fn row(user: &User, two_factor: bool) -> String {
    let yes = |b: bool| if b { "true" } else { "false" }.to_string();
    line(&[
        user.id.to_string(),
        user.username.clone(),
        user.email.clone(),
        user.first_name.clone(),
        user.last_name.clone(),
        yes(user.is_active),
        yes(user.is_staff),
        user.groups.join(" "),
        yes(two_factor),
        yes(user.email_verified),
        iso_ms(user.date_joined.saturating_mul(1000)),
        user.last_login
            .map(|t| iso_ms(t.saturating_mul(1000)))
            .unwrap_or_default(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_user;

    #[test]
    fn formulas_are_neutralised_and_quotes_doubled() {
        assert_eq!(cell("alice"), "alice");
        assert_eq!(cell(""), "");
        assert_eq!(cell("=1+2"), "\"'=1+2\"");
        assert_eq!(cell("+1"), "\"'+1\"");
        assert_eq!(cell("-1"), "\"'-1\"");
        assert_eq!(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(cell("\tx"), "\"'\tx\"");
        assert_eq!(cell("\rx"), "\"'\rx\"");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell("a=b"), "a=b", "only a leading sign is a formula");
        assert_eq!(
            cell("=HYPERLINK(\"http://x\",\"<script>\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"<script>\"\")\""
        );
    }

    #[test]
    fn rows_have_every_column_and_end_in_crlf() {
        let mut u = test_user(7, "=cmd|<script>", "a,b@example.com");
        u.groups = vec!["ops".into(), "billing".into()];
        u.last_login = None;
        let r = row(&u, true);
        assert!(r.ends_with("\r\n"));
        assert!(
            r.starts_with("7,\"'=cmd|<script>\",\"a,b@example.com\","),
            "{r}"
        );
        assert!(r.contains(",ops billing,true,"), "{r}");
        assert!(
            r.ends_with("Z,\r\n"),
            "no last login: an empty last cell: {r}"
        );
        assert_eq!(header().trim_end().split(',').count(), HEADER.len());
    }
}
