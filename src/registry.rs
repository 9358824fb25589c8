//! The manager registry: Netra's `WebSocketManagerFactory` as a state machine with no
//! I/O. The per-user limit and the cleanup rules live here and nowhere else; the host
//! passes `now_ms` in and does the actual sending.
//!
//! Storage is a slab (stable `ManagerId`s, small entries) with two indexes: canonical key
//! to slot, and user to that user's slots, so per-user work is O(that user's managers).
//! Both indexes hold slot numbers only (the text they are keyed by lives in the manager)
//! and hash with foldhash under a per-registry secret seed.

use std::collections::VecDeque;
use std::hash::Hasher;
use std::sync::Arc;

use foldhash::fast::FoldHasher;
use foldhash::SharedSeed;
use hashbrown::HashTable;

use serde::{Deserialize, Serialize};

use crate::context::{Metadata, UserContext};
use crate::entropy::Entropy;
use crate::error::RegistryError;
use crate::ids::{check_text, run_readings};
use crate::key::IsolationKey;

/// Every threshold of the registry. Times are in ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistryConfig {
    /// Netra's `max_managers_per_user`.
    pub max_managers_per_user: usize,
    /// Percent of the limit at which a user's stale managers are cleaned before a
    /// create (60: at 12 of 20).
    pub proactive_cleanup_percent: u8,
    /// A manager idle for longer than this is stale.
    pub stale_idle_ms: u64,
    /// A manager older than this with no connections is stale.
    pub stale_unconnected_age_ms: u64,
    /// `expire_idle` removes managers idle for longer than this
    /// (Netra's `connection_timeout_seconds`).
    pub connection_timeout_ms: u64,
    /// Undrained events kept; the oldest are dropped (and counted) beyond it. 0 records
    /// none.
    pub event_capacity: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            max_managers_per_user: 20,
            proactive_cleanup_percent: 60,
            stale_idle_ms: 10_000,
            stale_unconnected_age_ms: 10_000,
            connection_timeout_ms: 1_800_000,
            event_capacity: 65_536,
        }
    }
}

/// Largest per-user limit accepted.
pub const MAX_MANAGERS_PER_USER: usize = 1_000_000;

impl RegistryConfig {
    /// Checks the settings: `max_managers_per_user` from 1 to [`MAX_MANAGERS_PER_USER`],
    /// `proactive_cleanup_percent` at most 100; otherwise [`RegistryError::Config`].
    pub fn validate(&self) -> Result<(), RegistryError> {
        let bad = |name, value: String, expected| {
            Err(RegistryError::Config {
                name,
                value,
                expected,
            })
        };
        if !(1..=MAX_MANAGERS_PER_USER).contains(&self.max_managers_per_user) {
            return bad(
                "max_managers_per_user",
                self.max_managers_per_user.to_string(),
                "1 to 1000000",
            );
        }
        if self.proactive_cleanup_percent > 100 {
            return bad(
                "proactive_cleanup_percent",
                self.proactive_cleanup_percent.to_string(),
                "0 to 100",
            );
        }
        Ok(())
    }

    /// The count at which stale managers are cleaned before a create:
    /// `int(max * 0.6)` in Netra's code.
    pub fn proactive_threshold(&self) -> usize {
        self.max_managers_per_user * self.proactive_cleanup_percent as usize / 100
    }
}

/// A manager's stable handle: slot and generation, so a stale handle never names a new
/// manager that reused the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ManagerId(pub u64);

impl ManagerId {
    fn new(slot: u32, generation: u32) -> Self {
        Self(((generation as u64) << 32) | slot as u64)
    }
    fn slot(self) -> u32 {
        self.0 as u32
    }
    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// One WebSocket connection held by a manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// Unique within its manager: adding one with the same id replaces it.
    pub connection_id: String,
    /// The user it belongs to; it must be the manager's user.
    pub user_id: String,
    /// When it connected (ms since the Unix epoch); kept, not read by the registry.
    pub connected_ms: u64,
    /// The host's metadata, kept as given.
    #[serde(default)]
    pub metadata: Metadata,
}

/// One isolated manager: a user context, its connections, and its activity times.
#[derive(Debug, Clone)]
pub struct Manager {
    id: ManagerId,
    context: UserContext,
    created_ms: u64,
    last_activity_ms: u64,
    messages_routed: u64,
    /// Boxed: most managers hold none, and an empty `Vec` would cost 24 bytes each; the
    /// extra allocation is paid only by managers with connections.
    #[allow(clippy::box_collection)]
    connections: Option<Box<Vec<Connection>>>,
    /// The key's hash in the key index, kept so removal and growth never rehash text.
    key_hash: u32,
    /// Neighbours in the user's list (`NO_SLOT` at the ends).
    user_prev: u32,
    user_next: u32,
    active: bool,
}

impl Manager {
    /// Its handle, valid while it is registered.
    pub fn id(&self) -> ManagerId {
        self.id
    }
    /// The canonical isolation key `{user_id}:{thread_id}`.
    pub fn key(&self) -> &str {
        self.context.key_text()
    }

    fn shared_key(&self) -> SharedKey {
        SharedKey::of(&self.context)
    }
    /// The user it serves: its context's user id.
    pub fn user_id(&self) -> &str {
        self.context.user_id()
    }
    /// The thread id it is filed under: its context's, whole.
    pub fn thread_id(&self) -> &str {
        self.context.thread_id()
    }
    /// The context it was created for.
    pub fn context(&self) -> &UserContext {
        &self.context
    }
    /// The `now_ms` of its creation (ms since the Unix epoch).
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }
    /// The latest `now_ms` of an added or removed connection, a message or a `touch` (it
    /// never goes back); its creation time until then.
    pub fn last_activity_ms(&self) -> u64 {
        self.last_activity_ms
    }
    /// False once deactivated: it then takes no connections or messages.
    pub fn is_active(&self) -> bool {
        self.active
    }
    /// How many `send_to_user` calls it has routed.
    pub fn messages_routed(&self) -> u64 {
        self.messages_routed
    }
    /// Its connections, in the order added.
    pub fn connections(&self) -> &[Connection] {
        self.connections.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Stale, for the limit's cleanup: inactive; or idle for over `stale_idle_ms`; or
    /// older than `stale_unconnected_age_ms` with no connections.
    pub fn is_stale(&self, config: &RegistryConfig, now_ms: u64) -> bool {
        !self.active
            || now_ms.saturating_sub(self.last_activity_ms) > config.stale_idle_ms
            || (now_ms.saturating_sub(self.created_ms) > config.stale_unconnected_age_ms
                && self.connections().is_empty())
    }
}

/// Why a manager left the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupReason {
    /// `cleanup(key)`.
    Explicit,
    /// `force_cleanup_user`.
    Forced,
    /// Stale, cleaned near or at the limit (or by `cleanup_stale_for_user`).
    Stale,
    /// Idle past `connection_timeout_ms`.
    Expired,
    /// An inactive manager replaced by a new one under the same key.
    Replaced,
    /// `shutdown`.
    Shutdown,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EventKind {
    /// A manager was created.
    Created,
    /// `create` handed back the active manager already under the key.
    Reused,
    /// A manager left the registry.
    CleanedUp {
        /// Why it left.
        reason: CleanupReason,
    },
    /// A create was refused at the per-user limit.
    LimitExceeded {
        /// The user's managers after the stale cleanup.
        count: usize,
        /// The per-user limit.
        max: usize,
    },
    /// A connection was added, or replaced one with the same id.
    ConnectionAdded {
        /// The connection's id.
        connection_id: String,
    },
    /// A connection was removed.
    ConnectionRemoved {
        /// The connection's id.
        connection_id: String,
    },
    /// All connections closed; the manager is inactive from now on.
    Deactivated {
        /// How many connections were closed.
        connections: usize,
    },
}

/// One change of the registry, drained by the caller (a tracker follows the lifecycle
/// from these without extra calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEvent {
    /// What happened.
    pub kind: EventKind,
    /// `None` for a refused create.
    pub manager_id: Option<ManagerId>,
    key: SharedKey,
    /// The `now_ms` of the call that caused it (ms since the Unix epoch).
    pub at_ms: u64,
}

/// A key held by reference to its manager's context text (which starts with it), so an
/// event costs no allocation and keeps the text alive after the manager is gone.
#[derive(Clone)]
struct SharedKey {
    text: Arc<str>,
    len: u32,
}

impl SharedKey {
    fn of(context: &UserContext) -> Self {
        let (text, len) = context.shared_text();
        Self {
            text: text.clone(),
            len,
        }
    }

    fn as_str(&self) -> &str {
        self.text.get(..self.len as usize).unwrap_or_default()
    }
}

/// Printed and compared as the key text, as the `Arc<str>` it replaces was.
impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl PartialEq for SharedKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SharedKey {}

impl RegistryEvent {
    /// The canonical isolation key of the manager (or, for a refused create, of the
    /// context).
    pub fn key(&self) -> &str {
        self.key.as_str()
    }
    /// The user: the key up to its first `:` (a user id never contains one).
    pub fn user_id(&self) -> &str {
        let key = self.key();
        key.split_once(':').map_or(key, |(u, _)| u)
    }
    /// The whole thread id: the key after its first `:`.
    pub fn thread_id(&self) -> &str {
        self.key().split_once(':').map_or("", |(_, t)| t)
    }
}

impl Serialize for RegistryEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a> {
            #[serde(flatten)]
            kind: &'a EventKind,
            manager_id: Option<ManagerId>,
            key: &'a str,
            user_id: &'a str,
            thread_id: &'a str,
            at_ms: u64,
        }
        Flat {
            kind: &self.kind,
            manager_id: self.manager_id,
            key: self.key(),
            user_id: self.user_id(),
            thread_id: self.thread_id(),
            at_ms: self.at_ms,
        }
        .serialize(s)
    }
}

/// An event as the ring keeps it until drained: 40 bytes, half a `RegistryEvent`. A ring
/// nobody drains is full, each create and cleanup overwrites its oldest slot, and at the
/// default 65,536 events those writes stream megabytes through the cache, evicting the
/// index lines the next create needs. The kinds every create+cleanup pair records are
/// packed; the rarer ones (limit, connections) are kept whole, boxed.
///
/// WebAssembly keeps every event whole (below): there the packing costs about 650 bytes
/// of code, more than the npm package's size limit has to spare.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
enum StoredEvent {
    Lifecycle {
        // A `SharedKey`'s two fields, held apart: the kind fits beside `key_len`, where a
        // nested `SharedKey` would keep its own padding and make this 48 bytes.
        key: Arc<str>,
        key_len: u32,
        kind: LifecycleKind,
        at_ms: u64,
        manager_id: ManagerId,
    },
    Whole(Box<RegistryEvent>),
}

#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, Copy)]
enum LifecycleKind {
    Created,
    Reused,
    CleanedUp(CleanupReason),
}

#[cfg(not(target_arch = "wasm32"))]
impl StoredEvent {
    fn pack(kind: EventKind, manager_id: Option<ManagerId>, key: SharedKey, at_ms: u64) -> Self {
        let lifecycle = match kind {
            EventKind::Created => Some(LifecycleKind::Created),
            EventKind::Reused => Some(LifecycleKind::Reused),
            EventKind::CleanedUp { reason } => Some(LifecycleKind::CleanedUp(reason)),
            _ => None,
        };
        match (lifecycle, manager_id) {
            (Some(kind), Some(manager_id)) => Self::Lifecycle {
                key: key.text,
                key_len: key.len,
                kind,
                at_ms,
                manager_id,
            },
            _ => Self::Whole(Box::new(RegistryEvent {
                kind,
                manager_id,
                key,
                at_ms,
            })),
        }
    }

    fn unpack(self) -> RegistryEvent {
        match self {
            Self::Whole(event) => *event,
            Self::Lifecycle {
                key,
                key_len,
                kind,
                at_ms,
                manager_id,
            } => RegistryEvent {
                kind: match kind {
                    LifecycleKind::Created => EventKind::Created,
                    LifecycleKind::Reused => EventKind::Reused,
                    LifecycleKind::CleanedUp(reason) => EventKind::CleanedUp { reason },
                },
                manager_id: Some(manager_id),
                key: SharedKey {
                    text: key,
                    len: key_len,
                },
                at_ms,
            },
        }
    }
}

#[cfg(target_arch = "wasm32")]
#[derive(Debug)]
struct StoredEvent(RegistryEvent);

#[cfg(target_arch = "wasm32")]
impl StoredEvent {
    fn pack(kind: EventKind, manager_id: Option<ManagerId>, key: SharedKey, at_ms: u64) -> Self {
        Self(RegistryEvent {
            kind,
            manager_id,
            key,
            at_ms,
        })
    }

    fn unpack(self) -> RegistryEvent {
        self.0
    }
}

/// What `create` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// The manager's handle.
    pub id: ManagerId,
    /// True when an active manager under the same key was handed back.
    pub reused: bool,
    /// Stale managers of this user cleaned to make room.
    pub stale_cleaned: usize,
}

/// Counters and current sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStats {
    /// Managers created, over the registry's life.
    pub managers_created: u64,
    /// Creates that handed back an active manager already under the key.
    pub managers_reused: u64,
    /// Managers removed, for any reason.
    pub managers_cleaned_up: u64,
    /// Of those, removed as stale.
    pub stale_cleaned: u64,
    /// Of those, removed by `expire_idle`.
    pub expired_cleaned: u64,
    /// Of those, removed by `force_cleanup_user`.
    pub forced_cleaned: u64,
    /// Creates refused at the per-user limit.
    pub limit_hits: u64,
    /// Connections and messages refused for belonging to another user.
    pub isolation_violations: u64,
    /// `send_to_user` calls routed.
    pub messages_routed: u64,
    /// Events dropped undrained beyond `event_capacity`.
    pub events_dropped: u64,
    /// Managers registered now (active or not).
    pub managers_registered: usize,
    /// Registered managers that are active.
    pub active_managers: usize,
    /// Users with at least one registered manager.
    pub users: usize,
    /// Connections held by all managers.
    pub connections: usize,
}

/// A slab entry. The free state keeps the generation the slot's next manager gets; the
/// enum costs no room beyond the manager (the tag sits in a pointer's niche).
#[derive(Debug, Clone)]
enum Slot {
    Free(u32),
    Used(Manager),
}

/// End of a user's list.
const NO_SLOT: u32 = u32::MAX;

/// One user's managers: a list threaded through the managers themselves, in the order a
/// `Vec` with `push` and `swap_remove` would keep (the order cleanups and their events
/// follow). The user id is read from the head manager, so it is not stored again.
#[derive(Debug, Clone, Copy)]
struct UserList {
    head: u32,
    tail: u32,
    count: u32,
}

/// foldhash under a secret seed of the registry's: user and thread ids come from
/// clients, and a hash they could predict would let them choose colliding ids.
#[derive(Clone)]
struct KeyedHash {
    per_hasher: u64,
    shared: SharedSeed,
}

impl KeyedHash {
    fn from_entropy(entropy: &mut dyn Entropy) -> Self {
        let per_hasher = entropy.next_u64();
        let shared = SharedSeed::from_u64(entropy.next_u64());
        Self { per_hasher, shared }
    }

    /// 32 bits are plenty for tables of up to 2^25 buckets and keep the manager small.
    #[inline]
    fn text(&self, s: &str) -> u32 {
        let mut h = FoldHasher::with_seed(self.per_hasher, &self.shared);
        h.write(s.as_bytes());
        (h.finish() >> 32) as u32
    }
}

/// The table hash of a 32-bit hash: its bits in both halves, so the bucket index (low
/// bits) and the control tag (top 7 bits) are both taken from it.
fn spread(h: u32) -> u64 {
    ((h as u64) << 32) | h as u64
}

impl std::fmt::Debug for KeyedHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedHash(..)")
    }
}

/// The seed of [`Registry::new`]: std's per-process hashing secret (what the registry's
/// `HashMap`s were keyed with before), read through `RandomState`, so no clock, no extra
/// system call and no `std` feature is needed.
struct StdSecret;

impl Entropy for StdSecret {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn next_u64(&mut self) -> u64 {
        crate::entropy::process_secret()
    }
}

/// The registry. Not internally synchronised: wrap it in a mutex to share it (the
/// bindings do), so a check and the change it guards happen under one lock.
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Slots by the hash of their canonical key.
    by_key: HashTable<u32>,
    /// Users' lists by the hash of the user id.
    by_user: HashTable<UserList>,
    hash: KeyedHash,
    stats: RegistryStats,
    events: VecDeque<StoredEvent>,
    connections: usize,
    inactive: usize,
}

impl Registry {
    /// A registry whose index hashing is keyed by std's per-process secret.
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        Self::with_entropy(config, &mut StdSecret)
    }

    /// A registry whose index hashing is keyed from `entropy` (16 bytes are drawn), e.g.
    /// the generator's OS-seeded stream, or a fixed seed for a reproducible layout.
    pub fn with_entropy(
        config: RegistryConfig,
        entropy: &mut dyn Entropy,
    ) -> Result<Self, RegistryError> {
        config.validate()?;
        Ok(Self {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            by_key: HashTable::new(),
            by_user: HashTable::new(),
            hash: KeyedHash::from_entropy(entropy),
            stats: RegistryStats::default(),
            events: VecDeque::new(),
            connections: 0,
            inactive: 0,
        })
    }

    /// The settings it was made with.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Records an event; takes the key's `Arc` so the usual caller hands over a
    /// reference it made anyway.
    fn emit(&mut self, kind: EventKind, manager_id: Option<ManagerId>, key: SharedKey, at_ms: u64) {
        if self.config.event_capacity == 0 {
            return;
        }
        if self.events.len() >= self.config.event_capacity {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events
            .push_back(StoredEvent::pack(kind, manager_id, key, at_ms));
    }

    /// Takes every event recorded since the last drain, oldest first.
    pub fn drain_events(&mut self) -> Vec<RegistryEvent> {
        self.events.drain(..).map(StoredEvent::unpack).collect()
    }

    /// Events waiting to be drained.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    fn slot_of(&self, key: &str) -> Option<u32> {
        self.slot_of_canonical(key)
            .or_else(|| self.slot_of_older_form(key))
    }

    /// An older-form key names the same manager as its canonical form.
    fn slot_of_older_form(&self, key: &str) -> Option<u32> {
        if key.contains(':') {
            return None;
        }
        let k = IsolationKey::parse(key).ok()?;
        self.slot_of_canonical(&k.canonical())
    }

    fn slot_of_canonical(&self, key: &str) -> Option<u32> {
        let h = spread(self.hash.text(key));
        let slots = &self.slots;
        self.by_key.find(h, |&s| key_is(slots, s, key)).copied()
    }

    fn at(&self, slot: u32) -> Option<&Manager> {
        match self.slots.get(slot as usize)? {
            Slot::Used(m) => Some(m),
            Slot::Free(_) => None,
        }
    }

    fn at_mut(&mut self, slot: u32) -> Option<&mut Manager> {
        match self.slots.get_mut(slot as usize)? {
            Slot::Used(m) => Some(m),
            Slot::Free(_) => None,
        }
    }

    /// The user's list, if the user has managers.
    fn user_list(&self, user_id: &str) -> Option<UserList> {
        let h = spread(self.hash.text(user_id));
        let slots = &self.slots;
        self.by_user
            .find(h, |l| user_of(slots, l.head) == Some(user_id))
            .copied()
    }

    /// A user's slots, in list order.
    fn user_slot_iter(&self, user_id: &str) -> UserSlots<'_> {
        UserSlots {
            slots: &self.slots,
            next: self.user_list(user_id).map_or(NO_SLOT, |l| l.head),
        }
    }

    /// Managers registered for one user.
    pub fn user_count(&self, user_id: &str) -> usize {
        self.user_list(user_id).map_or(0, |l| l.count as usize)
    }

    /// Creates a manager for the context, or hands back the active one under the same
    /// key. Near the limit the user's stale managers are cleaned first; at the limit,
    /// again; still at the limit, the create is refused with `LimitExceeded`.
    pub fn create(&mut self, context: UserContext, now_ms: u64) -> Result<Created, RegistryError> {
        // The context's text starts with its canonical key: nothing is built or
        // allocated for it. It is hashed once; the same hash finds it now and files it
        // below.
        let key_text = context.key_text();
        let key_hash = self.hash.text(key_text);
        let h = spread(key_hash);
        let slots = &self.slots;
        let found = self
            .by_key
            .find(h, |&s| key_is(slots, s, key_text))
            .copied();
        if let Some(slot) = found {
            if let Some(m) = self.at(slot).filter(|m| m.active) {
                let (id, key) = (m.id, m.shared_key());
                self.stats.managers_reused += 1;
                self.emit(EventKind::Reused, Some(id), key, now_ms);
                return Ok(Created {
                    id,
                    reused: true,
                    stale_cleaned: 0,
                });
            }
            self.remove_slot(slot, CleanupReason::Replaced, now_ms);
        }
        let user = context.user_id();
        let user_hash = self.hash.text(user);
        let mut stale_cleaned = 0;
        let max = self.config.max_managers_per_user;
        // One lookup of the user's list on the usual path; looked up again after a
        // cleanup.
        let mut user_count = self.user_count_hashed(user, user_hash);
        if user_count >= self.config.proactive_threshold() {
            stale_cleaned += self.cleanup_stale_inner(user, now_ms);
            user_count = self.user_count_hashed(user, user_hash);
        }
        if user_count >= max {
            stale_cleaned += self.cleanup_stale_inner(user, now_ms);
            let count = self.user_count_hashed(user, user_hash);
            if count >= max {
                self.stats.limit_hits += 1;
                let key = SharedKey::of(&context);
                self.emit(EventKind::LimitExceeded { count, max }, None, key, now_ms);
                return Err(RegistryError::LimitExceeded {
                    user_id: user.to_owned(),
                    max,
                });
            }
        }
        let key = SharedKey::of(&context);
        let reused_slot = self
            .free
            .pop()
            .and_then(|s| match self.slots.get(s as usize) {
                Some(Slot::Free(g)) => Some((s, *g)),
                _ => None,
            });
        let (slot, generation) = match reused_slot {
            Some(sg) => sg,
            None => {
                self.slots.push(Slot::Free(0));
                ((self.slots.len() - 1) as u32, 0)
            }
        };
        let id = ManagerId::new(slot, generation);
        self.slots[slot as usize] = Slot::Used(Manager {
            id,
            context,
            created_ms: now_ms,
            last_activity_ms: now_ms,
            messages_routed: 0,
            connections: None,
            key_hash,
            user_prev: NO_SLOT,
            user_next: NO_SLOT,
            active: true,
        });
        self.push_user_slot(user_hash, slot);
        let slots = &self.slots;
        self.by_key
            .insert_unique(h, slot, |&s| key_hash_of(slots, s));
        self.stats.managers_created += 1;
        self.emit(EventKind::Created, Some(id), key, now_ms);
        Ok(Created {
            id,
            reused: false,
            stale_cleaned,
        })
    }

    fn user_count_hashed(&self, user_id: &str, user_hash: u32) -> usize {
        let slots = &self.slots;
        self.by_user
            .find(spread(user_hash), |l| {
                user_of(slots, l.head) == Some(user_id)
            })
            .map_or(0, |l| l.count as usize)
    }

    /// Appends `slot` (already holding its manager) to its user's list.
    fn push_user_slot(&mut self, user_hash: u32, slot: u32) {
        let slots = &self.slots;
        let Some(user) = user_of(slots, slot) else {
            return;
        };
        let entry = self.by_user.entry(
            spread(user_hash),
            |l| user_of(slots, l.head) == Some(user),
            |l| user_of(slots, l.head).map_or(0, |u| spread(self.hash.text(u))),
        );
        let prev_tail = match entry {
            hashbrown::hash_table::Entry::Occupied(mut o) => {
                let l = o.get_mut();
                let t = l.tail;
                l.tail = slot;
                l.count += 1;
                t
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(UserList {
                    head: slot,
                    tail: slot,
                    count: 1,
                });
                NO_SLOT
            }
        };
        if prev_tail != NO_SLOT {
            set_links(&mut self.slots, prev_tail, None, Some(slot));
            set_links(&mut self.slots, slot, Some(prev_tail), None);
        }
    }

    /// Takes `slot` out of its user's list the way `Vec::swap_remove` takes an element
    /// out: the last one moves into its place.
    fn unlink_user_slot(&mut self, slot: u32) {
        let slots = &self.slots;
        let Some(Slot::Used(m)) = slots.get(slot as usize) else {
            return;
        };
        let (xp, xn, user) = (m.user_prev, m.user_next, m.user_id());
        let Ok(mut entry) = self.by_user.find_entry(spread(self.hash.text(user)), |l| {
            user_of(slots, l.head) == Some(user)
        }) else {
            return;
        };
        let list = entry.get_mut();
        if list.count <= 1 {
            entry.remove();
            return;
        }
        list.count -= 1;
        let t = list.tail;
        if t == slot {
            list.tail = xp;
            set_links(&mut self.slots, xp, None, Some(NO_SLOT));
            return;
        }
        let tp = match self.slots.get(t as usize) {
            Some(Slot::Used(m)) => m.user_prev,
            _ => NO_SLOT,
        };
        if xp == NO_SLOT {
            list.head = t;
        }
        if tp == slot {
            // The last one directly follows `slot`: it just moves up.
            list.tail = t;
            set_links(&mut self.slots, t, Some(xp), Some(NO_SLOT));
        } else {
            list.tail = tp;
            set_links(&mut self.slots, tp, None, Some(NO_SLOT));
            set_links(&mut self.slots, t, Some(xp), Some(xn));
            set_links(&mut self.slots, xn, Some(t), None);
        }
        if xp != NO_SLOT {
            set_links(&mut self.slots, xp, None, Some(t));
        }
    }

    /// Unregisters the manager in `slot`; false when the slot holds none. The manager is
    /// dropped where it lies (no move of it out of the slab).
    fn remove_slot(&mut self, slot: u32, reason: CleanupReason, now_ms: u64) -> bool {
        let Some(m) = self.at(slot) else {
            return false;
        };
        let h = spread(m.key_hash);
        if let Ok(e) = self.by_key.find_entry(h, |&s| s == slot) {
            e.remove();
        }
        self.release_slot(slot, reason, now_ms)
    }

    /// The rest of [`Self::remove_slot`], for a slot already out of the key index.
    fn release_slot(&mut self, slot: u32, reason: CleanupReason, now_ms: u64) -> bool {
        let Some(m) = self.at(slot) else {
            return false;
        };
        let (id, key) = (m.id, m.shared_key());
        let (connections, active) = (m.connections().len(), m.active);
        self.unlink_user_slot(slot);
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            *entry = Slot::Free(id.generation().wrapping_add(1));
        }
        self.free.push(slot);
        self.connections -= connections;
        if !active {
            self.inactive -= 1;
        }
        self.stats.managers_cleaned_up += 1;
        match reason {
            CleanupReason::Stale => self.stats.stale_cleaned += 1,
            CleanupReason::Expired => self.stats.expired_cleaned += 1,
            CleanupReason::Forced => self.stats.forced_cleaned += 1,
            _ => {}
        }
        self.emit(EventKind::CleanedUp { reason }, Some(id), key, now_ms);
        true
    }

    /// The manager under a key (canonical, or the older form).
    pub fn get(&self, key: &str) -> Option<&Manager> {
        self.at(self.slot_of(key)?)
    }

    /// The manager behind a handle, while it is registered.
    pub fn manager(&self, id: ManagerId) -> Option<&Manager> {
        self.at(id.slot()).filter(|m| m.id == id)
    }

    /// Registered and active.
    pub fn is_active(&self, id: ManagerId) -> bool {
        self.manager(id).is_some_and(|m| m.active)
    }

    /// Removes the manager under a key; false when there is none.
    pub fn cleanup(&mut self, key: &str, now_ms: u64) -> bool {
        // A canonical key is found and taken out of the key index in one probe.
        let h = spread(self.hash.text(key));
        let slots = &self.slots;
        if let Ok(e) = self.by_key.find_entry(h, |&s| key_is(slots, s, key)) {
            let (slot, _) = e.remove();
            return self.release_slot(slot, CleanupReason::Explicit, now_ms);
        }
        match self.slot_of_older_form(key) {
            Some(slot) => self.remove_slot(slot, CleanupReason::Explicit, now_ms),
            None => false,
        }
    }

    /// Removes the manager behind a handle; false when it is gone already.
    pub fn cleanup_id(&mut self, id: ManagerId, now_ms: u64) -> bool {
        if self.manager(id).is_none() {
            return false;
        }
        self.remove_slot(id.slot(), CleanupReason::Explicit, now_ms)
    }

    fn remove_user_where(
        &mut self,
        user_id: &str,
        reason: CleanupReason,
        now_ms: u64,
        pick: impl Fn(&Manager) -> bool,
    ) -> usize {
        let doomed: Vec<u32> = self
            .user_slot_iter(user_id)
            .filter(|&s| self.at(s).is_some_and(&pick))
            .collect();
        for &s in &doomed {
            self.remove_slot(s, reason, now_ms);
        }
        doomed.len()
    }

    fn cleanup_stale_inner(&mut self, user_id: &str, now_ms: u64) -> usize {
        let config = self.config.clone();
        self.remove_user_where(user_id, CleanupReason::Stale, now_ms, |m| {
            m.is_stale(&config, now_ms)
        })
    }

    /// Removes one user's stale managers; returns how many.
    pub fn cleanup_stale_for_user(&mut self, user_id: &str, now_ms: u64) -> usize {
        self.cleanup_stale_inner(user_id, now_ms)
    }

    /// Removes ALL of a user's managers, fresh or stale: the way out for a user stuck at
    /// the limit with fresh, mismatched managers.
    pub fn force_cleanup_user(&mut self, user_id: &str, now_ms: u64) -> usize {
        self.remove_user_where(user_id, CleanupReason::Forced, now_ms, |_| true)
    }

    /// Removes managers idle for longer than `connection_timeout_ms` (all users).
    pub fn expire_idle(&mut self, now_ms: u64) -> usize {
        let timeout = self.config.connection_timeout_ms;
        let doomed: Vec<u32> = self
            .by_key
            .iter()
            .copied()
            .filter(|&s| {
                self.at(s)
                    .is_some_and(|m| now_ms.saturating_sub(m.last_activity_ms) > timeout)
            })
            .collect();
        for &s in &doomed {
            self.remove_slot(s, CleanupReason::Expired, now_ms);
        }
        doomed.len()
    }

    /// Whether the user can get one more manager, after cleaning stale ones if at the
    /// limit (Netra's `enforce_resource_limits`).
    pub fn enforce_limits(&mut self, user_id: &str, now_ms: u64) -> bool {
        if self.user_count(user_id) >= self.config.max_managers_per_user {
            self.cleanup_stale_inner(user_id, now_ms);
        }
        self.user_count(user_id) < self.config.max_managers_per_user
    }

    /// Removes every manager; returns how many.
    pub fn shutdown(&mut self, now_ms: u64) -> usize {
        let all: Vec<u32> = self.by_key.iter().copied().collect();
        for &s in &all {
            self.remove_slot(s, CleanupReason::Shutdown, now_ms);
        }
        all.len()
    }

    fn live_slot(&self, key: &str) -> Result<u32, RegistryError> {
        self.slot_of(key)
            .ok_or_else(|| RegistryError::UnknownManager {
                key: key.to_owned(),
            })
    }

    /// Adds (or replaces, by id) a connection. A connection of another user is an
    /// `IsolationViolation` and changes nothing.
    pub fn add_connection(
        &mut self,
        key: &str,
        connection: Connection,
        now_ms: u64,
    ) -> Result<(), RegistryError> {
        check_text("connection_id", &connection.connection_id)
            .map_err(crate::error::ContextError::from)?;
        let slot = self.live_slot(key)?;
        let m = self.at(slot).expect("indexed slot holds a manager");
        if connection.user_id != m.user_id() {
            let err = RegistryError::IsolationViolation {
                key: m.key().to_owned(),
                manager_user: m.user_id().to_owned(),
                connection_id: Some(connection.connection_id),
                connection_user: connection.user_id,
            };
            self.stats.isolation_violations += 1;
            return Err(err);
        }
        if !m.active {
            return Err(RegistryError::Inactive {
                key: m.key().to_owned(),
            });
        }
        let m = self.at_mut(slot).expect("indexed slot holds a manager");
        let cid = connection.connection_id.clone();
        let list = m.connections.get_or_insert_with(Box::default);
        let added = match list.iter_mut().find(|c| c.connection_id == cid) {
            Some(c) => {
                *c = connection;
                false
            }
            None => {
                list.push(connection);
                true
            }
        };
        m.last_activity_ms = now_ms.max(m.last_activity_ms);
        let (id, k) = (m.id, m.shared_key());
        if added {
            self.connections += 1;
        }
        self.emit(
            EventKind::ConnectionAdded { connection_id: cid },
            Some(id),
            k,
            now_ms,
        );
        Ok(())
    }

    /// Removes a connection; false when the manager does not hold it.
    pub fn remove_connection(
        &mut self,
        key: &str,
        connection_id: &str,
        now_ms: u64,
    ) -> Result<bool, RegistryError> {
        let slot = self.live_slot(key)?;
        let m = self.at_mut(slot).expect("indexed slot holds a manager");
        let Some(list) = m.connections.as_mut() else {
            return Ok(false);
        };
        let Some(i) = list.iter().position(|c| c.connection_id == connection_id) else {
            return Ok(false);
        };
        list.remove(i);
        if list.is_empty() {
            m.connections = None;
        }
        m.last_activity_ms = now_ms.max(m.last_activity_ms);
        let (id, k) = (m.id, m.shared_key());
        self.connections -= 1;
        self.emit(
            EventKind::ConnectionRemoved {
                connection_id: connection_id.to_owned(),
            },
            Some(id),
            k,
            now_ms,
        );
        Ok(true)
    }

    /// Closes every connection and marks the manager inactive (Netra's
    /// `cleanup_all_connections`); it stays registered until cleaned up, and is stale.
    pub fn deactivate(&mut self, key: &str, now_ms: u64) -> Result<usize, RegistryError> {
        let slot = self.live_slot(key)?;
        let m = self.at_mut(slot).expect("indexed slot holds a manager");
        let n = m.connections().len();
        m.connections = None;
        let was_active = std::mem::replace(&mut m.active, false);
        let (id, k) = (m.id, m.shared_key());
        self.connections -= n;
        if was_active {
            self.inactive += 1;
        }
        self.emit(
            EventKind::Deactivated { connections: n },
            Some(id),
            k,
            now_ms,
        );
        Ok(n)
    }

    /// Records activity.
    pub fn touch(&mut self, key: &str, now_ms: u64) -> Result<(), RegistryError> {
        let slot = self.live_slot(key)?;
        let m = self.at_mut(slot).expect("indexed slot holds a manager");
        m.last_activity_ms = now_ms.max(m.last_activity_ms);
        Ok(())
    }

    /// The connection ids a message for `user_id` goes to; the host sends it. A user
    /// other than the manager's gets an `IsolationViolation`, never a delivery.
    pub fn send_to_user(
        &mut self,
        key: &str,
        user_id: &str,
        now_ms: u64,
    ) -> Result<Vec<String>, RegistryError> {
        let slot = self.live_slot(key)?;
        let m = self.at_mut(slot).expect("indexed slot holds a manager");
        if m.user_id() != user_id {
            let err = RegistryError::IsolationViolation {
                key: m.key().to_owned(),
                manager_user: m.user_id().to_owned(),
                connection_id: None,
                connection_user: user_id.to_owned(),
            };
            self.stats.isolation_violations += 1;
            return Err(err);
        }
        if !m.active {
            return Err(RegistryError::Inactive {
                key: m.key().to_owned(),
            });
        }
        m.last_activity_ms = now_ms.max(m.last_activity_ms);
        m.messages_routed += 1;
        let out: Vec<String> = m
            .connections()
            .iter()
            .map(|c| c.connection_id.clone())
            .collect();
        self.stats.messages_routed += 1;
        Ok(out)
    }

    /// Recovery: the user's manager filed under exactly this thread id.
    pub fn find_by_thread(&self, user_id: &str, thread_id: &str) -> Option<&Manager> {
        self.user_managers(user_id)
            .find(|m| m.thread_id() == thread_id)
    }

    /// Recovery: the user's manager whose thread the run id belongs to, trying the run
    /// id's readings in order (generator format first). The thread must equal a reading
    /// whole, so two different threads are never paired.
    pub fn find_by_run(&self, user_id: &str, run_id: &str) -> Option<&Manager> {
        run_readings(run_id)
            .iter()
            .find_map(|r| self.find_by_thread(user_id, &r.thread_id))
    }

    /// Every registered manager with its key, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Manager)> {
        self.by_key
            .iter()
            .filter_map(|&s| self.at(s).map(|m| (m.key(), m)))
    }

    /// A user's managers.
    pub fn user_managers(&self, user_id: &str) -> impl Iterator<Item = &Manager> {
        self.user_slot_iter(user_id).filter_map(|s| self.at(s))
    }

    /// Registered managers.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no manager is registered.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Counters and sizes now.
    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            managers_registered: self.by_key.len(),
            active_managers: self.by_key.len() - self.inactive,
            users: self.by_user.len(),
            connections: self.connections,
            ..self.stats.clone()
        }
    }

    /// Managers per user, sorted by user id.
    pub fn user_counts(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(&str, usize)> = self
            .by_user
            .iter()
            .filter_map(|l| Some((user_of(&self.slots, l.head)?, l.count as usize)))
            .collect();
        sort_by_text(&mut v);
        v.into_iter().map(|(u, n)| (u.to_owned(), n)).collect()
    }

    /// Every registered key, sorted.
    pub fn keys_sorted(&self) -> Vec<String> {
        let mut v: Vec<(&str, usize)> = self.iter().map(|(k, _)| (k, 0)).collect();
        sort_by_text(&mut v);
        v.into_iter().map(|(k, _)| k.to_owned()).collect()
    }
}

/// Whether the manager in `slot` is filed under `key`.
fn key_is(slots: &[Slot], slot: u32, key: &str) -> bool {
    matches!(slots.get(slot as usize), Some(Slot::Used(m)) if m.key() == key)
}

/// The user id of the manager in `slot`.
fn user_of(slots: &[Slot], slot: u32) -> Option<&str> {
    match slots.get(slot as usize)? {
        Slot::Used(m) => Some(m.user_id()),
        Slot::Free(_) => None,
    }
}

/// The key index's hash of the manager in `slot` (for the table's growth).
fn key_hash_of(slots: &[Slot], slot: u32) -> u64 {
    match slots.get(slot as usize) {
        Some(Slot::Used(m)) => spread(m.key_hash),
        _ => 0,
    }
}

/// Sets the user-list neighbours of the manager in `slot` (`None` leaves one as it is).
fn set_links(slots: &mut [Slot], slot: u32, prev: Option<u32>, next: Option<u32>) {
    if let Some(Slot::Used(m)) = slots.get_mut(slot as usize) {
        if let Some(p) = prev {
            m.user_prev = p;
        }
        if let Some(n) = next {
            m.user_next = n;
        }
    }
}

/// A user's slots, following the list.
struct UserSlots<'a> {
    slots: &'a [Slot],
    next: u32,
}

impl Iterator for UserSlots<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let s = self.next;
        match self.slots.get(s as usize)? {
            Slot::Used(m) => {
                self.next = m.user_next;
                Some(s)
            }
            Slot::Free(_) => None,
        }
    }
}

/// Sorts by the text (unique here, so unstable is as good as stable). The one sort of
/// the crate: each element type instantiates a sort again, ~3 KB of wasm each.
fn sort_by_text(v: &mut [(&str, usize)]) {
    v.sort_unstable();
}

impl std::fmt::Display for ManagerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(user: &str, thread: &str) -> UserContext {
        UserContext::builder(user, thread, format!("run_{thread}"))
            .build_with_request_id("req_x_1_abcdef12".into())
            .unwrap()
    }

    fn conn(id: &str, user: &str) -> Connection {
        Connection {
            connection_id: id.into(),
            user_id: user.into(),
            connected_ms: 0,
            metadata: Metadata::new(),
        }
    }

    #[test]
    fn same_key_reuses_active_manager() {
        let mut r = Registry::new(RegistryConfig::default()).unwrap();
        let a = r.create(ctx("u1", "thread_a"), 0).unwrap();
        let b = r.create(ctx("u1", "thread_a"), 1).unwrap();
        assert!(!a.reused && b.reused);
        assert_eq!(a.id, b.id);
        assert_eq!(r.user_count("u1"), 1);
        r.deactivate("u1:thread_a", 2).unwrap();
        let c = r.create(ctx("u1", "thread_a"), 3).unwrap();
        assert!(!c.reused);
        assert_ne!(c.id, a.id);
        assert!(!r.is_active(a.id));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn limit_with_fresh_managers_and_stale_cleanup() {
        let mut r = Registry::new(RegistryConfig::default()).unwrap();
        for i in 0..20 {
            r.create(ctx("u1", &format!("thread_{i}")), 0).unwrap();
        }
        let e = r.create(ctx("u1", "thread_20"), 1_000).unwrap_err();
        assert_eq!(
            e,
            RegistryError::LimitExceeded {
                user_id: "u1".into(),
                max: 20
            }
        );
        assert_eq!(
            e.to_string(),
            "User u1 has reached the maximum number of WebSocket managers (20)."
        );
        assert_eq!(r.stats().limit_hits, 1);
        // Eleven seconds later every unconnected manager is stale: room again.
        let c = r.create(ctx("u1", "thread_20"), 11_001).unwrap();
        assert_eq!(c.stale_cleaned, 20);
        assert_eq!(r.user_count("u1"), 1);
    }

    #[test]
    fn proactive_cleanup_at_sixty_percent() {
        let mut r = Registry::new(RegistryConfig::default()).unwrap();
        for i in 0..11 {
            r.create(ctx("u1", &format!("thread_{i}")), 0).unwrap();
        }
        r.deactivate("u1:thread_0", 0).unwrap();
        // 11 < 12: no cleanup yet.
        assert_eq!(
            r.create(ctx("u1", "thread_11"), 0).unwrap().stale_cleaned,
            0
        );
        // At 12 the inactive one goes.
        assert_eq!(
            r.create(ctx("u1", "thread_12"), 0).unwrap().stale_cleaned,
            1
        );
        assert_eq!(r.user_count("u1"), 12);
    }

    #[test]
    fn force_cleanup_removes_fresh_managers_too() {
        let mut r = Registry::new(RegistryConfig::default()).unwrap();
        for i in 0..5 {
            r.create(ctx("u1", &format!("thread_{i}")), 0).unwrap();
        }
        r.create(ctx("u2", "thread_x"), 0).unwrap();
        assert_eq!(r.cleanup_stale_for_user("u1", 1), 0);
        assert_eq!(r.force_cleanup_user("u1", 1), 5);
        assert_eq!(r.user_count("u1"), 0);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn connections_are_isolated() {
        let mut r = Registry::new(RegistryConfig::default()).unwrap();
        r.create(ctx("u1", "thread_a"), 0).unwrap();
        r.add_connection("u1:thread_a", conn("c1", "u1"), 1)
            .unwrap();
        let e = r
            .add_connection("u1:thread_a", conn("c2", "u2"), 1)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "connection \"c2\" belongs to user \"u2\", but manager \"u1:thread_a\" serves user \"u1\": refused"
        );
        assert_eq!(r.get("u1:thread_a").unwrap().connections().len(), 1);
        assert_eq!(
            r.send_to_user("u1:thread_a", "u1", 2).unwrap(),
            vec!["c1".to_string()]
        );
        assert_eq!(
            r.send_to_user("u1:thread_a", "u2", 2)
                .unwrap_err()
                .to_string(),
            "a message is for user \"u2\", but manager \"u1:thread_a\" serves user \"u1\": refused"
        );
        assert!(r.remove_connection("u1:thread_a", "c1", 3).unwrap());
        assert!(!r.remove_connection("u1:thread_a", "c1", 3).unwrap());
        assert!(matches!(
            r.touch("nope:x", 0),
            Err(RegistryError::UnknownManager { .. })
        ));
    }

    #[test]
    fn legacy_key_finds_the_manager() {
        let mut r = Registry::new(RegistryConfig::default()).unwrap();
        r.create(
            ctx("user123", "thread_websocket_factory_1234567890_abc_def123"),
            0,
        )
        .unwrap();
        assert!(r
            .get("user123_thread_websocket_factory_1234567890_abc_def123_run456")
            .is_some());
        assert!(r.cleanup(
            "user123_thread_websocket_factory_1234567890_abc_def123_run456",
            1
        ));
        assert!(r.is_empty());
    }

    #[test]
    fn find_by_run_uses_correlation() {
        let mut r = Registry::new(RegistryConfig::default()).unwrap();
        r.create(ctx("u1", "thread_ws_5_abcd1234"), 0).unwrap();
        r.create(ctx("u1", "ws"), 0).unwrap();
        assert_eq!(
            r.find_by_run("u1", "run_ws_5_abcd1234")
                .unwrap()
                .thread_id(),
            "thread_ws_5_abcd1234"
        );
        assert!(r.find_by_run("u2", "run_ws_5_abcd1234").is_none());
        r.cleanup("u1:thread_ws_5_abcd1234", 0);
        assert_eq!(
            r.find_by_run("u1", "run_ws_5_abcd1234")
                .unwrap()
                .thread_id(),
            "ws"
        );
    }

    #[test]
    fn events_follow_the_lifecycle() {
        let mut r = Registry::new(RegistryConfig::default()).unwrap();
        let c = r.create(ctx("u1", "thread_a"), 0).unwrap();
        r.add_connection("u1:thread_a", conn("c1", "u1"), 1)
            .unwrap();
        r.cleanup("u1:thread_a", 2);
        let ev = r.drain_events();
        let kinds: Vec<_> = ev.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::Created,
                EventKind::ConnectionAdded {
                    connection_id: "c1".into()
                },
                EventKind::CleanedUp {
                    reason: CleanupReason::Explicit
                }
            ]
        );
        assert_eq!((ev[0].user_id(), ev[0].thread_id()), ("u1", "thread_a"));
        assert_eq!(ev[0].manager_id, Some(c.id));
        assert!(r.drain_events().is_empty());
    }

    #[test]
    fn expire_and_shutdown() {
        let mut r = Registry::new(RegistryConfig {
            connection_timeout_ms: 100,
            ..RegistryConfig::default()
        })
        .unwrap();
        r.create(ctx("u1", "thread_a"), 0).unwrap();
        r.create(ctx("u1", "thread_b"), 50).unwrap();
        assert_eq!(r.expire_idle(120), 1);
        assert_eq!(r.shutdown(130), 1);
        let s = r.stats();
        assert_eq!(
            (
                s.managers_created,
                s.managers_cleaned_up,
                s.managers_registered
            ),
            (2, 2, 0)
        );
    }

    #[test]
    fn user_lists_keep_the_order_of_push_and_swap_remove() {
        // The order a user's managers are visited in (cleanups and their events follow
        // it) is the order the former `Vec<u32>` with push / swap_remove had.
        let mut r = Registry::with_entropy(
            RegistryConfig {
                max_managers_per_user: 1000,
                ..RegistryConfig::default()
            },
            &mut crate::entropy::SeededEntropy::from_seed(5),
        )
        .unwrap();
        let mut model: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..4000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x % 2) as usize;
            let user = format!("u{u}");
            let list = &mut model[u];
            if list.is_empty() || x % 5 < 3 {
                let thread = format!("thread_{step}");
                r.create(ctx(&user, &thread), 0).unwrap();
                list.push(thread);
            } else {
                let i = (x >> 8) as usize % list.len();
                let thread = list.swap_remove(i);
                assert!(r.cleanup(&format!("{user}:{thread}"), 0));
            }
            let got: Vec<&str> = r.user_managers(&user).map(|m| m.thread_id()).collect();
            assert_eq!(got, *list, "step {step}");
            assert_eq!(r.user_count(&user), list.len());
        }
        assert_eq!(r.len(), model[0].len() + model[1].len());
        let counts = r.user_counts();
        let want: Vec<(String, usize)> = (0..2)
            .filter(|&u| !model[u].is_empty())
            .map(|u| (format!("u{u}"), model[u].len()))
            .collect();
        assert_eq!(counts, want);
    }

    #[test]
    fn seeded_registries_lay_out_alike_and_behave_like_new() {
        let run = |mut r: Registry| {
            for i in 0..300 {
                r.create(ctx(&format!("u{}", i % 30), &format!("thread_{i}")), 0)
                    .unwrap();
            }
            for i in (0..300).step_by(3) {
                assert!(r.cleanup(&format!("u{}:thread_{i}", i % 30), 1));
            }
            let order: Vec<String> = r.iter().map(|(k, _)| k.to_owned()).collect();
            (order, r.stats(), r.user_counts())
        };
        let seeded = || {
            Registry::with_entropy(
                RegistryConfig::default(),
                &mut crate::entropy::SeededEntropy::from_seed(11),
            )
            .unwrap()
        };
        let (a, b) = (run(seeded()), run(seeded()));
        // Same seed, same table layout: iteration order is reproducible.
        assert_eq!(a, b);
        let c = run(Registry::new(RegistryConfig::default()).unwrap());
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        assert_eq!(sorted(&a.0), sorted(&c.0));
        assert_eq!((a.1, a.2), (c.1, c.2));
        assert_eq!(a.0.len(), 200);
        // A bad config is refused whatever the seed.
        assert!(Registry::with_entropy(
            RegistryConfig {
                max_managers_per_user: 0,
                ..RegistryConfig::default()
            },
            &mut crate::entropy::SeededEntropy::from_seed(1),
        )
        .is_err());
    }

    #[test]
    fn events_keep_the_key_text_after_the_manager_is_gone() {
        let mut r = Registry::new(RegistryConfig::default()).unwrap();
        let c = ctx("u1", "thread_a:b");
        assert_eq!(c.key_text(), "u1:thread_a:b");
        r.create(c, 0).unwrap();
        assert_eq!(r.get("u1:thread_a:b").unwrap().key(), "u1:thread_a:b");
        assert!(r.cleanup("u1:thread_a:b", 1));
        let ev = r.drain_events();
        assert_eq!(ev.len(), 2);
        assert_eq!(
            (ev[1].key(), ev[1].user_id(), ev[1].thread_id()),
            ("u1:thread_a:b", "u1", "thread_a:b")
        );
        assert_eq!(ev[0], ev[0].clone());
        assert_ne!(ev[0], ev[1]);
        assert_eq!(
            format!("{:?}", ev[0]),
            r#"RegistryEvent { kind: Created, manager_id: Some(ManagerId(0)), key: "u1:thread_a:b", at_ms: 0 }"#
        );
    }

    #[test]
    fn stored_events_are_small_and_give_back_every_kind() {
        assert!(std::mem::size_of::<StoredEvent>() <= 40);
        let c = ctx("u1", "thread_a:b");
        let id = Some(ManagerId::new(7, u32::MAX));
        let mut kinds = vec![
            (EventKind::Created, id, true),
            (EventKind::Reused, id, true),
            (EventKind::Created, None, false),
            (EventKind::LimitExceeded { count: 20, max: 20 }, None, false),
            (EventKind::Deactivated { connections: 3 }, id, false),
            (
                EventKind::ConnectionAdded {
                    connection_id: "c1".into(),
                },
                id,
                false,
            ),
            (
                EventKind::ConnectionRemoved {
                    connection_id: "c1".into(),
                },
                id,
                false,
            ),
        ];
        for reason in [
            CleanupReason::Explicit,
            CleanupReason::Forced,
            CleanupReason::Stale,
            CleanupReason::Expired,
            CleanupReason::Replaced,
            CleanupReason::Shutdown,
        ] {
            kinds.push((EventKind::CleanedUp { reason }, id, true));
            kinds.push((EventKind::CleanedUp { reason }, None, false));
        }
        for (kind, manager_id, packed) in kinds {
            let stored = StoredEvent::pack(kind.clone(), manager_id, SharedKey::of(&c), 17);
            assert_eq!(
                matches!(stored, StoredEvent::Lifecycle { .. }),
                packed,
                "{kind:?}"
            );
            let back = stored.unpack();
            assert_eq!(
                (&back.kind, back.manager_id, back.key(), back.at_ms),
                (&kind, manager_id, "u1:thread_a:b", 17)
            );
        }
    }

    #[test]
    fn a_manager_costs_no_more_than_before() {
        // Slab entries: the free/used tag lives in a niche of the manager.
        assert_eq!(std::mem::size_of::<Slot>(), std::mem::size_of::<Manager>());
        assert!(std::mem::size_of::<Manager>() <= 160);
    }

    #[test]
    fn bad_config_is_refused() {
        let e = Registry::new(RegistryConfig {
            max_managers_per_user: 0,
            ..RegistryConfig::default()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "registry setting max_managers_per_user = 0 is invalid: expected 1 to 1000000"
        );
    }
}
