//! The session store behind `get_or_create_user_session`: the fix at the root of the leak.
//! A connection asks "what are the ids of this conversation?" and gets the same thread
//! id every time, instead of minting a new one that no cleanup will ever look for.

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use serde::{Deserialize, Serialize};

use crate::context::{
    validate_id, validate_optional_id, validate_user_id, UserContext, ValidationRules,
};
use crate::error::SessionError;
use crate::ids::{check_label, IdGenerator, MANAGER_RUN_EXTRA, MAX_ID_LEN};

/// The session slot used when no thread id is given.
const DEFAULT_SLOT: &str = "default";

/// One conversation of one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The user the session belongs to.
    pub user_id: String,
    /// The thread id every call for this session hands out.
    pub thread_id: String,
    /// The current run: the latest `run_id` a call gave, or the one set at creation.
    pub run_id: String,
    /// The request id handed out by the latest call.
    pub request_id: String,
    /// The operation of the call that created the session (later calls keep it).
    pub operation: String,
    /// The `now_ms` of the call that created it (ms since the Unix epoch).
    pub created_ms: u64,
    /// The `now_ms` of the latest call that returned it: what
    /// [`SessionStore::cleanup_expired`] measures age from.
    pub last_access_ms: u64,
    /// How many calls returned this session.
    pub accesses: u64,
}

/// What one `get_or_create` call hands back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionIds {
    /// The session's thread id, the same on every call.
    pub thread_id: String,
    /// The session's current run id.
    pub run_id: String,
    /// A request id minted for this call.
    pub request_id: String,
    /// True when this call created the session.
    pub created: bool,
}

/// A table keyed by client-chosen ids: foldhash with a secret per-store seed.
type Table<V> = HashMap<String, V, FixedState>;

/// Sessions by user, then by slot (`thread_id` or `default`): per-user work touches only
/// that user's sessions.
#[derive(Debug)]
pub struct SessionStore {
    by_user: Table<Table<Session>>,
    hasher: FixedState,
    count: usize,
    rules: ValidationRules,
}

impl Default for SessionStore {
    fn default() -> Self {
        Self::new(ValidationRules::default())
    }
}

impl SessionStore {
    /// An empty store that validates ids by `rules`; its tables are keyed by a secret
    /// seed.
    pub fn new(rules: ValidationRules) -> Self {
        let hasher = FixedState::with_seed(crate::entropy::process_secret());
        Self {
            by_user: HashMap::with_hasher(hasher),
            hasher,
            count: 0,
            rules,
        }
    }

    /// The same thread id for the same `user_id:thread_id` (or `user_id:default`) on
    /// every call; a new request id on every call; a different `run_id` starts a new run
    /// in the same thread. A new session without a thread id mints correlated ids; one
    /// with a thread id but no run id gets a manager-format run id of that thread.
    pub fn get_or_create(
        &mut self,
        ids: &IdGenerator,
        user_id: &str,
        thread_id: Option<&str>,
        run_id: Option<&str>,
        operation: &str,
        now_ms: u64,
    ) -> Result<SessionIds, SessionError> {
        let rules = self.rules;
        validate_user_id(user_id, rules)?;
        if let Some(t) = thread_id {
            validate_id("thread_id", t, rules)?;
        }
        if let Some(r) = run_id {
            validate_id("run_id", r, rules)?;
        }
        check_label("operation", operation).map_err(crate::error::ContextError::from)?;
        let slot = thread_id.unwrap_or(DEFAULT_SLOT);
        if let Some(s) = self.by_user.get_mut(user_id).and_then(|m| m.get_mut(slot)) {
            let minted = ids
                .user_context_ids(user_id, operation)
                .map_err(crate::error::ContextError::from)?;
            if let Some(r) = run_id {
                if r != s.run_id {
                    s.run_id = r.to_owned();
                }
            }
            s.request_id = minted.request_id().to_owned();
            s.last_access_ms = now_ms;
            s.accesses += 1;
            return Ok(SessionIds {
                thread_id: s.thread_id.clone(),
                run_id: s.run_id.clone(),
                request_id: s.request_id.clone(),
                created: false,
            });
        }

        if let (Some(t), None) = (thread_id, run_id) {
            // A new session derives `run_{thread_id}_{ms % 100000}_{h8}` (at most 19 bytes
            // around the thread id), which must fit the id limit too; checked before
            // anything is minted, so a refused call changes nothing.
            let max = MAX_ID_LEN - MANAGER_RUN_EXTRA;
            if t.len() > max {
                return Err(crate::error::ContextError::TooLong {
                    field: "thread_id",
                    len: t.len(),
                    max,
                }
                .into());
            }
        }
        let minted = ids
            .user_context_ids(user_id, operation)
            .map_err(crate::error::ContextError::from)?;
        let (thread, run) = match (thread_id, run_id) {
            (Some(t), Some(r)) => (t.to_owned(), r.to_owned()),
            (Some(t), None) => (
                t.to_owned(),
                ids.manager_run_id(t)
                    .map_err(crate::error::ContextError::from)?,
            ),
            (None, Some(r)) => (minted.thread_id().to_owned(), r.to_owned()),
            (None, None) => (minted.thread_id().to_owned(), minted.run_id().to_owned()),
        };
        let session = Session {
            user_id: user_id.to_owned(),
            thread_id: thread,
            run_id: run,
            request_id: minted.request_id().to_owned(),
            operation: operation.to_owned(),
            created_ms: now_ms,
            last_access_ms: now_ms,
            accesses: 1,
        };
        let out = SessionIds {
            thread_id: session.thread_id.clone(),
            run_id: session.run_id.clone(),
            request_id: session.request_id.clone(),
            created: true,
        };
        let hasher = self.hasher;
        self.by_user
            .entry(user_id.to_owned())
            .or_insert_with(|| HashMap::with_hasher(hasher))
            .insert(slot.to_owned(), session);
        self.count += 1;
        Ok(out)
    }

    /// [`Self::get_or_create`], returned as a validated [`UserContext`].
    #[allow(clippy::too_many_arguments)]
    pub fn context(
        &mut self,
        ids: &IdGenerator,
        user_id: &str,
        thread_id: Option<&str>,
        run_id: Option<&str>,
        operation: &str,
        websocket_client_id: Option<String>,
        now_ms: u64,
    ) -> Result<UserContext, SessionError> {
        // Checked first: a refused call leaves the store and the id counter as they were.
        if let Some(ws) = &websocket_client_id {
            validate_optional_id("websocket_client_id", ws)?;
        }
        let s = self.get_or_create(ids, user_id, thread_id, run_id, operation, now_ms)?;
        Ok(UserContext::builder(user_id, s.thread_id, s.run_id)
            .websocket_client_id(websocket_client_id)
            .rules(self.rules)
            .build_with_request_id(s.request_id)?)
    }

    /// The session of `user_id:thread_id` (or `user_id:default`), if any.
    pub fn get_existing(&self, user_id: &str, thread_id: Option<&str>) -> Option<&Session> {
        self.by_user
            .get(user_id)?
            .get(thread_id.unwrap_or(DEFAULT_SLOT))
    }

    /// Drops sessions not used for more than `max_age_ms`; returns how many.
    pub fn cleanup_expired(&mut self, now_ms: u64, max_age_ms: u64) -> usize {
        let before = self.count;
        self.by_user.retain(|_, slots| {
            slots.retain(|_, s| now_ms.saturating_sub(s.last_access_ms) <= max_age_ms);
            !slots.is_empty()
        });
        self.count = self.by_user.values().map(HashMap::len).sum();
        before - self.count
    }

    /// Drops every session of one user; returns how many.
    pub fn invalidate_user(&mut self, user_id: &str) -> usize {
        let n = self.by_user.remove(user_id).map_or(0, |m| m.len());
        self.count -= n;
        n
    }

    /// Sessions held.
    pub fn active_count(&self) -> usize {
        self.count
    }

    /// Sessions held for one user.
    pub fn user_count(&self, user_id: &str) -> usize {
        self.by_user.get(user_id).map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::entropy::SeededEntropy;
    use std::sync::Arc;

    fn ids() -> IdGenerator {
        IdGenerator::new(
            Arc::new(ManualClock::new(1_764_000_000_000)),
            SeededEntropy::from_seed(9),
        )
    }

    #[test]
    fn same_thread_every_call_new_request_each_time() {
        let g = ids();
        let mut s = SessionStore::new(ValidationRules::PRODUCTION);
        let a = s.get_or_create(&g, "u1", None, None, "session", 0).unwrap();
        let b = s
            .get_or_create(&g, "u1", None, None, "session", 10)
            .unwrap();
        assert!(a.created && !b.created);
        assert_eq!(a.thread_id, b.thread_id);
        assert_eq!(a.run_id, b.run_id);
        assert_ne!(a.request_id, b.request_id);
        assert!(crate::ids::are_correlated(&a.thread_id, &a.run_id));
        let c = s
            .get_or_create(&g, "u1", None, Some("run_other_1_abcdef12"), "session", 20)
            .unwrap();
        assert_eq!(c.thread_id, a.thread_id);
        assert_eq!(c.run_id, "run_other_1_abcdef12");
        assert_eq!(s.active_count(), 1);
    }

    #[test]
    fn given_thread_is_kept_and_gets_a_correlated_run() {
        let g = ids();
        let mut s = SessionStore::new(ValidationRules::PRODUCTION);
        let a = s
            .get_or_create(&g, "u1", Some("thread_chat_9_abcdef12"), None, "session", 0)
            .unwrap();
        assert_eq!(a.thread_id, "thread_chat_9_abcdef12");
        assert!(crate::ids::are_correlated(&a.thread_id, &a.run_id));
        assert_eq!(
            s.get_existing("u1", Some("thread_chat_9_abcdef12"))
                .unwrap()
                .thread_id,
            a.thread_id
        );
        assert!(s.get_existing("u1", None).is_none());
    }

    #[test]
    fn expiry_and_invalidation() {
        let g = ids();
        let mut s = SessionStore::new(ValidationRules::PRODUCTION);
        s.get_or_create(&g, "u1", None, None, "session", 0).unwrap();
        s.get_or_create(&g, "u1", Some("thread_b"), None, "session", 500)
            .unwrap();
        s.get_or_create(&g, "u2", None, None, "session", 900)
            .unwrap();
        assert_eq!(s.active_count(), 3);
        assert_eq!(s.cleanup_expired(1_000, 600), 1);
        assert_eq!(s.user_count("u1"), 1);
        assert_eq!(s.invalidate_user("u1"), 1);
        assert_eq!(s.invalidate_user("u1"), 0);
        assert_eq!(s.active_count(), 1);
    }

    #[test]
    fn bad_input_changes_nothing() {
        let g = ids();
        let mut s = SessionStore::new(ValidationRules::PRODUCTION);
        assert!(s
            .get_or_create(&g, "a:b", None, None, "session", 0)
            .is_err());
        assert!(s
            .get_or_create(&g, "u1", Some(" "), None, "session", 0)
            .is_err());
        assert!(s.get_or_create(&g, "u1", None, None, "bad op", 0).is_err());
        assert_eq!(s.active_count(), 0);
    }
}
