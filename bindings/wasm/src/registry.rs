//! `Registry`: the per-user manager limit and cleanup rules (Netra's
//! `WebSocketManagerFactory`), as a state machine the page or server drives.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use threadline::registry::{Connection, Manager, ManagerId, RegistryConfig};

use crate::args::{self, argument, core, to_js, JsClock, JsResult, Options};
use crate::ids::UserContext;
use crate::tracker::Tracker;

#[wasm_bindgen(module = "/js/args.js")]
extern "C" {
    /// Defines `obj[key] = value` as an own enumerable property, as `JSON.parse` does.
    #[wasm_bindgen(js_name = setOwn)]
    fn set_own(obj: &js_sys::Object, key: &str, value: f64);
}

/// The manager registry.
#[wasm_bindgen]
pub struct Registry {
    core: threadline::Registry,
    clock: JsClock,
}

/// A manager as JS sees it (snake_case, like every data object).
#[derive(Serialize)]
struct ManagerData<'a> {
    id: ManagerId,
    key: &'a str,
    user_id: &'a str,
    thread_id: &'a str,
    run_id: &'a str,
    created_ms: u64,
    last_activity_ms: u64,
    active: bool,
    messages_routed: u64,
    connections: &'a [Connection],
}

fn manager_object(m: &Manager) -> ManagerData<'_> {
    ManagerData {
        id: m.id(),
        key: m.key(),
        user_id: m.user_id(),
        thread_id: m.thread_id(),
        run_id: m.context().run_id(),
        created_ms: m.created_ms(),
        last_activity_ms: m.last_activity_ms(),
        active: m.is_active(),
        messages_routed: m.messages_routed(),
        connections: m.connections(),
    }
}

fn opt_manager(m: Option<&Manager>) -> JsResult<JsValue> {
    match m {
        Some(m) => to_js(&manager_object(m)),
        None => Ok(JsValue::NULL),
    }
}

fn manager_id(v: &JsValue) -> JsResult<ManagerId> {
    Ok(ManagerId(args::whole(v, "managerId")?))
}

#[wasm_bindgen]
impl Registry {
    /// `new Registry({ maxManagersPerUser = 20, proactiveCleanupPercent = 60,
    /// staleIdleMs = 10000, staleUnconnectedAgeMs = 10000, connectionTimeoutMs = 1800000,
    /// eventCapacity = 65536, clock? })`.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> JsResult<Registry> {
        let o = Options::new(
            &options,
            "Registry options",
            &[
                "maxManagersPerUser",
                "proactiveCleanupPercent",
                "staleIdleMs",
                "staleUnconnectedAgeMs",
                "connectionTimeoutMs",
                "eventCapacity",
                "clock",
            ],
        )?;
        let mut c = RegistryConfig::default();
        let max = o.whole("maxManagersPerUser")?;
        if let Some(v) = max {
            c.max_managers_per_user = args::sized(v);
        }
        if let Some(v) = o.whole("proactiveCleanupPercent")? {
            c.proactive_cleanup_percent = u8::try_from(v).map_err(|_| {
                argument(format!("proactiveCleanupPercent must be 0 to 100: got {v}"))
            })?;
        }
        if let Some(v) = o.whole("staleIdleMs")? {
            c.stale_idle_ms = v;
        }
        if let Some(v) = o.whole("staleUnconnectedAgeMs")? {
            c.stale_unconnected_age_ms = v;
        }
        if let Some(v) = o.whole("connectionTimeoutMs")? {
            c.connection_timeout_ms = v;
        }
        if let Some(v) = o.whole("eventCapacity")? {
            c.event_capacity = usize::try_from(v).unwrap_or(usize::MAX);
        }
        let clock = JsClock::from_options(&o)?;
        Ok(Registry {
            core: threadline::Registry::new(c)
                .map_err(|e| args::core_sized(e, max.unwrap_or(0)))?,
            clock,
        })
    }

    /// Creates a manager for the context, or hands back the active one under the same
    /// key; cleans the user's stale managers near and at the limit; at the limit throws
    /// `registry.limit_exceeded`. Returns `{ id, reused, stale_cleaned }`.
    pub fn create(&mut self, context: &UserContext) -> JsResult<JsValue> {
        let now = self.clock.now()?;
        let c = self.core.create(context.core.clone(), now).map_err(core)?;
        to_js(&c)
    }

    /// The manager under a key (canonical or older form), or `null`.
    pub fn get(&self, key: JsValue) -> JsResult<JsValue> {
        let k = args::string(&key, "key")?;
        opt_manager(self.core.get(&k))
    }

    /// The manager behind an id while it is registered, or `null`.
    pub fn manager(&self, id: JsValue) -> JsResult<JsValue> {
        opt_manager(self.core.manager(manager_id(&id)?))
    }

    /// Registered and active.
    #[wasm_bindgen(js_name = isActive)]
    pub fn is_active(&self, id: JsValue) -> JsResult<bool> {
        Ok(self.core.is_active(manager_id(&id)?))
    }

    /// Removes the manager under a key; false when there is none.
    pub fn cleanup(&mut self, key: JsValue) -> JsResult<bool> {
        let k = args::string(&key, "key")?;
        let now = self.clock.now()?;
        Ok(self.core.cleanup(&k, now))
    }

    /// Removes the manager behind an id; false when it is gone already.
    #[wasm_bindgen(js_name = cleanupId)]
    pub fn cleanup_id(&mut self, id: JsValue) -> JsResult<bool> {
        let id = manager_id(&id)?;
        let now = self.clock.now()?;
        Ok(self.core.cleanup_id(id, now))
    }

    /// Removes ALL of a user's managers, fresh or stale; returns how many.
    #[wasm_bindgen(js_name = forceCleanupUser)]
    pub fn force_cleanup_user(&mut self, user_id: JsValue) -> JsResult<u32> {
        let u = args::string(&user_id, "userId")?;
        let now = self.clock.now()?;
        Ok(self.core.force_cleanup_user(&u, now) as u32)
    }

    /// Removes one user's stale managers; returns how many.
    #[wasm_bindgen(js_name = cleanupStaleForUser)]
    pub fn cleanup_stale_for_user(&mut self, user_id: JsValue) -> JsResult<u32> {
        let u = args::string(&user_id, "userId")?;
        let now = self.clock.now()?;
        Ok(self.core.cleanup_stale_for_user(&u, now) as u32)
    }

    /// Removes managers idle past the connection timeout; returns how many.
    #[wasm_bindgen(js_name = expireIdle)]
    pub fn expire_idle(&mut self) -> JsResult<u32> {
        let now = self.clock.now()?;
        Ok(self.core.expire_idle(now) as u32)
    }

    /// Whether the user can get one more manager (cleaning stale ones at the limit).
    #[wasm_bindgen(js_name = enforceLimits)]
    pub fn enforce_limits(&mut self, user_id: JsValue) -> JsResult<bool> {
        let u = args::string(&user_id, "userId")?;
        let now = self.clock.now()?;
        Ok(self.core.enforce_limits(&u, now))
    }

    /// Removes every manager; returns how many.
    pub fn shutdown(&mut self) -> JsResult<u32> {
        let now = self.clock.now()?;
        Ok(self.core.shutdown(now) as u32)
    }

    /// Adds (or replaces, by id) a connection: `{ connectionId, userId, connectedMs?,
    /// metadata? }`. Another user's connection throws `registry.isolation_violation`.
    #[wasm_bindgen(js_name = addConnection)]
    pub fn add_connection(&mut self, key: JsValue, connection: JsValue) -> JsResult<()> {
        let k = args::string(&key, "key")?;
        if connection.is_null_or_undefined() {
            return Err(argument(
                "addConnection needs { connectionId, userId }: got nothing",
            ));
        }
        let o = Options::new(
            &connection,
            "connection",
            &["connectionId", "userId", "connectedMs", "metadata"],
        )?;
        let now = self.clock.now()?;
        let c = Connection {
            connection_id: o.required_string("connectionId")?,
            user_id: o.required_string("userId")?,
            connected_ms: o.whole("connectedMs")?.unwrap_or(now),
            metadata: o.metadata("metadata")?.unwrap_or_default(),
        };
        self.core.add_connection(&k, c, now).map_err(core)
    }

    /// Removes a connection; false when the manager does not hold it.
    #[wasm_bindgen(js_name = removeConnection)]
    pub fn remove_connection(&mut self, key: JsValue, connection_id: JsValue) -> JsResult<bool> {
        let k = args::string(&key, "key")?;
        let c = args::string(&connection_id, "connectionId")?;
        let now = self.clock.now()?;
        self.core.remove_connection(&k, &c, now).map_err(core)
    }

    /// Closes every connection and marks the manager inactive; returns how many closed.
    pub fn deactivate(&mut self, key: JsValue) -> JsResult<u32> {
        let k = args::string(&key, "key")?;
        let now = self.clock.now()?;
        self.core
            .deactivate(&k, now)
            .map(|n| n as u32)
            .map_err(core)
    }

    /// Records activity.
    pub fn touch(&mut self, key: JsValue) -> JsResult<()> {
        let k = args::string(&key, "key")?;
        let now = self.clock.now()?;
        self.core.touch(&k, now).map_err(core)
    }

    /// The connection ids a message for `userId` goes to; another user throws
    /// `registry.isolation_violation`.
    #[wasm_bindgen(js_name = sendToUser)]
    pub fn send_to_user(&mut self, key: JsValue, user_id: JsValue) -> JsResult<Vec<String>> {
        let k = args::string(&key, "key")?;
        let u = args::string(&user_id, "userId")?;
        let now = self.clock.now()?;
        self.core.send_to_user(&k, &u, now).map_err(core)
    }

    /// The user's manager filed under exactly this thread id, or `null`.
    #[wasm_bindgen(js_name = findByThread)]
    pub fn find_by_thread(&self, user_id: JsValue, thread_id: JsValue) -> JsResult<JsValue> {
        let u = args::string(&user_id, "userId")?;
        let t = args::string(&thread_id, "threadId")?;
        opt_manager(self.core.find_by_thread(&u, &t))
    }

    /// The user's manager whose thread the run id belongs to, or `null`.
    #[wasm_bindgen(js_name = findByRun)]
    pub fn find_by_run(&self, user_id: JsValue, run_id: JsValue) -> JsResult<JsValue> {
        let u = args::string(&user_id, "userId")?;
        let r = args::string(&run_id, "runId")?;
        opt_manager(self.core.find_by_run(&u, &r))
    }

    /// Managers registered for one user.
    #[wasm_bindgen(js_name = userCount)]
    pub fn user_count(&self, user_id: JsValue) -> JsResult<u32> {
        let u = args::string(&user_id, "userId")?;
        Ok(self.core.user_count(&u) as u32)
    }

    /// Managers registered.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> u32 {
        self.core.len() as u32
    }

    /// Every registered key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.core.keys_sorted()
    }

    /// Counters and sizes (snake_case, as the core's `RegistryStats`).
    pub fn stats(&self) -> JsResult<JsValue> {
        to_js(&self.core.stats())
    }

    /// Managers per user, `{ [userId]: count }`, users sorted.
    #[wasm_bindgen(js_name = userCounts)]
    pub fn user_counts(&self) -> JsResult<JsValue> {
        // Through JSON, so a user named "__proto__" is an own property like any other.
        let obj = js_sys::Object::new();
        for (u, n) in self.core.user_counts() {
            // Defined, not set: a user named "__proto__" is an own property like any other.
            set_own(&obj, &u, n as f64);
        }
        Ok(obj.into())
    }

    /// Takes every event recorded since the last drain, oldest first:
    /// `[{ kind, manager_id, key, user_id, thread_id, at_ms, ... }]`.
    #[wasm_bindgen(js_name = drainEvents)]
    pub fn drain_events(&mut self) -> JsResult<JsValue> {
        to_js(&self.core.drain_events())
    }

    /// `drainEvents`, with each event also observed by `tracker` (manager counts, the
    /// leak figure, refused creates as violations).
    #[wasm_bindgen(js_name = drainEventsInto)]
    pub fn drain_events_into(&mut self, tracker: &Tracker) -> JsResult<JsValue> {
        let events = self.core.drain_events();
        tracker.observe_events(&events)?;
        to_js(&events)
    }
}
