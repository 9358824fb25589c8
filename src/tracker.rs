//! The consistency tracker: snapshots of the four places a thread id lives (user
//! context, manager context, isolation key, cleanup lookup), violations, analysis, the
//! seed's report text, and a versioned JSON report.
//!
//! Every aggregate is kept up to date as snapshots arrive, so `analyze` costs the size
//! of its answer, not of the history, and a bounded tracker (last N snapshots) still
//! reports exact counts.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;

use foldhash::fast::FixedState;
// hashbrown's tables rather than std's: the registry uses hashbrown already, and one
// hash-table implementation in the build instead of two keeps the .wasm within budget.
use hashbrown::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use crate::context::{Metadata, UserContext};
use crate::error::{shown, ReportError};
use crate::json::{Fields, JsonError, JsonResult, Reader};
use crate::key::IsolationKey;
use crate::registry::{EventKind, Manager, RegistryEvent};
use crate::text_list::TextList;

/// The report JSON schema this version writes and reads.
pub const SCHEMA: &str = "threadline.report/1";
/// Violation type of a snapshot whose thread ids disagree.
pub const MISMATCH: &str = "thread_id_mismatch";
/// Violation type of an isolation key that does not parse.
pub const UNPARSABLE_KEY: &str = "isolation_key_unparsable";
/// Violation type of a refused manager create seen through registry events.
pub const LIMIT_EXCEEDED: &str = "manager_limit_exceeded";
/// Operation name of [`Tracker::simulate_cleanup_lookup`] snapshots.
pub const CLEANUP_LOOKUP_OPERATION: &str = "cleanup_lookup";
/// Longest operation or violation type, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Deepest metadata a snapshot or violation takes, the metadata object itself counted:
/// a report adds three levels around it (the report, its list, the entry), so a tracker's
/// own report stays within `ReportLimits::default().max_depth` (64) and can be read back.
pub const MAX_METADATA_DEPTH: usize = 61;

/// Limits on report JSON read from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLimits {
    /// Largest report accepted, in bytes (256 MiB by default).
    pub max_bytes: usize,
    /// Deepest nesting of arrays and objects accepted (64 by default).
    pub max_depth: usize,
}

impl Default for ReportLimits {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// What to record: borrowed, so taking a snapshot copies only what it keeps.
#[derive(Debug, Clone, Default)]
pub struct SnapshotInput<'a> {
    /// What is happening, such as `manager_creation`: 1 to [`MAX_NAME_LEN`] bytes.
    pub operation: &'a str,
    /// The user concerned.
    pub user_id: Option<&'a str>,
    /// The thread id of the user context.
    pub user_context_thread_id: Option<&'a str>,
    /// The WebSocket client id of the user context.
    pub websocket_client_id: Option<&'a str>,
    /// The thread id of the manager's context.
    pub manager_thread_id: Option<&'a str>,
    /// The manager's handle, as [`crate::registry::ManagerId`]'s number.
    pub manager_instance_id: Option<u64>,
    /// The isolation key, in either form; its thread id is read from it.
    pub isolation_key: Option<&'a str>,
    /// The thread id a cleanup looks the manager up by.
    pub cleanup_lookup_thread_id: Option<&'a str>,
    /// Kept with the snapshot; at most [`MAX_METADATA_DEPTH`] levels deep.
    pub metadata: Option<Metadata>,
}

impl<'a> SnapshotInput<'a> {
    /// Input for `operation`, with nothing else set.
    pub fn new(operation: &'a str) -> Self {
        Self {
            operation,
            ..Self::default()
        }
    }

    /// Thread id, user and client id of a user context.
    pub fn context(mut self, c: &'a UserContext) -> Self {
        self.user_context_thread_id = Some(c.thread_id());
        self.user_id = Some(c.user_id());
        self.websocket_client_id = c.websocket_client_id();
        self
    }

    /// Thread id and handle of a registered manager (and its user, if none is set yet).
    pub fn manager(mut self, m: &'a Manager) -> Self {
        self.manager_thread_id = Some(m.thread_id());
        self.manager_instance_id = Some(m.id().0);
        self.user_id = self.user_id.or(Some(m.user_id()));
        self
    }

    /// The isolation key, in either form; its thread id is read from it.
    pub fn isolation_key(mut self, key: &'a str) -> Self {
        self.isolation_key = Some(key);
        self
    }

    /// The thread id a cleanup looks the manager up by.
    pub fn cleanup_lookup(mut self, thread_id: &'a str) -> Self {
        self.cleanup_lookup_thread_id = Some(thread_id);
        self
    }

    /// Metadata kept with the snapshot; at most [`MAX_METADATA_DEPTH`] levels deep.
    pub fn metadata(mut self, m: Metadata) -> Self {
        self.metadata = Some(m);
        self
    }
}

/// One recorded moment (the seed's `ThreadIdSnapshot`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Position in the whole history (kept when older snapshots are dropped).
    pub index: u64,
    /// When it was taken: the `now_ms` given (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// What was happening, such as `manager_creation`.
    pub operation: Arc<str>,
    /// The thread id of the user context.
    pub thread_id_user_context: Option<Arc<str>>,
    /// The thread id of the manager's context.
    pub thread_id_manager_context: Option<Arc<str>>,
    /// The thread id read from `isolation_key`, whole; the whole key when it does not
    /// parse.
    pub thread_id_isolation_key: Option<Arc<str>>,
    /// The thread id a cleanup looked the manager up by.
    pub thread_id_cleanup_lookup: Option<Arc<str>>,
    /// The manager's handle, as [`crate::registry::ManagerId`]'s number.
    pub manager_instance_id: Option<u64>,
    /// The isolation key as given.
    pub isolation_key: Option<Arc<str>>,
    /// The user concerned.
    pub user_id: Option<Arc<str>>,
    /// The WebSocket client id of the user context.
    pub websocket_client_id: Option<Arc<str>>,
    /// Derived from the four thread ids; written for readers, recomputed on load.
    pub mismatch: bool,
    /// The caller's metadata; `None` when none or empty (written as `{}`).
    #[serde(serialize_with = "ser_metadata")]
    pub metadata: Option<StoredMetadata>,
}

fn ser_metadata<S: serde::Serializer>(m: &Option<StoredMetadata>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => m.serialize(s),
        None => Metadata::new().serialize(s),
    }
}

/// A snapshot's metadata as kept: the same JSON as the [`Metadata`] it was made from
/// (serialised identically, keys in the same order), in a tenth of the memory. A
/// `BTreeMap` allocates a node for 11 entries however few it holds (about 640 bytes per
/// map and per nested map), and a tracker keeps every snapshot's metadata: that memory,
/// not the instructions, was most of the time of a snapshot with small metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredMetadata(Box<[(Box<str>, StoredValue)]>);

/// A JSON value inside [`StoredMetadata`].
#[derive(Debug, Clone, PartialEq)]
pub enum StoredValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as serde_json holds it.
    Number(serde_json::Number),
    /// A string.
    String(Box<str>),
    /// An array.
    Array(Box<[StoredValue]>),
    /// An object.
    Object(StoredMetadata),
}

impl StoredMetadata {
    /// Whether it holds no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many entries it holds (top level only).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &StoredValue)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }

    /// The metadata as a map again.
    pub fn to_map(&self) -> Metadata {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_value()))
            .collect()
    }

    /// From entries in any order: sorted by key as a map would hold them, and of equal
    /// keys the last one kept (as inserting them into a map one by one would).
    pub fn from_entries(mut entries: Vec<(Box<str>, StoredValue)>) -> Self {
        entries.sort_by(|a, b| a.0.cmp(&b.0)); // stable: equal keys keep their order
                                               // In place (one allocation less per map): of a run of equal keys the last value
                                               // is swapped forward into the entry that stays.
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        Self(entries.into_boxed_slice())
    }

    fn from_map(m: serde_json::Map<String, serde_json::Value>) -> Self {
        Self(
            m.into_iter()
                .map(|(k, v)| (k.into_boxed_str(), StoredValue::from(v)))
                .collect(),
        )
    }
}

impl From<Metadata> for StoredMetadata {
    fn from(m: Metadata) -> Self {
        Self(
            m.into_iter()
                .map(|(k, v)| (k.into_boxed_str(), StoredValue::from(v)))
                .collect(),
        )
    }
}

/// How deep a value nests (a scalar is 0, an array of scalars 1), counted no further than
/// `max + 1`.
fn stored_depth(v: &StoredValue, max: usize) -> usize {
    let inner = |values: &mut dyn Iterator<Item = &StoredValue>| {
        if max == 0 {
            return 1;
        }
        1 + values.map(|v| stored_depth(v, max - 1)).max().unwrap_or(0)
    };
    match v {
        StoredValue::Array(a) => inner(&mut a.iter()),
        StoredValue::Object(m) => inner(&mut m.0.iter().map(|(_, v)| v)),
        _ => 0,
    }
}

fn check_metadata_depth(field: &'static str, depth: usize) -> Result<(), ReportError> {
    if depth > MAX_METADATA_DEPTH {
        return Err(ReportError::MetadataTooDeep {
            field,
            max: MAX_METADATA_DEPTH,
        });
    }
    Ok(())
}

impl StoredValue {
    /// The value as a `serde_json::Value` again.
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Number(n) => Value::Number(n.clone()),
            Self::String(s) => Value::String(s.to_string()),
            Self::Array(a) => Value::Array(a.iter().map(Self::to_value).collect()),
            Self::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.to_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

impl From<serde_json::Value> for StoredValue {
    fn from(v: serde_json::Value) -> Self {
        use serde_json::Value;
        match v {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(b),
            Value::Number(n) => Self::Number(n),
            Value::String(s) => Self::String(s.into_boxed_str()),
            Value::Array(a) => Self::Array(a.into_iter().map(Self::from).collect()),
            Value::Object(m) => Self::Object(StoredMetadata::from_map(m)),
        }
    }
}

impl Serialize for StoredMetadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter() {
            m.serialize_entry(&**k, v)?;
        }
        m.end()
    }
}

impl Serialize for StoredValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => s.serialize_unit(),
            Self::Bool(b) => s.serialize_bool(*b),
            Self::Number(n) => n.serialize(s),
            Self::String(x) => s.serialize_str(x),
            Self::Array(a) => a.serialize(s),
            Self::Object(m) => m.serialize(s),
        }
    }
}

impl Snapshot {
    /// The four thread ids, labelled as in the report, in report order.
    pub fn thread_ids(&self) -> [(&'static str, Option<&str>); 4] {
        [
            ("user_context", self.thread_id_user_context.as_deref()),
            ("manager_context", self.thread_id_manager_context.as_deref()),
            ("isolation_key", self.thread_id_isolation_key.as_deref()),
            ("cleanup_lookup", self.thread_id_cleanup_lookup.as_deref()),
        ]
    }

    /// A snapshot a cleanup lookup can be compared with: it names the manager's or the
    /// isolation key's thread id.
    fn is_manager_snapshot(&self) -> bool {
        self.thread_id_manager_context.is_some() || self.thread_id_isolation_key.is_some()
    }

    /// True when two of the non-empty thread ids differ.
    pub fn has_mismatch(&self) -> bool {
        let mut first: Option<&str> = None;
        for (_, t) in self.thread_ids() {
            if let Some(t) = t.filter(|t| !t.is_empty()) {
                match first {
                    None => first = Some(t),
                    Some(f) if f != t => return true,
                    _ => {}
                }
            }
        }
        false
    }

    /// The four thread ids, owned, as a violation records them.
    pub fn summary(&self) -> ThreadIdSummary {
        let f = |t: &Option<Arc<str>>| t.as_deref().map(str::to_owned);
        ThreadIdSummary {
            user_context: f(&self.thread_id_user_context),
            manager_context: f(&self.thread_id_manager_context),
            isolation_key: f(&self.thread_id_isolation_key),
            cleanup_lookup: f(&self.thread_id_cleanup_lookup),
        }
    }
}

/// The four thread ids of a snapshot, as a violation records them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadIdSummary {
    /// [`Snapshot::thread_id_user_context`].
    pub user_context: Option<String>,
    /// [`Snapshot::thread_id_manager_context`].
    pub manager_context: Option<String>,
    /// [`Snapshot::thread_id_isolation_key`].
    pub isolation_key: Option<String>,
    /// [`Snapshot::thread_id_cleanup_lookup`].
    pub cleanup_lookup: Option<String>,
}

impl ThreadIdSummary {
    fn entries(&self) -> [(&'static str, Option<&str>); 4] {
        [
            ("user_context", self.user_context.as_deref()),
            ("manager_context", self.manager_context.as_deref()),
            ("isolation_key", self.isolation_key.as_deref()),
            ("cleanup_lookup", self.cleanup_lookup.as_deref()),
        ]
    }
}

/// Something wrong that was seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// Position in the whole history of violations (kept when older ones are dropped).
    pub index: u64,
    /// When it was recorded (ms since the Unix epoch).
    pub timestamp_ms: u64,
    /// Its type, such as [`MISMATCH`]; `type` in the JSON.
    #[serde(rename = "type")]
    pub kind: String,
    /// `CRITICAL`, `ERROR` or `WARNING` for the tracker's own; any name from a caller.
    pub severity: String,
    /// The operation it happened in (the report prints `unknown` when `None`).
    pub operation: Option<String>,
    /// The snapshot that found it, for one found by taking a snapshot.
    pub snapshot_index: Option<u64>,
    /// That snapshot's thread ids.
    pub thread_id_summary: Option<ThreadIdSummary>,
    /// Anything else: the caller's details, or what the tracker noted.
    #[serde(default)]
    pub details: Metadata,
}

/// The hash tables of the snapshot path: foldhash, keyed by a per-tracker seed
/// ([`Tracker::seeded`]). SipHash cost about a third of the core's
/// `take_snapshot` (seven lookups of ids of 10 to 50 bytes per snapshot).
type FastMap<K, V> = HashMap<K, V, FixedState>;
type FastSet<K> = HashSet<K, FixedState>;

/// Exact aggregates over the whole history. Made only by `Totals::keyed`: no `Default`,
/// whose tables would be keyed by the public default seed, not the tracker's.
#[derive(Debug, Clone)]
struct Totals {
    snapshots: u64,
    inconsistent: u64,
    violations: u64,
    /// In first-seen order; everything below refers to a thread id by its position here.
    /// One text, not a string each: an analysis reads every one of them.
    thread_ids: TextList,
    thread_index: FastMap<Arc<str>, usize>,
    /// In first-seen order, as `thread_ids`.
    users: TextList,
    /// Each user's threads' positions, first seen first; beside `users`, by position.
    user_threads: Vec<Vec<usize>>,
    user_index: FastMap<Arc<str>, usize>,
    /// (user position, thread position) pairs seen.
    user_thread_set: FastSet<(usize, usize)>,
    operation_violations: Vec<(Arc<str>, u64)>,
    operation_index: FastMap<Arc<str>, usize>,
    first_divergence: Option<u64>,
    last_consistent_before_divergence: Option<u64>,
    last_consistent: Option<u64>,
    managers_created: u64,
    managers_cleaned_up: u64,
}

/// An analysis's lists, borrowed from the tracker (see `Tracker::analyze_parts`). A
/// tracker's lists only grow: a position, once given, names the same thread id or user
/// for the tracker's life, so a binding may keep what it made of earlier ones.
#[derive(Clone, Copy)]
pub struct AnalysisLists<'a> {
    totals: &'a Totals,
}

impl<'a> AnalysisLists<'a> {
    /// Every thread id seen, in first-seen order (`Analysis::thread_ids`).
    pub fn thread_ids(&self) -> &'a TextList {
        &self.totals.thread_ids
    }

    /// Every user seen, in first-seen order (the keys of `Analysis::thread_ids_by_user`).
    pub fn users(&self) -> &'a TextList {
        &self.totals.users
    }

    /// The thread ids seen with each user, as positions in `thread_ids()`: users in the
    /// order of `users()`, threads first seen first (`Analysis::thread_ids_by_user`).
    pub fn threads_by_user(&self) -> impl ExactSizeIterator<Item = &'a [usize]> + Clone {
        self.totals.user_threads.iter().map(Vec::as_slice)
    }

    /// The positions in `users()` of the users seen with more than one thread id
    /// (`Analysis::users_with_multiple_thread_ids`).
    pub fn users_with_multiple_thread_ids(&self) -> impl Iterator<Item = usize> + 'a {
        self.threads_by_user()
            .enumerate()
            .filter(|(_, threads)| threads.len() > 1)
            .map(|(at, _)| at)
    }
}

impl Totals {
    /// Empty, with every table keyed by `state`.
    fn keyed(state: FixedState) -> Self {
        Self {
            snapshots: 0,
            inconsistent: 0,
            violations: 0,
            thread_ids: TextList::new(),
            thread_index: FastMap::with_hasher(state),
            users: TextList::new(),
            user_threads: Vec::new(),
            user_index: FastMap::with_hasher(state),
            user_thread_set: FastSet::with_hasher(state),
            operation_violations: Vec::new(),
            operation_index: FastMap::with_hasher(state),
            first_divergence: None,
            last_consistent_before_divergence: None,
            last_consistent: None,
            managers_created: 0,
            managers_cleaned_up: 0,
        }
    }

    /// The position of a thread id, added at the end when new.
    fn thread_position(&mut self, id: &Arc<str>) -> usize {
        if let Some(&at) = self.thread_index.get(id) {
            return at;
        }
        let at = self.thread_ids.len();
        self.thread_ids.push(id);
        self.thread_index.insert(id.clone(), at);
        at
    }

    /// The position of a user, added at the end when new.
    fn user_position(&mut self, user: &Arc<str>) -> usize {
        if let Some(&at) = self.user_index.get(user) {
            return at;
        }
        let at = self.users.len();
        self.users.push(user);
        self.user_threads.push(Vec::new());
        self.user_index.insert(user.clone(), at);
        at
    }

    /// Notes a thread id seen with a user (both by position); each pair once, in order.
    fn note_user_thread(&mut self, user: usize, thread: usize) {
        if self.user_thread_set.insert((user, thread)) {
            if let Some(threads) = self.user_threads.get_mut(user) {
                threads.push(thread);
            }
        }
    }
}

/// Whether `s` is the latest manager snapshot of all or of its user.
fn is_latest_manager(all: Option<u64>, by_user: &FastMap<Arc<str>, u64>, s: &Snapshot) -> bool {
    all == Some(s.index)
        || s.user_id
            .as_ref()
            .is_some_and(|u| by_user.get(&**u) == Some(&s.index))
}

/// The fields of the latest manager snapshot a lookup copies, owned: the lookup is
/// recorded into the tracker that holds that snapshot.
struct LookupBase {
    manager_thread: Option<Arc<str>>,
    key_thread: Option<Arc<str>>,
    key: Option<Arc<str>>,
    manager_instance_id: Option<u64>,
    user_id: Option<Arc<str>>,
    websocket_client_id: Option<Arc<str>>,
}

impl LookupBase {
    fn of(s: &Snapshot) -> Self {
        Self {
            manager_thread: s.thread_id_manager_context.clone(),
            key_thread: s.thread_id_isolation_key.clone(),
            key: s.isolation_key.clone(),
            manager_instance_id: s.manager_instance_id,
            user_id: s.user_id.clone(),
            websocket_client_id: s.websocket_client_id.clone(),
        }
    }
}

/// The result of `analyze` (the suite's `analyze_consistency`, plus more).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Snapshots taken over the whole history, retained or not.
    pub total_snapshots: u64,
    /// Snapshots still held (all of them unless the tracker is bounded).
    pub retained_snapshots: u64,
    /// Violations recorded over the whole history, retained or not.
    pub total_violations: u64,
    /// Distinct non-empty thread ids seen, in any of the four places.
    pub unique_thread_ids_found: u64,
    /// In first-seen order.
    pub thread_ids: Vec<String>,
    /// Snapshots whose thread ids disagree.
    pub inconsistent_snapshots: u64,
    /// Violations per operation, in first-seen order.
    #[serde(with = "ordered_map")]
    pub operation_violations: Vec<(String, u64)>,
    /// Consistent snapshots / all snapshots x 100 (100 with no snapshots).
    pub consistency_score: f64,
    /// Seconds from the tracker's start to the analysis.
    pub analysis_duration: f64,
    /// Thread ids seen with each user, users and threads in first-seen order.
    #[serde(with = "ordered_map")]
    pub thread_ids_by_user: Vec<(String, Vec<String>)>,
    /// Users seen with more than one thread id, in first-seen order.
    pub users_with_multiple_thread_ids: Vec<String>,
    /// Index of the first inconsistent snapshot.
    pub first_divergence: Option<u64>,
    /// Index of the last consistent snapshot before `first_divergence`.
    pub last_consistent_before_divergence: Option<u64>,
    /// Managers created, from observed registry events.
    pub managers_created: u64,
    /// Managers cleaned up, from observed registry events.
    pub managers_cleaned_up: u64,
    /// Created minus cleaned up, from observed registry events.
    pub leaked_managers: u64,
}

impl Analysis {
    /// Zero counts and empty lists.
    fn empty() -> Self {
        Self {
            total_snapshots: 0,
            retained_snapshots: 0,
            total_violations: 0,
            unique_thread_ids_found: 0,
            thread_ids: Vec::new(),
            inconsistent_snapshots: 0,
            operation_violations: Vec::new(),
            consistency_score: 100.0,
            analysis_duration: 0.0,
            thread_ids_by_user: Vec::new(),
            users_with_multiple_thread_ids: Vec::new(),
            first_divergence: None,
            last_consistent_before_divergence: None,
            managers_created: 0,
            managers_cleaned_up: 0,
            leaked_managers: 0,
        }
    }

    /// Reads an analysis from its JSON text (as the bindings write `analyze` results).
    pub fn from_json(text: &str) -> Result<Self, JsonError> {
        let mut r = Reader::new(text);
        let a = read_analysis(&mut r)?;
        r.finish()?;
        Ok(a)
    }
}

mod ordered_map {
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use serde::ser::{SerializeMap, Serializer};

    pub fn serialize<S: Serializer, V: serde::Serialize>(
        v: &[(String, V)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(v.len()))?;
        for (k, x) in v {
            m.serialize_entry(k, x)?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<(String, V)>, D::Error> {
        struct Ordered<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Ordered<V> {
            type Value = Vec<(String, V)>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry()? {
                    out.push((k, v));
                }
                Ok(out)
            }
        }
        d.deserialize_map(Ordered(std::marker::PhantomData))
    }
}

/// Snapshot and violation indexes of one `take_snapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotOutcome {
    /// The snapshot's history index.
    pub index: u64,
    /// Whether its thread ids disagree.
    pub mismatch: bool,
    /// Indexes of the violations this snapshot recorded.
    pub violations: Vec<u64>,
}

/// The tracker (the suite's `ThreadIDConsistencyTracker`).
#[derive(Debug, Clone)]
pub struct Tracker {
    started_ms: u64,
    capacity: Option<usize>,
    snapshots: VecDeque<Snapshot>,
    violations: VecDeque<Violation>,
    totals: Totals,
    /// Every id and name recorded, once; for a string that parsed as an isolation key,
    /// also the key's thread id (the same key is usually snapshotted many times, and
    /// parsing and validating it cost more than the rest of its interning).
    interned: FastMap<Arc<str>, Option<Arc<str>>>,
    /// What a cleanup lookup is compared with: the latest manager snapshot (one with a
    /// manager or isolation-key thread id) of all, and of each user, by index.
    latest_manager: Option<u64>,
    latest_manager_by_user: FastMap<Arc<str>, u64>,
    /// Latest manager snapshots a bounded tracker dropped, oldest first, without their
    /// metadata (and some that have been superseded since, pruned as the list grows). A
    /// report carries the ones still latest (`lookup_snapshots`), so that a tracker read
    /// back compares later lookups exactly as the original does.
    dropped_latest: Vec<Snapshot>,
    /// Set on a report loaded from JSON: its generation time, used for durations until
    /// the tracker records something new.
    frozen_at_ms: Option<u64>,
}

impl Tracker {
    /// A tracker that keeps every snapshot.
    pub fn new(started_ms: u64) -> Self {
        Self::keyed(started_ms, None, FixedState::default())
    }

    /// A tracker that keeps the last `capacity` snapshots and violations; every count
    /// stays exact. For production monitoring.
    pub fn bounded(started_ms: u64, capacity: usize) -> Result<Self, ReportError> {
        Self::seeded_or_default(started_ms, Some(capacity), None)
    }

    /// A tracker, bounded when `capacity` is given, whose hash tables are keyed with
    /// `hash_seed` from the start. A tracker fed ids from outside should get a random
    /// seed (from an [`crate::Entropy`]), so that nobody can choose ids that collide
    /// under the fixed default seed.
    pub fn seeded(
        started_ms: u64,
        capacity: Option<usize>,
        hash_seed: u64,
    ) -> Result<Self, ReportError> {
        Self::seeded_or_default(started_ms, capacity, Some(hash_seed))
    }

    fn seeded_or_default(
        started_ms: u64,
        capacity: Option<usize>,
        hash_seed: Option<u64>,
    ) -> Result<Self, ReportError> {
        if capacity == Some(0) {
            return Err(ReportError::Capacity { value: 0 });
        }
        let state = hash_seed.map_or_else(FixedState::default, FixedState::with_seed);
        Ok(Self::keyed(started_ms, capacity, state))
    }

    /// The one constructor: every table keyed by `state`.
    fn keyed(started_ms: u64, capacity: Option<usize>, state: FixedState) -> Self {
        Self {
            started_ms,
            capacity,
            snapshots: VecDeque::new(),
            violations: VecDeque::new(),
            totals: Totals::keyed(state),
            interned: FastMap::with_hasher(state),
            latest_manager: None,
            latest_manager_by_user: FastMap::with_hasher(state),
            dropped_latest: Vec::new(),
            frozen_at_ms: None,
        }
    }

    /// When tracking started (ms since the Unix epoch); durations count from it.
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// The most snapshots (and violations) it keeps; `None` when it keeps all.
    pub fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// Retained snapshots, oldest first.
    pub fn snapshots(&self) -> &VecDeque<Snapshot> {
        &self.snapshots
    }

    /// Retained violations, oldest first.
    pub fn violations(&self) -> &VecDeque<Violation> {
        &self.violations
    }

    /// The retained snapshot with this history index.
    pub fn snapshot(&self, index: u64) -> Option<&Snapshot> {
        let first = self.snapshots.front()?.index;
        self.snapshots.get(index.checked_sub(first)? as usize)
    }

    /// Snapshots taken over the whole history, retained or not.
    pub fn total_snapshots(&self) -> u64 {
        self.totals.snapshots
    }

    /// Violations recorded over the whole history, retained or not.
    pub fn total_violations(&self) -> u64 {
        self.totals.violations
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some((a, _)) = self.interned.get_key_value(s) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        self.interned.insert(a.clone(), None);
        a
    }

    /// An isolation key, interned, and its thread id, interned (`seen` are interned ids
    /// to compare with first); `Err` with the key and the parser's message when it does
    /// not parse. A key parsed before is not parsed again.
    #[allow(clippy::type_complexity)]
    fn intern_key(
        &mut self,
        k: &str,
        seen: &[&Option<Arc<str>>],
    ) -> Result<(Arc<str>, Arc<str>), (Arc<str>, String)> {
        if let Some((key, Some(thread))) = self.interned.get_key_value(k) {
            return Ok((key.clone(), thread.clone()));
        }
        match IsolationKey::parse_parts(k) {
            Ok((_, thread, _)) => {
                let thread = match seen.iter().copied().flatten().find(|a| ***a == *thread) {
                    Some(a) => a.clone(),
                    None => self.intern(thread),
                };
                let key = self.intern(k);
                self.interned.insert(key.clone(), Some(thread.clone()));
                Ok((key, thread))
            }
            Err(e) => Err((self.intern(k), e.to_string())),
        }
    }

    fn intern_opt(&mut self, s: Option<&str>) -> Option<Arc<str>> {
        s.map(|s| self.intern(s))
    }

    /// `intern_opt`, handing back an already interned Arc of `seen` when equal.
    fn intern_reusing(&mut self, s: Option<&str>, seen: &[&Option<Arc<str>>]) -> Option<Arc<str>> {
        let s = s?;
        for a in seen.iter().copied().flatten() {
            if **a == *s {
                return Some(a.clone());
            }
        }
        Some(self.intern(s))
    }

    /// Records one snapshot. The thread id of an isolation key comes from the key
    /// parser, whole; a key that does not parse is kept whole and recorded as a WARNING
    /// violation. Disagreeing thread ids record a CRITICAL `thread_id_mismatch`.
    pub fn take_snapshot(
        &mut self,
        mut input: SnapshotInput<'_>,
        now_ms: u64,
    ) -> Result<SnapshotOutcome, ReportError> {
        let metadata = input.metadata.take().map(StoredMetadata::from);
        self.take_snapshot_stored(input, metadata, now_ms)
    }

    /// [`Tracker::take_snapshot`] with the metadata already in its stored form
    /// (`input.metadata` is ignored): a binding that builds it straight from its own
    /// values skips the intermediate map.
    pub fn take_snapshot_stored(
        &mut self,
        input: SnapshotInput<'_>,
        metadata: Option<StoredMetadata>,
        now_ms: u64,
    ) -> Result<SnapshotOutcome, ReportError> {
        check_name("operation", input.operation)?;
        if let Some(m) = &metadata {
            let depth = 1 + m
                .iter()
                .map(|(_, v)| stored_depth(v, MAX_METADATA_DEPTH))
                .max()
                .unwrap_or(0);
            check_metadata_depth("metadata", depth)?;
        }
        self.frozen_at_ms = None;
        let index = self.totals.snapshots;
        let mut violations = Vec::new();
        // The thread ids of one snapshot are usually one id: intern it once and reuse
        // the Arc for the equal ones (a compare instead of a hash and a lookup).
        let user_thread = self.intern_opt(input.user_context_thread_id);
        let manager_thread = self.intern_reusing(input.manager_thread_id, &[&user_thread]);
        let (key, key_thread, key_problem) = match input.isolation_key {
            None => (None, None, None),
            Some(k) => match self.intern_key(k, &[&manager_thread, &user_thread]) {
                Ok((key, thread)) => (Some(key), Some(thread), None),
                Err((key, problem)) => (Some(key.clone()), Some(key), Some(problem)),
            },
        };
        let snap = Snapshot {
            index,
            timestamp_ms: now_ms,
            operation: self.intern(input.operation),
            thread_id_user_context: user_thread,
            thread_id_manager_context: manager_thread,
            thread_id_isolation_key: key_thread,
            thread_id_cleanup_lookup: self.intern_opt(input.cleanup_lookup_thread_id),
            manager_instance_id: input.manager_instance_id,
            // Interned like the thread ids (and, like them, kept for the tracker's life):
            // the same key is usually snapshotted many times (create, lookups, cleanup).
            isolation_key: key,
            user_id: self.intern_opt(input.user_id),
            websocket_client_id: input.websocket_client_id.map(Arc::from),
            mismatch: false,
            metadata: metadata.filter(|m| !m.is_empty()),
        };
        let mut snap = snap;
        snap.mismatch = snap.has_mismatch();
        if let Some(problem) = key_problem {
            let mut details = Metadata::new();
            details.insert(
                "isolation_key".into(),
                input.isolation_key.unwrap_or_default().into(),
            );
            details.insert("error".into(), problem.into());
            violations.push(self.push_violation(Violation {
                index: 0,
                timestamp_ms: now_ms,
                kind: UNPARSABLE_KEY.into(),
                severity: "WARNING".into(),
                operation: Some(input.operation.to_owned()),
                snapshot_index: Some(index),
                thread_id_summary: Some(snap.summary()),
                details,
            }));
        }
        if snap.mismatch {
            violations.push(self.push_violation(Violation {
                index: 0,
                timestamp_ms: now_ms,
                kind: MISMATCH.into(),
                severity: "CRITICAL".into(),
                operation: Some(input.operation.to_owned()),
                snapshot_index: Some(index),
                thread_id_summary: Some(snap.summary()),
                details: Metadata::new(),
            }));
        }
        let mismatch = snap.mismatch;
        self.push_snapshot(snap);
        Ok(SnapshotOutcome {
            index,
            mismatch,
            violations,
        })
    }

    /// Updates aggregates and keeps the snapshot (dropping the oldest when bounded).
    fn push_snapshot(&mut self, snap: Snapshot) {
        let t = &mut self.totals;
        t.snapshots = t.snapshots.max(snap.index.saturating_add(1));
        if snap.mismatch {
            t.inconsistent = t.inconsistent.saturating_add(1);
            if t.first_divergence.is_none() {
                t.first_divergence = Some(snap.index);
                t.last_consistent_before_divergence = t.last_consistent;
            }
        } else {
            t.last_consistent = Some(snap.index);
        }
        let ids = [
            &snap.thread_id_user_context,
            &snap.thread_id_manager_context,
            &snap.thread_id_isolation_key,
            &snap.thread_id_cleanup_lookup,
        ];
        let mut user_at: Option<usize> = None;
        for (i, id) in ids.iter().enumerate() {
            let Some(id) = id.as_ref().filter(|t| !t.is_empty()) else {
                continue;
            };
            // Interned: an id equal to an earlier one of this snapshot is the same Arc,
            // and was just accounted for.
            if ids[..i]
                .iter()
                .any(|e| e.as_ref().is_some_and(|e| Arc::ptr_eq(e, id)))
            {
                continue;
            }
            let thread = t.thread_position(id);
            if let Some(u) = &snap.user_id {
                // A user is listed once it has a thread id, so looked up on the first.
                let user = match user_at {
                    Some(at) => at,
                    None => *user_at.insert(t.user_position(u)),
                };
                t.note_user_thread(user, thread);
            }
        }
        self.note_latest_manager(&snap);
        self.snapshots.push_back(snap);
        if let Some(cap) = self.capacity {
            while self.snapshots.len() > cap {
                let Some(old) = self.snapshots.pop_front() else {
                    break;
                };
                self.retire(old);
            }
        }
    }

    /// A manager snapshot is from now on the latest of all, and of its user.
    fn note_latest_manager(&mut self, snap: &Snapshot) {
        if snap.is_manager_snapshot() {
            if let Some(u) = &snap.user_id {
                self.latest_manager_by_user.insert(u.clone(), snap.index);
            }
            self.latest_manager = Some(snap.index);
        }
    }

    /// A snapshot a bounded tracker drops: kept on if it is a latest manager snapshot,
    /// without its metadata (a lookup does not read it, and it can be large: a bounded
    /// tracker keeps one of these for each user whose latest is dropped).
    fn retire(&mut self, mut old: Snapshot) {
        if !self.is_latest_manager(&old) {
            return;
        }
        old.metadata = None;
        self.dropped_latest.push(old);
        // Superseded ones are pruned once they could be half the list, so it stays
        // within twice the number of users (amortised O(1) a drop).
        if self.dropped_latest.len() > 2 * self.latest_manager_by_user.len() + 2 {
            let (all, by_user) = (self.latest_manager, &self.latest_manager_by_user);
            self.dropped_latest
                .retain(|s| is_latest_manager(all, by_user, s));
        }
    }

    fn is_latest_manager(&self, s: &Snapshot) -> bool {
        is_latest_manager(self.latest_manager, &self.latest_manager_by_user, s)
    }

    /// The manager snapshot of index `i`: retained, or dropped while it was a latest one.
    fn manager_snapshot_at(&self, i: u64) -> Option<&Snapshot> {
        let first = self.snapshots.front().map_or(u64::MAX, |s| s.index);
        if i < first {
            return self.dropped_latest.iter().rev().find(|s| s.index == i);
        }
        // At its offset from the first, unless a file's indexes have gaps.
        match self.snapshots.get(usize::try_from(i - first).ok()?) {
            Some(s) if s.index == i => Some(s),
            _ => self.snapshots.iter().find(|s| s.index == i),
        }
    }

    fn push_violation(&mut self, mut v: Violation) -> u64 {
        v.index = self.totals.violations;
        let index = v.index;
        self.account_violation(&v);
        self.violations.push_back(v);
        if let Some(cap) = self.capacity {
            while self.violations.len() > cap {
                self.violations.pop_front();
            }
        }
        index
    }

    fn account_violation(&mut self, v: &Violation) {
        let op = self.intern(v.operation.as_deref().unwrap_or("unknown"));
        let t = &mut self.totals;
        t.violations = t.violations.max(v.index.saturating_add(1));
        match t.operation_index.get(&op) {
            Some(&i) => {
                let n = &mut t.operation_violations[i].1;
                *n = n.saturating_add(1);
            }
            None => {
                t.operation_index
                    .insert(op.clone(), t.operation_violations.len());
                t.operation_violations.push((op, 1));
            }
        }
    }

    /// Records a violation found by the caller (the suite's `record_violation`).
    pub fn record_violation(
        &mut self,
        kind: &str,
        severity: &str,
        operation: Option<&str>,
        details: Metadata,
        now_ms: u64,
    ) -> Result<u64, ReportError> {
        check_name("violation type", kind)?;
        check_name("severity", severity)?;
        if let Some(op) = operation {
            check_name("operation", op)?;
        }
        // Measured on the JSON the report will hold: violations are rare, and this
        // spares the code of a second walk (the WebAssembly build has a size budget).
        let text = serde_json::to_string(&details).unwrap_or_default();
        check_metadata_depth("details", json_depth(&text))?;
        self.frozen_at_ms = None;
        Ok(self.push_violation(Violation {
            index: 0,
            timestamp_ms: now_ms,
            kind: kind.to_owned(),
            severity: severity.to_owned(),
            operation: operation.map(str::to_owned),
            snapshot_index: None,
            thread_id_summary: None,
            details,
        }))
    }

    /// A cleanup looking for `target_thread_id`: recorded as a `cleanup_lookup` snapshot
    /// beside the manager it would clean (the latest manager snapshot, of `user_id` when
    /// given), so a lookup by the wrong thread is a mismatch like any other.
    pub fn simulate_cleanup_lookup(
        &mut self,
        target_thread_id: &str,
        user_id: Option<&str>,
        metadata: Option<Metadata>,
        now_ms: u64,
    ) -> Result<SnapshotOutcome, ReportError> {
        let latest = match user_id {
            Some(u) => self.latest_manager_by_user.get(u).copied(),
            None => self.latest_manager,
        };
        let base = latest
            .and_then(|i| self.manager_snapshot_at(i))
            .map(LookupBase::of);
        let base = base.unwrap_or(LookupBase {
            manager_thread: None,
            key_thread: None,
            key: None,
            manager_instance_id: None,
            user_id: None,
            websocket_client_id: None,
        });
        // The key is given by its parsed thread, so re-parsing is avoided: build the
        // snapshot directly.
        check_name("operation", CLEANUP_LOOKUP_OPERATION)?;
        let input = SnapshotInput {
            operation: CLEANUP_LOOKUP_OPERATION,
            user_id: user_id.or(base.user_id.as_deref()),
            user_context_thread_id: None,
            websocket_client_id: base.websocket_client_id.as_deref(),
            manager_thread_id: base.manager_thread.as_deref(),
            manager_instance_id: base.manager_instance_id,
            isolation_key: base.key.as_deref(),
            cleanup_lookup_thread_id: Some(target_thread_id),
            metadata,
        };
        let out = self.take_snapshot(input, now_ms)?;
        // A key recorded whole (unparsable) stays whole in the lookup too.
        if base.key.is_none() {
            if let Some(kt) = base.key_thread {
                if let Some(s) = self.snapshots.back_mut() {
                    s.thread_id_isolation_key = Some(kt);
                }
            }
        }
        Ok(out)
    }

    /// Follows the registry's lifecycle: counts created and cleaned-up managers (the
    /// leak count) and records refused creates as violations.
    pub fn observe(&mut self, event: &RegistryEvent) {
        match &event.kind {
            EventKind::Created => {
                self.totals.managers_created = self.totals.managers_created.saturating_add(1)
            }
            EventKind::CleanedUp { .. } => {
                self.totals.managers_cleaned_up = self.totals.managers_cleaned_up.saturating_add(1)
            }
            EventKind::LimitExceeded { count, max } => {
                let mut d = Metadata::new();
                d.insert("user_id".into(), event.user_id().into());
                d.insert("thread_id".into(), event.thread_id().into());
                d.insert("count".into(), (*count as u64).into());
                d.insert("max".into(), (*max as u64).into());
                self.push_violation(Violation {
                    index: 0,
                    timestamp_ms: event.at_ms,
                    kind: LIMIT_EXCEEDED.into(),
                    severity: "ERROR".into(),
                    operation: Some("create_manager".into()),
                    snapshot_index: None,
                    thread_id_summary: None,
                    details: d,
                });
            }
            _ => {}
        }
        self.frozen_at_ms = None;
    }

    fn effective_now(&self, now_ms: u64) -> u64 {
        self.frozen_at_ms.unwrap_or(now_ms)
    }

    /// Everything the suite's `analyze_consistency` gives, and more.
    pub fn analyze(&self, now_ms: u64) -> Analysis {
        let (mut a, lists) = self.analyze_parts(now_ms);
        let (ids, users) = (lists.thread_ids(), lists.users());
        // Plain loops: collecting these iterators costs more code in the wasm build.
        a.thread_ids.reserve_exact(ids.len());
        for id in ids.iter() {
            a.thread_ids.push(id.to_string());
        }
        a.thread_ids_by_user.reserve_exact(users.len());
        for (user, threads) in users.iter().zip(lists.threads_by_user()) {
            let threads = threads.iter().filter_map(|&at| ids.get(at));
            a.thread_ids_by_user
                .push((user.to_string(), threads.map(str::to_string).collect()));
        }
        for at in lists.users_with_multiple_thread_ids() {
            a.users_with_multiple_thread_ids
                .extend(users.get(at).map(str::to_string));
        }
        a
    }

    /// The analysis with its three lists (`thread_ids`, `thread_ids_by_user`,
    /// `users_with_multiple_thread_ids`) left empty, and those lists borrowed: for a
    /// binding that hands them over in its own form without a copy of each string.
    pub fn analyze_parts(&self, now_ms: u64) -> (Analysis, AnalysisLists<'_>) {
        let t = &self.totals;
        let now = self.effective_now(now_ms);
        let analysis = Analysis {
            total_snapshots: t.snapshots,
            retained_snapshots: self.snapshots.len() as u64,
            total_violations: t.violations,
            unique_thread_ids_found: t.thread_ids.len() as u64,
            thread_ids: Vec::new(),
            inconsistent_snapshots: t.inconsistent,
            operation_violations: t
                .operation_violations
                .iter()
                .map(|(o, n)| (o.to_string(), *n))
                .collect(),
            consistency_score: score(t.snapshots, t.inconsistent),
            analysis_duration: now.saturating_sub(self.started_ms) as f64 / 1000.0,
            thread_ids_by_user: Vec::new(),
            users_with_multiple_thread_ids: Vec::new(),
            first_divergence: t.first_divergence,
            last_consistent_before_divergence: t.last_consistent_before_divergence,
            managers_created: t.managers_created,
            managers_cleaned_up: t.managers_cleaned_up,
            leaked_managers: t.managers_created.saturating_sub(t.managers_cleaned_up),
        };
        (analysis, AnalysisLists { totals: t })
    }

    /// The report in exactly the layout of the seed's sample.
    pub fn report_text(&self, now_ms: u64) -> String {
        let t = &self.totals;
        let now = self.effective_now(now_ms);
        let mut out =
            String::with_capacity(256 + self.snapshots.len() * 320 + self.violations.len() * 400);
        let dur = now.saturating_sub(self.started_ms) as f64 / 1000.0;
        let _ = writeln!(out, "=== THREAD_ID CONSISTENCY TRACKING REPORT ===");
        out.push_str("Tracking Duration: ");
        crate::decimal::push_fixed(&mut out, dur, 2);
        out.push_str("s\n");
        let _ = writeln!(out, "Total Snapshots: {}", t.snapshots);
        let _ = writeln!(out, "Total Violations: {}", t.violations);
        out.push_str("\nSNAPSHOTS:\n");
        let dropped = t.snapshots - self.snapshots.len() as u64;
        if dropped > 0 {
            let _ = writeln!(out, "  ({dropped} earlier snapshots not retained)\n");
        }
        for s in &self.snapshots {
            let _ = writeln!(
                out,
                "  [{}] {} @ {}.{:03}s",
                s.index,
                s.operation,
                s.timestamp_ms / 1000,
                s.timestamp_ms % 1000
            );
            for (label, id) in s.thread_ids() {
                out.push_str("      ");
                out.push_str(label);
                out.push_str(": ");
                out.push_str(id.unwrap_or("None"));
                out.push('\n');
            }
            if s.mismatch {
                out.push_str("      ⚠️  MISMATCH DETECTED\n");
            }
            out.push('\n');
        }
        if t.violations > 0 {
            out.push_str("VIOLATIONS:\n");
            let dropped = t.violations - self.violations.len() as u64;
            if dropped > 0 {
                let _ = writeln!(out, "  ({dropped} earlier violations not retained)\n");
            }
            for v in &self.violations {
                let _ = writeln!(out, "  [{}] {} ({})", v.index, v.kind, v.severity);
                let _ = writeln!(
                    out,
                    "      Operation: {}",
                    v.operation.as_deref().unwrap_or("unknown")
                );
                if let Some(sum) = &v.thread_id_summary {
                    out.push_str("      Thread IDs: {");
                    for (i, (label, id)) in sum.entries().iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        py_repr_str(&mut out, label);
                        out.push_str(": ");
                        py_repr_str(&mut out, id.unwrap_or("None"));
                    }
                    out.push_str("}\n");
                }
                if !v.details.is_empty() {
                    out.push_str("      Details: ");
                    py_repr_map(&mut out, &v.details);
                    out.push('\n');
                }
                out.push('\n');
            }
        }
        out.push_str("ANALYSIS:\n");
        out.push_str("  Consistency Score: ");
        crate::decimal::push_fixed(&mut out, score(t.snapshots, t.inconsistent), 1);
        out.push_str("%\n");
        let _ = writeln!(out, "  Unique Thread IDs: {}", t.thread_ids.len());
        out.push_str("  Thread IDs Found: [");
        for (i, id) in t.thread_ids.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            py_repr_str(&mut out, id);
        }
        out.push(']');
        out
    }

    /// The versioned JSON report; `from_json` reads it back to an equal tracker.
    pub fn to_json(&self, now_ms: u64) -> String {
        let now = self.effective_now(now_ms);
        #[derive(Serialize)]
        struct Out<'a> {
            schema: &'static str,
            started_at_ms: u64,
            generated_at_ms: u64,
            capacity: Option<usize>,
            analysis: Analysis,
            snapshots: &'a VecDeque<Snapshot>,
            violations: &'a VecDeque<Violation>,
            // Last, and only in a bounded tracker's report that dropped one: readers
            // of the older form (and the replay page's head reader) are unaffected.
            #[serde(skip_serializing_if = "Vec::is_empty")]
            lookup_snapshots: Vec<&'a Snapshot>,
        }
        serde_json::to_string(&Out {
            schema: SCHEMA,
            started_at_ms: self.started_ms,
            generated_at_ms: now,
            capacity: self.capacity,
            analysis: self.analyze(now),
            snapshots: &self.snapshots,
            violations: &self.violations,
            lookup_snapshots: {
                let mut v = Vec::new();
                for s in &self.dropped_latest {
                    if self.is_latest_manager(s) {
                        v.push(s);
                    }
                }
                v
            },
        })
        .unwrap_or_else(|e| {
            // Unreachable with these types; still JSON if it happens. The error's category,
            // not its Display, which links serde_json's and io's message tables.
            format!(
                "{{\"error\":\"the report could not be serialised ({:?} error)\"}}",
                e.classify()
            )
        })
    }

    /// Reads a report written by `to_json` (by any language's binding). Malformed,
    /// oversized, too deeply nested or wrong-schema input is a clear error. The tracker's
    /// tables use the fixed default seed: for a file from elsewhere, use
    /// [`Self::from_json_seeded`].
    pub fn from_json(text: &str, limits: ReportLimits) -> Result<Self, ReportError> {
        Self::read_json(text, limits, None)
    }

    /// [`Self::from_json`] into a tracker keyed with `hash_seed` from the start (see
    /// [`Self::seeded`]), so that a crafted file cannot make its own load slow
    /// with ids that collide under the default seed.
    pub fn from_json_seeded(
        text: &str,
        limits: ReportLimits,
        hash_seed: u64,
    ) -> Result<Self, ReportError> {
        Self::read_json(text, limits, Some(hash_seed))
    }

    fn read_json(
        text: &str,
        limits: ReportLimits,
        hash_seed: Option<u64>,
    ) -> Result<Self, ReportError> {
        if text.len() > limits.max_bytes {
            return Err(ReportError::TooLarge {
                len: text.len(),
                max: limits.max_bytes,
            });
        }
        let depth = json_depth(text);
        if depth > limits.max_depth {
            return Err(ReportError::TooDeep {
                depth,
                max: limits.max_depth,
            });
        }
        let wrong_schema = |found: Option<Cow<'_, str>>| ReportError::Schema {
            found: found.map_or_else(|| "missing".to_owned(), |s| s.into_owned()),
        };
        // One pass over a good file; a file that fails is read again for its schema
        // only, so another schema version is named as such rather than as a field error.
        let file = match read_report(text) {
            Ok(file) => file,
            Err(e) => {
                return Err(match read_schema_only(text) {
                    Ok(found) if found.as_deref() != Some(SCHEMA) => wrong_schema(found),
                    _ => ReportError::Json(e.to_string()),
                })
            }
        };
        if file.schema.as_deref() != Some(SCHEMA) {
            return Err(wrong_schema(file.schema));
        }
        let field = |f: &str, p: String| ReportError::Field {
            field: f.to_owned(),
            problem: p,
        };
        let mut tr = Tracker::seeded_or_default(file.started_at_ms, file.capacity, hash_seed)?;
        // Both lists in one loop (one copy of this code in the wasm): the dropped latest
        // manager snapshots first, so that the retained ones, which are later, replace
        // them as latest where they are. Indexes increase through both: a dropped
        // snapshot precedes every retained one.
        let lookups = file.lookup_snapshots.len();
        let mut prev: Option<u64> = None;
        for (n, r) in file
            .lookup_snapshots
            .into_iter()
            .chain(file.snapshots)
            .enumerate()
        {
            let (list, i) = match n.checked_sub(lookups) {
                None => ("lookup_snapshots", n),
                Some(i) => ("snapshots", i),
            };
            // Retained snapshots follow one another without gaps (a tracker drops only
            // its oldest), which is what finding one by its index relies on.
            check_increasing(list, i, &mut prev, r.index, n > lookups)?;
            check_name("operation", &r.operation)
                .map_err(|e| field(&format!("{list}[{i}].operation"), e.to_string()))?;
            let mut snap = Snapshot {
                index: r.index,
                timestamp_ms: r.timestamp_ms,
                operation: tr.intern(&r.operation),
                thread_id_user_context: tr.intern_opt(r.thread_id_user_context.as_deref()),
                thread_id_manager_context: tr.intern_opt(r.thread_id_manager_context.as_deref()),
                thread_id_isolation_key: tr.intern_opt(r.thread_id_isolation_key.as_deref()),
                thread_id_cleanup_lookup: tr.intern_opt(r.thread_id_cleanup_lookup.as_deref()),
                manager_instance_id: r.manager_instance_id,
                isolation_key: tr.intern_opt(r.isolation_key.as_deref()),
                user_id: tr.intern_opt(r.user_id.as_deref()),
                websocket_client_id: r.websocket_client_id.as_deref().map(Arc::from),
                mismatch: false,
                metadata: r
                    .metadata
                    .filter(|m| !m.is_empty())
                    .map(StoredMetadata::from),
            };
            snap.mismatch = snap.has_mismatch();
            if n < lookups {
                tr.note_latest_manager(&snap);
                tr.dropped_latest.push(snap);
            } else {
                tr.push_snapshot(snap);
            }
        }
        let mut prev: Option<u64> = None;
        for (i, v) in file.violations.into_iter().enumerate() {
            check_increasing("violations", i, &mut prev, v.index, i > 0)?;
            // The names `record_violation` takes, by the same rule.
            let names = [
                ("type", "violation type", Some(&v.kind)),
                ("severity", "severity", Some(&v.severity)),
                ("operation", "operation", v.operation.as_ref()),
            ];
            for (key, name, value) in names {
                if let Some(value) = value {
                    check_name(name, value)
                        .map_err(|e| field(&format!("violations[{i}].{key}"), e.to_string()))?;
                }
            }
            tr.account_violation(&v);
            tr.violations.push_back(v);
        }
        let a = file.analysis;
        check_retained(
            "snapshots",
            tr.snapshots.front().map(|s| s.index),
            tr.snapshots.len(),
            a.total_snapshots,
            file.capacity,
        )?;
        check_retained(
            "violations",
            tr.violations.front().map(|v| v.index),
            tr.violations.len(),
            a.total_violations,
            file.capacity,
        )?;
        // Lifecycle counts come from registry events, not snapshots: only the file has them.
        tr.totals.managers_created = a.managers_created;
        tr.totals.managers_cleaned_up = a.managers_cleaned_up;
        let complete = a.total_snapshots == tr.snapshots.len() as u64
            && a.total_violations == tr.violations.len() as u64;
        if !complete {
            // A bounded tracker's file: the history before the retained part is known
            // only through its totals, which must agree with each other and with it.
            check_totals(&a, &tr.totals)?;
            tr.restore_totals(a)?;
        }
        tr.frozen_at_ms = Some(file.generated_at_ms);
        Ok(tr)
    }

    /// A bounded tracker's file: the totals come from its analysis. Every user's thread
    /// ids must be among the analysis's thread ids, as the tracker writes them.
    fn restore_totals(&mut self, a: Analysis) -> Result<(), ReportError> {
        // Keyed like the tracker's other tables (`Tracker::seeded`), not by the default.
        let mut t = Totals::keyed(*self.interned.hasher());
        t.snapshots = a.total_snapshots;
        t.inconsistent = a.inconsistent_snapshots;
        t.violations = a.total_violations;
        t.first_divergence = a.first_divergence;
        t.last_consistent_before_divergence = a.last_consistent_before_divergence;
        t.last_consistent = self.totals.last_consistent;
        t.managers_created = a.managers_created;
        t.managers_cleaned_up = a.managers_cleaned_up;
        for id in &a.thread_ids {
            let id = self.intern(id);
            t.thread_position(&id);
        }
        for (u, threads) in &a.thread_ids_by_user {
            let u = self.intern(u);
            let user = t.user_position(&u);
            for th in threads {
                let Some(&thread) = t.thread_index.get(th.as_str()) else {
                    return Err(ReportError::Field {
                        field: "analysis.thread_ids_by_user".into(),
                        problem: format!(
                            "user {} has thread id {}, which is not in analysis.thread_ids: expected every user's thread ids among the thread ids",
                            shown(&u),
                            shown(th)
                        ),
                    });
                };
                t.note_user_thread(user, thread);
            }
        }
        for (op, n) in &a.operation_violations {
            let op = self.intern(op);
            t.operation_index
                .insert(op.clone(), t.operation_violations.len());
            t.operation_violations.push((op, *n));
        }
        self.totals = t;
        Ok(())
    }
}

/// Which snapshots to show: every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotFilter {
    /// The snapshot's user, exactly.
    pub user_id: Option<String>,
    /// The snapshot's operation, exactly.
    pub operation: Option<String>,
    /// A substring of any of the four thread ids.
    pub thread_id: Option<String>,
    /// Only snapshots whose thread ids disagree.
    pub mismatches_only: bool,
}

impl SnapshotFilter {
    /// Whether `s` meets every condition set (an empty string sets none).
    pub fn matches(&self, s: &Snapshot) -> bool {
        if let Some(u) = self.user_id.as_deref().filter(|u| !u.is_empty()) {
            if s.user_id.as_deref() != Some(u) {
                return false;
            }
        }
        if let Some(o) = self.operation.as_deref().filter(|o| !o.is_empty()) {
            if &*s.operation != o {
                return false;
            }
        }
        if let Some(t) = self.thread_id.as_deref().filter(|t| !t.is_empty()) {
            if !s
                .thread_ids()
                .iter()
                .any(|(_, id)| id.is_some_and(|id| crate::ids::find_text(id, t).is_some()))
            {
                return false;
            }
        }
        !self.mismatches_only || s.mismatch
    }
}

impl Tracker {
    /// Positions (0 = oldest retained) of the retained snapshots the filter keeps.
    pub fn filter_positions(&self, filter: &SnapshotFilter) -> Vec<u32> {
        self.snapshots
            .iter()
            .enumerate()
            .filter(|(_, s)| filter.matches(s))
            .map(|(i, _)| i as u32)
            .collect()
    }
}

/// Two reports side by side (before and after a fix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The consistency score before, in percent.
    pub score_before: f64,
    /// The consistency score after, in percent.
    pub score_after: f64,
    /// After minus before, in percentage points.
    pub score_delta: f64,
    /// Total violations before.
    pub violations_before: u64,
    /// Total violations after.
    pub violations_after: u64,
    /// After minus before.
    pub violations_delta: i64,
    /// Inconsistent snapshots, after minus before.
    pub inconsistent_delta: i64,
    /// Unique thread ids, after minus before.
    pub unique_thread_ids_delta: i64,
    /// Leaked managers, after minus before.
    pub leaked_managers_delta: i64,
    /// Operations whose violation count changed: (operation, before, after), in the
    /// order they first appear in `before`, then in `after`.
    pub changed_operations: Vec<OperationChange>,
}

/// One operation's violation count in two reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationChange {
    /// The operation's name.
    pub operation: String,
    /// Its violations in the first report.
    pub before: u64,
    /// Its violations in the second report.
    pub after: u64,
}

impl Comparison {
    /// Compares the analysis of a report `before` a change with one `after` it.
    pub fn between(before: &Analysis, after: &Analysis) -> Self {
        // Exact where it fits an i64 (any count a tracker reaches), saturated beyond.
        let d = |a: u64, b: u64| {
            let n = b.abs_diff(a).min(i64::MAX as u64) as i64;
            if b >= a {
                n
            } else {
                -n
            }
        };
        let count = |a: &Analysis, op: &str| {
            a.operation_violations
                .iter()
                .find(|(o, _)| o == op)
                .map_or(0, |(_, n)| *n)
        };
        let mut changed: Vec<OperationChange> = Vec::new();
        for (op, _) in before
            .operation_violations
            .iter()
            .chain(&after.operation_violations)
        {
            if changed.iter().any(|c| &c.operation == op) {
                continue;
            }
            let (b, a) = (count(before, op), count(after, op));
            if a != b {
                changed.push(OperationChange {
                    operation: op.clone(),
                    before: b,
                    after: a,
                });
            }
        }
        Comparison {
            score_before: before.consistency_score,
            score_after: after.consistency_score,
            score_delta: after.consistency_score - before.consistency_score,
            violations_before: before.total_violations,
            violations_after: after.total_violations,
            violations_delta: d(before.total_violations, after.total_violations),
            inconsistent_delta: d(before.inconsistent_snapshots, after.inconsistent_snapshots),
            unique_thread_ids_delta: d(
                before.unique_thread_ids_found,
                after.unique_thread_ids_found,
            ),
            leaked_managers_delta: d(before.leaked_managers, after.leaked_managers),
            changed_operations: changed,
        }
    }
}

/// A report file as read, before it is checked and replayed into a tracker.
struct ReportFile<'a> {
    schema: Option<Cow<'a, str>>,
    started_at_ms: u64,
    generated_at_ms: u64,
    capacity: Option<usize>,
    analysis: Analysis,
    snapshots: Vec<SnapshotRecord<'a>>,
    violations: Vec<Violation>,
    /// Dropped latest manager snapshots; absent when there are none, and in reports
    /// written before the field existed.
    lookup_snapshots: Vec<SnapshotRecord<'a>>,
}

/// A snapshot as a report file holds it (absent optional fields read as `null`).
#[derive(Default)]
struct SnapshotRecord<'a> {
    index: u64,
    timestamp_ms: u64,
    operation: Cow<'a, str>,
    thread_id_user_context: Option<Cow<'a, str>>,
    thread_id_manager_context: Option<Cow<'a, str>>,
    thread_id_isolation_key: Option<Cow<'a, str>>,
    thread_id_cleanup_lookup: Option<Cow<'a, str>>,
    manager_instance_id: Option<u64>,
    isolation_key: Option<Cow<'a, str>>,
    user_id: Option<Cow<'a, str>>,
    websocket_client_id: Option<Cow<'a, str>>,
    metadata: Option<Metadata>,
}

// The readers below follow the structs' serde derives: fields in any order, each at
// most once, `Option` fields may be absent, unknown fields are skipped.

fn read_report(text: &str) -> JsonResult<ReportFile<'_>> {
    let mut r = Reader::new(text);
    let mut seen = Fields::new();
    let mut schema = None;
    let (mut started_at_ms, mut generated_at_ms, mut capacity) = (0, 0, None);
    let mut analysis = None;
    let (mut snapshots, mut violations, mut lookups) = (Vec::new(), Vec::new(), Vec::new());
    r.object("report", |r, key| match key.as_ref() {
        "schema" => {
            seen.first(r, 0, "schema")?;
            schema = r.opt_string("schema")?;
            Ok(())
        }
        "started_at_ms" => {
            seen.first(r, 1, "started_at_ms")?;
            started_at_ms = r.u64("started_at_ms")?;
            Ok(())
        }
        "generated_at_ms" => {
            seen.first(r, 2, "generated_at_ms")?;
            generated_at_ms = r.u64("generated_at_ms")?;
            Ok(())
        }
        "capacity" => {
            seen.first(r, 3, "capacity")?;
            capacity = match r.opt_u64("capacity")? {
                None => None,
                Some(c) => Some(usize::try_from(c).map_err(|_| {
                    r.error(format!(
                        "capacity: {c} is too large: expected at most {}",
                        usize::MAX
                    ))
                })?),
            };
            Ok(())
        }
        "analysis" => {
            seen.first(r, 4, "analysis")?;
            analysis = Some(read_analysis(r)?);
            Ok(())
        }
        name @ ("snapshots" | "lookup_snapshots") => {
            let lookup = name == "lookup_snapshots";
            seen.first(r, if lookup { 7 } else { 5 }, name)?;
            // One closure for both lists: one copy of the snapshot reader in the wasm.
            r.array(name, |r| {
                let s = read_snapshot(r)?;
                if lookup { &mut lookups } else { &mut snapshots }.push(s);
                Ok(())
            })
        }
        "violations" => {
            seen.first(r, 6, "violations")?;
            r.array("violations", |r| {
                violations.push(read_violation(r)?);
                Ok(())
            })
        }
        _ => r.skip(),
    })?;
    seen.require(
        &r,
        "report",
        &[
            (1, "started_at_ms"),
            (2, "generated_at_ms"),
            (4, "analysis"),
            (5, "snapshots"),
            (6, "violations"),
        ],
    )?;
    r.finish()?;
    Ok(ReportFile {
        schema,
        started_at_ms,
        generated_at_ms,
        capacity,
        analysis: analysis.unwrap_or_else(Analysis::empty),
        snapshots,
        violations,
        lookup_snapshots: lookups,
    })
}

/// The `schema` field of a report whose other fields may be of any shape.
fn read_schema_only(text: &str) -> JsonResult<Option<Cow<'_, str>>> {
    let mut r = Reader::new(text);
    let mut schema = None;
    let mut seen = Fields::new();
    r.object("report", |r, key| {
        if key == "schema" {
            seen.first(r, 0, "schema")?;
            schema = r.opt_string("schema")?;
            Ok(())
        } else {
            r.skip()
        }
    })?;
    r.finish()?;
    Ok(schema)
}

fn read_snapshot<'a>(r: &mut Reader<'a>) -> JsonResult<SnapshotRecord<'a>> {
    let mut s = SnapshotRecord::default();
    let mut seen = Fields::new();
    r.object("snapshot", |r, key| {
        let (i, name) = match key.as_ref() {
            "index" => (0, "index"),
            "timestamp_ms" => (1, "timestamp_ms"),
            "operation" => (2, "operation"),
            "thread_id_user_context" => (3, "thread_id_user_context"),
            "thread_id_manager_context" => (4, "thread_id_manager_context"),
            "thread_id_isolation_key" => (5, "thread_id_isolation_key"),
            "thread_id_cleanup_lookup" => (6, "thread_id_cleanup_lookup"),
            "manager_instance_id" => (7, "manager_instance_id"),
            "isolation_key" => (8, "isolation_key"),
            "user_id" => (9, "user_id"),
            "websocket_client_id" => (10, "websocket_client_id"),
            "metadata" => (11, "metadata"),
            _ => return r.skip(),
        };
        seen.first(r, i, name)?;
        match i {
            0 => s.index = r.u64("snapshot index")?,
            1 => s.timestamp_ms = r.u64("snapshot timestamp_ms")?,
            2 => s.operation = r.string("snapshot operation")?,
            3 => s.thread_id_user_context = r.opt_string(name)?,
            4 => s.thread_id_manager_context = r.opt_string(name)?,
            5 => s.thread_id_isolation_key = r.opt_string(name)?,
            6 => s.thread_id_cleanup_lookup = r.opt_string(name)?,
            7 => s.manager_instance_id = r.opt_u64(name)?,
            8 => s.isolation_key = r.opt_string(name)?,
            9 => s.user_id = r.opt_string(name)?,
            10 => s.websocket_client_id = r.opt_string(name)?,
            _ => s.metadata = r.opt_metadata(name)?,
        }
        Ok(())
    })?;
    seen.require(
        r,
        "snapshot",
        &[(0, "index"), (1, "timestamp_ms"), (2, "operation")],
    )?;
    Ok(s)
}

fn read_violation(r: &mut Reader<'_>) -> JsonResult<Violation> {
    let mut v = Violation {
        index: 0,
        timestamp_ms: 0,
        kind: String::new(),
        severity: String::new(),
        operation: None,
        snapshot_index: None,
        thread_id_summary: None,
        details: Metadata::new(),
    };
    let mut seen = Fields::new();
    r.object("violation", |r, key| {
        let (i, name) = match key.as_ref() {
            "index" => (0, "index"),
            "timestamp_ms" => (1, "timestamp_ms"),
            "type" => (2, "type"),
            "severity" => (3, "severity"),
            "operation" => (4, "operation"),
            "snapshot_index" => (5, "snapshot_index"),
            "thread_id_summary" => (6, "thread_id_summary"),
            "details" => (7, "details"),
            _ => return r.skip(),
        };
        seen.first(r, i, name)?;
        match i {
            0 => v.index = r.u64("violation index")?,
            1 => v.timestamp_ms = r.u64("violation timestamp_ms")?,
            2 => v.kind = r.string("violation type")?.into_owned(),
            3 => v.severity = r.string("violation severity")?.into_owned(),
            4 => v.operation = r.opt_string("violation operation")?.map(Cow::into_owned),
            5 => v.snapshot_index = r.opt_u64("violation snapshot_index")?,
            6 => {
                v.thread_id_summary = if r.null() {
                    None
                } else {
                    Some(read_summary(r)?)
                }
            }
            // `details` defaults to empty when absent, but `null` is refused (as serde does).
            _ => {
                v.details = match r.opt_metadata("violation details")? {
                    Some(d) => d,
                    None => {
                        return Err(r.error("violation details: expected an object, found null"))
                    }
                }
            }
        }
        Ok(())
    })?;
    seen.require(
        r,
        "violation",
        &[
            (0, "index"),
            (1, "timestamp_ms"),
            (2, "type"),
            (3, "severity"),
        ],
    )?;
    Ok(v)
}

fn read_summary(r: &mut Reader<'_>) -> JsonResult<ThreadIdSummary> {
    let mut s = ThreadIdSummary::default();
    let mut seen = Fields::new();
    r.object("thread_id_summary", |r, key| {
        let (i, slot) = match key.as_ref() {
            "user_context" => (0, &mut s.user_context),
            "manager_context" => (1, &mut s.manager_context),
            "isolation_key" => (2, &mut s.isolation_key),
            "cleanup_lookup" => (3, &mut s.cleanup_lookup),
            _ => return r.skip(),
        };
        seen.first(r, i, &key)?;
        *slot = r.opt_string("thread_id_summary")?.map(Cow::into_owned);
        Ok(())
    })?;
    Ok(s)
}

fn read_analysis(r: &mut Reader<'_>) -> JsonResult<Analysis> {
    let mut a = Analysis::empty();
    let mut seen = Fields::new();
    let strings = |r: &mut Reader<'_>, what: &str| {
        let mut v = Vec::new();
        r.array(what, |r| {
            v.push(r.string(what)?.into_owned());
            Ok(())
        })?;
        Ok::<_, JsonError>(v)
    };
    r.object("analysis", |r, key| {
        let (i, name) = match key.as_ref() {
            "total_snapshots" => (0, "total_snapshots"),
            "retained_snapshots" => (1, "retained_snapshots"),
            "total_violations" => (2, "total_violations"),
            "unique_thread_ids_found" => (3, "unique_thread_ids_found"),
            "thread_ids" => (4, "thread_ids"),
            "inconsistent_snapshots" => (5, "inconsistent_snapshots"),
            "operation_violations" => (6, "operation_violations"),
            "consistency_score" => (7, "consistency_score"),
            "analysis_duration" => (8, "analysis_duration"),
            "thread_ids_by_user" => (9, "thread_ids_by_user"),
            "users_with_multiple_thread_ids" => (10, "users_with_multiple_thread_ids"),
            "first_divergence" => (11, "first_divergence"),
            "last_consistent_before_divergence" => (12, "last_consistent_before_divergence"),
            "managers_created" => (13, "managers_created"),
            "managers_cleaned_up" => (14, "managers_cleaned_up"),
            "leaked_managers" => (15, "leaked_managers"),
            _ => return r.skip(),
        };
        seen.first(r, i, name)?;
        match i {
            0 => a.total_snapshots = r.u64(name)?,
            1 => a.retained_snapshots = r.u64(name)?,
            2 => a.total_violations = r.u64(name)?,
            3 => a.unique_thread_ids_found = r.u64(name)?,
            4 => a.thread_ids = strings(r, name)?,
            5 => a.inconsistent_snapshots = r.u64(name)?,
            6 => r.object(name, |r, op| {
                let n = r.u64(name)?;
                a.operation_violations.push((op.into_owned(), n));
                Ok(())
            })?,
            7 => a.consistency_score = r.f64(name)?,
            8 => a.analysis_duration = r.f64(name)?,
            9 => r.object(name, |r, user| {
                let threads = strings(r, name)?;
                a.thread_ids_by_user.push((user.into_owned(), threads));
                Ok(())
            })?,
            10 => a.users_with_multiple_thread_ids = strings(r, name)?,
            11 => a.first_divergence = r.opt_u64(name)?,
            12 => a.last_consistent_before_divergence = r.opt_u64(name)?,
            13 => a.managers_created = r.u64(name)?,
            14 => a.managers_cleaned_up = r.u64(name)?,
            _ => a.leaked_managers = r.u64(name)?,
        }
        Ok(())
    })?;
    seen.require(
        r,
        "analysis",
        &[
            (0, "total_snapshots"),
            (1, "retained_snapshots"),
            (2, "total_violations"),
            (3, "unique_thread_ids_found"),
            (4, "thread_ids"),
            (5, "inconsistent_snapshots"),
            (6, "operation_violations"),
            (7, "consistency_score"),
            (8, "analysis_duration"),
            (9, "thread_ids_by_user"),
            (10, "users_with_multiple_thread_ids"),
            (13, "managers_created"),
            (14, "managers_cleaned_up"),
            (15, "leaked_managers"),
        ],
    )?;
    Ok(a)
}

/// A report's snapshot and violation indexes are positions in one history: each list's
/// must increase.
/// An index after `prev`: the next one when `next`, else any larger one.
fn check_increasing(
    list: &str,
    i: usize,
    prev: &mut Option<u64>,
    index: u64,
    next: bool,
) -> Result<(), ReportError> {
    if let Some(p) = *prev {
        if next && Some(index) != p.checked_add(1) {
            return Err(ReportError::Field {
                field: format!("{list}[{i}].index"),
                problem: format!(
                    "{index} follows {p}: expected {} (no gaps)",
                    p.saturating_add(1)
                ),
            });
        }
        if index <= p {
            return Err(ReportError::Field {
                field: format!("{list}[{i}].index"),
                problem: format!("{index} does not follow {p}: expected increasing indexes"),
            });
        }
    }
    *prev = Some(index);
    Ok(())
}

/// The largest count a report may hold: the largest integer every binding holds exactly
/// (a JS number), and far from wrapping a `u64` as the tracker counts on.
const MAX_COUNT: u64 = (1 << 53) - 1;

/// A tracker keeps the last `min(capacity, total)` entries of a list (all of them when
/// unbounded), numbered up to `total - 1`.
fn check_retained(
    list: &str,
    first: Option<u64>,
    retained: usize,
    total: u64,
    capacity: Option<usize>,
) -> Result<(), ReportError> {
    if total > MAX_COUNT {
        return Err(ReportError::Field {
            field: format!("analysis.total_{list}"),
            problem: format!("{total}: expected at most {MAX_COUNT} (2^53-1)"),
        });
    }
    let kept = retained as u64;
    let expected = capacity.map_or(total, |c| total.min(c as u64));
    if kept != expected {
        let rule = match capacity {
            None => "an unbounded tracker keeps every one".to_owned(),
            Some(c) => format!("a tracker of capacity {c} keeps the last {expected}"),
        };
        return Err(ReportError::Field {
            field: format!("analysis.total_{list}"),
            problem: format!("{total} counted and {kept} in {list}: {rule}"),
        });
    }
    match first {
        Some(first) if first != total - kept => Err(ReportError::Field {
            field: format!("{list}[0].index"),
            problem: format!(
                "{first}, but {list} holds the last {kept} of {total}: expected {}",
                total - kept
            ),
        }),
        _ => Ok(()),
    }
}

/// A bounded tracker's totals against each other and against the retained lists
/// (`seen`: what the retained snapshots and violations count).
fn check_totals(a: &Analysis, seen: &Totals) -> Result<(), ReportError> {
    let bad = |field: &str, problem: String| {
        Err(ReportError::Field {
            field: format!("analysis.{field}"),
            problem,
        })
    };
    let total = a.total_snapshots;
    if a.inconsistent_snapshots > total || a.inconsistent_snapshots < seen.inconsistent {
        return bad(
            "inconsistent_snapshots",
            format!(
                "{}: expected from {} (the retained snapshots with a mismatch) to {total} (total_snapshots)",
                a.inconsistent_snapshots, seen.inconsistent
            ),
        );
    }
    match (a.first_divergence, seen.first_divergence) {
        (None, _) if a.inconsistent_snapshots > 0 => {
            return bad(
                "first_divergence",
                format!(
                    "null with {} inconsistent snapshots: expected the index of the first",
                    a.inconsistent_snapshots
                ),
            )
        }
        (Some(f), _) if a.inconsistent_snapshots == 0 || f >= total => {
            return bad(
                "first_divergence",
                format!("{f}: expected null with no inconsistent snapshots, else an index below {total} (total_snapshots)"),
            )
        }
        (Some(f), Some(retained)) if f > retained => {
            return bad(
                "first_divergence",
                format!("{f}, but snapshot {retained} is inconsistent: expected at most {retained}"),
            )
        }
        _ => {}
    }
    if let Some(l) = a.last_consistent_before_divergence {
        if a.first_divergence.is_none_or(|f| l >= f) {
            return bad(
                "last_consistent_before_divergence",
                format!("{l}: expected an index below first_divergence"),
            );
        }
    }
    let counted = a
        .operation_violations
        .iter()
        .try_fold(0u64, |sum, (_, n)| sum.checked_add(*n));
    if counted != Some(a.total_violations) {
        return bad(
            "operation_violations",
            format!(
                "{} violations counted by operation: expected {} (total_violations)",
                counted.map_or_else(|| "more than 2^64".to_owned(), |n| n.to_string()),
                a.total_violations
            ),
        );
    }
    Ok(())
}

fn score(total: u64, inconsistent: u64) -> f64 {
    if total == 0 {
        100.0
    } else {
        (total - inconsistent.min(total)) as f64 / total as f64 * 100.0
    }
}

fn check_name(field: &'static str, value: &str) -> Result<(), ReportError> {
    if value.is_empty() {
        // What a good value of each named field looks like, for the message.
        let example = match field {
            "severity" => "CRITICAL",
            "violation type" => "thread_id_mismatch",
            _ => "manager_creation",
        };
        return Err(ReportError::Empty { field, example });
    }
    if value.len() > MAX_NAME_LEN {
        return Err(ReportError::TooLong {
            field,
            len: value.len(),
            max: MAX_NAME_LEN,
        });
    }
    Ok(())
}

/// Deepest nesting of arrays and objects, counted before parsing so a hostile file
/// cannot exhaust the stack.
fn json_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in text.as_bytes() {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Python's `repr` of a `str`, as the seed's report prints dict and list contents.
pub fn py_repr_str(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (0x80..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

fn py_repr_value(out: &mut String, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => py_repr_str(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr_value(out, x);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr_str(out, k);
                out.push_str(": ");
                py_repr_value(out, x);
            }
            out.push('}');
        }
    }
}

fn py_repr_map(out: &mut String, m: &Metadata) {
    out.push('{');
    for (i, (k, x)) in m.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        py_repr_str(out, k);
        out.push_str(": ");
        py_repr_value(out, x);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "thread_websocket_factory_1234567890_abc_def123";

    const LEGACY: &str = "user123_thread_websocket_factory_1234567890_abc_def123_run456";

    fn seed_tracker() -> Tracker {
        let mut tr = Tracker::new(1_641_234_565_000);
        let ctx = SnapshotInput {
            operation: "user_context_creation",
            user_id: Some("user123"),
            user_context_thread_id: Some(T),
            ..Default::default()
        };
        tr.take_snapshot(ctx, 1_641_234_567_123).unwrap();
        let mgr = SnapshotInput {
            operation: "manager_creation",
            user_id: Some("user123"),
            user_context_thread_id: Some(T),
            manager_thread_id: Some(T),
            isolation_key: Some(LEGACY),
            ..Default::default()
        };
        tr.take_snapshot(mgr, 1_641_234_567_456).unwrap();
        let bad = SnapshotInput {
            operation: "inconsistent_context_creation",
            user_id: Some("user123"),
            user_context_thread_id: Some("different-thread-abcd1234"),
            manager_thread_id: Some(T),
            isolation_key: Some(LEGACY),
            ..Default::default()
        };
        tr.take_snapshot(bad, 1_641_234_567_789).unwrap();
        tr
    }

    #[test]
    fn seed_report_layout() {
        let tr = seed_tracker();
        let text = tr.report_text(1_641_234_567_450);
        let expected = format!(
            "=== THREAD_ID CONSISTENCY TRACKING REPORT ===
Tracking Duration: 2.45s
Total Snapshots: 3
Total Violations: 1

SNAPSHOTS:
  [0] user_context_creation @ 1641234567.123s
      user_context: {T}
      manager_context: None
      isolation_key: None
      cleanup_lookup: None

  [1] manager_creation @ 1641234567.456s
      user_context: {T}
      manager_context: {T}
      isolation_key: {T}
      cleanup_lookup: None

  [2] inconsistent_context_creation @ 1641234567.789s
      user_context: different-thread-abcd1234
      manager_context: {T}
      isolation_key: {T}
      cleanup_lookup: None
      ⚠️  MISMATCH DETECTED

VIOLATIONS:
  [0] thread_id_mismatch (CRITICAL)
      Operation: inconsistent_context_creation
      Thread IDs: {{'user_context': 'different-thread-abcd1234', 'manager_context': '{T}', 'isolation_key': '{T}', 'cleanup_lookup': 'None'}}

ANALYSIS:
  Consistency Score: 66.7%
  Unique Thread IDs: 2
  Thread IDs Found: ['{T}', 'different-thread-abcd1234']"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn analysis_fields() {
        let tr = seed_tracker();
        let a = tr.analyze(1_641_234_570_000);
        assert_eq!(a.total_snapshots, 3);
        assert_eq!(a.inconsistent_snapshots, 1);
        assert_eq!(a.unique_thread_ids_found, 2);
        assert_eq!(
            a.thread_ids,
            vec![T.to_string(), "different-thread-abcd1234".into()]
        );
        assert_eq!(
            a.operation_violations,
            vec![("inconsistent_context_creation".to_string(), 1)]
        );
        assert_eq!(format!("{:.1}", a.consistency_score), "66.7");
        assert_eq!(a.first_divergence, Some(2));
        assert_eq!(a.last_consistent_before_divergence, Some(1));
        assert_eq!(
            a.users_with_multiple_thread_ids,
            vec!["user123".to_string()]
        );
        assert_eq!(a.analysis_duration, 5.0);
    }

    #[test]
    fn unparsable_key_is_kept_whole_and_warned() {
        let mut tr = Tracker::new(0);
        let out = tr
            .take_snapshot(
                SnapshotInput::new("manager_creation").isolation_key("garbage"),
                1,
            )
            .unwrap();
        assert!(!out.mismatch);
        assert_eq!(
            tr.snapshots()[0].thread_id_isolation_key.as_deref(),
            Some("garbage")
        );
        assert_eq!(tr.violations()[0].kind, UNPARSABLE_KEY);
        assert_eq!(tr.violations()[0].severity, "WARNING");
    }

    #[test]
    fn cleanup_lookup_takes_part_in_the_check() {
        let mut tr = Tracker::new(0);
        let input = SnapshotInput {
            operation: "manager_creation",
            user_id: Some("u1"),
            user_context_thread_id: Some("thread_a"),
            manager_thread_id: Some("thread_a"),
            isolation_key: Some("u1:thread_a"),
            ..Default::default()
        };
        tr.take_snapshot(input, 1).unwrap();
        let ok = tr
            .simulate_cleanup_lookup("thread_a", None, None, 2)
            .unwrap();
        assert!(!ok.mismatch);
        let bad = tr
            .simulate_cleanup_lookup("thread_b", Some("u1"), None, 3)
            .unwrap();
        assert!(bad.mismatch);
        assert_eq!(tr.total_violations(), 1);
        let s = tr.snapshot(2).unwrap();
        assert_eq!(s.operation.as_ref(), CLEANUP_LOOKUP_OPERATION);
        assert_eq!(s.thread_id_isolation_key.as_deref(), Some("thread_a"));
    }

    #[test]
    fn json_round_trip_is_lossless() {
        let mut tr = seed_tracker();
        let mut d = Metadata::new();
        d.insert("attempt".into(), 3.into());
        tr.record_violation("custom", "WARNING", Some("op"), d, 1_641_234_568_000)
            .unwrap();
        let j = tr.to_json(1_641_234_569_000);
        let back = Tracker::from_json(&j, ReportLimits::default()).unwrap();
        assert_eq!(back.to_json(0), j);
        assert_eq!(back.report_text(0), tr.report_text(1_641_234_569_000));
        // The hash seed changes no answer, for a loaded tracker or one it goes on with.
        for seed in [0, 1, u64::MAX, 0x5eed] {
            let mut seeded = Tracker::from_json_seeded(&j, ReportLimits::default(), seed).unwrap();
            assert_eq!(seeded.to_json(0), j);
            assert_eq!(seeded.analyze(5), back.analyze(5));
            let mut plain = back.clone();
            for t in [&mut seeded, &mut plain] {
                let input = SnapshotInput {
                    operation: "later",
                    user_id: Some("user123"),
                    user_context_thread_id: Some("thread_other"),
                    ..Default::default()
                };
                t.take_snapshot(input, 1_641_234_570_000).unwrap();
            }
            assert_eq!(seeded.to_json(1), plain.to_json(1));
        }
        let bad = Tracker::from_json_seeded("{", ReportLimits::default(), 7).unwrap_err();
        assert_eq!(
            bad.to_string(),
            Tracker::from_json("{", ReportLimits::default())
                .unwrap_err()
                .to_string()
        );
    }

    #[test]
    fn bounded_keeps_counts_exact() {
        let mut tr = Tracker::bounded(0, 2).unwrap();
        for i in 0..5u64 {
            let th = if i == 3 { "thread_b" } else { "thread_a" };
            let input = SnapshotInput {
                operation: "op",
                user_context_thread_id: Some("thread_a"),
                manager_thread_id: Some(th),
                ..Default::default()
            };
            tr.take_snapshot(input, i).unwrap();
        }
        assert_eq!(tr.snapshots().len(), 2);
        let a = tr.analyze(10);
        assert_eq!(
            (
                a.total_snapshots,
                a.inconsistent_snapshots,
                a.unique_thread_ids_found
            ),
            (5, 1, 2)
        );
        assert_eq!(a.first_divergence, Some(3));
        let j = tr.to_json(10);
        let back = Tracker::from_json(&j, ReportLimits::default()).unwrap();
        assert_eq!(back.to_json(0), j);
        assert!(back
            .report_text(0)
            .contains("(3 earlier snapshots not retained)"));
        assert!(Tracker::bounded(0, 0).is_err());
        assert!(Tracker::seeded(0, Some(0), 9).is_err());
        // A seeded tracker answers as the default one, bounded or not.
        for capacity in [None, Some(2)] {
            let mut a = match capacity {
                None => Tracker::new(0),
                Some(c) => Tracker::bounded(0, c).unwrap(),
            };
            let mut b = Tracker::seeded(0, capacity, 0xdead_beef).unwrap();
            assert_eq!(b.capacity(), capacity);
            for i in 0..5u64 {
                for t in [&mut a, &mut b] {
                    let input = SnapshotInput {
                        operation: "op",
                        user_id: Some(if i % 2 == 0 { "u1" } else { "u2" }),
                        user_context_thread_id: Some("thread_a"),
                        manager_thread_id: Some(if i == 3 { "thread_b" } else { "thread_a" }),
                        ..Default::default()
                    };
                    t.take_snapshot(input, i).unwrap();
                }
            }
            assert_eq!(a.to_json(9), b.to_json(9));
            assert_eq!(a.report_text(9), b.report_text(9));
        }
    }

    #[test]
    fn bounded_report_carries_the_dropped_lookup_snapshots() {
        // u1's manager snapshot (index 0) is dropped by three later ones of u2; a
        // cleanup lookup of u1 by the wrong thread is still compared with it, in the
        // original and in a tracker read back from its report (which carries it
        // without its metadata).
        let manager = |user, thread| SnapshotInput {
            operation: "manager_creation",
            user_id: Some(user),
            manager_thread_id: Some(thread),
            manager_instance_id: Some(7),
            isolation_key: Some(if user == "u1" {
                "u1:thread_a"
            } else {
                "u2:thread_b"
            }),
            ..Default::default()
        };
        let mut tr = Tracker::bounded(0, 3).unwrap();
        let mut first = manager("u1", "thread_a");
        first.metadata = Some(Metadata::from([("note".to_owned(), "dropped".into())]));
        tr.take_snapshot(first, 1).unwrap();
        for t in 2..5 {
            tr.take_snapshot(manager("u2", "thread_b"), t).unwrap();
        }
        let j = tr.to_json(5);
        assert!(
            j.ends_with(",\"lookup_snapshots\":[{\"index\":0,\"timestamp_ms\":1,\"operation\":\"manager_creation\",\"thread_id_user_context\":null,\"thread_id_manager_context\":\"thread_a\",\"thread_id_isolation_key\":\"thread_a\",\"thread_id_cleanup_lookup\":null,\"manager_instance_id\":7,\"isolation_key\":\"u1:thread_a\",\"user_id\":\"u1\",\"websocket_client_id\":null,\"mismatch\":false,\"metadata\":{}}]}"),
            "{j}"
        );
        let mut back = Tracker::from_json(&j, ReportLimits::default()).unwrap();
        assert_eq!(back.to_json(5), j);
        for t in [&mut tr, &mut back] {
            let out = t
                .simulate_cleanup_lookup("thread_z", Some("u1"), None, 6)
                .unwrap();
            assert!(out.mismatch);
            let s = t.snapshots().back().unwrap();
            assert_eq!(s.manager_instance_id, Some(7));
            assert_eq!(s.thread_id_manager_context.as_deref(), Some("thread_a"));
            assert_eq!(s.thread_id_cleanup_lookup.as_deref(), Some("thread_z"));
        }
        assert_eq!(back.to_json(6), tr.to_json(6));
        // The lookup is now u1's latest manager snapshot, and it is retained.
        assert!(!tr.to_json(6).contains("\"lookup_snapshots\""));
        // An unbounded tracker never writes the field; a file's dropped snapshots must
        // precede its retained ones.
        let mut all = Tracker::new(0);
        all.take_snapshot(manager("u1", "thread_a"), 1).unwrap();
        let unbounded = all.to_json(2);
        assert!(!unbounded.contains("lookup_snapshots"));
        let lookups = &j[j.find(",\"lookup_snapshots\"").unwrap()..j.len() - 1];
        let forged = format!("{}{lookups}}}", &unbounded[..unbounded.len() - 1]);
        let err = Tracker::from_json(&forged, ReportLimits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "report field snapshots[0].index is invalid: 0 does not follow 0: expected increasing indexes"
        );
    }

    /// Snapshots of users meeting one or two threads each, over `steps` steps.
    fn feed_users(tr: &mut Tracker, from: u64, steps: u64) {
        for i in from..from + steps {
            let user = format!("u{}", i % 4);
            let thread = format!("thread_{}", i % 3);
            let input = SnapshotInput {
                operation: "op",
                user_id: Some(&user),
                user_context_thread_id: Some(&thread),
                manager_thread_id: Some(if i % 5 == 0 { "thread_x" } else { &thread }),
                ..Default::default()
            };
            tr.take_snapshot(input, i).unwrap();
        }
    }

    #[test]
    fn analysis_parts_are_the_analysis() {
        let mut tr = Tracker::new(0);
        feed_users(&mut tr, 0, 12);
        let whole = tr.analyze(20);
        let (head, lists) = tr.analyze_parts(20);
        let ids: Vec<&str> = lists.thread_ids().iter().collect();
        assert_eq!(ids, whole.thread_ids);
        let by_user: Vec<(String, Vec<String>)> = lists
            .users()
            .iter()
            .zip(lists.threads_by_user())
            .map(|(u, at)| (u.into(), at.iter().map(|&i| ids[i].into()).collect()))
            .collect();
        assert_eq!(by_user, whole.thread_ids_by_user);
        assert_eq!(lists.users().len(), lists.threads_by_user().len());
        let multi: Vec<usize> = lists.users_with_multiple_thread_ids().collect();
        assert_eq!(multi, [0, 1, 2, 3]);
        let users: Vec<&str> = multi
            .iter()
            .filter_map(|&at| lists.users().get(at))
            .collect();
        assert_eq!(users, ["u0", "u1", "u2", "u3"]);
        assert_eq!(
            head,
            Analysis {
                thread_ids: vec![],
                thread_ids_by_user: vec![],
                users_with_multiple_thread_ids: vec![],
                ..whole
            }
        );
    }

    #[test]
    fn bounded_report_reloads_its_users_threads() {
        // A bounded tracker's file: totals (users and their threads) come from the
        // analysis, and the reloaded tracker goes on from them as the original does.
        let mut tr = Tracker::bounded(0, 3).unwrap();
        feed_users(&mut tr, 0, 10);
        let j = tr.to_json(10);
        let mut back = Tracker::from_json(&j, ReportLimits::default()).unwrap();
        assert_eq!(
            back.analyze(10).thread_ids_by_user,
            tr.analyze(10).thread_ids_by_user
        );
        feed_users(&mut tr, 10, 7);
        feed_users(&mut back, 10, 7);
        let (a, b) = (tr.analyze(30), back.analyze(30));
        assert_eq!(a.thread_ids_by_user, b.thread_ids_by_user);
        assert_eq!(
            a.users_with_multiple_thread_ids,
            b.users_with_multiple_thread_ids
        );
        assert_eq!(a.thread_ids, b.thread_ids);
        assert_eq!(
            a.thread_ids_by_user[0],
            (
                "u0".to_string(),
                vec![
                    "thread_0".to_string(),
                    "thread_x".into(),
                    "thread_1".into(),
                    "thread_2".into()
                ]
            )
        );
        // A user's thread that the file's thread_ids lacks: a hand-edited file.
        let edited = j.replacen(
            "\"u2\":[\"thread_2\",\"thread_0\"]",
            "\"u2\":[\"thread_2\",\"thread_nowhere\"]",
            1,
        );
        assert_ne!(edited, j);
        let err = Tracker::from_json(&edited, ReportLimits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "report field analysis.thread_ids_by_user is invalid: user \"u2\" has thread id \"thread_nowhere\", which is not in analysis.thread_ids: expected every user's thread ids among the thread ids"
        );
    }

    #[test]
    fn bad_json_is_a_clear_error() {
        let lim = ReportLimits::default();
        assert!(matches!(
            Tracker::from_json("{", lim),
            Err(ReportError::Json(_))
        ));
        assert!(matches!(
            Tracker::from_json("{\"schema\":\"x/2\"}", lim),
            Err(ReportError::Schema { .. })
        ));
        assert!(matches!(
            Tracker::from_json("[]", lim),
            Err(ReportError::Json(_))
        ));
        let deep = "[".repeat(100_000);
        assert!(matches!(
            Tracker::from_json(&deep, lim),
            Err(ReportError::TooDeep { .. })
        ));
        let small = ReportLimits {
            max_bytes: 10,
            ..lim
        };
        assert!(matches!(
            Tracker::from_json(&"x".repeat(11), small),
            Err(ReportError::TooLarge { .. })
        ));
        let j = seed_tracker().to_json(5);
        let truncated = &j[..j.len() / 2];
        assert!(matches!(
            Tracker::from_json(truncated, lim),
            Err(ReportError::Json(_))
        ));
    }

    #[test]
    fn filter_and_compare() {
        let tr = seed_tracker();
        let f = SnapshotFilter {
            thread_id: Some("different".into()),
            ..Default::default()
        };
        assert_eq!(tr.filter_positions(&f), vec![2]);
        let f = SnapshotFilter {
            user_id: Some("user123".into()),
            operation: Some("manager_creation".into()),
            ..Default::default()
        };
        assert_eq!(tr.filter_positions(&f), vec![1]);
        let mm = SnapshotFilter {
            mismatches_only: true,
            ..Default::default()
        };
        assert_eq!(tr.filter_positions(&mm), vec![2]);
        let fixed = Tracker::new(0);
        let c = Comparison::between(&tr.analyze(0), &fixed.analyze(0));
        assert_eq!(c.violations_delta, -1);
        assert_eq!(
            c.changed_operations,
            vec![OperationChange {
                operation: "inconsistent_context_creation".into(),
                before: 1,
                after: 0
            }]
        );
    }

    #[test]
    fn stored_metadata_is_the_map_it_was_made_from() {
        let v: serde_json::Value =
            serde_json::json!({"b": [1, -2, 2.5, null, true, "x"], "a": {"z": {}, "y": "t"}});
        let m: Metadata = match v.clone() {
            serde_json::Value::Object(o) => o.into_iter().collect(),
            _ => unreachable!(),
        };
        let s = StoredMetadata::from(m.clone());
        assert_eq!(s.to_map(), m);
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
        let e = StoredMetadata::from_entries(vec![
            ("b".into(), StoredValue::Null),
            ("a".into(), StoredValue::Bool(false)),
            ("b".into(), StoredValue::Bool(true)),
        ]);
        let keys: Vec<&str> = e.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(
            e.iter().nth(1).map(|(_, v)| v),
            Some(&StoredValue::Bool(true))
        );
        let n = |i: i64| StoredValue::Number(i.into());
        let e = StoredMetadata::from_entries(vec![
            ("c".into(), n(1)),
            ("c".into(), n(2)),
            ("a".into(), n(3)),
            ("c".into(), n(4)),
            ("a".into(), n(5)),
        ]);
        let got: Vec<(&str, &StoredValue)> = e.iter().collect();
        assert_eq!(got, [("a", &n(5)), ("c", &n(4))]);
    }

    #[test]
    fn py_repr_matches_python() {
        let mut s = String::new();
        py_repr_str(&mut s, "it's");
        assert_eq!(s, "\"it's\"");
        s.clear();
        py_repr_str(&mut s, "a\n'\"b");
        assert_eq!(s, "'a\\n\\'\"b'");
    }
}
