//! `UserContext`: the ids of one user's operation, validated by Netra's rules
//! (section 3 of the contract). Immutable once built: a thread id set at creation is
//! never changed behind the caller's back.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::ContextError;
use crate::ids::{IdGenerator, MAX_ID_LEN};

/// Values (any case) that are never a real id.
const PLACEHOLDER_VALUES: &[&str] = &[
    "registry",
    "placeholder",
    "default",
    "temp",
    "none",
    "null",
    "undefined",
    "0",
    "1",
    "xxx",
    "yyy",
    "example",
    "test",
    "demo",
    "sample",
    "template",
    "mock",
    "fake",
    "dummy",
];
/// Prefixes that mark a placeholder when the value is shorter than
/// [`PLACEHOLDER_PREFIX_MAX_LEN`] characters.
const PLACEHOLDER_PREFIXES: &[&str] = &[
    "placeholder_",
    "registry_",
    "default_",
    "temp_",
    "example_",
    "demo_",
    "sample_",
    "template_",
    "mock_",
    "fake_",
];
/// `test_` is a placeholder prefix only outside test environments.
const TEST_PREFIX: &str = "test_";
const PLACEHOLDER_PREFIX_MAX_LEN: usize = 20;
/// Deepest `operation_depth` accepted (child contexts of child contexts ...).
pub const MAX_OPERATION_DEPTH: u64 = 10_000;

/// Free-form JSON-like metadata attached to a context.
pub type Metadata = BTreeMap<String, serde_json::Value>;

/// Where a context is validated: test environments allow `test_` ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationRules {
    /// A test environment: ids with the `test_` prefix are allowed (the exact value
    /// `test` is still a placeholder).
    pub test_mode: bool,
}

impl ValidationRules {
    /// Outside test environments: `test_` is a placeholder prefix too.
    pub const PRODUCTION: Self = Self { test_mode: false };
    /// In test environments: `test_` ids are allowed.
    pub const TEST: Self = Self { test_mode: true };
}

/// One user's execution context (Netra's `UserExecutionContext`).
///
/// The five ids share one reference-counted text, `{user}:{thread}{run}{request}{client}`:
/// its first part is the canonical isolation key, so a registry files the manager (and
/// its events) under the context's own text. A clone is a reference-count increment, and
/// the context is 48 bytes inline: a registry holds a million of them.
#[derive(Clone, PartialEq)]
pub struct UserContext {
    text: Arc<str>,
    /// Where the user id, the thread id (the key), the run id and the request id end in
    /// `text`; the WebSocket client id, when there is one, is the rest.
    ends: [u32; 4],
    has_websocket_client_id: bool,
    /// Rarely set; boxed so a registry holding a million contexts stays small.
    extra: Option<Box<ContextExtra>>,
}

impl UserContext {
    /// Packs the ids; `None` when they are too long for the offsets (over 4 GiB, which
    /// only unvalidated input such as a deserialised one could reach).
    fn pack(
        ids: [&str; 4],
        websocket_client_id: Option<&str>,
        extra: Option<Box<ContextExtra>>,
    ) -> Option<Self> {
        let ws = websocket_client_id.unwrap_or("");
        let len = ids.iter().map(|s| s.len()).sum::<usize>() + 1 + ws.len();
        u32::try_from(len).ok()?;
        let mut text = String::with_capacity(len);
        let mut ends = [0u32; 4];
        for (i, (end, id)) in ends.iter_mut().zip(ids).enumerate() {
            if i == 1 {
                text.push(':');
            }
            text.push_str(id);
            *end = text.len() as u32;
        }
        text.push_str(ws);
        Some(Self {
            text: Arc::from(text),
            ends,
            has_websocket_client_id: websocket_client_id.is_some(),
            extra,
        })
    }

    /// The id between two offsets of `text` (always char boundaries: ids end there).
    fn part(&self, from: usize, to: usize) -> &str {
        self.text.get(from..to).unwrap_or_default()
    }

    /// The canonical isolation key `{user_id}:{thread_id}` as text, without building it
    /// (a slice of the context's ids).
    pub fn key_text(&self) -> &str {
        self.part(0, self.ends[1] as usize)
    }

    /// The shared text the key is the start of, for holders that outlive this context
    /// (the registry's events): `&text[..key_len]` is the key.
    pub(crate) fn shared_text(&self) -> (&Arc<str>, u32) {
        (&self.text, self.ends[1])
    }
}

/// Written field by field, as the five separate strings were.
impl std::fmt::Debug for UserContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserContext")
            .field("user_id", &self.user_id())
            .field("thread_id", &self.thread_id())
            .field("run_id", &self.run_id())
            .field("request_id", &self.request_id())
            .field("websocket_client_id", &self.websocket_client_id())
            .field("extra", &self.extra)
            .finish()
    }
}

/// The serialised form: the five ids as fields, `extra` only when set.
#[derive(Serialize)]
struct ContextFields<'a> {
    user_id: &'a str,
    thread_id: &'a str,
    run_id: &'a str,
    request_id: &'a str,
    websocket_client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra: Option<&'a ContextExtra>,
}

#[derive(Deserialize)]
struct OwnedContextFields {
    user_id: String,
    thread_id: String,
    run_id: String,
    request_id: String,
    websocket_client_id: Option<String>,
    #[serde(default)]
    extra: Option<Box<ContextExtra>>,
}

impl Serialize for UserContext {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ContextFields {
            user_id: self.user_id(),
            thread_id: self.thread_id(),
            run_id: self.run_id(),
            request_id: self.request_id(),
            websocket_client_id: self.websocket_client_id(),
            extra: self.extra.as_deref(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for UserContext {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Validated as `build` does, under the test rules (the more permissive: a
        // context built in a test environment reads back), so a deserialised context
        // meets every invariant a registry relies on (no ':' in the user id, no empty
        // or over-long id).
        let f = OwnedContextFields::deserialize(d)?;
        let extra = f.extra.as_deref();
        validate_fields(
            [&f.user_id, &f.thread_id, &f.run_id, &f.request_id],
            f.websocket_client_id.as_deref(),
            extra.and_then(|e| e.parent_request_id.as_deref()),
            extra.map_or(0, |e| e.operation_depth),
            ValidationRules::TEST,
        )
        .map_err(serde::de::Error::custom)?;
        Self::pack(
            [&f.user_id, &f.thread_id, &f.run_id, &f.request_id],
            f.websocket_client_id.as_deref(),
            f.extra,
        )
        .ok_or_else(|| serde::de::Error::custom("context ids longer than 4 GiB in all"))
    }
}

/// The optional parts of a context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ContextExtra {
    agent_context: Metadata,
    audit_metadata: Metadata,
    operation_depth: u64,
    parent_request_id: Option<String>,
}

static NO_METADATA: Metadata = Metadata::new();

/// Builds a [`UserContext`]; `build` validates every field.
#[derive(Debug, Clone)]
pub struct ContextBuilder {
    user_id: String,
    thread_id: String,
    run_id: String,
    request_id: Option<String>,
    websocket_client_id: Option<String>,
    agent_context: Metadata,
    audit_metadata: Metadata,
    operation_depth: u64,
    parent_request_id: Option<String>,
    rules: ValidationRules,
}

impl ContextBuilder {
    /// The request id; without one, [`ContextBuilder::build`] mints a UUID v4.
    pub fn request_id(mut self, v: impl Into<String>) -> Self {
        self.request_id = Some(v.into());
        self
    }
    /// The WebSocket client id (none by default). Optional, so it may be blank, but not
    /// over [`MAX_ID_LEN`] bytes or hold control characters.
    pub fn websocket_client_id(mut self, v: Option<String>) -> Self {
        self.websocket_client_id = v;
        self
    }
    /// The agent's metadata, kept as given (empty by default).
    pub fn agent_context(mut self, v: Metadata) -> Self {
        self.agent_context = v;
        self
    }
    /// Audit metadata, kept as given (empty by default).
    pub fn audit_metadata(mut self, v: Metadata) -> Self {
        self.audit_metadata = v;
        self
    }
    /// How many contexts this one is nested under: 0 (the default) for a top-level one,
    /// at most [`MAX_OPERATION_DEPTH`].
    pub fn operation_depth(mut self, v: u64) -> Self {
        self.operation_depth = v;
        self
    }
    /// The request id of the context this one runs under (none by default). Checked as
    /// the WebSocket client id is.
    pub fn parent_request_id(mut self, v: Option<String>) -> Self {
        self.parent_request_id = v;
        self
    }
    /// Where the context is validated; [`ValidationRules::PRODUCTION`] by default.
    pub fn rules(mut self, rules: ValidationRules) -> Self {
        self.rules = rules;
        self
    }

    /// Validates and builds. A missing request id becomes a UUID v4 from `ids`.
    pub fn build(mut self, ids: &IdGenerator) -> Result<UserContext, ContextError> {
        let request_id = match self.request_id.take() {
            Some(r) => r,
            None => ids.uuid_v4(),
        };
        self.build_with_request_id(request_id)
    }

    /// Validates and builds with a request id already chosen.
    pub fn build_with_request_id(self, request_id: String) -> Result<UserContext, ContextError> {
        validate_fields(
            [&self.user_id, &self.thread_id, &self.run_id, &request_id],
            self.websocket_client_id.as_deref(),
            self.parent_request_id.as_deref(),
            self.operation_depth,
            self.rules,
        )?;
        let extra = ContextExtra {
            agent_context: self.agent_context,
            audit_metadata: self.audit_metadata,
            operation_depth: self.operation_depth,
            parent_request_id: self.parent_request_id,
        };
        let extra = (extra != ContextExtra::default()).then(|| Box::new(extra));
        // Each id is at most MAX_ID_LEN bytes here, so the packing always fits.
        UserContext::pack(
            [&self.user_id, &self.thread_id, &self.run_id, &request_id],
            self.websocket_client_id.as_deref(),
            extra,
        )
        .ok_or(ContextError::TooLong {
            field: "request_id",
            len: request_id.len(),
            max: MAX_ID_LEN,
        })
    }
}

/// Every rule a context's fields must meet.
fn validate_fields(
    [user_id, thread_id, run_id, request_id]: [&str; 4],
    websocket_client_id: Option<&str>,
    parent_request_id: Option<&str>,
    operation_depth: u64,
    r: ValidationRules,
) -> Result<(), ContextError> {
    validate_user_id(user_id, r)?;
    validate_id("thread_id", thread_id, r)?;
    validate_id("run_id", run_id, r)?;
    validate_id("request_id", request_id, r)?;
    if let Some(ws) = websocket_client_id {
        validate_optional_id("websocket_client_id", ws)?;
    }
    if let Some(p) = parent_request_id {
        validate_optional_id("parent_request_id", p)?;
    }
    if operation_depth > MAX_OPERATION_DEPTH {
        return Err(ContextError::Depth {
            value: operation_depth,
            max: MAX_OPERATION_DEPTH,
        });
    }
    Ok(())
}

impl UserContext {
    /// Starts a context from its three required ids.
    pub fn builder(
        user_id: impl Into<String>,
        thread_id: impl Into<String>,
        run_id: impl Into<String>,
    ) -> ContextBuilder {
        ContextBuilder {
            user_id: user_id.into(),
            thread_id: thread_id.into(),
            run_id: run_id.into(),
            request_id: None,
            websocket_client_id: None,
            agent_context: Metadata::new(),
            audit_metadata: Metadata::new(),
            operation_depth: 0,
            parent_request_id: None,
            rules: ValidationRules::PRODUCTION,
        }
    }

    /// The single way to mint a correlated context for a WebSocket connection
    /// (Netra's `from_websocket_request`): thread, run and request ids from one
    /// `user_context_ids` call, and a new `ws_client_` id when none is given.
    pub fn for_websocket(
        ids: &IdGenerator,
        user_id: &str,
        operation: &str,
        websocket_client_id: Option<&str>,
        rules: ValidationRules,
    ) -> Result<UserContext, ContextError> {
        validate_user_id(user_id, rules)?;
        let minted = ids.user_context_ids(user_id, operation)?;
        let ws = match websocket_client_id {
            Some(w) => w.to_owned(),
            None => ids.websocket_client_id(user_id, None)?,
        };
        UserContext::builder(user_id, minted.thread_id(), minted.run_id())
            .websocket_client_id(Some(ws))
            .rules(rules)
            .build_with_request_id(minted.request_id().to_owned())
    }

    /// The user this context belongs to (never holds `:`).
    pub fn user_id(&self) -> &str {
        self.part(0, self.ends[0] as usize)
    }
    /// The conversation's thread id, the second half of the isolation key.
    pub fn thread_id(&self) -> &str {
        // After the ':' that ends the user id.
        self.part(self.ends[0] as usize + 1, self.ends[1] as usize)
    }
    /// The id of this run in the thread.
    pub fn run_id(&self) -> &str {
        self.part(self.ends[1] as usize, self.ends[2] as usize)
    }
    /// The id of this request (a UUID v4 when the builder was given none).
    pub fn request_id(&self) -> &str {
        self.part(self.ends[2] as usize, self.ends[3] as usize)
    }
    /// The WebSocket client id, when the context has one.
    pub fn websocket_client_id(&self) -> Option<&str> {
        self.has_websocket_client_id
            .then(|| self.part(self.ends[3] as usize, self.text.len()))
    }
    /// The agent's metadata (empty when none was given).
    pub fn agent_context(&self) -> &Metadata {
        self.extra
            .as_ref()
            .map_or(&NO_METADATA, |e| &e.agent_context)
    }
    /// Audit metadata (empty when none was given).
    pub fn audit_metadata(&self) -> &Metadata {
        self.extra
            .as_ref()
            .map_or(&NO_METADATA, |e| &e.audit_metadata)
    }
    /// How many contexts this one is nested under (0 for a top-level one).
    pub fn operation_depth(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.operation_depth)
    }
    /// The request id of the context this one runs under, if any.
    pub fn parent_request_id(&self) -> Option<&str> {
        self.extra
            .as_ref()
            .and_then(|e| e.parent_request_id.as_deref())
    }

    /// The canonical isolation key `{user_id}:{thread_id}` of this context.
    pub fn isolation_key(&self) -> crate::key::IsolationKey {
        crate::key::IsolationKey::from_valid_parts(self.user_id(), self.thread_id())
    }
}

pub(crate) fn validate_optional_id(field: &'static str, value: &str) -> Result<(), ContextError> {
    if value.len() > MAX_ID_LEN {
        return Err(ContextError::TooLong {
            field,
            len: value.len(),
            max: MAX_ID_LEN,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(ContextError::ControlCharacter {
            field,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// The structural rules every id obeys, wherever it comes from: not empty or blank, at
/// most `MAX_ID_LEN` bytes, no control characters. (Placeholder rules are the context's.)
pub(crate) fn validate_present(field: &'static str, value: &str) -> Result<(), ContextError> {
    // Fast path: printable ASCII with no space passes every rule below.
    let b = value.as_bytes();
    if !b.is_empty() && b.len() <= MAX_ID_LEN && b.iter().all(|&c| c > b' ' && c < 0x7f) {
        return Ok(());
    }
    if value.chars().all(char::is_whitespace) {
        return Err(ContextError::Empty {
            field,
            value: value.to_owned(),
        });
    }
    validate_optional_id(field, value)
}

/// `value.to_lowercase()` as far as comparing it with the (ASCII) placeholder values and
/// prefixes can tell: ASCII letters lowered, and the only two non-ASCII characters whose
/// lowercase holds ASCII (KELVIN SIGN to `k`, U+0130 to `i` and a combining dot) mapped
/// as `to_lowercase` maps them; every other character kept as it is (its lowercase is not
/// ASCII either, so no comparison can differ). Spares the wasm build the Unicode case
/// tables.
fn placeholder_lower(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\u{212A}' => out.push('k'),
            '\u{130}' => out.push_str("i\u{307}"),
            c => out.push(c.to_ascii_lowercase()),
        }
    }
    out
}

/// Netra's required-id rules: non-empty, not blank, no placeholder value or prefix.
pub fn validate_id(
    field: &'static str,
    value: &str,
    rules: ValidationRules,
) -> Result<(), ContextError> {
    validate_present(field, value)?;
    let lower = placeholder_lower(value);
    if PLACEHOLDER_VALUES.contains(&lower.as_str()) {
        return Err(ContextError::Placeholder {
            field,
            value: value.to_owned(),
        });
    }
    // Fewer than N characters: the first N are not all there (no full count needed).
    if value.chars().nth(PLACEHOLDER_PREFIX_MAX_LEN - 1).is_none() {
        let prefixes = PLACEHOLDER_PREFIXES
            .iter()
            .chain((!rules.test_mode).then_some(&TEST_PREFIX));
        for &prefix in prefixes {
            if lower.starts_with(prefix) {
                return Err(ContextError::PlaceholderPrefix {
                    field,
                    value: value.to_owned(),
                    prefix,
                });
            }
        }
    }
    Ok(())
}

/// A user id follows the required-id rules and may not contain `:`, which separates user
/// and thread in isolation keys.
pub fn validate_user_id(value: &str, rules: ValidationRules) -> Result<(), ContextError> {
    validate_id("user_id", value, rules)?;
    if value.contains(':') {
        return Err(ContextError::ColonInUserId {
            value: value.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::entropy::SeededEntropy;
    use std::sync::Arc;

    #[test]
    fn placeholder_lower_compares_as_to_lowercase_does() {
        let words: Vec<&str> = PLACEHOLDER_VALUES
            .iter()
            .chain(PLACEHOLDER_PREFIXES)
            .chain([&TEST_PREFIX])
            .copied()
            .collect();
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            for s in [
                c.to_string(),
                format!("Fake_{c}"),
                format!("N{c}LL"),
                format!("{c}x"),
            ] {
                let (ours, std) = (placeholder_lower(&s), s.to_lowercase());
                for w in &words {
                    assert_eq!(ours == *w, std == *w, "{s:?} vs {w}");
                    assert_eq!(ours.starts_with(w), std.starts_with(w), "{s:?} vs {w}");
                }
            }
        }
        assert_eq!(placeholder_lower("NULL"), "null");
        assert_eq!(placeholder_lower("\u{212A}"), "k");
    }

    fn ids() -> IdGenerator {
        IdGenerator::new(
            Arc::new(ManualClock::new(1_764_000_000_000)),
            SeededEntropy::from_seed(3),
        )
    }

    #[test]
    fn valid_context_gets_a_uuid_request_id() {
        let c = UserContext::builder("user123", "thread_ws_1_abcdef12", "run_ws_1_abcdef12")
            .build(&ids())
            .unwrap();
        assert_eq!(c.request_id().len(), 36);
        assert_eq!(
            c.isolation_key().to_string(),
            "user123:thread_ws_1_abcdef12"
        );
    }

    #[test]
    fn placeholders_and_blanks_are_refused() {
        let g = ids();
        for (user, expect) in [
            ("", "Empty"),
            ("   ", "Empty"),
            ("NULL", "Placeholder"),
            ("Dummy", "Placeholder"),
            ("0", "Placeholder"),
            ("mock_user", "PlaceholderPrefix"),
            ("test_user", "PlaceholderPrefix"),
            ("a:b", "ColonInUserId"),
            ("a\0b", "ControlCharacter"),
        ] {
            let e = UserContext::builder(user, "thread_ws_1_abcdef12", "run_ws_1_abcdef12")
                .build(&g)
                .unwrap_err();
            assert!(format!("{e:?}").starts_with(expect), "{user:?}: {e:?}");
        }
        // Long values may carry a placeholder prefix.
        assert!(
            UserContext::builder("mock_user_with_a_long_name", "thread_x", "run_x")
                .build(&g)
                .is_ok()
        );
        // test_ is fine in test mode.
        assert!(UserContext::builder("test_user", "thread_x", "run_x")
            .rules(ValidationRules::TEST)
            .build(&g)
            .is_ok());
        let e = UserContext::builder("u1", "thread_x", "x".repeat(MAX_ID_LEN + 1))
            .build(&g)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "run_id is 1025 bytes long: expected at most 1024"
        );
    }

    #[test]
    fn packed_ids_read_back_serialise_and_print_as_five_fields() {
        let c = UserContext::builder("u1", "thread_ws_1_abcdef12", "run_ws_1_abcdef12")
            .websocket_client_id(Some("ws_client_u1_1_2_abcdef12".into()))
            .build_with_request_id("req_ws_2_12345678".into())
            .unwrap();
        assert_eq!(
            (c.user_id(), c.thread_id(), c.run_id(), c.request_id()),
            (
                "u1",
                "thread_ws_1_abcdef12",
                "run_ws_1_abcdef12",
                "req_ws_2_12345678"
            )
        );
        assert_eq!(c.websocket_client_id(), Some("ws_client_u1_1_2_abcdef12"));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"user_id":"u1","thread_id":"thread_ws_1_abcdef12","run_id":"run_ws_1_abcdef12","request_id":"req_ws_2_12345678","websocket_client_id":"ws_client_u1_1_2_abcdef12"}"#
        );
        assert_eq!(serde_json::from_str::<UserContext>(&json).unwrap(), c);
        assert_eq!(
            format!("{c:?}"),
            r#"UserContext { user_id: "u1", thread_id: "thread_ws_1_abcdef12", run_id: "run_ws_1_abcdef12", request_id: "req_ws_2_12345678", websocket_client_id: Some("ws_client_u1_1_2_abcdef12"), extra: None }"#
        );
        // No client id, one extra field; an empty client id is still a client id.
        let d = UserContext::builder("u1", "thread_ws_1_abcdef12", "run_ws_1_abcdef12")
            .operation_depth(3)
            .build_with_request_id("req_ws_2_12345678".into())
            .unwrap();
        assert_eq!(d.websocket_client_id(), None);
        assert_eq!(d.request_id(), "req_ws_2_12345678");
        assert_ne!(c, d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(
            json,
            r#"{"user_id":"u1","thread_id":"thread_ws_1_abcdef12","run_id":"run_ws_1_abcdef12","request_id":"req_ws_2_12345678","websocket_client_id":null,"extra":{"agent_context":{},"audit_metadata":{},"operation_depth":3,"parent_request_id":null}}"#
        );
        assert_eq!(serde_json::from_str::<UserContext>(&json).unwrap(), d);
        let e = UserContext::builder("u1", "thread_ws_1_abcdef12", "run_ws_1_abcdef12")
            .websocket_client_id(Some(String::new()))
            .build_with_request_id("req_ws_2_12345678".into())
            .unwrap();
        assert_eq!(e.websocket_client_id(), Some(""));
        assert_ne!(e, d);
        // Missing optional fields read as before.
        let f: UserContext = serde_json::from_str(
            r#"{"user_id":"a","thread_id":"b","run_id":"c","request_id":"d"}"#,
        )
        .unwrap();
        assert_eq!(
            (f.user_id(), f.thread_id(), f.run_id(), f.request_id()),
            ("a", "b", "c", "d")
        );
        assert_eq!(f.websocket_client_id(), None);
        // Read back only as `build` would make it: a ':' in the user id would file the
        // manager under another user's key.
        for (json, message) in [
            (
                r#"{"user_id":"a:b","thread_id":"thread_t","run_id":"run_t","request_id":"r"}"#,
                "user_id \"a:b\" contains ':'",
            ),
            (
                r#"{"user_id":"a","thread_id":"","run_id":"run_t","request_id":"r"}"#,
                "thread_id is required: got \"\"",
            ),
            (
                r#"{"user_id":"a","thread_id":"t","run_id":"r","request_id":"q","extra":{"agent_context":{},"audit_metadata":{},"operation_depth":99999999,"parent_request_id":null}}"#,
                "operation_depth 99999999",
            ),
        ] {
            let e = serde_json::from_str::<UserContext>(json)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(message), "{e}");
        }
        // Multi-byte text keeps its boundaries.
        let g = UserContext::builder("é", "thread_ü", "run_ß")
            .build_with_request_id("req_日本".into())
            .unwrap();
        assert_eq!(
            (g.user_id(), g.thread_id(), g.run_id(), g.request_id()),
            ("é", "thread_ü", "run_ß", "req_日本")
        );
        assert_eq!(std::mem::size_of::<UserContext>(), 48);
    }

    #[test]
    fn for_websocket_mints_correlated_ids() {
        let g = ids();
        let c = UserContext::for_websocket(
            &g,
            "user123",
            "websocket_factory",
            None,
            ValidationRules::PRODUCTION,
        )
        .unwrap();
        assert!(crate::ids::are_correlated(c.thread_id(), c.run_id()));
        assert!(c.request_id().starts_with("req_websocket_factory_2_"));
        assert!(c
            .websocket_client_id()
            .unwrap()
            .starts_with("ws_client_user123_"));
        assert!(
            UserContext::for_websocket(&g, "a:b", "op", None, ValidationRules::PRODUCTION).is_err()
        );
    }
}
