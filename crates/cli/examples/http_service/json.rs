//! JSON bodies: parsing, objects into forms, and serde's errors in the API's words.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::errors::{join_path, last_name, ApiError};

pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    let bytes: &[u8] = if bytes.trim_ascii().is_empty() {
        b"{}"
    } else {
        bytes
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        ApiError::Malformed {
            field: json_path(error.path()),
            message: error.into_inner().to_string(),
        }
    })?;
    deserializer.end().map_err(|error| ApiError::Malformed {
        field: String::new(),
        message: error.to_string(),
    })?;
    Ok(value)
}

/// `value` as `T`, which is a struct: anything but a JSON object is refused here,
/// because serde would fill a struct from an array by position.
pub(crate) fn from_object<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid(
            "",
            format!("expected a JSON object, found {}", kind(&value)),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = json_path(error.path());
        let (field, message) = in_api_words(path, &error.into_inner().to_string());
        ApiError::Invalid { field, message }
    })
}

/// `null` refused, any other value taken (with `#[serde(default)]`: absent is `None`).
pub(crate) fn not_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A path as JSON spells it: `name`, `[1].text`, `data.email_addresses[0].id`; `""`
/// for the body itself.
fn json_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out = join_path(&out, &format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => out = join_path(&out, key),
            // A place the parser could not name: the path so far.
            Segment::Unknown => break,
        }
    }
    out
}

/// What kind of JSON value `value` is, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A serde error at `path` as the field to blame and a message in the API's words,
/// without Rust's type names: a missing or unknown field is named in the path.
fn in_api_words(path: String, message: &str) -> (String, String) {
    // "`name`, expected one of `a`, `b`" as the name and "one of a, b".
    let quoted = |rest: &'_ str| -> (String, String) {
        let (name, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = rest.strip_prefix(", expected ").unwrap_or_default();
        (name.to_owned(), expected.replace('`', ""))
    };
    // The field's path: the tracked path names an unknown field already, not a
    // missing one.
    let field_path = |name: &str| {
        if last_name(&path) == name {
            path.clone()
        } else {
            join_path(&path, name)
        }
    };
    if let Some(rest) = message.strip_prefix("missing field `") {
        let (name, _) = quoted(rest);
        return (field_path(&name), format!("{name} is required"));
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, known) = quoted(rest);
        let message = if known.is_empty() {
            format!("unknown field {name}")
        } else {
            format!("unknown field {name}; expected {known}")
        };
        return (field_path(&name), message);
    }
    if let Some(rest) = message.strip_prefix("duplicate field `") {
        let (name, _) = quoted(rest);
        return (field_path(&name), format!("{name} is given twice"));
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (value, known) = quoted(rest);
        return (path, format!("expected {known}, found {value}"));
    }
    let mismatch = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .and_then(|rest| rest.rsplit_once(", expected "));
    if let Some((found, expected)) = mismatch {
        let message = format!(
            "expected {}, found {}",
            expected_words(expected),
            found_words(found)
        );
        return (path, message);
    }
    if let Some((_, expected)) = message
        .strip_prefix("invalid length ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        return (path, format!("expected {}", expected_words(expected)));
    }
    // A message of a type's own (the library's checks): already in the API's words.
    (path, message.to_owned())
}

/// What serde says it expected, in the API's words.
fn expected_words(expected: &str) -> String {
    let words = match expected {
        e if e.starts_with("struct ") || e == "a map" || e == "map" => "a JSON object",
        e if e.contains("sequence") || e.starts_with("tuple") || e.starts_with("a tuple") => {
            "a JSON array"
        }
        "a string" | "a borrowed string" | "string" | "string or map" => "a string",
        "a character" | "a char" | "char" => "one character",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "unit" => "null",
        e if e.starts_with("enum ") || e == "variant identifier" => "one of the listed values",
        // A visitor's own description ("a valid date"), unless it names a type.
        e if !e.contains("::") && !e.starts_with(char::is_uppercase) => return e.to_owned(),
        _ => "a different value",
    };
    words.to_owned()
}

/// What serde says it found, in the API's words.
fn found_words(found: &str) -> String {
    let backticked = |rest: &str| rest.trim_end_matches('`').to_owned();
    match found {
        "null" | "unit value" => "null".to_owned(),
        "sequence" => "an array".to_owned(),
        "map" => "an object".to_owned(),
        f if f.starts_with("string ") => "a string".to_owned(),
        f if f.starts_with("boolean `") => backticked(&f["boolean `".len()..]),
        f if f.starts_with("integer `") => {
            format!("the number {}", backticked(&f["integer `".len()..]))
        }
        f if f.starts_with("floating point `") => {
            format!("the number {}", backticked(&f["floating point `".len()..]))
        }
        _ => "another kind of value".to_owned(),
    }
}
