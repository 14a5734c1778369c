//! Request bodies as DRF's parsers read them: JSON or form-encoded into a dictionary (what
//! `accounts::form` then reads fields out of).

use crate::error::{python_type, ApiError};
use serde_json::{Map, Value};

/// Parses the body by its content type. An empty body is an empty dictionary, as in DRF.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    let full = content_type.unwrap_or("");
    let media = full
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => {
            let value: Value =
                serde_json::from_slice(body).map_err(|e| ApiError::Parse(e.to_string()))?;
            match value {
                Value::Object(map) => Ok(map),
                other => Err(ApiError::NonField(format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    python_type(&other)
                ))),
            }
        }
        "application/x-www-form-urlencoded" => Ok(form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect()),
        _ => Err(ApiError::UnsupportedMediaType(full.to_string())),
    }
}

/// A form-encoded body (DRF's "HTML input"), where a list field is the key repeated.
pub fn is_form(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Every value of `name` in a form-encoded body, as DRF's `QueryDict.getlist` (`None`: the key
/// is absent).
pub fn form_list(body: &[u8], name: &str) -> Option<Vec<Value>> {
    let values: Vec<Value> = form_urlencoded::parse(body)
        .filter(|(k, _)| k == name)
        .map(|(_, v)| Value::String(v.into_owned()))
        .collect();
    (!values.is_empty()).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types() {
        let form = parse(
            Some("application/x-www-form-urlencoded"),
            b"username=a%40b&x=1&x=2",
        )
        .expect("form");
        assert_eq!(form.get("username"), Some(&json!("a@b")));
        assert_eq!(form.get("x"), Some(&json!("2")));
        assert!(parse(Some("application/json; charset=utf-8"), b"{\"a\":1}").is_ok());
        assert_eq!(
            parse(Some("text/plain"), b"hi"),
            Err(ApiError::UnsupportedMediaType("text/plain".into()))
        );
        assert_eq!(parse(None, b""), Ok(Map::new()));
    }

    #[test]
    fn non_objects_and_garbage() {
        assert_eq!(
            parse(Some("application/json"), b"[1]"),
            Err(ApiError::NonField(
                "Invalid data. Expected a dictionary, but got list.".into()
            ))
        );
        assert!(matches!(
            parse(Some("application/json"), b"{"),
            Err(ApiError::Parse(_))
        ));
        for (body, name) in [
            ("\"s\"", "str"),
            ("1", "int"),
            ("1.5", "float"),
            ("null", "NoneType"),
            ("true", "bool"),
        ] {
            let err = parse(Some("application/json"), body.as_bytes()).expect_err("not a dict");
            assert_eq!(
                err,
                ApiError::NonField(format!(
                    "Invalid data. Expected a dictionary, but got {name}."
                ))
            );
        }
    }

    #[test]
    fn form_lists_are_the_key_repeated() {
        assert!(is_form(Some(
            "Application/X-WWW-Form-Urlencoded; charset=utf-8"
        )));
        assert!(!is_form(Some("application/json")) && !is_form(None));
        assert_eq!(
            form_list(b"groups=a&x=1&groups=b%20c", "groups"),
            Some(vec![json!("a"), json!("b c")])
        );
        assert_eq!(form_list(b"x=1", "groups"), None);
    }
}
