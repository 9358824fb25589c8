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
    let cut = value.char_indices().nth(SHOWN_CHARS).map(|(i, _)| i);
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
    match value.char_indices().nth(SHOWN_CHARS) {
        None => value.into(),
        Some((cut, _)) => format!("{}… ({} bytes)", &value[..cut], value.len()).into(),
    }
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
    #[error("{what} {} is invalid: expected {expected}", shown(value))]
    InvalidPart {
        what: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("random_length {value} is out of range: expected 1 to 64 hex characters")]
    RandomLength { value: usize },
    #[error("batch count {value} is out of range: expected 0 to {max}")]
    BatchCount { value: usize, max: usize },
    #[error("connection timestamp {value} is invalid: expected finite Unix seconds from 0 to 253402300799")]
    Timestamp { value: String },
    #[error("id {} does not parse: expected {expected}", shown(value))]
    Unparsable {
        value: String,
        expected: &'static str,
    },
    #[error("could not seed the random generator from the operating system: {0}")]
    Seed(String),
}

/// Errors of [`crate::context::UserContext`] validation (Netra's `InvalidContextError`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContextError {
    #[error(
        "{field} is required: got {}, expected a non-empty, non-blank id",
        shown(value)
    )]
    Empty { field: &'static str, value: String },
    #[error("{field} {} is a placeholder value: expected a real id", shown(value))]
    Placeholder { field: &'static str, value: String },
    #[error(
        "{field} {} starts with the placeholder prefix {}: expected a real id",
        shown(value),
        shown(prefix)
    )]
    PlaceholderPrefix {
        field: &'static str,
        value: String,
        prefix: &'static str,
    },
    #[error(
        "user_id {} contains ':': expected no ':' (it separates user and thread in isolation keys)",
        shown(value)
    )]
    ColonInUserId { value: String },
    #[error(
        "{field} {} contains a control character: expected printable text",
        shown(value)
    )]
    ControlCharacter { field: &'static str, value: String },
    #[error("{field} is {len} bytes long: expected at most {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("operation_depth {value} is out of range: expected 0 to {max}")]
    Depth { value: u64, max: u64 },
    #[error(transparent)]
    Id(#[from] IdError),
}

/// Errors of isolation-key building and parsing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("isolation key {} does not parse: expected \"{{user_id}}:{{thread_id}}\" or the older \"{{user_id}}_thread_..._{{run token}}\"", shown(value))]
    Unparsable { value: String },
    #[error("isolation key is {len} bytes long: expected at most {max}")]
    TooLong { len: usize, max: usize },
    #[error(transparent)]
    Part(#[from] ContextError),
}

/// Errors of the session store.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    #[error(transparent)]
    Context(#[from] ContextError),
}

/// Errors of the manager registry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    #[error(
        "User {} has reached the maximum number of WebSocket managers ({max}).",
        shown_plain(user_id)
    )]
    LimitExceeded { user_id: String, max: usize },
    #[error(
        "{} user {}, but manager {} serves user {}: refused",
        connection_id.as_deref().map_or_else(|| "a message is for".to_owned(), |c| format!("connection {} belongs to", shown(c))),
        shown(connection_user),
        shown(key),
        shown(manager_user)
    )]
    IsolationViolation {
        key: String,
        manager_user: String,
        /// The connection refused; `None` for a message sent to another user.
        connection_id: Option<String>,
        connection_user: String,
    },
    #[error("no manager is registered under isolation key {}", shown(key))]
    UnknownManager { key: String },
    #[error("manager {} is inactive: expected an active manager", shown(key))]
    Inactive { key: String },
    #[error("registry setting {name} = {value} is invalid: expected {expected}")]
    Config {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Context(#[from] ContextError),
}

/// Errors of the tracker and its report JSON.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReportError {
    #[error(
        "report is {len} bytes: expected at most {max} (raise the limit if this report is trusted)"
    )]
    TooLarge { len: usize, max: usize },
    #[error("report nests {depth} levels deep: expected at most {max}")]
    TooDeep { depth: usize, max: usize },
    #[error("report cannot be read: {0}")]
    Json(String),
    #[error("report schema is {}: expected \"threadline.report/1\"", shown(found))]
    Schema { found: String },
    #[error("report field {field} is invalid: {problem}")]
    Field { field: String, problem: String },
    #[error("tracker capacity {value} is invalid: expected at least 1")]
    Capacity { value: usize },
    #[error("{field} nests more than {max} levels deep: expected at most {max}, so that a report holding it can be read back")]
    MetadataTooDeep { field: &'static str, max: usize },
    #[error("{field} is empty: expected a name such as {example:?}")]
    Empty {
        field: &'static str,
        example: &'static str,
    },
    #[error("{field} is {len} bytes long: expected at most {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
}

/// Stable, language-neutral names of every error case, `{concern}.{case}`, so bindings
/// and test vectors can name an error without matching on its message. A wrapped error
/// reports the case it wraps (`KeyError::Part(ContextError::Empty)` is `context.empty`).
impl IdError {
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
            RegistryError::Key(e) => e.kind(),
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
