//! Conversion between JavaScript values and stock-core types, and the one way errors become JavaScript errors:
//! an `Error` named `StockError` whose `code` is stock-core's stable code.

use js_sys::{Array, Date, Error, JsString, Object, Reflect};
use std::fmt::{self, Display};
use stock_core::{ErrorCode, Timestamp};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

// Builtins imported with the exact signatures the hot paths need. Each crossing from wasm to JavaScript costs
// 10-20 ns here, and reading a number through `JsValue::as_f64` costs far more (it goes through a DataView),
// so numbers are read as `Number.isFinite(value)` then `Number(value)`: no coercion is ever accepted, since
// `Number.isFinite` is false for strings, booleans, null and undefined.
#[wasm_bindgen]
extern "C" {
    /// `Reflect.get` without `catch`: a property getter that throws unwinds through this call like any
    /// JavaScript exception (the caller sees it; a few bytes of this call's memory are not reclaimed).
    #[wasm_bindgen(js_namespace = Reflect, js_name = get)]
    fn reflect_get(target: &JsValue, key: &JsValue) -> JsValue;
    #[wasm_bindgen(js_namespace = Number, js_name = isFinite)]
    fn is_finite_number(value: &JsValue) -> bool;
    /// Only called on values `Number.isFinite` accepted, which are numbers already.
    #[wasm_bindgen(js_name = Number)]
    fn number_value(value: &JsValue) -> f64;
}

/// Property names used on every call, made once: building a JavaScript string from Rust costs more than
/// the rest of a small call.
pub(crate) struct Keys {
    pub(crate) id: JsValue,
    pub(crate) sizes: JsValue,
    pub(crate) size: JsValue,
    pub(crate) variants: JsValue,
    pub(crate) variant: JsValue,
    pub(crate) stock: JsValue,
    pub(crate) reserved_stock: JsValue,
    pub(crate) low_stock_threshold: JsValue,
    pub(crate) code: JsValue,
}

impl Keys {
    fn new() -> Self {
        let key = |name: &str| JsValue::from(JsString::from(name));
        Keys {
            id: key("id"),
            sizes: key("sizes"),
            size: key("size"),
            variants: key("variants"),
            variant: key("variant"),
            stock: key("stock"),
            reserved_stock: key("reservedStock"),
            low_stock_threshold: key("lowStockThreshold"),
            code: key("code"),
        }
    }
}

thread_local! {
    static KEYS: Keys = Keys::new();
}

/// Runs `body` with the cached property names.
pub(crate) fn with_keys<T>(body: impl FnOnce(&Keys) -> T) -> T {
    KEYS.with(body)
}

/// Where in the caller's arguments a value sits, such as `sizes[2].stock`, for error messages. Built only
/// when an error is reported.
#[derive(Clone, Copy)]
pub(crate) struct Path<'a> {
    pub(crate) root: &'a str,
    pub(crate) index: Option<usize>,
    pub(crate) field: Option<&'a str>,
}

impl<'a> Path<'a> {
    pub(crate) fn root(root: &'a str) -> Self {
        Path { root, index: None, field: None }
    }

    pub(crate) fn at(self, index: usize) -> Self {
        Path { index: Some(index), ..self }
    }

    pub(crate) fn field(self, field: &'a str) -> Self {
        Path { field: Some(field), ..self }
    }
}

impl Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.root)?;
        if let Some(index) = self.index {
            write!(f, "[{index}]")?;
        }
        if let Some(field) = self.field {
            write!(f, ".{field}")?;
        }
        Ok(())
    }
}

/// A JavaScript `Error` named `StockError` with a `code` property.
pub(crate) fn stock_error(code: &str, message: &str) -> JsValue {
    let error = Error::new(message);
    error.set_name("StockError");
    let error = JsValue::from(error);
    with_keys(|keys| set(&error, &keys.code, &JsValue::from_str(code)));
    error
}

/// A stock-core error as a JavaScript error, its message prefixed with where the input came from (if the
/// input was not a plain argument, whose name stock-core's message already gives).
pub(crate) fn core_error(error: &(impl ErrorCode + Display), path: Option<Path<'_>>) -> JsValue {
    match path {
        Some(path) => stock_error(error.code(), &format!("{path}: {error}")),
        None => stock_error(error.code(), &error.to_string()),
    }
}

/// A wrong type or a missing value, reported with `code` (`invalid_input`, or `invalid_quantity` for numbers).
fn wrong_type(code: &str, path: Path<'_>, expected: &str, value: &JsValue) -> JsValue {
    stock_error(code, &format!("{path}: expected {expected}, got {}", describe(value)))
}

/// A short description of a value for an error message; never the whole value.
fn describe(value: &JsValue) -> String {
    if value.is_undefined() {
        return "nothing (the value is missing)".to_owned();
    }
    if value.is_null() {
        return "null".to_owned();
    }
    if let Some(text) = value.as_string() {
        let shown: String = text.chars().take(40).collect();
        let ellipsis = if shown.len() < text.len() { "..." } else { "" };
        return format!("the string {shown:?}{ellipsis}");
    }
    if let Some(number) = value.as_f64() {
        return format!("{number}");
    }
    if Array::is_array(value) {
        return "an array".to_owned();
    }
    match value.js_typeof().as_string() {
        Some(kind) => format!("a value of type {kind}"),
        None => "a value of unknown type".to_owned(),
    }
}

/// Checks that `value` is an object (not null, not a primitive), so that reading its properties cannot throw.
pub(crate) fn expect_object(value: &JsValue, path: Path<'_>) -> Result<(), JsValue> {
    if value.is_object() { Ok(()) } else { Err(wrong_type("invalid_input", path, "an object", value)) }
}

/// `value` as an array.
pub(crate) fn expect_array(value: &JsValue, path: Path<'_>) -> Result<Array, JsValue> {
    value.dyn_ref::<Array>().cloned().ok_or_else(|| wrong_type("invalid_input", path, "an array", value))
}

/// The property `key` of an object already checked with [`expect_object`].
pub(crate) fn get(object: &JsValue, key: &JsValue) -> JsValue {
    reflect_get(object, key)
}

/// Sets the property `key` of an object created here (cannot fail: plain objects accept any property).
pub(crate) fn set(object: &JsValue, key: &JsValue, value: &JsValue) {
    // Reflect.set only fails on frozen objects or throwing setters, which objects made here do not have.
    let _ = Reflect::set(object, key, value);
}

/// A number argument that wasm-bindgen received as `Option<f64>`: `None` stands for null or undefined.
/// (Other non-numbers were converted by JavaScript's `Number()` on the way in; non-numeric strings arrive
/// as NaN and are refused by stock-core.)
pub(crate) fn argument(value: Option<f64>, name: &str) -> Result<f64, JsValue> {
    value.ok_or_else(|| stock_error("invalid_quantity", &format!("{name}: expected a number, got null or undefined")))
}

/// Sets the property `name` of an object created here.
pub(crate) fn set_named(object: &JsValue, name: &str, value: &JsValue) {
    set(object, &JsValue::from_str(name), value);
}

/// A new plain object.
pub(crate) fn new_object() -> JsValue {
    Object::new().into()
}

/// A number, as a quantity field: anything but a finite JavaScript number is `invalid_quantity`.
pub(crate) fn number(value: &JsValue, path: Path<'_>) -> Result<f64, JsValue> {
    if is_finite_number(value) {
        return Ok(number_value(value));
    }
    Err(wrong_type("invalid_quantity", path, "a finite number", value))
}

/// The number in property `key` of `object`.
pub(crate) fn number_at(object: &JsValue, key: &JsValue, path: Path<'_>) -> Result<f64, JsValue> {
    number(&get(object, key), path)
}

/// An identifier or label: a string, or a finite number written as JavaScript writes it (Payload's SQL
/// adapters use numeric ids).
pub(crate) fn label(value: &JsValue, path: Path<'_>) -> Result<String, JsValue> {
    if let Some(text) = value.as_string() {
        return Ok(text);
    }
    match value.as_f64() {
        // Rust writes whole and decimal numbers as JavaScript does (42, 42.5), which covers ids and sizes.
        Some(number) if number.is_finite() => Ok(format!("{number}")),
        _ => Err(wrong_type("invalid_input", path, "a string or a number", value)),
    }
}

/// An optional string property: `undefined` and `null` are `None`.
pub(crate) fn optional_string_at(object: &JsValue, name: &str, path: Path<'_>) -> Result<Option<String>, JsValue> {
    let value = get(object, &JsValue::from_str(name));
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value.as_string().map(Some).ok_or_else(|| wrong_type("invalid_input", path, "a string", &value))
}

/// An instant given as an RFC 3339 string or a `Date`; `undefined` means `default`.
pub(crate) fn instant_or(
    value: &JsValue,
    default: impl FnOnce() -> Result<Timestamp, JsValue>,
    path: Path<'_>,
) -> Result<Timestamp, JsValue> {
    if value.is_undefined() {
        return default();
    }
    if let Some(text) = value.as_string() {
        return Timestamp::parse_rfc3339(&text).map_err(|error| core_error(&error, Some(path)));
    }
    if let Some(date) = value.dyn_ref::<Date>() {
        return Timestamp::from_js_time(date.get_time()).map_err(|error| core_error(&error, Some(path)));
    }
    Err(wrong_type("invalid_date", path, "an RFC 3339 string or a Date", value))
}

/// The current time, read here in the shell: stock-core never reads a clock.
pub(crate) fn now() -> Result<Timestamp, JsValue> {
    Timestamp::from_js_time(Date::now()).map_err(|error| core_error(&error, Some(Path::root("Date.now()"))))
}
