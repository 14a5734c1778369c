//! Request bodies as DRF reads them: JSON or form-encoded into a dictionary, then fields with
//! DRF's CharField rules and messages, errors collected per field.

use crate::error::{field, max_length_message, ApiError, FieldErrors};
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

/// The Python type name DRF puts in its message.
fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

#[derive(Debug, Clone, Copy)]
pub struct CharRules {
    pub required: bool,
    pub allow_blank: bool,
}

pub const REQUIRED: CharRules = CharRules {
    required: true,
    allow_blank: false,
};
/// A partial update (PATCH): may be left out, but not sent blank.
pub const OPTIONAL: CharRules = CharRules {
    required: false,
    allow_blank: false,
};
pub const OPTIONAL_BLANK_OK: CharRules = CharRules {
    required: false,
    allow_blank: true,
};

/// Reads fields from a parsed body, collecting DRF-shaped errors in check order.
pub struct Fields<'a> {
    data: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl<'a> Fields<'a> {
    pub fn new(data: &'a Map<String, Value>) -> Fields<'a> {
        Fields {
            data,
            errors: Vec::new(),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.data.contains_key(name)
    }

    /// A DRF CharField (trim_whitespace on): `None` if missing or invalid (the error is
    /// recorded), `Some("")` only when blank is allowed.
    pub fn char(&mut self, name: &str, rules: CharRules) -> Option<String> {
        let raw = match self.data.get(name) {
            None => {
                if rules.required {
                    self.add(name, field::REQUIRED);
                }
                return None;
            }
            Some(v) => v,
        };
        let text = match raw {
            Value::Null => {
                self.add(name, field::NULL);
                return None;
            }
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
                self.add(name, field::NOT_A_STRING);
                return None;
            }
        };
        if text.is_empty() && !rules.allow_blank {
            self.add(name, field::BLANK);
            return None;
        }
        Some(text)
    }

    /// DRF's MaxLengthValidator (counts characters).
    pub fn max_len(&mut self, name: &str, value: &str, max: usize) -> bool {
        if value.chars().count() > max {
            self.add(name, max_length_message(max));
            return false;
        }
        true
    }

    pub fn add(&mut self, name: &str, message: impl Into<String>) {
        let message = message.into();
        match self.errors.iter_mut().find(|(n, _)| n == name) {
            Some((_, list)) => list.push(message),
            None => self.errors.push((name.to_string(), vec![message])),
        }
    }

    pub fn failed(&self, name: &str) -> bool {
        self.errors.iter().any(|(n, _)| n == name)
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
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
    fn char_field_rules() {
        let data = json!({"a": "  x ", "b": "  ", "c": null, "d": 12, "e": true, "f": [1]});
        let map = data.as_object().expect("object");
        let mut f = Fields::new(map);
        assert_eq!(f.char("a", REQUIRED).as_deref(), Some("x"));
        assert_eq!(f.char("b", REQUIRED), None);
        assert_eq!(f.char("c", REQUIRED), None);
        assert_eq!(f.char("d", REQUIRED).as_deref(), Some("12"));
        assert_eq!(f.char("e", REQUIRED), None);
        assert_eq!(f.char("f", REQUIRED), None);
        assert_eq!(f.char("missing", REQUIRED), None);
        assert_eq!(f.char("optional", OPTIONAL_BLANK_OK), None);
        let Err(ApiError::Validation(errors)) = f.finish() else {
            panic!("errors expected");
        };
        let get = |n: &str| {
            errors
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v[0].clone())
        };
        assert_eq!(get("b").as_deref(), Some(field::BLANK));
        assert_eq!(get("c").as_deref(), Some(field::NULL));
        assert_eq!(get("e").as_deref(), Some(field::NOT_A_STRING));
        assert_eq!(get("missing").as_deref(), Some(field::REQUIRED));
        assert_eq!(get("optional"), None);
    }
}
