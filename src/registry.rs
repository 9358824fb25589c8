//! The manager registry: Netra's `WebSocketManagerFactory` as a state machine with no
//! I/O. The per-user limit and the cleanup rules live here and nowhere else; the host
//! passes `now_ms` in and does the actual sending.
//!
//! Storage is a slab (stable `ManagerId`s, small entries) with two indexes: canonical key
//! to slot, and user to that user's slots, so per-user work is O(that user's managers).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::context::{Metadata, UserContext};
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
    pub connection_id: String,
    pub user_id: String,
    pub connected_ms: u64,
    #[serde(default)]
    pub metadata: Metadata,
}

/// One isolated manager: a user context, its connections, and its activity times.
#[derive(Debug, Clone)]
pub struct Manager {
    id: ManagerId,
    key: Arc<str>,
    context: UserContext,
    created_ms: u64,
    last_activity_ms: u64,
    active: bool,
    messages_routed: u64,
    connections: Vec<Connection>,
}

impl Manager {
    pub fn id(&self) -> ManagerId {
        self.id
    }
    /// The canonical isolation key `{user_id}:{thread_id}`.
    pub fn key(&self) -> &str {
        &self.key
    }
    pub fn user_id(&self) -> &str {
        self.context.user_id()
    }
    pub fn thread_id(&self) -> &str {
        self.context.thread_id()
    }
    pub fn context(&self) -> &UserContext {
        &self.context
    }
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }
    pub fn last_activity_ms(&self) -> u64 {
        self.last_activity_ms
    }
    pub fn is_active(&self) -> bool {
        self.active
    }
    pub fn messages_routed(&self) -> u64 {
        self.messages_routed
    }
    pub fn connections(&self) -> &[Connection] {
        &self.connections
    }

    /// Stale, for the limit's cleanup: inactive; or idle for over `stale_idle_ms`; or
    /// older than `stale_unconnected_age_ms` with no connections.
    pub fn is_stale(&self, config: &RegistryConfig, now_ms: u64) -> bool {
        !self.active
            || now_ms.saturating_sub(self.last_activity_ms) > config.stale_idle_ms
            || (now_ms.saturating_sub(self.created_ms) > config.stale_unconnected_age_ms
                && self.connections.is_empty())
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
    Shutdown,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum EventKind {
    Created,
    Reused,
    CleanedUp {
        reason: CleanupReason,
    },
    LimitExceeded {
        count: usize,
        max: usize,
    },
    ConnectionAdded {
        connection_id: String,
    },
    ConnectionRemoved {
        connection_id: String,
    },
    /// All connections closed; the manager is inactive from now on.
    Deactivated {
        connections: usize,
    },
}

/// One change of the registry, drained by the caller (a tracker follows the lifecycle
/// from these without extra calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEvent {
    pub kind: EventKind,
    /// `None` for a refused create.
    pub manager_id: Option<ManagerId>,
    key: Arc<str>,
    pub at_ms: u64,
}

impl RegistryEvent {
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The user: the key up to its first `:` (a user id never contains one).
    pub fn user_id(&self) -> &str {
        self.key.split_once(':').map_or(&self.key, |(u, _)| u)
    }
    /// The whole thread id: the key after its first `:`.
    pub fn thread_id(&self) -> &str {
        self.key.split_once(':').map_or("", |(_, t)| t)
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

/// What `create` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub id: ManagerId,
    /// True when an active manager under the same key was handed back.
    pub reused: bool,
    /// Stale managers of this user cleaned to make room.
    pub stale_cleaned: usize,
}

/// Counters and current sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStats {
    pub managers_created: u64,
    pub managers_reused: u64,
    pub managers_cleaned_up: u64,
    pub stale_cleaned: u64,
    pub expired_cleaned: u64,
    pub forced_cleaned: u64,
    pub limit_hits: u64,
    pub isolation_violations: u64,
    pub messages_routed: u64,
    pub events_dropped: u64,
    /// Managers registered now (active or not).
    pub managers_registered: usize,
    /// Registered managers that are active.
    pub active_managers: usize,
    pub users: usize,
    pub connections: usize,
}

#[derive(Debug, Clone)]
struct Slot {
    generation: u32,
    manager: Option<Manager>,
}

/// The registry. Not internally synchronised: wrap it in a mutex to share it (the
/// bindings do), so a check and the change it guards happen under one lock.
#[derive(Debug)]
pub struct Registry {
    config: RegistryConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_key: HashMap<Arc<str>, u32>,
    by_user: HashMap<Box<str>, Vec<u32>>,
    stats: RegistryStats,
    events: VecDeque<RegistryEvent>,
    connections: usize,
    inactive: usize,
}

impl Registry {
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        config.validate()?;
        Ok(Self {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            by_user: HashMap::new(),
            stats: RegistryStats::default(),
            events: VecDeque::new(),
            connections: 0,
            inactive: 0,
        })
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    fn emit(&mut self, kind: EventKind, manager_id: Option<ManagerId>, key: &Arc<str>, at_ms: u64) {
        if self.config.event_capacity == 0 {
            return;
        }
        if self.events.len() >= self.config.event_capacity {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(RegistryEvent {
            kind,
            manager_id,
            key: key.clone(),
            at_ms,
        });
    }

    /// Takes every event recorded since the last drain, oldest first.
    pub fn drain_events(&mut self) -> Vec<RegistryEvent> {
        self.events.drain(..).collect()
    }

    /// Events waiting to be drained.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    fn slot_of(&self, key: &str) -> Option<u32> {
        if let Some(&s) = self.by_key.get(key) {
            return Some(s);
        }
        // An older-form key names the same manager as its canonical form.
        if !key.contains(':') {
            if let Ok(k) = IsolationKey::parse(key) {
                return self.by_key.get(k.canonical().as_str()).copied();
            }
        }
        None
    }

    fn at(&self, slot: u32) -> Option<&Manager> {
        self.slots.get(slot as usize)?.manager.as_ref()
    }

    fn at_mut(&mut self, slot: u32) -> Option<&mut Manager> {
        self.slots.get_mut(slot as usize)?.manager.as_mut()
    }

    fn user_slots(&self, user_id: &str) -> &[u32] {
        self.by_user.get(user_id).map_or(&[], Vec::as_slice)
    }

    /// Managers registered for one user.
    pub fn user_count(&self, user_id: &str) -> usize {
        self.user_slots(user_id).len()
    }

    /// Creates a manager for the context, or hands back the active one under the same
    /// key. Near the limit the user's stale managers are cleaned first; at the limit,
    /// again; still at the limit, the create is refused with `LimitExceeded`.
    pub fn create(&mut self, context: UserContext, now_ms: u64) -> Result<Created, RegistryError> {
        let (user, thread) = (context.user_id(), context.thread_id());
        let mut key_text = String::with_capacity(user.len() + 1 + thread.len());
        key_text.push_str(user);
        key_text.push(':');
        key_text.push_str(thread);
        if let Some(&slot) = self.by_key.get(key_text.as_str()) {
            let m = self.at(slot).expect("indexed slot holds a manager");
            if m.active {
                let (id, key) = (m.id, m.key.clone());
                self.stats.managers_reused += 1;
                self.emit(EventKind::Reused, Some(id), &key, now_ms);
                return Ok(Created {
                    id,
                    reused: true,
                    stale_cleaned: 0,
                });
            }
            self.remove_slot(slot, CleanupReason::Replaced, now_ms);
        }
        let user = context.user_id();
        let mut stale_cleaned = 0;
        let max = self.config.max_managers_per_user;
        // One lookup of the user's count on the usual path; recounted after a cleanup.
        let mut user_count = self.user_count(user);
        if user_count >= self.config.proactive_threshold() {
            stale_cleaned += self.cleanup_stale_inner(user, now_ms);
            user_count = self.user_count(user);
        }
        if user_count >= max {
            stale_cleaned += self.cleanup_stale_inner(user, now_ms);
            let count = self.user_count(user);
            if count >= max {
                self.stats.limit_hits += 1;
                let key: Arc<str> = key_text.into();
                self.emit(EventKind::LimitExceeded { count, max }, None, &key, now_ms);
                return Err(RegistryError::LimitExceeded {
                    user_id: user.to_owned(),
                    max,
                });
            }
        }
        let key: Arc<str> = key_text.into();
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    manager: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        let id = ManagerId::new(slot, entry.generation);
        match self.by_user.get_mut(context.user_id()) {
            Some(v) => v.push(slot),
            None => {
                self.by_user.insert(context.user_id().into(), vec![slot]);
            }
        }
        entry.manager = Some(Manager {
            id,
            key: key.clone(),
            context,
            created_ms: now_ms,
            last_activity_ms: now_ms,
            active: true,
            messages_routed: 0,
            connections: Vec::new(),
        });
        self.by_key.insert(key.clone(), slot);
        self.stats.managers_created += 1;
        self.emit(EventKind::Created, Some(id), &key, now_ms);
        Ok(Created {
            id,
            reused: false,
            stale_cleaned,
        })
    }

    fn remove_slot(&mut self, slot: u32, reason: CleanupReason, now_ms: u64) -> Option<Manager> {
        let entry = self.slots.get_mut(slot as usize)?;
        let mut m = entry.manager.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        self.by_key.remove(&m.key);
        if let Some(v) = self.by_user.get_mut(m.context.user_id()) {
            if let Some(i) = v.iter().position(|&s| s == slot) {
                v.swap_remove(i);
            }
            if v.is_empty() {
                self.by_user.remove(m.context.user_id());
            }
        }
        self.connections -= m.connections.len();
        if !m.active {
            self.inactive -= 1;
        }
        m.connections.clear();
        m.active = false;
        self.stats.managers_cleaned_up += 1;
        match reason {
            CleanupReason::Stale => self.stats.stale_cleaned += 1,
            CleanupReason::Expired => self.stats.expired_cleaned += 1,
            CleanupReason::Forced => self.stats.forced_cleaned += 1,
            _ => {}
        }
        let key = m.key.clone();
        self.emit(EventKind::CleanedUp { reason }, Some(m.id), &key, now_ms);
        Some(m)
    }

    /// The manager under a key (canonical, or the older form).
    pub fn get(&self, key: &str) -> Option<&Manager> {
        self.at(self.slot_of(key)?)
    }

    /// The manager behind a handle, while it is registered.
    pub fn manager(&self, id: ManagerId) -> Option<&Manager> {
        let s = self.slots.get(id.slot() as usize)?;
        if s.generation != id.generation() {
            return None;
        }
        s.manager.as_ref()
    }

    /// Registered and active.
    pub fn is_active(&self, id: ManagerId) -> bool {
        self.manager(id).is_some_and(|m| m.active)
    }

    /// Removes the manager under a key; false when there is none.
    pub fn cleanup(&mut self, key: &str, now_ms: u64) -> bool {
        match self.slot_of(key) {
            Some(slot) => self
                .remove_slot(slot, CleanupReason::Explicit, now_ms)
                .is_some(),
            None => false,
        }
    }

    /// Removes the manager behind a handle; false when it is gone already.
    pub fn cleanup_id(&mut self, id: ManagerId, now_ms: u64) -> bool {
        if self.manager(id).is_none() {
            return false;
        }
        self.remove_slot(id.slot(), CleanupReason::Explicit, now_ms)
            .is_some()
    }

    fn remove_user_where(
        &mut self,
        user_id: &str,
        reason: CleanupReason,
        now_ms: u64,
        pick: impl Fn(&Manager) -> bool,
    ) -> usize {
        let doomed: Vec<u32> = self
            .user_slots(user_id)
            .iter()
            .copied()
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
            .values()
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
        let all: Vec<u32> = self.by_key.values().copied().collect();
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
                key: m.key.to_string(),
                manager_user: m.user_id().to_owned(),
                connection_id: connection.connection_id,
                connection_user: connection.user_id,
            };
            self.stats.isolation_violations += 1;
            return Err(err);
        }
        if !m.active {
            return Err(RegistryError::Inactive {
                key: m.key.to_string(),
            });
        }
        let m = self.at_mut(slot).expect("indexed slot holds a manager");
        let cid = connection.connection_id.clone();
        let added = match m.connections.iter_mut().find(|c| c.connection_id == cid) {
            Some(c) => {
                *c = connection;
                false
            }
            None => {
                m.connections.push(connection);
                true
            }
        };
        m.last_activity_ms = now_ms.max(m.last_activity_ms);
        let (id, k) = (m.id, m.key.clone());
        if added {
            self.connections += 1;
        }
        self.emit(
            EventKind::ConnectionAdded { connection_id: cid },
            Some(id),
            &k,
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
        let Some(i) = m
            .connections
            .iter()
            .position(|c| c.connection_id == connection_id)
        else {
            return Ok(false);
        };
        m.connections.remove(i);
        m.last_activity_ms = now_ms.max(m.last_activity_ms);
        let (id, k) = (m.id, m.key.clone());
        self.connections -= 1;
        self.emit(
            EventKind::ConnectionRemoved {
                connection_id: connection_id.to_owned(),
            },
            Some(id),
            &k,
            now_ms,
        );
        Ok(true)
    }

    /// Closes every connection and marks the manager inactive (Netra's
    /// `cleanup_all_connections`); it stays registered until cleaned up, and is stale.
    pub fn deactivate(&mut self, key: &str, now_ms: u64) -> Result<usize, RegistryError> {
        let slot = self.live_slot(key)?;
        let m = self.at_mut(slot).expect("indexed slot holds a manager");
        let n = m.connections.len();
        m.connections.clear();
        let was_active = std::mem::replace(&mut m.active, false);
        let (id, k) = (m.id, m.key.clone());
        self.connections -= n;
        if was_active {
            self.inactive += 1;
        }
        self.emit(
            EventKind::Deactivated { connections: n },
            Some(id),
            &k,
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
                key: m.key.to_string(),
                manager_user: m.user_id().to_owned(),
                connection_id: "(message)".to_owned(),
                connection_user: user_id.to_owned(),
            };
            self.stats.isolation_violations += 1;
            return Err(err);
        }
        if !m.active {
            return Err(RegistryError::Inactive {
                key: m.key.to_string(),
            });
        }
        m.last_activity_ms = now_ms.max(m.last_activity_ms);
        m.messages_routed += 1;
        let out: Vec<String> = m
            .connections
            .iter()
            .map(|c| c.connection_id.clone())
            .collect();
        self.stats.messages_routed += 1;
        Ok(out)
    }

    /// Recovery: the user's manager filed under exactly this thread id.
    pub fn find_by_thread(&self, user_id: &str, thread_id: &str) -> Option<&Manager> {
        self.user_slots(user_id)
            .iter()
            .filter_map(|&s| self.at(s))
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
            .filter_map(|(k, &s)| self.at(s).map(|m| (&**k, m)))
    }

    /// A user's managers.
    pub fn user_managers(&self, user_id: &str) -> impl Iterator<Item = &Manager> {
        self.user_slots(user_id).iter().filter_map(|&s| self.at(s))
    }

    /// Registered managers.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

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
        let mut v: Vec<(String, usize)> = self
            .by_user
            .iter()
            .map(|(u, s)| (u.to_string(), s.len()))
            .collect();
        v.sort_unstable(); // user ids are unique: the same order as a stable sort
        v
    }
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
        assert!(matches!(e, RegistryError::IsolationViolation { .. }));
        assert_eq!(r.get("u1:thread_a").unwrap().connections().len(), 1);
        assert_eq!(
            r.send_to_user("u1:thread_a", "u1", 2).unwrap(),
            vec!["c1".to_string()]
        );
        assert!(r.send_to_user("u1:thread_a", "u2", 2).is_err());
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
