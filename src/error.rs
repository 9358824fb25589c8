//! One error enum per concern. Every message names the offending value (shortened, see
//! [`shown`]) and what was expected, so a caller can act on it without a debugger.

use thiserror::Error;

/// How many characters of an offending value an error message quotes. A 10 MB input
/// must not become a 10 MB message.
const SHOWN_CHARS: usize = 64;

/// A value as error messages quote it: in double quotes, with `"`, `\\`, control
/// characters and invisible format characters (zero-width, bidi overrides) escaped the
/// way Rust writes them (`\n`, `\u{200b}`), cut after 64 characters with the full length
/// noted.
pub fn shown(value: &str) -> String {
    let cut = cut_at(value);
    let mut out = String::with_capacity(value.len().min(4 * SHOWN_CHARS) + 24);
    push_quoted(&mut out, &value[..cut.unwrap_or(value.len())]);
    if cut.is_some() {
        out.push_str("… (");
        out.push_str(&value.len().to_string());
        out.push_str(" bytes)");
    }
    out
}

/// A value as a message shows it unquoted (a number's text, or a user id where Netra's
/// message has it bare): as it is, or cut after 64 characters with the full length noted.
pub fn shown_plain(value: &str) -> std::borrow::Cow<'_, str> {
    match cut_at(value) {
        None => value.into(),
        Some(cut) => format!("{}… ({} bytes)", &value[..cut], value.len()).into(),
    }
}

/// Where a message cuts `value`: after 64 characters, or `None` when it is shorter.
fn cut_at(value: &str) -> Option<usize> {
    value.char_indices().nth(SHOWN_CHARS).map(|(i, _)| i)
}

/// Appends `value` quoted for a message. Written out rather than `{:?}`: Debug's
/// printability tables are about 10 KB of the WebAssembly package.
pub(crate) fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() || is_invisible_format(c) => {
                out.push_str("\\u{");
                out.push_str(&format!("{:x}", c as u32));
                out.push('}');
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Characters that change or hide text without showing: zero-width ones, bidi
/// controls, separators and the byte-order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

/// Errors of ID generation and ID parsing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    /// An argument is not of its form: a label (operation, prefix, type), a user id or
    /// a free-text id such as a thread id.
    #[error("{what} {} is invalid: expected {expected}", shown(value))]
    InvalidPart {
        /// Which argument, such as `operation` or `user_id`.
        what: &'static str,
        /// The value given.
        value: String,
        /// What the argument must be.
        expected: &'static str,
    },
    /// A `random_length` outside 1 to 64 hex characters.
    #[error("random_length {value} is out of range: expected 1 to 64 hex characters")]
    RandomLength {
        /// The length given.
        value: usize,
    },
    /// A batch count over [`crate::ids::MAX_BATCH`].
    #[error("batch count {value} is out of range: expected 0 to {max}")]
    BatchCount {
        /// The count given.
        value: usize,
        /// The largest count allowed.
        max: usize,
    },
    /// A connection timestamp that is not finite Unix seconds from 0 to 253402300799
    /// (the end of year 9999).
    #[error("connection timestamp {value} is invalid: expected finite Unix seconds from 0 to 253402300799")]
    Timestamp {
        /// The timestamp given, as text.
        value: String,
    },
    /// An id that does not parse as the format asked for (or is over
    /// [`crate::ids::MAX_ID_LEN`] bytes).
    #[error("id {} does not parse: expected {expected}", shown(value))]
    Unparsable {
        /// The id given.
        value: String,
        /// The format expected.
        expected: &'static str,
    },
    /// The operating system's random generator failed; the text is its error.
    #[error("could not seed the random generator from the operating system: {0}")]
    Seed(String),
}

/// Errors of [`crate::context::UserContext`] validation (Netra's `InvalidContextError`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContextError {
    /// A required id is empty or only whitespace.
    #[error(
        "{field} is required: got {}, expected a non-empty, non-blank id",
        shown(value)
    )]
    Empty {
        /// The field, such as `user_id`.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// A required id is a placeholder value such as `default` or `test` (in any case).
    #[error("{field} {} is a placeholder value: expected a real id", shown(value))]
    Placeholder {
        /// The field, such as `user_id`.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// A required id shorter than 20 characters starts with a placeholder prefix such as
    /// `temp_` (or `test_`, outside test mode).
    #[error(
        "{field} {} starts with the placeholder prefix {}: expected a real id",
        shown(value),
        shown(prefix)
    )]
    PlaceholderPrefix {
        /// The field, such as `user_id`.
        field: &'static str,
        /// The value given.
        value: String,
        /// The prefix found.
        prefix: &'static str,
    },
    /// A user id holds `:`, which separates user and thread in isolation keys.
    #[error(
        "user_id {} contains ':': expected no ':' (it separates user and thread in isolation keys)",
        shown(value)
    )]
    ColonInUserId {
        /// The user id given.
        value: String,
    },
    /// An id holds a control character.
    #[error(
        "{field} {} contains a control character: expected printable text",
        shown(value)
    )]
    ControlCharacter {
        /// The field, such as `user_id`.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// An id over its limit: [`crate::ids::MAX_ID_LEN`] bytes, less for a thread id a
    /// session derives a run id from.
    #[error("{field} is {len} bytes long: expected at most {max}")]
    TooLong {
        /// The field, such as `thread_id`.
        field: &'static str,
        /// Its length, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// An `operation_depth` over [`crate::context::MAX_OPERATION_DEPTH`].
    #[error("operation_depth {value} is out of range: expected 0 to {max}")]
    Depth {
        /// The depth given.
        value: u64,
        /// The deepest allowed.
        max: u64,
    },
    /// An id or label refused by the ID rules, such as an invalid operation.
    #[error(transparent)]
    Id(#[from] IdError),
}

/// Errors of isolation-key building and parsing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// A key in neither form, or with a user or thread that breaks the id rules.
    #[error("isolation key {} does not parse: expected \"{{user_id}}:{{thread_id}}\" or the older \"{{user_id}}_thread_..._{{run token}}\"", shown(value))]
    Unparsable {
        /// The key given.
        value: String,
    },
    /// A key over [`crate::key::MAX_KEY_LEN`] bytes.
    #[error("isolation key is {len} bytes long: expected at most {max}")]
    TooLong {
        /// Its length, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// A user or thread id given to [`crate::key::IsolationKey::new`] breaks the id rules.
    #[error(transparent)]
    Part(#[from] ContextError),
}

/// Errors of the session store.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    /// An id or the operation refused by the context rules.
    #[error(transparent)]
    Context(#[from] ContextError),
}

/// Errors of the manager registry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// A create refused: the user holds `max` managers even after stale cleanup.
    #[error(
        "User {} has reached the maximum number of WebSocket managers ({max}).",
        shown_plain(user_id)
    )]
    LimitExceeded {
        /// The user.
        user_id: String,
        /// The per-user limit.
        max: usize,
    },
    /// A connection or message of one user for another user's manager: refused.
    #[error(
        "{} user {}, but manager {} serves user {}: refused",
        connection_id.as_deref().map_or_else(|| "a message is for".to_owned(), |c| format!("connection {} belongs to", shown(c))),
        shown(connection_user),
        shown(key),
        shown(manager_user)
    )]
    IsolationViolation {
        /// The manager's canonical isolation key.
        key: String,
        /// The manager's user.
        manager_user: String,
        /// The connection refused; `None` for a message sent to another user.
        connection_id: Option<String>,
        /// The user the connection or message is for.
        connection_user: String,
    },
    /// No manager is registered under the key (canonical or older form).
    #[error("no manager is registered under isolation key {}", shown(key))]
    UnknownManager {
        /// The key given.
        key: String,
    },
    /// The manager was deactivated: it takes no connections or messages.
    #[error("manager {} is inactive: expected an active manager", shown(key))]
    Inactive {
        /// The manager's canonical isolation key.
        key: String,
    },
    /// A [`crate::registry::RegistryConfig`] setting out of range.
    #[error("registry setting {name} = {value} is invalid: expected {expected}")]
    Config {
        /// The setting.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// The range allowed.
        expected: &'static str,
    },
    /// An id refused, such as a connection id with a control character.
    #[error(transparent)]
    Context(#[from] ContextError),
}

/// Errors of the tracker and its report JSON.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReportError {
    /// A report over [`crate::tracker::ReportLimits::max_bytes`].
    #[error(
        "report is {len} bytes: expected at most {max} (raise the limit if this report is trusted)"
    )]
    TooLarge {
        /// Its size, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
    /// A report whose arrays and objects nest deeper than
    /// [`crate::tracker::ReportLimits::max_depth`].
    #[error("report nests {depth} levels deep: expected at most {max}")]
    TooDeep {
        /// How deep it nests.
        depth: usize,
        /// The deepest allowed.
        max: usize,
    },
    /// A report that is not JSON, or not of the report's shape; the text says what and
    /// where.
    #[error("report cannot be read: {0}")]
    Json(String),
    /// A report of a schema other than [`crate::tracker::SCHEMA`].
    #[error("report schema is {}: expected \"threadline.report/1\"", shown(found))]
    Schema {
        /// The schema it names, or `missing`.
        found: String,
    },
    /// A report field with a bad value, or lists and totals that disagree.
    #[error("report field {field} is invalid: {problem}")]
    Field {
        /// Where, such as `snapshots[3].index`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A tracker capacity of 0, given or read from a report.
    #[error("tracker capacity {value} is invalid: expected at least 1")]
    Capacity {
        /// The capacity given.
        value: usize,
    },
    /// Snapshot metadata or violation details nested deeper than
    /// [`crate::tracker::MAX_METADATA_DEPTH`] levels.
    #[error("{field} nests more than {max} levels deep: expected at most {max}, so that a report holding it can be read back")]
    MetadataTooDeep {
        /// `metadata` or `details`.
        field: &'static str,
        /// The deepest allowed.
        max: usize,
    },
    /// An empty operation, violation type or severity.
    #[error("{field} is empty: expected a name such as {example:?}")]
    Empty {
        /// Which name.
        field: &'static str,
        /// A good value, for the message.
        example: &'static str,
    },
    /// An operation, violation type or severity over [`crate::tracker::MAX_NAME_LEN`]
    /// bytes.
    #[error("{field} is {len} bytes long: expected at most {max}")]
    TooLong {
        /// Which name.
        field: &'static str,
        /// Its length, in bytes.
        len: usize,
        /// The limit, in bytes.
        max: usize,
    },
}

/// Stable, language-neutral names of every error case, `{concern}.{case}`, so bindings
/// and test vectors can name an error without matching on its message. A wrapped error
/// reports the case it wraps (`KeyError::Part(ContextError::Empty)` is `context.empty`).
impl IdError {
    /// The stable name of this error's case, such as `"id.unparsable"`.
    pub fn kind(&self) -> &'static str {
        match self {
            IdError::InvalidPart { .. } => "id.invalid_part",
            IdError::RandomLength { .. } => "id.random_length",
            IdError::BatchCount { .. } => "id.batch_count",
            IdError::Timestamp { .. } => "id.timestamp",
            IdError::Unparsable { .. } => "id.unparsable",
            IdError::Seed(_) => "id.seed",
        }
    }
}

impl ContextError {
    /// See [`IdError::kind`].
    pub fn kind(&self) -> &'static str {
        match self {
            ContextError::Empty { .. } => "context.empty",
            ContextError::Placeholder { .. } => "context.placeholder",
            ContextError::PlaceholderPrefix { .. } => "context.placeholder_prefix",
            ContextError::ColonInUserId { .. } => "context.colon_in_user_id",
            ContextError::ControlCharacter { .. } => "context.control_character",
            ContextError::TooLong { .. } => "context.too_long",
            ContextError::Depth { .. } => "context.depth",
            ContextError::Id(e) => e.kind(),
        }
    }
}

impl KeyError {
    /// See [`IdError::kind`].
    pub fn kind(&self) -> &'static str {
        match self {
            KeyError::Unparsable { .. } => "key.unparsable",
            KeyError::TooLong { .. } => "key.too_long",
            KeyError::Part(e) => e.kind(),
        }
    }
}

impl SessionError {
    /// See [`IdError::kind`].
    pub fn kind(&self) -> &'static str {
        match self {
            SessionError::Context(e) => e.kind(),
        }
    }
}

impl RegistryError {
    /// See [`IdError::kind`].
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryError::LimitExceeded { .. } => "registry.limit_exceeded",
            RegistryError::IsolationViolation { .. } => "registry.isolation_violation",
            RegistryError::UnknownManager { .. } => "registry.unknown_manager",
            RegistryError::Inactive { .. } => "registry.inactive",
            RegistryError::Config { .. } => "registry.config",
            RegistryError::Context(e) => e.kind(),
        }
    }
}

impl ReportError {
    /// See [`IdError::kind`].
    pub fn kind(&self) -> &'static str {
        match self {
            ReportError::TooLarge { .. } => "report.too_large",
            ReportError::TooDeep { .. } => "report.too_deep",
            ReportError::Json(_) => "report.json",
            ReportError::Schema { .. } => "report.schema",
            ReportError::Field { .. } => "report.field",
            ReportError::Capacity { .. } => "report.capacity",
            ReportError::Empty { .. } => "report.empty",
            ReportError::MetadataTooDeep { .. } => "report.metadata_too_deep",
            ReportError::TooLong { .. } => "report.too_long",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_quotes_short_values_whole() {
        assert_eq!(shown("a\0b"), "\"a\\0b\"");
    }

    #[test]
    fn shown_cuts_long_values_and_notes_length() {
        let long = "x".repeat(10_000_000);
        let s = shown(&long);
        assert!(s.len() < 100, "{s}");
        assert!(s.ends_with("(10000000 bytes)"), "{s}");
    }

    #[test]
    fn kinds_name_the_wrapped_case() {
        let e = KeyError::Part(ContextError::Empty {
            field: "user_id",
            value: String::new(),
        });
        assert_eq!(e.kind(), "context.empty");
        let e = RegistryError::Context(ContextError::Id(IdError::Seed("x".into())));
        assert_eq!(e.kind(), "id.seed");
        assert_eq!(
            ReportError::Empty {
                field: "operation",
                example: "manager_creation"
            }
            .kind(),
            "report.empty"
        );
    }

    #[test]
    fn shown_escapes_what_would_hide_or_break_the_message() {
        assert_eq!(
            shown("a\"b\\c\n\r\t\u{7}\u{9f}"),
            r#""a\"b\\c\n\r\t\u{7}\u{9f}""#
        );
        assert_eq!(
            shown("x\u{200b}y\u{202e}z\u{feff}"),
            r#""x\u{200b}y\u{202e}z\u{feff}""#
        );
        // Visible text, accents and emoji included, is quoted as it is.
        assert_eq!(shown("é 😀 ü"), "\"é 😀 ü\"");
        // The same text as Rust's `{:?}` for ASCII and control characters.
        for c in (0u8..128).map(char::from) {
            let s = c.to_string();
            assert_eq!(shown(&s), format!("{s:?}"), "{:?}", c);
        }
    }

    #[test]
    fn shown_cuts_on_a_char_boundary() {
        let long = "é".repeat(100);
        assert!(shown(&long).contains("(200 bytes)"));
    }
}
