//! Isolation keys: `{user_id}:{thread_id}` since the leak fix, and the older
//! `{user_id}_{thread_id}_{run token}` still found in logs and reports.

use serde::{Deserialize, Serialize};

use crate::error::{ContextError, KeyError};
use crate::ids::MAX_ID_LEN;

/// Longest key accepted by [`IsolationKey::parse`], in bytes.
pub const MAX_KEY_LEN: usize = 2 * MAX_ID_LEN + 1;

/// How a parsed key was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "form")]
pub enum KeyForm {
    /// `{user_id}:{thread_id}`.
    Canonical,
    /// The older `{user_id}_{thread_id}_{run token}`.
    Legacy {
        /// The last `_` part of the key, after the thread id.
        run_token: String,
    },
}

/// A user id and the whole thread id it is filed under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IsolationKey {
    user_id: String,
    thread_id: String,
    /// `Some(run token)` for a key read in the older form.
    legacy_run_token: Option<String>,
}

impl IsolationKey {
    /// Builds the canonical key. Both ids must be present (not empty or blank, no control
    /// characters, at most `MAX_ID_LEN` bytes) and the user id may not contain `:`. No
    /// placeholder rules here: keys from any source are allowed.
    pub fn new(user_id: &str, thread_id: &str) -> Result<Self, KeyError> {
        check_user(user_id)?;
        check_thread(thread_id)?;
        Ok(Self::from_valid_parts(user_id, thread_id))
    }

    /// For parts a [`crate::context::UserContext`] has already validated.
    pub(crate) fn from_valid_parts(user_id: &str, thread_id: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            thread_id: thread_id.to_owned(),
            legacy_run_token: None,
        }
    }

    /// Parses either form. Canonical: everything before the first `:` is the user (a
    /// user id has no `:`), everything after it the thread, whole. Older form (no `:`):
    /// the user ends at the first `_thread_`, the run token is the last `_` part, and the
    /// thread is what lies between.
    pub fn parse(key: &str) -> Result<Self, KeyError> {
        let (user, thread, run_token) = Self::parse_parts(key)?;
        Ok(Self {
            user_id: user.to_owned(),
            thread_id: thread.to_owned(),
            legacy_run_token: run_token.map(str::to_owned),
        })
    }

    /// What [`IsolationKey::parse`] reads, as slices of `key`: user, thread and, for the
    /// older form, the run token. Same rules and errors, no allocation on success.
    pub(crate) fn parse_parts(key: &str) -> Result<(&str, &str, Option<&str>), KeyError> {
        if key.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong {
                len: key.len(),
                max: MAX_KEY_LEN,
            });
        }
        let unparsable = || KeyError::Unparsable {
            value: key.to_owned(),
        };
        if let Some((user, thread)) = key.split_once(':') {
            check_user(user).map_err(|_| unparsable())?;
            check_thread(thread).map_err(|_| unparsable())?;
            return Ok((user, thread, None));
        }
        let at = crate::ids::find_text(key, "_thread_").ok_or_else(unparsable)?;
        let user = &key[..at];
        let rest = &key[at + 1..];
        let (thread, run_token) = rest.rsplit_once('_').ok_or_else(unparsable)?;
        if user.is_empty() || run_token.is_empty() || thread.len() <= "thread_".len() {
            return Err(unparsable());
        }
        check_user(user).map_err(|_| unparsable())?;
        check_thread(thread).map_err(|_| unparsable())?;
        Ok((user, thread, Some(run_token)))
    }

    /// The user the key files under (never holds `:`).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The whole thread id, exactly as it went into the key.
    pub fn thread_id(&self) -> &str {
        &self.thread_id
    }

    /// How the key was written: canonical for one built with [`IsolationKey::new`].
    pub fn form(&self) -> KeyForm {
        match &self.legacy_run_token {
            None => KeyForm::Canonical,
            Some(t) => KeyForm::Legacy {
                run_token: t.clone(),
            },
        }
    }

    /// The canonical `{user_id}:{thread_id}`, whatever form the key was read in.
    pub fn canonical(&self) -> String {
        let mut s = String::with_capacity(self.user_id.len() + 1 + self.thread_id.len());
        s.push_str(&self.user_id);
        s.push(':');
        s.push_str(&self.thread_id);
        s
    }
}

/// Writes the key in the form it was read in.
impl std::fmt::Display for IsolationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.legacy_run_token {
            None => write!(f, "{}:{}", self.user_id, self.thread_id),
            Some(t) => write!(f, "{}_{}_{}", self.user_id, self.thread_id, t),
        }
    }
}

fn check_user(user_id: &str) -> Result<(), ContextError> {
    // Keys come from logs and other systems: the structural rules apply, the
    // placeholder rules (a matter of context validation) do not.
    if user_id.contains(':') {
        return Err(ContextError::ColonInUserId {
            value: user_id.to_owned(),
        });
    }
    crate::context::validate_present("user_id", user_id)
}

fn check_thread(thread_id: &str) -> Result<(), ContextError> {
    crate::context::validate_present("thread_id", thread_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_legacy_key() {
        let k =
            IsolationKey::parse("user123_thread_websocket_factory_1234567890_abc_def123_run456")
                .unwrap();
        assert_eq!(k.user_id(), "user123");
        assert_eq!(
            k.thread_id(),
            "thread_websocket_factory_1234567890_abc_def123"
        );
        assert_eq!(
            k.form(),
            KeyForm::Legacy {
                run_token: "run456".into()
            }
        );
        assert_eq!(
            k.to_string(),
            "user123_thread_websocket_factory_1234567890_abc_def123_run456"
        );
        assert_eq!(
            k.canonical(),
            "user123:thread_websocket_factory_1234567890_abc_def123"
        );
    }

    #[test]
    fn canonical_keys_keep_the_whole_thread() {
        let k = IsolationKey::parse("user123:thread_websocket_factory_5_abcd1234").unwrap();
        assert_eq!(k.thread_id(), "thread_websocket_factory_5_abcd1234");
        let k = IsolationKey::parse("u:a:b").unwrap();
        assert_eq!((k.user_id(), k.thread_id()), ("u", "a:b"));
        let built = IsolationKey::new("u", "different-thread-abcd1234").unwrap();
        assert_eq!(IsolationKey::parse(&built.to_string()).unwrap(), built);
    }

    #[test]
    fn bad_keys_are_clear_errors() {
        for bad in [
            "",
            ":",
            "u:",
            ":t",
            "plain",
            "user123_thread_",
            "user123_thread_x",
            "_thread_a_b",
            "u:\n",
            "u\0:t",
        ] {
            let e = IsolationKey::parse(bad).unwrap_err();
            assert!(e.to_string().contains("does not parse"), "{bad:?}: {e}");
        }
        assert!(matches!(
            IsolationKey::parse(&"x".repeat(10_000_000)),
            Err(KeyError::TooLong { .. })
        ));
        assert!(IsolationKey::new("a:b", "t").is_err());
        assert!(IsolationKey::new("a", " ").is_err());
    }
}
