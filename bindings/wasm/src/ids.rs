//! `IdGenerator`, the free ID functions, `UserContext` and `IsolationKey`.

use std::cell::OnceCell;
use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;
use wasm_bindgen::prelude::*;

use threadline::context::ContextBuilder;
use threadline::key::KeyForm;
use threadline::{IdError, ManualClock, SeededEntropy, ValidationRules};

use crate::args::{self, argument, core, to_js, JsClock, JsResult, Options};

/// A core generator, the manual clock it reads, and where that clock's time comes from
/// (set just before every call).
pub struct Gen {
    core: threadline::IdGenerator,
    clock: Arc<ManualClock>,
    source: JsClock,
}

impl Gen {
    pub fn new(seed: Option<u64>, source: JsClock) -> JsResult<Self> {
        let entropy = match seed {
            Some(s) => SeededEntropy::from_seed(s),
            None => SeededEntropy::from_os().map_err(core)?,
        };
        let clock = Arc::new(ManualClock::new(0));
        Ok(Self {
            core: threadline::IdGenerator::new(clock.clone(), entropy),
            clock,
            source,
        })
    }

    /// The core generator with its clock set to now.
    pub fn at_now(&self) -> JsResult<&threadline::IdGenerator> {
        self.clock.set(self.source.now()?);
        Ok(&self.core)
    }

    /// The core generator without a clock read, for ids that hold no time
    /// (`user_context_ids`): the clock source (maybe the caller's function) is not called
    /// for nothing.
    pub fn untimed(&self) -> &threadline::IdGenerator {
        &self.core
    }

    /// Now, as the generator's clock source tells it.
    pub fn now(&self) -> JsResult<u64> {
        self.source.now()
    }
}

thread_local! {
    static SHARED: OnceCell<Rc<Gen>> = const { OnceCell::new() };
}

/// The process-wide generator (Netra's module-level one): `Date.now()` and an OS seed.
pub fn shared() -> JsResult<Rc<Gen>> {
    SHARED.with(|cell| {
        if let Some(g) = cell.get() {
            return Ok(g.clone());
        }
        let g = Rc::new(Gen::new(None, JsClock::Date)?);
        Ok(cell.get_or_init(|| g).clone())
    })
}

/// Mints every Netra ID format.
#[wasm_bindgen]
pub struct IdGenerator {
    pub(crate) gen: Rc<Gen>,
}

fn rules(test_mode: Option<bool>) -> ValidationRules {
    if test_mode.unwrap_or(false) {
        ValidationRules::TEST
    } else {
        ValidationRules::PRODUCTION
    }
}

fn opt_timestamp(v: &JsValue) -> JsResult<Option<f64>> {
    if v.is_null_or_undefined() {
        return Ok(None);
    }
    let ts = v.as_f64().ok_or_else(|| {
        argument(format!(
            "connectionTimestamp must be Unix seconds (a number): got {}",
            args::describe(v)
        ))
    })?;
    // The core's range, checked first so the message quotes the number as JS prints it
    // (the core writes Rust's `-1.0`, `inf`).
    if !(0.0..=253_402_300_799.0).contains(&ts) {
        return Err(core(IdError::Timestamp {
            value: args::number_text(ts),
        }));
    }
    Ok(Some(ts))
}

fn opt_label(v: &JsValue, name: &str, default: &str) -> JsResult<String> {
    Ok(args::opt_string(v, name)?.unwrap_or_else(|| default.to_owned()))
}

fn opt_bool(v: &JsValue, name: &str, default: bool) -> JsResult<bool> {
    if v.is_null_or_undefined() {
        return Ok(default);
    }
    v.as_bool().ok_or_else(|| {
        argument(format!(
            "{name} must be a boolean: got {}",
            args::describe(v)
        ))
    })
}

#[wasm_bindgen]
impl IdGenerator {
    /// `new IdGenerator({ seed?, clock? })`: `seed` makes the random parts repeatable
    /// (tests); without it the stream is seeded from `crypto.getRandomValues`.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> JsResult<IdGenerator> {
        let o = Options::new(&options, "IdGenerator options", &["seed", "clock"])?;
        let source = JsClock::from_options(&o)?;
        Ok(IdGenerator {
            gen: Rc::new(Gen::new(o.whole("seed")?, source)?),
        })
    }

    /// The process-wide generator that `UserContext`, `SessionStore` and `ThreadGuard`
    /// use unless given another.
    pub fn shared() -> JsResult<IdGenerator> {
        Ok(IdGenerator { gen: shared()? })
    }

    /// `{ thread_id, run_id, request_id }`: thread and run share counter and random part.
    #[wasm_bindgen(js_name = userContextIds)]
    pub fn user_context_ids(&self, user_id: JsValue, operation: JsValue) -> JsResult<JsValue> {
        let user = args::string(&user_id, "userId")?;
        let op = opt_label(&operation, "operation", "context")?;
        let ids = self
            .gen
            .untimed()
            .user_context_ids(&user, &op)
            .map_err(core)?;
        to_js(&ids)
    }

    /// `{prefix}_{ms}_{n}_{hex}` or `{prefix}_{ms}_{n}`.
    /// Options: `{ includeRandom = true, randomLength = 8 }`.
    #[wasm_bindgen(js_name = baseId)]
    pub fn base_id(&self, prefix: JsValue, options: JsValue) -> JsResult<String> {
        let prefix = opt_label(&prefix, "prefix", "id")?;
        let o = Options::new(
            &options,
            "baseId options",
            &["includeRandom", "randomLength"],
        )?;
        let include = o.bool("includeRandom")?.unwrap_or(true);
        let len = o.whole("randomLength")?.unwrap_or(8);
        self.gen
            .at_now()?
            .base_id(&prefix, include, args::sized(len))
            .map_err(|e| args::core_sized(e, len))
    }

    /// `{prefix}_{h8}` (Netra's `generate_id`).
    #[wasm_bindgen(js_name = simpleId)]
    pub fn simple_id(&self, prefix: JsValue) -> JsResult<String> {
        let prefix = args::string(&prefix, "prefix")?;
        self.gen.at_now()?.simple_id(&prefix).map_err(core)
    }

    /// `ws_client_{u8}_{ms}_{n}_{h8}`; `connectionTimestamp` is Unix seconds.
    #[wasm_bindgen(js_name = websocketClientId)]
    pub fn websocket_client_id(
        &self,
        user_id: JsValue,
        connection_timestamp: JsValue,
    ) -> JsResult<String> {
        let user = args::string(&user_id, "userId")?;
        let ts = opt_timestamp(&connection_timestamp)?;
        self.gen
            .at_now()?
            .websocket_client_id(&user, ts)
            .map_err(core)
    }

    /// `ws_conn_{u8}_{ms}_{n}_{h8}`.
    #[wasm_bindgen(js_name = websocketConnectionId)]
    pub fn websocket_connection_id(
        &self,
        user_id: JsValue,
        connection_timestamp: JsValue,
    ) -> JsResult<String> {
        let user = args::string(&user_id, "userId")?;
        let ts = opt_timestamp(&connection_timestamp)?;
        self.gen
            .at_now()?
            .websocket_connection_id(&user, ts)
            .map_err(core)
    }

    /// Base id with prefix `session_{type}_{u8}` (type defaults to `web`).
    #[wasm_bindgen(js_name = sessionId)]
    pub fn session_id(&self, user_id: JsValue, session_type: JsValue) -> JsResult<String> {
        let user = args::string(&user_id, "userId")?;
        let t = opt_label(&session_type, "sessionType", "web")?;
        self.gen.at_now()?.session_id(&user, &t).map_err(core)
    }

    /// Base id with prefix `agent_{agentType}_{u8}`.
    #[wasm_bindgen(js_name = agentExecutionId)]
    pub fn agent_execution_id(&self, agent_type: JsValue, user_id: JsValue) -> JsResult<String> {
        let a = args::string(&agent_type, "agentType")?;
        let user = args::string(&user_id, "userId")?;
        self.gen
            .at_now()?
            .agent_execution_id(&a, &user)
            .map_err(core)
    }

    /// Base id with prefix `msg_{type}_{u8}[_{thread tail}]`.
    #[wasm_bindgen(js_name = messageId)]
    pub fn message_id(
        &self,
        message_type: JsValue,
        user_id: JsValue,
        thread_id: JsValue,
    ) -> JsResult<String> {
        let t = args::string(&message_type, "messageType")?;
        let user = args::string(&user_id, "userId")?;
        let thread = args::opt_string(&thread_id, "threadId")?;
        self.gen
            .at_now()?
            .message_id(&t, &user, thread.as_deref())
            .map_err(core)
    }

    /// `count` base ids sharing one ms.
    #[wasm_bindgen(js_name = batchIds)]
    pub fn batch_ids(
        &self,
        prefix: JsValue,
        count: JsValue,
        include_random: JsValue,
    ) -> JsResult<Vec<String>> {
        let prefix = args::string(&prefix, "prefix")?;
        let count = args::whole(&count, "count")?;
        let include = opt_bool(&include_random, "includeRandom", true)?;
        self.gen
            .at_now()?
            .batch_ids(&prefix, args::sized(count), include)
            .map_err(|e| args::core_sized(e, count))
    }

    /// The older manager run format `run_{threadId}_{ms % 100000}_{h8}`.
    #[wasm_bindgen(js_name = managerRunId)]
    pub fn manager_run_id(&self, thread_id: JsValue) -> JsResult<String> {
        let t = args::string(&thread_id, "threadId")?;
        self.gen.at_now()?.manager_run_id(&t).map_err(core)
    }

    /// A version 4 UUID from this generator's stream.
    #[wasm_bindgen(js_name = uuidV4)]
    pub fn uuid_v4(&self) -> String {
        self.gen.core.uuid_v4()
    }

    /// A correlated context for a WebSocket connection (Netra's
    /// `UserExecutionContext.from_websocket_request`), minted by this generator.
    /// Options: `{ websocketClientId?, operation = "websocket_session", testMode? }`.
    #[wasm_bindgen(js_name = websocketContext)]
    pub fn websocket_context(&self, user_id: JsValue, options: JsValue) -> JsResult<UserContext> {
        websocket_context(&self.gen, &user_id, &options)
    }

    /// Whether `id` parses, has a prefix starting with `expectedPrefix`, and a timestamp
    /// at most a year old and at most an hour ahead of this generator's clock.
    #[wasm_bindgen(js_name = isValidId)]
    pub fn is_valid_id(&self, id: JsValue, expected_prefix: JsValue) -> JsResult<bool> {
        let id = args::string(&id, "id")?;
        let p = args::opt_string(&expected_prefix, "expectedPrefix")?;
        Ok(threadline::ids::is_valid_id(
            &id,
            p.as_deref(),
            self.gen.now()?,
        ))
    }

    /// Counter back to 0 (Netra's `reset_global_counter`).
    #[wasm_bindgen(js_name = resetCounter)]
    pub fn reset_counter(&self) {
        self.gen.core.reset_counter()
    }

    /// The last counter value handed out.
    #[wasm_bindgen(getter)]
    pub fn counter(&self) -> f64 {
        self.gen.core.counter() as f64
    }

    /// How many times the clock was seen going backwards.
    #[wasm_bindgen(getter = clockRegressions)]
    pub fn clock_regressions(&self) -> f64 {
        self.gen.core.clock_regressions() as f64
    }
}

pub(crate) fn websocket_context(
    gen: &Gen,
    user_id: &JsValue,
    options: &JsValue,
) -> JsResult<UserContext> {
    let user = args::string(user_id, "userId")?;
    let o = Options::new(
        options,
        "context options",
        &["websocketClientId", "operation", "testMode"],
    )?;
    let ws = o.string("websocketClientId")?;
    let op = o
        .string("operation")?
        .unwrap_or_else(|| "websocket_session".to_owned());
    let r = rules(o.bool("testMode")?);
    let core_ctx =
        threadline::UserContext::for_websocket(gen.at_now()?, &user, &op, ws.as_deref(), r)
            .map_err(core)?;
    Ok(UserContext { core: core_ctx })
}

fn now_or(v: &JsValue) -> JsResult<u64> {
    if v.is_null_or_undefined() {
        Ok(js_sys::Date::now().max(0.0) as u64)
    } else {
        args::whole(v, "nowMs")
    }
}

/// Parses a base id `{prefix}_{ms}_{counter}[_{hex}]` from the right:
/// `{ prefix, timestamp_ms, counter, random, full_id }`.
#[wasm_bindgen(js_name = parseId)]
pub fn parse_id(id: JsValue) -> JsResult<JsValue> {
    let id = args::string(&id, "id")?;
    let c = threadline::parse_id(&id).map_err(core)?;
    exact("timestamp", c.timestamp_ms)?;
    exact("counter", c.counter)?;
    to_js(&c)
}

/// A parsed number as a JS number, refused where it would be rounded.
fn exact(name: &str, n: u64) -> JsResult<()> {
    if n as f64 > args::MAX_SAFE {
        return Err(args::error(
            "id.unparsable",
            &format!(
                "id {name} {n} is beyond 2^53-1, the largest integer a JS number holds exactly"
            ),
        ));
    }
    Ok(())
}

/// Parses a generator context id `thread_|run_|req_{operation}_{counter}_{h8}`:
/// `{ kind, operation, counter, random }`.
#[wasm_bindgen(js_name = parseContextId)]
pub fn parse_context_id(id: JsValue) -> JsResult<JsValue> {
    let id = args::string(&id, "id")?;
    let c = threadline::ids::parse_context_id(&id).map_err(core)?;
    exact("counter", c.counter)?;
    to_js(&c)
}

/// Parses, has a prefix starting with `expectedPrefix`, and a timestamp at most a year
/// old and at most an hour ahead of `nowMs` (default `Date.now()`).
#[wasm_bindgen(js_name = isValidId)]
pub fn is_valid_id(id: JsValue, expected_prefix: JsValue, now_ms: JsValue) -> JsResult<bool> {
    let id = args::string(&id, "id")?;
    let p = args::opt_string(&expected_prefix, "expectedPrefix")?;
    Ok(threadline::ids::is_valid_id(
        &id,
        p.as_deref(),
        now_or(&now_ms)?,
    ))
}

/// Age of an id in ms at `nowMs` (default `Date.now()`); negative when from the future.
#[wasm_bindgen(js_name = idAgeMs)]
pub fn id_age_ms(id: JsValue, now_ms: JsValue) -> JsResult<f64> {
    let id = args::string(&id, "id")?;
    threadline::ids::id_age_ms(&id, now_or(&now_ms)?)
        .map(|a| a as f64)
        .map_err(core)
}

/// Every reading of a run id, the generator reading first: `[{ thread_id, format }]`.
#[wasm_bindgen(js_name = runReadings)]
pub fn run_readings(run_id: JsValue) -> JsResult<JsValue> {
    let r = args::string(&run_id, "runId")?;
    to_js(&threadline::run_readings(&r))
}

/// The thread a run id belongs to, the generator reading first; `null` when none.
#[wasm_bindgen(js_name = threadIdForRun)]
pub fn thread_id_for_run(run_id: JsValue) -> JsResult<JsValue> {
    let r = args::string(&run_id, "runId")?;
    Ok(args::nullable(threadline::thread_id_for_run(&r)))
}

/// Whether `runId` belongs to `threadId` under either run format (exactly, never by
/// prefix).
#[wasm_bindgen(js_name = areCorrelated)]
pub fn are_correlated(thread_id: JsValue, run_id: JsValue) -> JsResult<bool> {
    let t = args::string(&thread_id, "threadId")?;
    let r = args::string(&run_id, "runId")?;
    Ok(threadline::are_correlated(&t, &r))
}

/// Under which format (`"generator"` or `"manager"`) `runId` belongs to `threadId`, or
/// `null`.
#[wasm_bindgen]
pub fn correlation(thread_id: JsValue, run_id: JsValue) -> JsResult<JsValue> {
    let t = args::string(&thread_id, "threadId")?;
    let r = args::string(&run_id, "runId")?;
    to_js(&threadline::ids::correlation(&t, &r))
}

/// A context as JS sees it (snake_case, like every data object).
#[derive(Serialize)]
struct ContextData<'a> {
    user_id: &'a str,
    thread_id: &'a str,
    run_id: &'a str,
    request_id: &'a str,
    websocket_client_id: Option<&'a str>,
    agent_context: &'a threadline::Metadata,
    audit_metadata: &'a threadline::Metadata,
    operation_depth: u64,
    parent_request_id: Option<&'a str>,
}

/// A key as JS sees it.
#[derive(Serialize)]
struct KeyData<'a> {
    user_id: &'a str,
    thread_id: &'a str,
    form: &'static str,
    run_token: Option<String>,
    canonical: String,
}

/// One user's validated execution context (Netra's `UserExecutionContext`); immutable.
#[wasm_bindgen]
pub struct UserContext {
    pub(crate) core: threadline::UserContext,
}

#[wasm_bindgen]
impl UserContext {
    /// `new UserContext({ userId, threadId, runId, requestId?, websocketClientId?,
    /// agentContext?, auditMetadata?, operationDepth?, parentRequestId?, testMode? })`.
    /// A missing request id becomes a UUID v4. Placeholders and blanks are refused.
    #[wasm_bindgen(constructor)]
    pub fn new(fields: JsValue) -> JsResult<UserContext> {
        if fields.is_null_or_undefined() {
            return Err(argument(
                "UserContext needs { userId, threadId, runId }: got nothing",
            ));
        }
        let o = Options::new(
            &fields,
            "UserContext fields",
            &[
                "userId",
                "threadId",
                "runId",
                "requestId",
                "websocketClientId",
                "agentContext",
                "auditMetadata",
                "operationDepth",
                "parentRequestId",
                "testMode",
            ],
        )?;
        let mut b: ContextBuilder = threadline::UserContext::builder(
            o.required_string("userId")?,
            o.required_string("threadId")?,
            o.required_string("runId")?,
        )
        .websocket_client_id(o.string("websocketClientId")?)
        .parent_request_id(o.string("parentRequestId")?)
        .rules(rules(o.bool("testMode")?));
        if let Some(m) = o.metadata("agentContext")? {
            b = b.agent_context(m);
        }
        if let Some(m) = o.metadata("auditMetadata")? {
            b = b.audit_metadata(m);
        }
        if let Some(d) = o.whole("operationDepth")? {
            b = b.operation_depth(d);
        }
        let core_ctx = match o.string("requestId")? {
            Some(r) => b.build_with_request_id(r),
            None => b.build(&shared()?.core),
        }
        .map_err(core)?;
        Ok(UserContext { core: core_ctx })
    }

    /// A correlated context from the shared generator (Netra's `from_websocket_request`).
    /// Options: `{ websocketClientId?, operation = "websocket_session", testMode? }`.
    #[wasm_bindgen(js_name = fromWebsocketRequest)]
    pub fn from_websocket_request(user_id: JsValue, options: JsValue) -> JsResult<UserContext> {
        websocket_context(&*shared()?, &user_id, &options)
    }

    #[wasm_bindgen(getter = userId)]
    pub fn user_id(&self) -> String {
        self.core.user_id().to_owned()
    }
    #[wasm_bindgen(getter = threadId)]
    pub fn thread_id(&self) -> String {
        self.core.thread_id().to_owned()
    }
    #[wasm_bindgen(getter = runId)]
    pub fn run_id(&self) -> String {
        self.core.run_id().to_owned()
    }
    #[wasm_bindgen(getter = requestId)]
    pub fn request_id(&self) -> String {
        self.core.request_id().to_owned()
    }
    #[wasm_bindgen(getter = websocketClientId)]
    pub fn websocket_client_id(&self) -> JsValue {
        args::nullable(self.core.websocket_client_id())
    }
    #[wasm_bindgen(getter = parentRequestId)]
    pub fn parent_request_id(&self) -> JsValue {
        args::nullable(self.core.parent_request_id())
    }
    #[wasm_bindgen(getter = operationDepth)]
    pub fn operation_depth(&self) -> f64 {
        self.core.operation_depth() as f64
    }
    #[wasm_bindgen(getter = agentContext)]
    pub fn agent_context(&self) -> JsResult<JsValue> {
        to_js(self.core.agent_context())
    }
    #[wasm_bindgen(getter = auditMetadata)]
    pub fn audit_metadata(&self) -> JsResult<JsValue> {
        to_js(self.core.audit_metadata())
    }

    /// The canonical isolation key `{userId}:{threadId}`.
    #[wasm_bindgen(getter = isolationKey)]
    pub fn isolation_key(&self) -> String {
        self.core.isolation_key().to_string()
    }

    /// A plain object with the core's field names (`user_id`, `thread_id`, ...).
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> JsResult<JsValue> {
        let c = &self.core;
        to_js(&ContextData {
            user_id: c.user_id(),
            thread_id: c.thread_id(),
            run_id: c.run_id(),
            request_id: c.request_id(),
            websocket_client_id: c.websocket_client_id(),
            agent_context: c.agent_context(),
            audit_metadata: c.audit_metadata(),
            operation_depth: c.operation_depth(),
            parent_request_id: c.parent_request_id(),
        })
    }
}

/// A user id and the whole thread id it is filed under.
#[wasm_bindgen]
pub struct IsolationKey {
    core: threadline::IsolationKey,
}

#[wasm_bindgen]
impl IsolationKey {
    /// The canonical key of a user and a thread.
    #[wasm_bindgen(constructor)]
    pub fn new(user_id: JsValue, thread_id: JsValue) -> JsResult<IsolationKey> {
        let u = args::string(&user_id, "userId")?;
        let t = args::string(&thread_id, "threadId")?;
        Ok(IsolationKey {
            core: threadline::IsolationKey::new(&u, &t).map_err(core)?,
        })
    }

    /// Parses `{user}:{thread}` or the older `{user}_thread_..._{run token}`.
    pub fn parse(key: JsValue) -> JsResult<IsolationKey> {
        let k = args::string(&key, "key")?;
        Ok(IsolationKey {
            core: threadline::IsolationKey::parse(&k).map_err(core)?,
        })
    }

    #[wasm_bindgen(getter = userId)]
    pub fn user_id(&self) -> String {
        self.core.user_id().to_owned()
    }

    /// The whole thread id, exactly as it went in.
    #[wasm_bindgen(getter = threadId)]
    pub fn thread_id(&self) -> String {
        self.core.thread_id().to_owned()
    }

    /// `"canonical"` or `"legacy"`.
    #[wasm_bindgen(getter)]
    pub fn form(&self) -> String {
        match self.core.form() {
            KeyForm::Canonical => "canonical".into(),
            KeyForm::Legacy { .. } => "legacy".into(),
        }
    }

    /// The run token of an older-form key, else `null`.
    #[wasm_bindgen(getter = runToken)]
    pub fn run_token(&self) -> JsValue {
        match self.core.form() {
            KeyForm::Canonical => JsValue::NULL,
            KeyForm::Legacy { run_token } => JsValue::from_str(&run_token),
        }
    }

    /// `{userId}:{threadId}`, whatever form the key was read in.
    pub fn canonical(&self) -> String {
        self.core.canonical()
    }

    /// The key in the form it was read in.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_string_js(&self) -> String {
        self.core.to_string()
    }

    /// `{ user_id, thread_id, form, run_token, canonical }`.
    #[wasm_bindgen(js_name = toJSON)]
    pub fn to_json(&self) -> JsResult<JsValue> {
        let run_token = match self.core.form() {
            KeyForm::Canonical => None,
            KeyForm::Legacy { run_token } => Some(run_token),
        };
        let form = if run_token.is_some() {
            "legacy"
        } else {
            "canonical"
        };
        to_js(&KeyData {
            user_id: self.core.user_id(),
            thread_id: self.core.thread_id(),
            form,
            run_token,
            canonical: self.core.canonical(),
        })
    }
}
