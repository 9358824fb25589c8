//! `SessionStore`: the same thread id for the same conversation on every call.

use std::rc::Rc;

use wasm_bindgen::prelude::*;

use threadline::ValidationRules;

use crate::args::{self, core, to_js, JsClock, JsResult, Options};
use crate::ids::{shared, Gen, IdGenerator, UserContext};

/// Sessions by user and thread (Netra's `get_or_create_user_session` and its store).
#[wasm_bindgen]
pub struct SessionStore {
    core: threadline::SessionStore,
    gen: Rc<Gen>,
    clock: Option<JsClock>,
    rules: ValidationRules,
}

const DAY_MS: u64 = 24 * 3600 * 1000;

fn store_options(options: &JsValue) -> JsResult<(ValidationRules, Option<JsClock>)> {
    let o = Options::new(options, "SessionStore options", &["testMode", "clock"])?;
    let rules = if o.bool("testMode")?.unwrap_or(false) {
        ValidationRules::TEST
    } else {
        ValidationRules::PRODUCTION
    };
    let clock = o.function("clock")?.map(JsClock::Func);
    Ok((rules, clock))
}

struct SessionArgs {
    thread_id: Option<String>,
    run_id: Option<String>,
    operation: String,
    websocket_client_id: Option<String>,
}

fn session_args(options: &JsValue, with_ws: bool) -> JsResult<SessionArgs> {
    let known: &[&str] = if with_ws {
        &["threadId", "runId", "operation", "websocketClientId"]
    } else {
        &["threadId", "runId", "operation"]
    };
    let o = Options::new(options, "session options", known)?;
    Ok(SessionArgs {
        thread_id: o.string("threadId")?,
        run_id: o.string("runId")?,
        operation: o
            .string("operation")?
            .unwrap_or_else(|| "session".to_owned()),
        websocket_client_id: if with_ws {
            o.string("websocketClientId")?
        } else {
            None
        },
    })
}

impl SessionStore {
    fn now(&self) -> JsResult<u64> {
        match &self.clock {
            Some(c) => c.now(),
            None => self.gen.now(),
        }
    }
}

#[wasm_bindgen]
impl SessionStore {
    /// `new SessionStore({ testMode?, clock? })`, minting with the shared generator.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> JsResult<SessionStore> {
        let (rules, clock) = store_options(&options)?;
        Ok(SessionStore {
            core: threadline::SessionStore::new(rules),
            gen: shared()?,
            clock,
            rules,
        })
    }

    /// A store minting with `ids` (and reading its clock unless `clock` is given).
    #[wasm_bindgen(js_name = withIds)]
    pub fn with_ids(ids: &IdGenerator, options: JsValue) -> JsResult<SessionStore> {
        let (rules, clock) = store_options(&options)?;
        Ok(SessionStore {
            core: threadline::SessionStore::new(rules),
            gen: ids.gen.clone(),
            clock,
            rules,
        })
    }

    /// The same thread id for the same `userId:threadId` (or `userId:default`) on every
    /// call; a new request id every call; a different `runId` starts a new run in the
    /// same thread. Options: `{ threadId?, runId?, operation = "session" }`.
    /// Returns `{ thread_id, run_id, request_id, created }`.
    #[wasm_bindgen(js_name = getOrCreate)]
    pub fn get_or_create(&mut self, user_id: JsValue, options: JsValue) -> JsResult<JsValue> {
        let user = args::string(&user_id, "userId")?;
        let a = session_args(&options, false)?;
        let now = self.now()?;
        let ids = self.gen.at_now()?;
        let out = self
            .core
            .get_or_create(
                ids,
                &user,
                a.thread_id.as_deref(),
                a.run_id.as_deref(),
                &a.operation,
                now,
            )
            .map_err(core)?;
        to_js(&out)
    }

    /// `getOrCreate`, returned as a validated `UserContext`.
    /// Options: `{ threadId?, runId?, operation?, websocketClientId? }`.
    pub fn context(&mut self, user_id: JsValue, options: JsValue) -> JsResult<UserContext> {
        let user = args::string(&user_id, "userId")?;
        let a = session_args(&options, true)?;
        let now = self.now()?;
        let ids = self.gen.at_now()?;
        let c = self
            .core
            .context(
                ids,
                &user,
                a.thread_id.as_deref(),
                a.run_id.as_deref(),
                &a.operation,
                a.websocket_client_id,
                now,
            )
            .map_err(core)?;
        Ok(UserContext { core: c })
    }

    /// The session of `userId:threadId` (or `userId:default`), or `null`.
    #[wasm_bindgen(js_name = getExisting)]
    pub fn get_existing(&self, user_id: JsValue, thread_id: JsValue) -> JsResult<JsValue> {
        let user = args::string(&user_id, "userId")?;
        let thread = args::opt_string(&thread_id, "threadId")?;
        to_js(&self.core.get_existing(&user, thread.as_deref()))
    }

    /// Drops sessions unused for more than `maxAgeMs` (default 24 h); returns how many.
    #[wasm_bindgen(js_name = cleanupExpired)]
    pub fn cleanup_expired(&mut self, max_age_ms: JsValue) -> JsResult<u32> {
        let max = if max_age_ms.is_null_or_undefined() {
            DAY_MS
        } else {
            args::whole(&max_age_ms, "maxAgeMs")?
        };
        let now = self.now()?;
        Ok(self.core.cleanup_expired(now, max) as u32)
    }

    /// Drops every session of one user; returns how many.
    #[wasm_bindgen(js_name = invalidateUser)]
    pub fn invalidate_user(&mut self, user_id: JsValue) -> JsResult<u32> {
        let user = args::string(&user_id, "userId")?;
        Ok(self.core.invalidate_user(&user) as u32)
    }

    /// Sessions held.
    #[wasm_bindgen(getter = activeCount)]
    pub fn active_count(&self) -> u32 {
        self.core.active_count() as u32
    }

    /// Sessions held for one user.
    #[wasm_bindgen(js_name = userCount)]
    pub fn user_count(&self, user_id: JsValue) -> JsResult<u32> {
        let user = args::string(&user_id, "userId")?;
        Ok(self.core.user_count(&user) as u32)
    }

    /// Whether `test_` ids are allowed.
    #[wasm_bindgen(getter = testMode)]
    pub fn test_mode(&self) -> bool {
        self.rules.test_mode
    }
}
