//! Reading JSON text: a small pull reader for the report schema and metadata values.
//!
//! Why not `serde_json::from_str`: serde's typed deserialisation (and the float
//! formatting its error messages need) is about 85 KB of the WebAssembly package, which
//! has a size budget of 300 KB; this reader is a few KB. Writing JSON still goes through
//! `serde_json`. The grammar is RFC 8259's, and the results match what `serde_json`
//! reads from the same text (integers to `u64`/`i64` when they fit, other numbers to
//! `f64`, `-0` to `-0.0`, at most 127 levels of nesting); the tests compare the two.
//! Decimal fractions are read correctly rounded (as `str::parse` reads them; see
//! `decimal::parse_f64`), where serde_json's
//! default reading can be one unit in the last place off.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Number, Value};

use crate::context::Metadata;
use crate::error::shown_plain;

/// How deep arrays and objects may nest: 127 levels, as serde_json's default limit allows.
pub const MAX_NESTING: usize = 127;

/// Malformed JSON, or JSON of the wrong shape, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// What was wrong, naming the expected and the found.
    pub message: String,
    /// 1-based line and column (in characters) of the position.
    pub line: usize,
    /// The column within `line`: 1-based, counted in characters, not bytes.
    pub column: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.message, self.line, self.column
        )
    }
}

pub(crate) type JsonResult<T> = Result<T, JsonError>;

/// Reads JSON `text` as a metadata object (`{"key": any JSON value, ...}`).
pub fn read_metadata(text: &str) -> Result<Metadata, JsonError> {
    let mut r = Reader::new(text);
    let mut map = Metadata::new();
    r.object("metadata", |r, key| {
        let v = r.value()?;
        map.insert(key.into_owned(), v);
        Ok(())
    })?;
    r.finish()?;
    Ok(map)
}

/// Reads any JSON value.
pub fn read_value(text: &str) -> Result<Value, JsonError> {
    let mut r = Reader::new(text);
    let v = r.value()?;
    r.finish()?;
    Ok(v)
}

/// A cursor over JSON text. Its methods are kept out of line: the report readers call
/// them from many places, and inlined copies would cost the .wasm more than the calls
/// cost in time.
///
/// A cursor over JSON text. Each method reads one value at the cursor (after any
/// whitespace) or fails naming what it expected and what it found.
pub(crate) struct Reader<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            depth: 0,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// An error at the cursor.
    #[inline(never)]
    pub(crate) fn error(&self, message: impl Into<String>) -> JsonError {
        let before = &self.bytes()[..self.pos.min(self.text.len())];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        // Columns count characters: skip UTF-8 continuation bytes.
        let column = 1 + before[line_start..]
            .iter()
            .filter(|&&b| b & 0xC0 != 0x80)
            .count();
        JsonError {
            message: message.into(),
            line,
            column,
        }
    }

    fn skip_ws(&mut self) {
        let b = self.bytes();
        while self.pos < b.len() && matches!(b[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.pos).copied()
    }

    /// What is at the cursor, for messages.
    fn found(&mut self) -> &'static str {
        match self.peek() {
            None => "the end of the text",
            Some(b'{') => "an object",
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            Some(b'-' | b'0'..=b'9') => "a number",
            Some(_) => "a character that starts no JSON value",
        }
    }

    #[inline(never)]
    fn mismatch<T>(&mut self, what: &str, expected: &str) -> JsonResult<T> {
        let found = self.found();
        Err(self.error(format!("{what}: expected {expected}, found {found}")))
    }

    /// Only whitespace may follow the value.
    pub(crate) fn finish(&mut self) -> JsonResult<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error("trailing characters after the JSON value")),
        }
    }

    fn literal(&mut self, word: &str) -> bool {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// Consumes a `null` if one is at the cursor.
    #[inline(never)]
    pub(crate) fn null(&mut self) -> bool {
        self.peek() == Some(b'n') && self.literal("null")
    }

    fn enter(&mut self) -> JsonResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.error(format!(
                "nesting deeper than {MAX_NESTING} levels: expected at most {MAX_NESTING}"
            )));
        }
        Ok(())
    }

    /// Reads an object, calling `field` with each key and the cursor at its value;
    /// `field` must read (or skip) the value.
    pub(crate) fn object(
        &mut self,
        what: &str,
        mut field: impl FnMut(&mut Self, Cow<'a, str>) -> JsonResult<()>,
    ) -> JsonResult<()> {
        self.object_dyn(what, &mut field)
    }

    // One copy of the loop for every caller (`dyn`): a generic one per closure cost
    // the .wasm several KB each.
    #[inline(never)]
    fn object_dyn(
        &mut self,
        what: &str,
        field: &mut dyn FnMut(&mut Self, Cow<'a, str>) -> JsonResult<()>,
    ) -> JsonResult<()> {
        if self.peek() != Some(b'{') {
            return self.mismatch(what, "an object");
        }
        self.enter()?;
        self.pos += 1;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return self.mismatch(what, "a key in double quotes");
            }
            let key = self.string(what)?;
            if self.peek() != Some(b':') {
                return Err(self.expected(what, "`:` after the key"));
            }
            self.pos += 1;
            field(self, key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.expected(what, "`,` or `}`")),
            }
        }
    }

    /// Reads an array, calling `item` with the cursor at each element.
    pub(crate) fn array(
        &mut self,
        what: &str,
        mut item: impl FnMut(&mut Self) -> JsonResult<()>,
    ) -> JsonResult<()> {
        self.array_dyn(what, &mut item)
    }

    #[inline(never)]
    fn array_dyn(
        &mut self,
        what: &str,
        item: &mut dyn FnMut(&mut Self) -> JsonResult<()>,
    ) -> JsonResult<()> {
        if self.peek() != Some(b'[') {
            return self.mismatch(what, "an array");
        }
        self.enter()?;
        self.pos += 1;
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            item(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(self.expected(what, "`,` or `]`")),
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn expected(&self, what: &str, expected: &str) -> JsonError {
        self.error(format!("{what}: expected {expected}"))
    }

    /// Reads a string; borrowed from the text unless it holds escapes.
    #[inline(never)]
    pub(crate) fn string(&mut self, what: &str) -> JsonResult<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return self.mismatch(what, "a string");
        }
        self.pos += 1;
        let b = self.bytes();
        let start = self.pos;
        while self.pos < b.len() {
            match b[self.pos] {
                b'"' => {
                    let s = &self.text[start..self.pos];
                    self.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                b'\\' => return self.escaped_string(start).map(Cow::Owned),
                0..=0x1f => {
                    return Err(self.error("control character in a string: expected it escaped"))
                }
                _ => self.pos += 1,
            }
        }
        Err(self.error("end of the text inside a string: expected a closing `\"`"))
    }

    fn escaped_string(&mut self, start: usize) -> JsonResult<String> {
        let b = self.bytes();
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(&self.text[start..self.pos]);
        loop {
            let run = self.pos;
            while self.pos < b.len() && !matches!(b[self.pos], b'"' | b'\\' | 0..=0x1f) {
                self.pos += 1;
            }
            out.push_str(&self.text[run..self.pos]);
            match b.get(self.pos) {
                None => {
                    return Err(
                        self.error("end of the text inside a string: expected a closing `\"`")
                    )
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = match b.get(self.pos) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            out.push(self.unicode_escape()?);
                            continue;
                        }
                        _ => {
                            return Err(self.error(
                                "invalid escape: expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\u and four hex digits",
                            ))
                        }
                    };
                    self.pos += 1;
                    out.push(c);
                }
                Some(_) => {
                    return Err(self.error("control character in a string: expected it escaped"))
                }
            }
        }
    }

    /// The code point of the four hex digits after `\u` (the cursor is on the first),
    /// joining a surrogate pair.
    fn unicode_escape(&mut self) -> JsonResult<char> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if !self.literal("\\u") {
                    return Err(self.error(
                        "lone leading surrogate in a \\u escape: expected a trailing \\uDC00-\\uDFFF",
                    ));
                }
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(self.error(
                        "lone leading surrogate in a \\u escape: expected a trailing \\uDC00-\\uDFFF",
                    ));
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => {
                return Err(self.error(
                    "lone trailing surrogate in a \\u escape: expected a leading \\uD800-\\uDBFF before it",
                ))
            }
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn hex4(&mut self) -> JsonResult<u32> {
        let digits = self.bytes().get(self.pos..self.pos + 4);
        let value = digits.and_then(|d| {
            d.iter().try_fold(0u32, |acc, &c| {
                (c as char).to_digit(16).map(|v| acc * 16 + v)
            })
        });
        match value {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => Err(self.error("invalid \\u escape: expected four hex digits")),
        }
    }

    /// The text of a number at the cursor, checked against JSON's grammar, and whether
    /// it is an integer (no fraction, no exponent).
    fn number_text(&mut self) -> JsonResult<(&'a str, bool)> {
        self.skip_ws();
        let b = self.bytes();
        let start = self.pos;
        let mut p = self.pos;
        let digits = |p: &mut usize| {
            let s = *p;
            while *p < b.len() && b[*p].is_ascii_digit() {
                *p += 1;
            }
            *p - s
        };
        if b.get(p) == Some(&b'-') {
            p += 1;
        }
        let int_start = p;
        let n = digits(&mut p);
        let bad = |r: &mut Self, at: usize| {
            r.pos = at;
            Err(r.error(
                "invalid number: expected JSON's -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?",
            ))
        };
        if n == 0 || (n > 1 && b[int_start] == b'0') {
            return bad(self, int_start);
        }
        let mut integer = true;
        if b.get(p) == Some(&b'.') {
            p += 1;
            integer = false;
            if digits(&mut p) == 0 {
                return bad(self, p);
            }
        }
        if matches!(b.get(p), Some(b'e' | b'E')) {
            p += 1;
            integer = false;
            if matches!(b.get(p), Some(b'+' | b'-')) {
                p += 1;
            }
            if digits(&mut p) == 0 {
                return bad(self, p);
            }
        }
        self.pos = p;
        Ok((&self.text[start..p], integer))
    }

    /// A whole number from 0 to 2^64-1.
    #[inline(never)]
    pub(crate) fn u64(&mut self, what: &str) -> JsonResult<u64> {
        if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
            return self.mismatch(what, "a whole number");
        }
        let start = self.pos;
        let (text, integer) = self.number_text()?;
        match text.parse::<u64>() {
            Ok(n) if integer => Ok(n),
            _ => {
                self.pos = start;
                Err(self.error(format!(
                    "{what}: expected a whole number from 0 to 2^64-1, found {}",
                    shown_plain(text)
                )))
            }
        }
    }

    /// A `u64`, or `null` for none.
    #[inline(never)]
    pub(crate) fn opt_u64(&mut self, what: &str) -> JsonResult<Option<u64>> {
        if self.null() {
            Ok(None)
        } else {
            self.u64(what).map(Some)
        }
    }

    /// A string, or `null` for none.
    #[inline(never)]
    pub(crate) fn opt_string(&mut self, what: &str) -> JsonResult<Option<Cow<'a, str>>> {
        if self.null() {
            Ok(None)
        } else {
            self.string(what).map(Some)
        }
    }

    /// Any number, as a double.
    #[inline(never)]
    pub(crate) fn f64(&mut self, what: &str) -> JsonResult<f64> {
        if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
            return self.mismatch(what, "a number");
        }
        let start = self.pos;
        let (text, _) = self.number_text()?;
        match crate::decimal::parse_f64(text) {
            Some(x) => Ok(x),
            None => {
                self.pos = start;
                Err(self.error(format!(
                    "{what}: number {} is out of range: expected a finite double",
                    shown_plain(text)
                )))
            }
        }
    }

    fn number(&mut self, what: &str) -> JsonResult<Value> {
        if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
            return self.mismatch(what, "a number");
        }
        let start = self.pos;
        let (text, integer) = self.number_text()?;
        if integer {
            if let Ok(n) = text.parse::<u64>() {
                return Ok(Value::Number(n.into()));
            }
            match text.parse::<i64>() {
                // serde_json reads `-0` as the double -0.0.
                Ok(0) => {}
                Ok(n) => return Ok(Value::Number(n.into())),
                Err(_) => {}
            }
        }
        match crate::decimal::parse_f64(text).and_then(Number::from_f64) {
            Some(n) => Ok(Value::Number(n)),
            None => {
                self.pos = start;
                Err(self.error(format!(
                    "{what}: number {} is out of range: expected a finite double",
                    shown_plain(text)
                )))
            }
        }
    }

    /// Any JSON value.
    pub(crate) fn value(&mut self) -> JsonResult<Value> {
        match self.peek() {
            Some(b'{') => {
                let mut map = Map::new();
                self.object("object", |r, key| {
                    let v = r.value()?;
                    map.insert(key.into_owned(), v);
                    Ok(())
                })?;
                Ok(Value::Object(map))
            }
            Some(b'[') => {
                let mut items = Vec::new();
                self.array("array", |r| {
                    items.push(r.value()?);
                    Ok(())
                })?;
                Ok(Value::Array(items))
            }
            Some(b'"') => Ok(Value::String(self.string("string")?.into_owned())),
            Some(b'-' | b'0'..=b'9') => self.number("number"),
            Some(b't') if self.literal("true") => Ok(Value::Bool(true)),
            Some(b'f') if self.literal("false") => Ok(Value::Bool(false)),
            Some(b'n') if self.literal("null") => Ok(Value::Null),
            None => Err(self.error("end of the text: expected a JSON value")),
            Some(_) => Err(self.error("expected a JSON value")),
        }
    }

    /// Reads and drops a value (an unknown field).
    #[inline(never)]
    pub(crate) fn skip(&mut self) -> JsonResult<()> {
        self.value().map(drop)
    }

    /// A metadata object, or `null` for none.
    #[inline(never)]
    pub(crate) fn opt_metadata(&mut self, what: &str) -> JsonResult<Option<Metadata>> {
        if self.null() {
            return Ok(None);
        }
        let mut map = Metadata::new();
        self.object(what, |r, key| {
            let v = r.value()?;
            map.insert(key.into_owned(), v);
            Ok(())
        })?;
        Ok(Some(map))
    }
}

/// Reads the fields of an object into a struct: each field at most once, required
/// ones present, unknown ones skipped (as serde does without `deny_unknown_fields`).
pub(crate) struct Fields {
    seen: u64,
}

impl Fields {
    pub(crate) fn new() -> Self {
        Self { seen: 0 }
    }

    /// Marks field number `i` (< 64) as read; a second time is an error.
    #[inline(never)]
    pub(crate) fn first(&mut self, r: &Reader<'_>, i: u32, name: &str) -> JsonResult<()> {
        let bit = 1u64 << i;
        if self.seen & bit != 0 {
            return Err(r.error(format!(
                "duplicate field `{name}`: expected each field once"
            )));
        }
        self.seen |= bit;
        Ok(())
    }

    /// Fails naming the first of `required` (field numbers and names) not read.
    #[inline(never)]
    pub(crate) fn require(
        &self,
        r: &Reader<'_>,
        what: &str,
        required: &[(u32, &str)],
    ) -> JsonResult<()> {
        match required.iter().find(|(i, _)| self.seen & (1u64 << i) == 0) {
            None => Ok(()),
            Some((_, name)) => Err(r.error(format!("{what}: missing field `{name}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same_as_serde(text: &str) {
        let ours = read_value(text);
        let theirs = serde_json::from_str::<Value>(text);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text:?}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{text:?}: ours {ours:?}, serde_json {theirs:?}"),
        }
    }

    #[test]
    fn values_read_as_serde_json_reads_them() {
        for text in [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "1",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "1.5",
            "-2.5e-3",
            "1E400",
            "1e-400",
            "0.1",
            "123456789012345678901234567890",
            "\"\"",
            "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"",
            "\"\\u00e9\\ud83d\\ude00\"",
            "\"é😀\"",
            "[]",
            "{}",
            " [1, [2, [3]], {\"a\": {\"b\": null}}] ",
            "{\"a\":1,\"a\":2}",
            // Malformed: both refuse.
            "",
            " ",
            "[",
            "]",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1,]",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "+1",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"a\nb\"",
            "tru",
            "nul",
            "[1] 2",
            "{\"a\" 1}",
            "\"unterminated",
            "[1 2]",
        ] {
            same_as_serde(text);
        }
    }

    #[test]
    fn nesting_is_limited_like_serde_json() {
        let ok = format!("{}{}", "[".repeat(MAX_NESTING), "]".repeat(MAX_NESTING));
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_NESTING + 1),
            "]".repeat(MAX_NESTING + 1)
        );
        same_as_serde(&ok);
        same_as_serde(&deep);
        assert!(read_value(&deep)
            .unwrap_err()
            .message
            .contains("nesting deeper than 127"));
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = read_value("{\n  \"a\": [1, 2,\n  ]}").unwrap_err();
        assert_eq!((e.line, e.column), (3, 3));
        assert_eq!(e.to_string(), "expected a JSON value at line 3 column 3");
        let e = read_metadata("[1]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "metadata: expected an object, found an array at line 1 column 1"
        );
        let mut r = Reader::new(" -1");
        assert_eq!(
            r.u64("index").unwrap_err().to_string(),
            "index: expected a whole number from 0 to 2^64-1, found -1 at line 1 column 2"
        );
        let mut r = Reader::new("\"7\"");
        assert_eq!(
            r.u64("index").unwrap_err().to_string(),
            "index: expected a whole number, found a string at line 1 column 1"
        );
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let mut r = Reader::new("\"thread_abc\"");
        assert!(matches!(r.string("s"), Ok(Cow::Borrowed("thread_abc"))));
        let mut r = Reader::new("\"a\\nb\"");
        assert_eq!(r.string("s").unwrap(), "a\nb");
    }

    proptest! {
        #[test]
        fn any_serde_json_value_reads_back_equal(v in arb_value()) {
            let text = serde_json::to_string(&v).unwrap();
            prop_assert_eq!(read_value(&text).unwrap(), v.clone());
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            prop_assert_eq!(read_value(&pretty).unwrap(), v);
        }

        #[test]
        fn any_text_reads_as_serde_json_reads_it(text in "[\\[\\]{}\",:0-9.eE+\\-a-z\\\\ \n]{0,40}") {
            same_as_serde(&text);
        }

        #[test]
        fn any_number_text_reads_as_serde_json_reads_it(
            text in "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?"
        ) {
            let Ok(ours) = read_value(&text) else {
                // Out of a double's range: refused by both.
                prop_assert!(serde_json::from_str::<Value>(&text).is_err());
                return Ok(());
            };
            if text.contains(['.', 'e', 'E']) || text.len() > 18 {
                // Fractions: correctly rounded, as `str::parse` reads them.
                prop_assert_eq!(ours.as_f64(), text.parse::<f64>().ok());
            } else {
                prop_assert_eq!(ours, serde_json::from_str::<Value>(&text).unwrap());
            }
        }
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
