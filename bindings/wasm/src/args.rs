//! Checking JS values on the way in, converting on the way out, and the typed error.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use threadline::Metadata;

pub type JsResult<T> = Result<T, JsValue>;

/// Largest integer a JS number holds exactly.
pub const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// Kind of an error caused by a JS value of the wrong type or shape.
pub const ARGUMENT: &str = "argument";

/// A `ThreadlineError`: an `Error` named `ThreadlineError` with a `kind`.
pub fn error(kind: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name("ThreadlineError");
    // Setting a property on a fresh Error cannot fail.
    let _ = js_sys::Reflect::set(&e, &JsValue::from_str("kind"), &JsValue::from_str(kind));
    e.into()
}

/// An argument error.
pub fn argument(message: impl AsRef<str>) -> JsValue {
    error(ARGUMENT, message.as_ref())
}

/// The core's error types, by their stable kind and message.
pub trait CoreError: std::fmt::Display {
    fn error_kind(&self) -> &'static str;
}

macro_rules! core_error {
    ($($t:ty),*) => {$(
        impl CoreError for $t {
            fn error_kind(&self) -> &'static str {
                self.kind()
            }
        }
    )*};
}
core_error!(
    threadline::IdError,
    threadline::ContextError,
    threadline::KeyError,
    threadline::SessionError,
    threadline::RegistryError,
    threadline::ReportError
);

/// Converts a core error to a thrown `ThreadlineError`.
pub fn core<E: CoreError>(e: E) -> JsValue {
    error(e.error_kind(), &e.to_string())
}

/// A whole number as a length or count the core checks against its own range. wasm32's
/// usize is 32 bits: a larger number goes in as `usize::MAX`, which every such range
/// refuses, and `core_sized` quotes the number as given in the core's message.
pub fn sized(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A core error about a number read by `sized`, quoting `n` rather than `usize::MAX`.
pub fn core_sized<E: CoreError>(e: E, n: u64) -> JsValue {
    sized_error(e.error_kind(), e.to_string(), n)
}

fn sized_error(kind: &str, m: String, n: u64) -> JsValue {
    match m.as_bytes().windows(10).position(|w| w == b"4294967295") {
        Some(at) => requoted(kind, &m, at, n as f64),
        None => error(kind, &m),
    }
}

/// A core error whose message quotes a number at byte `at` (up to the next space), with
/// the number as JS prints it instead. A byte search and a copy: `str::replacen` and
/// `String::replace_range` cost kilobytes of .wasm.
pub fn requoted(kind: &str, m: &str, at: usize, n: f64) -> JsValue {
    let end = m
        .bytes()
        .skip(at)
        .position(|b| b == b' ')
        .map_or(m.len(), |i| at + i);
    let mut given = m[..at].to_owned();
    given.push_str(&number_text(n));
    given.push_str(&m[end..]);
    error(kind, &given)
}

/// How a value is described in an argument error: its type, and short values.
pub fn describe(v: &JsValue) -> String {
    if v.is_undefined() {
        return "undefined".into();
    }
    if v.is_null() {
        return "null".into();
    }
    if let Some(s) = v.as_string() {
        return format!("the string {}", threadline::error::shown(&s));
    }
    if let Some(n) = v.as_f64() {
        return format!("the number {}", number_text(n));
    }
    if let Some(b) = v.as_bool() {
        return format!("the boolean {b}");
    }
    if js_sys::Array::is_array(v) {
        return "an array".into();
    }
    match v.js_typeof().as_string().as_deref() {
        Some("object") => "an object".into(),
        Some(t) => format!("a {t}"),
        None => "a value".into(),
    }
}

/// A number as JS prints it (`1.5`, `NaN`, `Infinity`), by JS itself: Rust's float
/// formatting would add about 16 KB to the .wasm, which has a size budget.
pub fn number_text(n: f64) -> String {
    js_sys::Number::from(n)
        .to_string(10)
        .map(String::from)
        .unwrap_or_else(|_| "a number".into())
}

/// A string, or `null` (never `undefined`: absent values are `null` throughout the API).
pub fn nullable<S: AsRef<str>>(v: Option<S>) -> JsValue {
    match v {
        Some(s) => JsValue::from_str(s.as_ref()),
        None => JsValue::NULL,
    }
}

#[wasm_bindgen(module = "/js/args.js")]
extern "C" {
    /// The string quoted as JSON writes it (a lone surrogate as `\ud800`), when it holds
    /// a lone UTF-16 surrogate: that has no UTF-8 form, and converting it would silently
    /// turn it into U+FFFD, and two different ids into one. `None` for well-formed text.
    #[wasm_bindgen(js_name = loneSurrogate)]
    fn lone_surrogate(v: &JsValue) -> Option<String>;
}

/// A required string argument: a JS string of well-formed UTF-16.
pub fn string(v: &JsValue, name: &str) -> JsResult<String> {
    let Some(text) = v.as_string() else {
        return Err(argument(format!(
            "{name} must be a string: got {}",
            describe(v)
        )));
    };
    // The conversion turns a lone surrogate into U+FFFD, so only a text that holds one
    // can have had one: the JS check (a call across the boundary and a regular
    // expression) is left for those.
    if has_replacement_character(&text) {
        if let Some(shown) = lone_surrogate(v) {
            return Err(argument(format!(
                "{name} {shown} contains a lone UTF-16 surrogate: expected well-formed text"
            )));
        }
    }
    Ok(text)
}

/// Whether `text` holds U+FFFD (`EF BF BD` in UTF-8). A byte scan: `str::contains` links
/// a searcher the size budget has no room for.
fn has_replacement_character(text: &str) -> bool {
    text.as_bytes().windows(3).any(|w| w == [0xEF, 0xBF, 0xBD])
}

/// An optional string argument: `undefined` and `null` are absent.
pub fn opt_string(v: &JsValue, name: &str) -> JsResult<Option<String>> {
    if v.is_null_or_undefined() {
        Ok(None)
    } else {
        string(v, name).map(Some)
    }
}

/// A whole, non-negative number that a JS number holds exactly.
pub fn whole(v: &JsValue, name: &str) -> JsResult<u64> {
    whole_to(v, name, MAX_SAFE, "2^53-1")
}

/// A whole number from 0 to `max` (`max_text` in messages).
fn whole_to(v: &JsValue, name: &str, max: f64, max_text: &str) -> JsResult<u64> {
    let n = v.as_f64().ok_or_else(|| {
        argument(format!(
            "{name} must be a whole number: got {}",
            describe(v)
        ))
    })?;
    whole_f64_to(n, name, max, max_text)
}

pub fn whole_f64(n: f64, name: &str) -> JsResult<u64> {
    whole_f64_to(n, name, MAX_SAFE, "2^53-1")
}

fn whole_f64_to(n: f64, name: &str, max: f64, max_text: &str) -> JsResult<u64> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= max {
        Ok(n as u64)
    } else {
        Err(argument(format!(
            "{name} must be a whole number from 0 to {max_text}: got {}",
            number_text(n)
        )))
    }
}

/// An options object: `undefined`/`null` is empty; any other non-object, or a key not in
/// `known`, is an argument error (a misspelt option must not be ignored silently).
pub struct Options {
    obj: Option<js_sys::Object>,
    what: &'static str,
}

impl Options {
    pub fn new(v: &JsValue, what: &'static str, known: &[&str]) -> JsResult<Self> {
        if v.is_null_or_undefined() {
            return Ok(Self { obj: None, what });
        }
        if !v.is_object() || js_sys::Array::is_array(v) || v.is_function() {
            return Err(argument(format!(
                "{what} must be an object: got {}",
                describe(v)
            )));
        }
        let obj: js_sys::Object = v.clone().unchecked_into();
        for key in js_sys::Object::keys(&obj).iter() {
            let k = key.as_string().unwrap_or_default();
            if !known.contains(&k.as_str()) {
                return Err(argument(format!(
                    "{what} has no option {}: expected one of {}",
                    threadline::error::shown(&k),
                    known.join(", ")
                )));
            }
        }
        Ok(Self {
            obj: Some(obj),
            what,
        })
    }

    /// The value of a key; `undefined` when absent.
    pub fn get(&self, key: &str) -> JsResult<JsValue> {
        match &self.obj {
            None => Ok(JsValue::UNDEFINED),
            Some(o) => js_sys::Reflect::get(o, &JsValue::from_str(key)),
        }
    }

    fn name(&self, key: &str) -> String {
        format!("{}.{key}", self.what)
    }

    pub fn string(&self, key: &str) -> JsResult<Option<String>> {
        opt_string(&self.get(key)?, &self.name(key))
    }

    pub fn required_string(&self, key: &str) -> JsResult<String> {
        string(&self.get(key)?, &self.name(key))
    }

    pub fn whole(&self, key: &str) -> JsResult<Option<u64>> {
        let v = self.get(key)?;
        if v.is_null_or_undefined() {
            return Ok(None);
        }
        whole(&v, &self.name(key)).map(Some)
    }

    /// A whole number used as a size or count: wasm32's usize is 32 bits, so a larger
    /// number is refused rather than wrapped.
    pub fn size(&self, key: &str) -> JsResult<Option<usize>> {
        let v = self.get(key)?;
        if v.is_null_or_undefined() {
            return Ok(None);
        }
        whole_to(&v, &self.name(key), u32::MAX as f64, "2^32-1").map(|n| Some(n as usize))
    }

    pub fn bool(&self, key: &str) -> JsResult<Option<bool>> {
        let v = self.get(key)?;
        if v.is_null_or_undefined() {
            return Ok(None);
        }
        v.as_bool().map(Some).ok_or_else(|| {
            argument(format!(
                "{} must be a boolean: got {}",
                self.name(key),
                describe(&v)
            ))
        })
    }

    pub fn function(&self, key: &str) -> JsResult<Option<js_sys::Function>> {
        let v = self.get(key)?;
        if v.is_null_or_undefined() {
            return Ok(None);
        }
        if !v.is_function() {
            return Err(argument(format!(
                "{} must be a function: got {}",
                self.name(key),
                describe(&v)
            )));
        }
        Ok(Some(v.unchecked_into()))
    }

    pub fn metadata(&self, key: &str) -> JsResult<Option<Metadata>> {
        let v = self.get(key)?;
        metadata(&v, &self.name(key))
    }
}

/// Plain JSON-like data (`{}` of strings, numbers, booleans, null, arrays, objects), read
/// the way `JSON.stringify` sees it.
pub fn metadata(v: &JsValue, name: &str) -> JsResult<Option<Metadata>> {
    if v.is_null_or_undefined() {
        return Ok(None);
    }
    if !v.is_object() || js_sys::Array::is_array(v) || v.is_function() {
        return Err(argument(format!(
            "{name} must be a plain object: got {}",
            describe(v)
        )));
    }
    read_metadata(&json_text(v, name)?, name).map(Some)
}

/// Metadata from the JSON text `JSON.stringify` wrote for the argument `name`.
pub fn read_metadata(json: &str, name: &str) -> JsResult<Metadata> {
    threadline::json::read_metadata(json).map_err(|e| argument(format!("{name} is not valid: {e}")))
}

/// A JS value as JSON text, the way `JSON.stringify` sees it. The core's reader takes
/// it from there (not serde_json's, which is far larger in the .wasm).
pub fn json_text(v: &JsValue, name: &str) -> JsResult<String> {
    js_sys::JSON::stringify(v)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| argument(format!("{name} is not plain JSON data")))
}

/// Any serde value as a plain JS value, JSON-shaped (maps as objects, `None` as `null`),
/// through JSON text: one fast `JSON.parse` instead of a call per field.
pub fn to_js<T: Serialize + ?Sized>(v: &T) -> JsResult<JsValue> {
    js_sys::JSON::parse(&to_json_text(v)?)
}

/// Any serde value as JSON text (for `to_js`, or for JS code that parses it itself).
pub fn to_json_text<T: Serialize + ?Sized>(v: &T) -> JsResult<String> {
    serde_json::to_string(v).map_err(|e| {
        error(
            "internal",
            // The category only: serde_json's Display is a few KB of message tables.
            &format!(
                "could not convert a result to JS ({:?} error)",
                e.classify()
            ),
        )
    })
}

/// Where time comes from: `Date.now()`, or a function the caller gave.
#[derive(Clone)]
pub enum JsClock {
    Date,
    Func(js_sys::Function),
}

impl JsClock {
    pub fn from_options(o: &Options) -> JsResult<Self> {
        Ok(match o.function("clock")? {
            Some(f) => JsClock::Func(f),
            None => JsClock::Date,
        })
    }

    /// Unix time in ms.
    pub fn now(&self) -> JsResult<u64> {
        match self {
            JsClock::Date => Ok(js_sys::Date::now().max(0.0) as u64),
            JsClock::Func(f) => {
                let v = f.call0(&JsValue::UNDEFINED)?;
                match v.as_f64() {
                    Some(n) => whole_f64(n.floor(), "clock()"),
                    None => Err(argument(format!(
                        "clock() must return Unix time in ms: got {}",
                        describe(&v)
                    ))),
                }
            }
        }
    }
}

/// A random key for a tracker's hash tables (the core's default seed is fixed and
/// public): from the platform's generator (`crypto.getRandomValues`).
pub fn hash_seed() -> JsResult<u64> {
    use threadline::Entropy;
    Ok(threadline::SeededEntropy::from_os()
        .map_err(core)?
        .next_u64())
}
