//! Reading fields out of request data (`api::body::parse`'s dictionary) as DRF's serializer
//! fields do: CharField, BooleanField and ListField rules with DRF's messages, errors
//! collected per field. The operations validate their input with it, so the JSON API and
//! the pages give the same messages.

use crate::error::{field, max_length_message, python_type, ApiError, FieldError, FieldErrors};
use serde_json::{Map, Value};

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
        let Some(raw) = self.data.get(name) else {
            if rules.required {
                self.add(name, field::REQUIRED);
            }
            return None;
        };
        match char_value(raw, rules.allow_blank) {
            Ok(text) => Some(text),
            Err(message) => {
                self.add(name, message);
                None
            }
        }
    }

    /// A DRF BooleanField that may be left out (partial update): JSON booleans, 1 / 0, and
    /// DRF's strings ("true", "yes", "on", "1", "f", "no", "off", ... in any case).
    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        let raw = self.data.get(name)?;
        let value = match raw {
            Value::Null => {
                self.add(name, field::NULL);
                return None;
            }
            Value::Bool(b) => Some(*b),
            // Python's `1.0 in {1, True}` holds, so a float equal to 1 or 0 counts too.
            Value::Number(n) => match n.as_f64() {
                Some(1.0) => Some(true),
                Some(0.0) => Some(false),
                _ => None,
            },
            Value::String(s) => match s.to_lowercase().as_str() {
                "t" | "y" | "yes" | "true" | "on" | "1" => Some(true),
                "f" | "n" | "no" | "false" | "off" | "0" => Some(false),
                _ => None,
            },
            Value::Array(_) | Value::Object(_) => None,
        };
        if value.is_none() {
            self.add(name, field::NOT_A_BOOLEAN);
        }
        value
    }

    /// A DRF `ListField(child=CharField(max_length=max))` that may be left out: each item
    /// trimmed and checked; a failed item is reported under its position.
    pub fn char_list(&mut self, name: &str, max: usize) -> Option<Vec<String>> {
        let items = match self.data.get(name)? {
            Value::Null => {
                self.add(name, field::NULL);
                return None;
            }
            Value::Array(items) => items,
            other => {
                self.add(name, field::not_a_list(python_type(other)));
                return None;
            }
        };
        let mut values = Vec::with_capacity(items.len());
        let mut failed = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let mut messages = Vec::new();
            match char_value(item, false) {
                Ok(text) => {
                    if text.chars().count() > max {
                        messages.push(max_length_message(max));
                    }
                    if text.contains('\0') {
                        messages.push(field::NULL_CHARACTERS.to_string());
                    }
                    values.push(text);
                }
                Err(message) => messages.push(message.to_string()),
            }
            if !messages.is_empty() {
                failed.push((index, messages));
            }
        }
        if failed.is_empty() {
            return Some(values);
        }
        self.errors
            .push((name.to_string(), FieldError::Items(failed)));
        None
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
            Some((_, FieldError::Messages(list))) => list.push(message),
            // A list field whose items failed reports nothing else (DRF stops there).
            Some((_, FieldError::Items(_))) => {}
            None => self
                .errors
                .push((name.to_string(), FieldError::Messages(vec![message]))),
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

/// A CharField's value: strings trimmed, numbers as Python's `str` writes them; anything
/// else is that field's error message.
fn char_value(raw: &Value, allow_blank: bool) -> Result<String, &'static str> {
    let text = match raw {
        Value::Null => return Err(field::NULL),
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => return Err(field::NOT_A_STRING),
    };
    if text.is_empty() && !allow_blank {
        return Err(field::BLANK);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
                .map(|(_, v)| v.messages()[0].to_string())
        };
        assert_eq!(get("b").as_deref(), Some(field::BLANK));
        assert_eq!(get("c").as_deref(), Some(field::NULL));
        assert_eq!(get("e").as_deref(), Some(field::NOT_A_STRING));
        assert_eq!(get("missing").as_deref(), Some(field::REQUIRED));
        assert_eq!(get("optional"), None);
    }
}

#[cfg(test)]
#[cfg(test)]
mod drf_fields {
    use super::*;
    use serde_json::json;

    fn errors(f: Fields<'_>) -> Value {
        match f.finish() {
            Ok(()) => json!({}),
            Err(e) => e.body(),
        }
    }

    #[test]
    fn booleans_as_drf_reads_them() {
        let data = json!({"a": true, "b": "Off", "c": 1, "d": 0.0, "e": "YES", "f": 2,
                          "g": "maybe", "h": null, "i": [true], "j": ""});
        let map = data.as_object().expect("object");
        let mut f = Fields::new(map);
        let got: Vec<Option<bool>> = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "zz"]
            .iter()
            .map(|n| f.boolean(n))
            .collect();
        assert_eq!(
            got,
            [
                Some(true),
                Some(false),
                Some(true),
                Some(false),
                Some(true),
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
        let bad = [field::NOT_A_BOOLEAN];
        assert_eq!(
            errors(f),
            json!({"f": bad, "g": bad, "h": [field::NULL], "i": bad, "j": bad})
        );
    }

    #[test]
    fn lists_of_names_report_items_by_position() {
        let long = "x".repeat(151);
        let data = json!({"ok": [" billing ", 7, "ops"], "s": "billing", "o": {"a": 1},
                          "n": 5, "items": ["fine", null, "", true, long, "a\u{0}b"]});
        let map = data.as_object().expect("object");
        let mut f = Fields::new(map);
        assert_eq!(
            f.char_list("ok", 150),
            Some(vec!["billing".into(), "7".into(), "ops".into()])
        );
        assert_eq!(f.char_list("s", 150), None);
        assert_eq!(f.char_list("o", 150), None);
        assert_eq!(f.char_list("n", 150), None);
        assert_eq!(f.char_list("items", 150), None);
        assert_eq!(f.char_list("absent", 150), None);
        assert_eq!(
            errors(f),
            json!({
                "s": ["Expected a list of items but got type \"str\"."],
                "o": ["Expected a list of items but got type \"dict\"."],
                "n": ["Expected a list of items but got type \"int\"."],
                "items": {
                    "1": [field::NULL],
                    "2": [field::BLANK],
                    "3": [field::NOT_A_STRING],
                    "4": ["Ensure this field has no more than 150 characters."],
                    "5": [field::NULL_CHARACTERS],
                }
            })
        );
    }
}
