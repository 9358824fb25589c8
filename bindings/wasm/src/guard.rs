//! `ThreadGuard`: the frontend's hold on the open conversation's thread id.
//!
//! The guard holds one thread id across reconnects: the one it was given, else the first
//! `thread_id` a message carries (normally the server's first reply), else one minted
//! locally when the client must send before the server has said anything. Every message
//! with a `thread_id` is checked against it; each check is recorded in a bounded tracker
//! (held thread as the user-context thread, the guard's isolation key, the message's
//! thread as the manager thread), so a wrong-thread message is a `thread_id_mismatch`
//! like any other. A check never throws: it answers `{ ok: true, ... }` or
//! `{ ok: false, expected, got }`.

use std::rc::Rc;

use wasm_bindgen::prelude::*;

use threadline::context::validate_user_id;
use threadline::ids::MAX_ID_LEN;
use threadline::{Metadata, ValidationRules};

use crate::args::{self, argument, core, JsClock, JsResult, Options};
use crate::ids::{shared, Gen};
use crate::tracker::{Shared, SharedTracker, Tracker};

/// Default number of checks the guard's tracker keeps.
const DEFAULT_CAPACITY: usize = 1000;

/// Where the held thread id came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Given,
    Message,
    Minted,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Given => "given",
            Source::Message => "message",
            Source::Minted => "minted",
        }
    }
}

/// Holds a conversation's thread id across reconnects and checks every message by it.
#[wasm_bindgen]
pub struct ThreadGuard {
    user_id: String,
    operation: String,
    thread: Option<(String, String, Source)>,
    gen: Rc<Gen>,
    tracker: SharedTracker,
    websocket_client_id: Option<String>,
    connections: u32,
    checks: u32,
    mismatches: u32,
}

/// A thread id as the tracker keeps it: whole when it could be an id, else cut (a
/// hostile server must not fill memory through the guard's history).
fn recorded(thread: &str) -> String {
    if thread.len() <= MAX_ID_LEN {
        thread.to_owned()
    } else {
        let mut end = MAX_ID_LEN;
        while !thread.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &thread[..end], thread.len())
    }
}

fn set(obj: &js_sys::Object, key: &str, value: &JsValue) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = js_sys::Reflect::set(obj, &JsValue::from_str(key), value);
}

/// The `thread_id` a message carries: `undefined` when none (or not a JSON object text).
fn message_thread(message: &JsValue) -> JsValue {
    let obj = if let Some(text) = message.as_string() {
        match js_sys::JSON::parse(&text) {
            Ok(v) if v.is_object() => v,
            _ => return JsValue::UNDEFINED,
        }
    } else if message.is_object() {
        message.clone()
    } else {
        return JsValue::UNDEFINED;
    };
    js_sys::Reflect::get(&obj, &JsValue::from_str("thread_id")).unwrap_or(JsValue::UNDEFINED)
}

impl ThreadGuard {
    fn key_of(&self, thread: &str) -> Result<String, JsValue> {
        threadline::IsolationKey::new(&self.user_id, thread)
            .map(|k| k.to_string())
            .map_err(core)
    }

    fn snapshot(&self, operation: &str, got: Option<&str>, direction: Option<&str>) {
        let (held, key) = match &self.thread {
            Some((t, k, _)) => (Some(t.as_str()), Some(k.as_str())),
            None => (None, None),
        };
        let got = got.map(recorded);
        let mut meta = Metadata::new();
        if let Some(d) = direction {
            meta.insert("direction".into(), d.into());
        }
        let input = threadline::SnapshotInput {
            operation,
            user_id: Some(&self.user_id),
            user_context_thread_id: held,
            websocket_client_id: self.websocket_client_id.as_deref(),
            manager_thread_id: got.as_deref(),
            manager_instance_id: None,
            isolation_key: key,
            cleanup_lookup_thread_id: None,
            metadata: Some(meta),
        };
        let Ok(mut t) = self.tracker.try_borrow_mut() else {
            return;
        };
        let Ok(now) = t.clock.now() else { return };
        // The operations are fixed, valid names: recording cannot fail.
        let _ = t.core.take_snapshot(input, now);
    }

    fn adopt(&mut self, thread: String, source: Source) -> Result<(), JsValue> {
        let key = self.key_of(&thread)?;
        self.thread = Some((thread, key, source));
        Ok(())
    }

    fn mint(&mut self) -> JsResult<String> {
        let ids = self
            .gen
            .untimed()
            .user_context_ids(&self.user_id, &self.operation)
            .map_err(core)?;
        let thread = ids.thread_id().to_owned();
        self.adopt(thread.clone(), Source::Minted)?;
        self.snapshot("thread_minted", None, None);
        Ok(thread)
    }

    fn check(&mut self, message: &JsValue, direction: &str) -> JsValue {
        let out = js_sys::Object::new();
        let got = message_thread(message);
        if got.is_null_or_undefined() {
            set(&out, "ok", &JsValue::TRUE);
            set(&out, "checked", &JsValue::FALSE);
            return out.into();
        }
        self.checks += 1;
        set(&out, "checked", &JsValue::TRUE);
        let operation = if direction == "in" {
            "message_in"
        } else {
            "message_out"
        };
        let Ok(got_text) = args::string(&got, "thread_id") else {
            // A thread id that is not (well-formed) text is never the held one.
            self.mismatches += 1;
            self.snapshot(operation, Some(&args::describe(&got)), Some(direction));
            set(&out, "ok", &JsValue::FALSE);
            set(&out, "expected", &self.expected());
            set(&out, "got", &got);
            return out.into();
        };
        if self.thread.is_none() {
            if let Err(e) = self.adopt(got_text.clone(), Source::Message) {
                self.mismatches += 1;
                self.snapshot(operation, Some(&got_text), Some(direction));
                set(&out, "ok", &JsValue::FALSE);
                set(&out, "expected", &JsValue::NULL);
                set(&out, "got", &got);
                let reason = js_sys::Reflect::get(&e, &JsValue::from_str("message"))
                    .unwrap_or(JsValue::UNDEFINED);
                set(&out, "reason", &reason);
                return out.into();
            }
            set(&out, "adopted", &JsValue::TRUE);
            self.snapshot("thread_adopted", Some(&got_text), Some(direction));
            set(&out, "ok", &JsValue::TRUE);
            return out.into();
        }
        self.snapshot(operation, Some(&got_text), Some(direction));
        let held = self.thread.as_ref().map(|(t, _, _)| t.as_str());
        if held == Some(got_text.as_str()) {
            set(&out, "ok", &JsValue::TRUE);
        } else {
            self.mismatches += 1;
            set(&out, "ok", &JsValue::FALSE);
            set(&out, "expected", &self.expected());
            set(&out, "got", &got);
        }
        out.into()
    }

    fn expected(&self) -> JsValue {
        match &self.thread {
            Some((t, _, _)) => JsValue::from_str(t),
            None => JsValue::NULL,
        }
    }
}

#[wasm_bindgen]
impl ThreadGuard {
    /// `new ThreadGuard({ userId, threadId?, capacity = 1000, operation =
    /// "websocket_session", testMode?, clock? })`. Throws on a bad user or thread id;
    /// checks never throw.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> JsResult<ThreadGuard> {
        if options.is_null_or_undefined() {
            return Err(argument("ThreadGuard needs { userId }: got nothing"));
        }
        let o = Options::new(
            &options,
            "ThreadGuard options",
            &[
                "userId",
                "threadId",
                "capacity",
                "operation",
                "testMode",
                "clock",
            ],
        )?;
        let user = o.required_string("userId")?;
        let rules = if o.bool("testMode")?.unwrap_or(false) {
            ValidationRules::TEST
        } else {
            ValidationRules::PRODUCTION
        };
        validate_user_id(&user, rules).map_err(core)?;
        let operation = o
            .string("operation")?
            .unwrap_or_else(|| "websocket_session".to_owned());
        // The operation must be a valid label: asked of the core with a throwaway
        // generator, so the shared one's counter does not move.
        threadline::IdGenerator::new(
            std::sync::Arc::new(threadline::ManualClock::new(0)),
            threadline::SeededEntropy::from_seed(0),
        )
        .user_context_ids(&user, &operation)
        .map_err(core)?;
        let clock = JsClock::from_options(&o)?;
        let capacity = o.size("capacity")?.unwrap_or(DEFAULT_CAPACITY);
        let started = clock.now()?;
        let tracker =
            threadline::Tracker::seeded(started, Some(capacity), crate::args::hash_seed()?)
                .map_err(core)?;
        // Ids are minted by the guard's clock: the shared generator reads `Date.now()`.
        let gen = match &clock {
            JsClock::Date => shared()?,
            JsClock::Func(_) => Rc::new(Gen::new(None, clock.clone())?),
        };
        let mut g = ThreadGuard {
            user_id: user,
            operation,
            thread: None,
            gen,
            tracker: Shared::new(tracker, clock),
            websocket_client_id: None,
            connections: 0,
            checks: 0,
            mismatches: 0,
        };
        if let Some(t) = o.string("threadId")? {
            g.adopt(t, Source::Given)?;
            g.snapshot("thread_given", None, None);
        }
        Ok(g)
    }

    /// The held thread id, or `null` before one is known.
    #[wasm_bindgen(getter = threadId)]
    pub fn thread_id(&self) -> JsValue {
        args::nullable(self.thread.as_ref().map(|(t, _, _)| t))
    }

    /// The isolation key `{userId}:{threadId}`, or `null` before a thread is known.
    #[wasm_bindgen(getter = isolationKey)]
    pub fn isolation_key(&self) -> JsValue {
        args::nullable(self.thread.as_ref().map(|(_, k, _)| k))
    }

    /// Where the thread id came from: `"given"`, `"message"`, `"minted"`, or `null`.
    #[wasm_bindgen(getter = threadSource)]
    pub fn thread_source(&self) -> JsValue {
        args::nullable(self.thread.as_ref().map(|(_, _, s)| s.name()))
    }

    #[wasm_bindgen(getter = userId)]
    pub fn user_id(&self) -> String {
        self.user_id.clone()
    }

    /// The held thread id, minted locally (a generator thread id) when none is known yet.
    #[wasm_bindgen(js_name = ensureThreadId)]
    pub fn ensure_thread_id(&mut self) -> JsResult<String> {
        match &self.thread {
            Some((t, _, _)) => Ok(t.clone()),
            None => self.mint(),
        }
    }

    /// A (re)connection opened: records it and returns the connection's client id
    /// (`websocketClientId`, or a new `ws_client_...` id). The thread id is kept.
    pub fn connected(&mut self, websocket_client_id: JsValue) -> JsResult<String> {
        let ws = match args::opt_string(&websocket_client_id, "websocketClientId")? {
            Some(w) => w,
            None => self
                .gen
                .at_now()?
                .websocket_client_id(&self.user_id, None)
                .map_err(core)?,
        };
        self.websocket_client_id = Some(ws.clone());
        self.connections += 1;
        let op = if self.connections == 1 {
            "connection_opened"
        } else {
            "reconnected"
        };
        self.snapshot(op, None, None);
        Ok(ws)
    }

    /// Checks a message from the server (an object, or its JSON text). The first
    /// `thread_id` seen is adopted when none is held.
    pub fn incoming(&mut self, message: JsValue) -> JsValue {
        self.check(&message, "in")
    }

    /// Checks a message about to be sent.
    pub fn outgoing(&mut self, message: JsValue) -> JsValue {
        self.check(&message, "out")
    }

    /// A copy of `message` (a plain object) with `thread_id` set to the held thread id
    /// (minted when none is known yet).
    pub fn stamp(&mut self, message: JsValue) -> JsResult<JsValue> {
        if !message.is_object() || js_sys::Array::is_array(&message) {
            return Err(argument(format!(
                "stamp needs a message object: got {}",
                args::describe(&message)
            )));
        }
        let thread = self.ensure_thread_id()?;
        let copy = js_sys::Object::assign(&js_sys::Object::new(), message.unchecked_ref());
        set(&copy, "thread_id", &JsValue::from_str(&thread));
        Ok(copy.into())
    }

    /// Forgets the thread (the user opened a new conversation).
    #[wasm_bindgen(js_name = newConversation)]
    pub fn new_conversation(&mut self) {
        self.snapshot("conversation_closed", None, None);
        self.thread = None;
    }

    /// Messages checked (those that carried a `thread_id`).
    #[wasm_bindgen(getter)]
    pub fn checks(&self) -> u32 {
        self.checks
    }

    /// Checks that failed.
    #[wasm_bindgen(getter)]
    pub fn mismatches(&self) -> u32 {
        self.mismatches
    }

    /// Connections opened (1 + reconnects).
    #[wasm_bindgen(getter)]
    pub fn connections(&self) -> u32 {
        self.connections
    }

    /// The guard's tracker (shared, not a copy): `analyze()`, `reportText()`, ...
    #[wasm_bindgen(getter)]
    pub fn tracker(&self) -> Tracker {
        Tracker::from_shared(self.tracker.clone())
    }
}
