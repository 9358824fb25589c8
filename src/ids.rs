//! Netra's ID formats (section 1 of the contract), produced and parsed byte for byte.
//!
//! Every parser reads from the right: operations and prefixes contain `_`
//! (`websocket_factory`), so only the trailing `{ms}_{n}_{hex}` parts have a fixed shape.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::entropy::Entropy;
use crate::error::IdError;

/// Longest ID (or ID part) accepted anywhere, in bytes.
pub const MAX_ID_LEN: usize = 1024;
/// Longest operation, prefix or type label, in bytes.
pub const MAX_LABEL_LEN: usize = 128;
/// `is_valid_id` accepts timestamps at most this old...
pub const MAX_ID_AGE_MS: u64 = 365 * 24 * 3600 * 1000;
/// ...and at most this far in the future.
pub const MAX_ID_FUTURE_MS: u64 = 3600 * 1000;
/// Most IDs one `batch_ids` call makes.
pub const MAX_BATCH: usize = 100_000;
/// Older manager run ids carry `ms % 100000`.
const MANAGER_RUN_MODULUS: u64 = 100_000;
/// Bytes `manager_run_id` adds around the thread id at most: `run_`, `_{ms % 100000}`
/// and `_{h8}`.
pub(crate) const MANAGER_RUN_EXTRA: usize = "run_".len() + 1 + 5 + 1 + 8;

/// The three correlated IDs of one user context: thread and run share counter and random
/// part; the request id has the next counter value and its own random part.
///
/// The three ids sit in one buffer (one allocation per call instead of three); the
/// accessors hand out slices of it.
#[derive(Clone, PartialEq, Eq)]
pub struct ContextIds {
    text: Box<str>,
    run_at: usize,
    request_at: usize,
}

impl ContextIds {
    /// `thread_{op}_{n}_{h8}`.
    pub fn thread_id(&self) -> &str {
        &self.text[..self.run_at]
    }

    /// `run_{op}_{n}_{h8}`: the thread id's counter and random part.
    pub fn run_id(&self) -> &str {
        &self.text[self.run_at..self.request_at]
    }

    /// `req_{op}_{n+1}_{h8'}`.
    pub fn request_id(&self) -> &str {
        &self.text[self.request_at..]
    }

    /// The three ids as owned strings: thread, run, request.
    pub fn into_strings(self) -> (String, String, String) {
        (
            self.thread_id().to_owned(),
            self.run_id().to_owned(),
            self.request_id().to_owned(),
        )
    }
}

impl std::fmt::Debug for ContextIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextIds")
            .field("thread_id", &self.thread_id())
            .field("run_id", &self.run_id())
            .field("request_id", &self.request_id())
            .finish()
    }
}

/// `{"thread_id", "run_id", "request_id"}`, as the three-field struct it replaced.
impl Serialize for ContextIds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ContextIds", 3)?;
        st.serialize_field("thread_id", self.thread_id())?;
        st.serialize_field("run_id", self.run_id())?;
        st.serialize_field("request_id", self.request_id())?;
        st.end()
    }
}

/// The parts of a base id `{prefix}_{ms}_{n}[_{random}]` (Netra's `IdComponents`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdComponents {
    /// Everything before `_{ms}_{n}`; it may itself hold `_`.
    pub prefix: String,
    /// The `{ms}` part: milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The `{n}` part: the generator's counter when the id was minted.
    pub counter: u64,
    /// Empty when the id was made with `include_random = false`.
    pub random: String,
    /// The whole id, as parsed.
    pub full_id: String,
}

/// Which kind of correlated context id a `{kind}_{op}_{n}_{h8}` string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextIdKind {
    /// `thread_{op}_{n}_{h8}`.
    Thread,
    /// `run_{op}_{n}_{h8}`.
    Run,
    /// `req_{op}_{n}_{h8}`.
    Request,
}

/// The parts of a generator context id `{kind}_{operation}_{n}_{h8}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextIdParts {
    /// Which id it is, from its prefix.
    pub kind: ContextIdKind,
    /// The `{operation}` it was minted for; it may itself hold `_`.
    pub operation: String,
    /// The `{n}` part: the generator's counter when the id was minted.
    pub counter: u64,
    /// The `{h8}` part: 8 lowercase hex characters.
    pub random: String,
}

/// Which of the two stored run-id formats a reading assumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunFormat {
    /// `run_{op}_{n}_{h8}`, minted with `thread_{op}_{n}_{h8}`.
    Generator,
    /// The older `run_{thread_id}_{ms % 100000}_{h8}` of `UnifiedIDManager`.
    Manager,
}

/// One way of reading a run id: the thread it belongs to under one format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReading {
    /// The whole thread id the run belongs to under `format`.
    pub thread_id: String,
    /// The run-id format this reading assumes.
    pub format: RunFormat,
}

/// Mints every Netra ID format. Shareable between threads through `&self`: the counter
/// and the random stream sit behind one lock, held for a few bytes only, so an ID costs
/// one lock rather than a lock and an atomic counter.
pub struct IdGenerator {
    minting: MintingLock,
    last_ms: AtomicU64,
    clock_regressions: AtomicU64,
    largest_regression_ms: AtomicU64,
    clock: Arc<dyn Clock>,
}

/// A spin lock that yields the thread while it waits. It is held for a counter step and a
/// few bytes of the stream (a refill of the stream's buffer at most), so waiting is rare
/// and short. Taking and releasing it costs one atomic read-modify-write; a std `Mutex`
/// costs two (its release must check for sleepers): about 11 against 21 ns a pair on
/// this project's machine, where `user_context_ids` takes 60 to 75 (BENCHMARKS.md).
type MintingLock = spin::mutex::SpinMutex<Minting, spin::relax::Yield>;
type MintingGuard<'a> = spin::mutex::SpinMutexGuard<'a, Minting, spin::relax::Yield>;

/// What minting an ID draws on: the last counter value handed out and the random stream.
struct Minting {
    counter: u64,
    entropy: Box<dyn Entropy>,
}

impl Minting {
    fn next(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(1);
        self.counter
    }
}

impl std::fmt::Debug for IdGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdGenerator")
            .field("counter", &self.counter())
            .field("clock_regressions", &self.clock_regressions())
            .finish_non_exhaustive()
    }
}

impl IdGenerator {
    /// A generator that reads the time from `clock` and random bytes from `entropy`,
    /// with its counter at 0.
    pub fn new(clock: Arc<dyn Clock>, entropy: impl Entropy + 'static) -> Self {
        Self {
            minting: MintingLock::new(Minting {
                counter: 0,
                entropy: Box::new(entropy),
            }),
            last_ms: AtomicU64::new(0),
            clock_regressions: AtomicU64::new(0),
            largest_regression_ms: AtomicU64::new(0),
            clock,
        }
    }

    /// The system clock and a CSPRNG seeded once from the operating system.
    #[cfg(feature = "std")]
    pub fn system() -> Result<Self, IdError> {
        Ok(Self::new(
            Arc::new(crate::clock::SystemClock),
            crate::entropy::SeededEntropy::from_os()?,
        ))
    }

    /// The current time as IDs see it: never earlier than a time already used. When the
    /// clock steps back, IDs keep the last time seen (and stay unique through the
    /// counter), and the step is counted (RFC 9562, section 6.2).
    pub fn now_ms(&self) -> u64 {
        let now = self.clock.now_ms();
        let prev = self.last_ms.fetch_max(now, Ordering::Relaxed);
        if now < prev {
            self.clock_regressions.fetch_add(1, Ordering::Relaxed);
            self.largest_regression_ms
                .fetch_max(prev - now, Ordering::Relaxed);
            prev
        } else {
            now
        }
    }

    /// How many times the clock was seen going backwards.
    pub fn clock_regressions(&self) -> u64 {
        self.clock_regressions.load(Ordering::Relaxed)
    }

    /// The largest backwards step seen, in ms.
    pub fn largest_clock_regression_ms(&self) -> u64 {
        self.largest_regression_ms.load(Ordering::Relaxed)
    }

    /// The last counter value handed out.
    pub fn counter(&self) -> u64 {
        self.minting().counter
    }

    /// Counter back to 0 (Netra's `reset_global_counter`, for test isolation).
    pub fn reset_counter(&self) {
        self.minting().counter = 0;
    }

    fn minting(&self) -> MintingGuard<'_> {
        // A thread that panics mid-fill releases the lock as it unwinds; the counter and
        // the stream are still valid.
        self.minting.lock()
    }

    fn random_bytes(&self, buf: &mut [u8]) {
        self.minting().entropy.fill(buf);
    }

    /// The next counter value and `random.len()` bytes of the stream, in one lock.
    fn next_with_random(&self, random: &mut [u8]) -> u64 {
        let mut m = self.minting();
        let n = m.next();
        if !random.is_empty() {
            m.entropy.fill(random);
        }
        n
    }

    fn push_hex(&self, out: &mut String, chars: usize) {
        let mut buf = [0u8; 32];
        let bytes = chars.div_ceil(2).min(buf.len());
        self.random_bytes(&mut buf[..bytes]);
        push_hex_bytes(out, &buf[..bytes], chars);
    }

    /// `thread_{op}_{n}_{h8}`, `run_{op}_{n}_{h8}`, `req_{op}_{n+1}_{h8'}`.
    pub fn user_context_ids(&self, user_id: &str, operation: &str) -> Result<ContextIds, IdError> {
        check_user_id(user_id)?;
        check_label("operation", operation)?;
        // One lock, one draw for both random parts: thread/run take the first four bytes,
        // the request the last four (the stream order the test vectors pin).
        let (n, r) = {
            let mut m = self.minting();
            (m.next(), m.entropy.next_u64().to_le_bytes())
        };
        // One buffer of the exact size: `thread_{tail}run_{tail}req_{op}_{n+1}_{h8'}`,
        // where the run id repeats the thread id's tail `{op}_{n}_{h8}`.
        let mut digits = itoa::Buffer::new();
        let n_text = digits.format(n);
        let tail_len = operation.len() + n_text.len() + 10;
        let mut digits1 = itoa::Buffer::new();
        let n1_text = digits1.format(n.wrapping_add(1));
        let run_at = "thread_".len() + tail_len;
        let request_at = run_at + "run_".len() + tail_len;
        let len = request_at + "req_".len() + operation.len() + n1_text.len() + 10;
        // Both random parts as hex in one buffer, checked as text once. The halves are
        // taken by indexing, not `get(..).unwrap_or_default()`: their length is then the
        // constant 8 and each is copied inline, where a length of 8-or-0 cost a `memcpy`
        // call each (~40 instructions a call of `user_context_ids` in all).
        let hex = hex16(&r);
        let hex = std::str::from_utf8(&hex).unwrap_or_default();
        let mut text = String::with_capacity(len);
        text.push_str("thread_");
        text.push_str(operation);
        text.push('_');
        text.push_str(n_text);
        text.push('_');
        text.push_str(&hex[..8]);
        text.push_str("run_");
        text.extend_from_within("thread_".len()..run_at);
        text.push_str("req_");
        text.push_str(operation);
        text.push('_');
        text.push_str(n1_text);
        text.push('_');
        text.push_str(&hex[8..16]);
        debug_assert_eq!(text.len(), len);
        Ok(ContextIds {
            text: text.into_boxed_str(),
            run_at,
            request_at,
        })
    }

    /// `{prefix}_{ms}_{n}_{random_length hex chars}`, or `{prefix}_{ms}_{n}`.
    pub fn base_id(
        &self,
        prefix: &str,
        include_random: bool,
        random_length: usize,
    ) -> Result<String, IdError> {
        check_label("prefix", prefix)?;
        if include_random {
            check_random_length(random_length)?;
        }
        let ms = self.now_ms();
        Ok(self.base_id_at(prefix, ms, include_random, random_length))
    }

    fn base_id_at(
        &self,
        prefix: &str,
        ms: u64,
        include_random: bool,
        random_length: usize,
    ) -> String {
        // At most 64 hex digits (checked by the callers): 32 bytes.
        let mut random = [0u8; 32];
        let bytes = if include_random {
            random_length.div_ceil(2).min(random.len())
        } else {
            0
        };
        let n = self.next_with_random(&mut random[..bytes]);
        let mut s = String::with_capacity(prefix.len() + 48);
        s.push_str(prefix);
        s.push('_');
        push_u64(&mut s, ms);
        s.push('_');
        push_u64(&mut s, n);
        if include_random {
            s.push('_');
            push_hex_bytes(&mut s, &random[..bytes], random_length);
        }
        s
    }

    /// `{prefix}_{h8}` (Netra's `generate_id`).
    pub fn simple_id(&self, prefix: &str) -> Result<String, IdError> {
        check_label("prefix", prefix)?;
        let mut s = String::with_capacity(prefix.len() + 9);
        s.push_str(prefix);
        s.push('_');
        self.push_hex(&mut s, 8);
        Ok(s)
    }

    fn user_scoped_id(
        &self,
        kind: &str,
        user_id: &str,
        connection_timestamp_s: Option<f64>,
    ) -> Result<String, IdError> {
        check_user_id(user_id)?;
        let ms = match connection_timestamp_s {
            Some(ts) => seconds_to_ms(ts)?,
            None => self.now_ms(),
        };
        let mut prefix = String::with_capacity(kind.len() + 9);
        prefix.push_str(kind);
        prefix.push_str(user_prefix(user_id));
        Ok(self.base_id_at(&prefix, ms, true, 8))
    }

    /// `ws_client_{u8}_{ms}_{n}_{h8}`; `connection_timestamp_s` is Unix seconds.
    pub fn websocket_client_id(
        &self,
        user_id: &str,
        connection_timestamp_s: Option<f64>,
    ) -> Result<String, IdError> {
        self.user_scoped_id("ws_client_", user_id, connection_timestamp_s)
    }

    /// `ws_conn_{u8}_{ms}_{n}_{h8}`.
    pub fn websocket_connection_id(
        &self,
        user_id: &str,
        connection_timestamp_s: Option<f64>,
    ) -> Result<String, IdError> {
        self.user_scoped_id("ws_conn_", user_id, connection_timestamp_s)
    }

    /// Base id with prefix `session_{type}_{u8}`.
    pub fn session_id(&self, user_id: &str, session_type: &str) -> Result<String, IdError> {
        check_user_id(user_id)?;
        check_label("session_type", session_type)?;
        // Each part is checked by its own rule (a user id may hold '@', spaces or
        // non-ASCII), so the prefix built from them is not checked again as a label.
        let prefix = format!("session_{session_type}_{}", user_prefix(user_id));
        Ok(self.base_id_at(&prefix, self.now_ms(), true, 8))
    }

    /// Base id with prefix `agent_{agent_type}_{u8}`.
    pub fn agent_execution_id(&self, agent_type: &str, user_id: &str) -> Result<String, IdError> {
        check_user_id(user_id)?;
        check_label("agent_type", agent_type)?;
        let prefix = format!("agent_{agent_type}_{}", user_prefix(user_id));
        Ok(self.base_id_at(&prefix, self.now_ms(), true, 8))
    }

    /// Base id with prefix `msg_{type}_{u8}`, plus `_{last _-part of thread_id, 8 chars}`
    /// when a thread id is given.
    pub fn message_id(
        &self,
        message_type: &str,
        user_id: &str,
        thread_id: Option<&str>,
    ) -> Result<String, IdError> {
        check_user_id(user_id)?;
        check_label("message_type", message_type)?;
        let mut prefix = format!("msg_{message_type}_{}", user_prefix(user_id));
        if let Some(t) = thread_id.filter(|t| !t.is_empty()) {
            check_text("thread_id", t)?;
            let last = t.rsplit('_').next().unwrap_or(t);
            prefix.push('_');
            prefix.push_str(first_chars(last, 8));
        }
        Ok(self.base_id_at(&prefix, self.now_ms(), true, 8))
    }

    /// `count` base ids sharing one `ms`.
    pub fn batch_ids(
        &self,
        prefix: &str,
        count: usize,
        include_random: bool,
    ) -> Result<Vec<String>, IdError> {
        check_label("prefix", prefix)?;
        if count > MAX_BATCH {
            return Err(IdError::BatchCount {
                value: count,
                max: MAX_BATCH,
            });
        }
        let ms = self.now_ms();
        Ok((0..count)
            .map(|_| self.base_id_at(prefix, ms, include_random, 8))
            .collect())
    }

    /// The older manager run format `run_{thread_id}_{ms % 100000}_{h8}`
    /// (`UnifiedIDManager.generate_run_id`).
    pub fn manager_run_id(&self, thread_id: &str) -> Result<String, IdError> {
        check_text("thread_id", thread_id)?;
        let ms = self.now_ms();
        let mut s = String::with_capacity(thread_id.len() + 20);
        s.push_str("run_");
        s.push_str(thread_id);
        s.push('_');
        push_u64(&mut s, ms % MANAGER_RUN_MODULUS);
        s.push('_');
        self.push_hex(&mut s, 8);
        Ok(s)
    }

    /// A random (version 4) UUID, hyphenated, from this generator's stream.
    pub fn uuid_v4(&self) -> String {
        let mut b = [0u8; 16];
        self.random_bytes(&mut b);
        uuid::Builder::from_random_bytes(b)
            .into_uuid()
            .hyphenated()
            .to_string()
    }
}

/// Parses a base id from the right. When an id reads both with and without a random
/// part (`id_42_1700000000000_5`), the reading whose timestamp has 13 digits (years
/// 2001 to 2286 in ms) wins; otherwise the reading with a random part.
///
/// The owned form of [`parse_id_parts`]: same readings, same errors.
pub fn parse_id(id: &str) -> Result<IdComponents, IdError> {
    parse_id_parts(id).map(IdComponents::from)
}

/// The parts of a base id as slices of the id itself: what [`parse_id`] reads, without
/// allocating (only an error allocates, to name the bad value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdParts<'a> {
    /// Everything before `_{ms}_{n}`; it may itself hold `_`.
    pub prefix: &'a str,
    /// The `{ms}` part: milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The `{n}` part: the generator's counter when the id was minted.
    pub counter: u64,
    /// Empty when the id was made with `include_random = false`.
    pub random: &'a str,
    /// The whole id, as parsed.
    pub full_id: &'a str,
}

impl From<IdParts<'_>> for IdComponents {
    fn from(p: IdParts<'_>) -> Self {
        Self {
            prefix: p.prefix.to_owned(),
            timestamp_ms: p.timestamp_ms,
            counter: p.counter,
            random: p.random.to_owned(),
            full_id: p.full_id.to_owned(),
        }
    }
}

impl IdComponents {
    /// The same parts, borrowed.
    pub fn as_parts(&self) -> IdParts<'_> {
        IdParts {
            prefix: &self.prefix,
            timestamp_ms: self.timestamp_ms,
            counter: self.counter,
            random: &self.random,
            full_id: &self.full_id,
        }
    }
}

/// [`parse_id`] without copying: the parts borrow from `id`. Same readings, same
/// tie-break, same errors.
pub fn parse_id_parts(id: &str) -> Result<IdParts<'_>, IdError> {
    let chosen = if id.len() > MAX_ID_LEN {
        None
    } else {
        // The usual id in a few words; anything else (or anything the fast path is
        // unsure of) by the general reading, which gives the same answer on the usual id.
        // WebAssembly reads every id the general way: the fast path's code (about 1 KB)
        // would count against the package's size limit.
        #[cfg(not(target_arch = "wasm32"))]
        let reading = read_canonical(id).or_else(|| read_general(id));
        #[cfg(target_arch = "wasm32")]
        let reading = read_general(id);
        reading
    };
    match chosen {
        Some((prefix, timestamp_ms, counter, random)) => Ok(IdParts {
            prefix,
            timestamp_ms,
            counter,
            random,
            full_id: id,
        }),
        None => Err(IdError::Unparsable {
            value: id.to_owned(),
            expected: "{prefix}_{ms}_{counter}[_{hex}]",
        }),
    }
}

type Reading<'a> = (&'a str, u64, u64, &'a str);

/// Both readings and the tie-break, from one scan for the last three `_`: what
/// [`parse_id_parts`] reads (for an id of at most `MAX_ID_LEN` bytes).
fn read_general(id: &str) -> Option<Reading<'_>> {
    let (at, found) = last_three_underscores(id);
    match read_with_random(id, at, found) {
        // A plausible reading with a random part wins whatever the other one is.
        Some(a) if plausible_ms(a.1) => Some(a),
        a => match (a, read_without_random(id, at, found)) {
            (Some(a), Some(b)) => Some(if plausible_ms(b.1) { b } else { a }),
            (a, b) => a.or(b),
        },
    }
}

/// The shortest id of the canonical shape: `p_{13 digits}_{1 digit}_{8 hex}`.
const CANONICAL_MIN_LEN: usize = 26;

/// The canonical shape `{prefix}_{13-digit ms, first digit not 0}_{1 to 15 digits}_{8
/// lower hex}` read from the right in four or five words, or `None` for any other text. When
/// it is `Some`, the general reading is the same: the last three `_` are the ones
/// found here (the bytes between them are digits or hex), the reading with a random
/// part parses, and its timestamp is plausible, so it wins.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
#[inline(always)]
fn read_canonical(id: &str) -> Option<Reading<'_>> {
    let b = id.as_bytes();
    let n = b.len();
    if n < CANONICAL_MIN_LEN || b[n - 9] != b'_' || !lower_hex_word(word(&b[n - 8..])) {
        return None;
    }
    // The word before the random part: the counter, its `_`, then the end of the ms.
    let w = word(&b[n - 17..n - 9]);
    let m = byte_eq_mask(w, b'_');
    if m != 0 {
        // 1 to 7 digits. With the lowest `_`: the bytes above it are the counter, and
        // another `_` among them fails the digit check; `_` as the last byte would be an
        // empty counter.
        if m >= HIGHS_TOP {
            return None;
        }
        let below = m ^ (m - 1);
        let lo = (w & !below) | ((ONES * 0x30) & below);
        let at = n - 17 + (m.trailing_zeros() / 8) as usize;
        read_canonical_head(id, at, ONES * 0x30, lo)
    } else {
        // 8 to 15 digits (counters past ten million): the word is all counter, and its
        // `_` is the last one in the word before.
        if n < CANONICAL_MIN_LEN + 7 {
            return None;
        }
        let w0 = word(&b[n - 25..n - 17]);
        let m0 = byte_eq_mask(w0, b'_');
        if m0 == 0 {
            return None;
        }
        let k = (63 - m0.leading_zeros()) / 8;
        let counter_bytes = (!0u64).checked_shl(8 * k + 8).unwrap_or(0);
        let hi = (w0 & counter_bytes) | ((ONES * 0x30) & !counter_bytes);
        read_canonical_head(id, n - 25 + k as usize, hi, w)
    }
}

/// The rest of [`read_canonical`] once the counter is found: its `_` at `at`, its digits
/// as a high and a low word (`'0'`s where it is shorter). Inlined into each case, so
/// the short counter's constant high word folds away.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
#[inline(always)]
fn read_canonical_head(
    id: &str,
    at: usize,
    counter_hi: u64,
    counter_lo: u64,
) -> Option<Reading<'_>> {
    let b = id.as_bytes();
    // The `_` before the counter, and the one 14 bytes before it, after the prefix.
    if at < 15 || b[at - 14] != b'_' {
        return None;
    }
    // 13 digits as two words, the second overlapping the first by three bytes (read as
    // '0's there).
    let hi = word(&b[at - 13..at - 5]);
    let lo = (word(&b[at - 8..at]) & !0xff_ffff) | 0x30_3030;
    if not_digits(counter_hi) | not_digits(counter_lo) | not_digits(hi) | not_digits(lo) != 0 {
        return None;
    }
    let ms = digits_value(hi) * 100_000 + digits_value(lo);
    if !plausible_ms(ms) {
        return None;
    }
    let counter = digits_value(counter_hi) * 100_000_000 + digits_value(counter_lo);
    Some((id.get(..at - 14)?, ms, counter, id.get(b.len() - 8..)?))
}

/// The high bit of the last byte of a word.
const HIGHS_TOP: u64 = 1 << 63;

/// Whether all eight bytes of `w` are lower-case hex digits.
#[inline(always)]
fn lower_hex_word(w: u64) -> bool {
    w & HIGHS == 0 && ascii_in_range(w, b'0', b'9') | ascii_in_range(w, b'a', b'f') == HIGHS
}

/// Positions of the last three `_` of `id`, last first, and how many were found: the
/// one scan both readings of [`parse_id`] need.
fn last_three_underscores(id: &str) -> ([usize; 3], usize) {
    let b = id.as_bytes();
    let mut at = [0usize; 3];
    let mut found = 0;
    // Eight bytes per step from the right (the usual tail `{ms}_{n}_{h8}` is 3-4 words).
    let mut end = b.len();
    while end >= 8 {
        let mut m = byte_eq_mask(word(&b[end - 8..end]), b'_');
        while m != 0 {
            let bit = 63 - m.leading_zeros() as usize;
            at[found] = end - 8 + bit / 8;
            found += 1;
            if found == 3 {
                return (at, found);
            }
            m &= !(1u64 << bit);
        }
        end -= 8;
    }
    for i in (0..end).rev() {
        if b[i] == b'_' {
            at[found] = i;
            found += 1;
            if found == 3 {
                break;
            }
        }
    }
    (at, found)
}

// ---- eight bytes at a time ---------------------------------------------------------
// Words are read little-endian, so byte i of the text is bits 8i..8i+8 of the word.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The eight bytes of an eight-byte slice as a word.
fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    u64::from_le_bytes(w)
}

/// The high bit of each byte of `w` that equals `c` (exact: no false positives).
fn byte_eq_mask(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * c as u64);
    !(((x & !HIGHS) + !HIGHS) | x | !HIGHS)
}

/// The high bit of each byte of `w` in `lo..=hi`, for words of ASCII bytes only
/// (below 0x80, so no add carries out of its byte).
fn ascii_in_range(w: u64, lo: u8, hi: u8) -> u64 {
    let ge_lo = w + ONES * (0x80 - lo as u64);
    let gt_hi = w + ONES * (0x7f - hi as u64);
    ge_lo & !gt_hi & HIGHS
}

const POW10: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// Eight ASCII digits as their number, or `None` if any byte is not a digit.
fn eight_digits(w: u64) -> Option<u64> {
    (not_digits(w) == 0).then(|| digits_value(w))
}

/// Zero when all eight bytes of `w` are ASCII digits, not zero otherwise.
#[inline(always)]
fn not_digits(w: u64) -> u64 {
    // A byte is a digit when its high nibble is 3 and still is after adding 6 (which
    // carries out of 0x3a..=0x3f); a carry out of a byte that fails the first test
    // cannot hide the failure.
    let high = 0xf0f0_f0f0_f0f0_f0f0;
    ((w & high) ^ (ONES * 0x30)) | ((w.wrapping_add(ONES * 6) & high) ^ (ONES * 0x30))
}

/// The number eight ASCII digits spell (for a word `not_digits` passes).
#[inline(always)]
fn digits_value(w: u64) -> u64 {
    // Pairs, then quads, then all eight: the first byte is the most significant digit.
    let d = w.wrapping_sub(ONES * 0x30);
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00ff_00ff_00ff_00ff;
    let d = (d.wrapping_mul(100) + (d >> 16)) & 0x0000_ffff_0000_ffff;
    (d.wrapping_mul(10_000) + (d >> 32)) & 0xffff_ffff
}

/// `{prefix}_{ms}_{n}_{random}` (what `rsplitn(4, '_')` reads).
fn read_with_random(id: &str, at: [usize; 3], found: usize) -> Option<Reading<'_>> {
    if found < 3 {
        return None;
    }
    let random = &id[at[0] + 1..];
    let prefix = &id[..at[2]];
    if prefix.is_empty() || random.is_empty() || !is_lower_hex(random) {
        return None;
    }
    let counter = parse_digits(&id[at[1] + 1..at[0]])?;
    let ts = parse_digits(&id[at[2] + 1..at[1]])?;
    Some((prefix, ts, counter, random))
}

/// `{prefix}_{ms}_{n}` (what `rsplitn(3, '_')` reads).
fn read_without_random(id: &str, at: [usize; 3], found: usize) -> Option<Reading<'_>> {
    if found < 2 {
        return None;
    }
    let counter = parse_digits(&id[at[0] + 1..])?;
    let ts = parse_digits(&id[at[1] + 1..at[0]])?;
    let prefix = &id[..at[1]];
    (!prefix.is_empty()).then_some((prefix, ts, counter, ""))
}

fn plausible_ms(ms: u64) -> bool {
    (1_000_000_000_000..10_000_000_000_000).contains(&ms)
}

/// Parses, has a prefix starting with `expected_prefix`, and a timestamp at most a year
/// old and at most an hour ahead of `now_ms`.
pub fn is_valid_id(id: &str, expected_prefix: Option<&str>, now_ms: u64) -> bool {
    let Ok(c) = parse_id_parts(id) else {
        return false;
    };
    if let Some(p) = expected_prefix {
        if !c.prefix.starts_with(p) {
            return false;
        }
    }
    c.timestamp_ms.saturating_add(MAX_ID_AGE_MS) >= now_ms
        && c.timestamp_ms <= now_ms.saturating_add(MAX_ID_FUTURE_MS)
}

/// Age of an id in ms at `now_ms` (negative when it is from the future), saturating at
/// the ends of `i64` rather than wrapping.
pub fn id_age_ms(id: &str, now_ms: u64) -> Result<i64, IdError> {
    let c = parse_id_parts(id)?;
    let age = now_ms as i128 - c.timestamp_ms as i128;
    Ok(age.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

/// Parses a generator context id `thread_/run_/req_{op}_{n}_{h8}`.
pub fn parse_context_id(id: &str) -> Result<ContextIdParts, IdError> {
    let err = || IdError::Unparsable {
        value: id.to_owned(),
        expected: "thread_|run_|req_ + {operation}_{counter}_{8 hex}",
    };
    let (kind, rest) = if let Some(r) = id.strip_prefix("thread_") {
        (ContextIdKind::Thread, r)
    } else if let Some(r) = id.strip_prefix("run_") {
        (ContextIdKind::Run, r)
    } else if let Some(r) = id.strip_prefix("req_") {
        (ContextIdKind::Request, r)
    } else {
        return Err(err());
    };
    if id.len() > MAX_ID_LEN {
        return Err(err());
    }
    let (operation, counter, random) = split_counter_h8(rest, |_| true).ok_or_else(err)?;
    Ok(ContextIdParts {
        kind,
        operation: operation.to_owned(),
        counter,
        random: random.to_owned(),
    })
}

/// Splits `{head}_{digits}_{8 lowercase hex}`; `digits_ok` sees the digits as text.
fn split_counter_h8(s: &str, digits_ok: impl Fn(&str) -> bool) -> Option<(&str, u64, &str)> {
    let mut it = s.rsplitn(3, '_');
    let h8 = it.next()?;
    let digits = it.next()?;
    let head = it.next()?;
    if head.is_empty() || h8.len() != 8 || !is_lower_hex(h8) || !digits_ok(digits) {
        return None;
    }
    Some((head, parse_digits(digits)?, h8))
}

fn manager_run_digits(d: &str) -> bool {
    // `str(ms % 100000)`: 1 to 5 digits, no leading zero unless it is "0".
    (1..=5).contains(&d.len()) && (d == "0" || !d.starts_with('0'))
}

/// Every reading of a run id, the generator reading first.
pub fn run_readings(run_id: &str) -> Vec<RunReading> {
    let mut out = Vec::with_capacity(2);
    let Some(rest) = run_id.strip_prefix("run_") else {
        return out;
    };
    if run_id.len() > MAX_ID_LEN {
        return out;
    }
    if let Some((_, _, _)) = split_counter_h8(rest, |_| true) {
        out.push(RunReading {
            thread_id: format!("thread_{rest}"),
            format: RunFormat::Generator,
        });
    }
    if let Some((thread, _, _)) = split_counter_h8(rest, manager_run_digits) {
        out.push(RunReading {
            thread_id: thread.to_owned(),
            format: RunFormat::Manager,
        });
    }
    out
}

/// The thread a run id belongs to, reading it as a generator run id first
/// (Netra's `extract_thread_id`, fixed).
pub fn thread_id_for_run(run_id: &str) -> Option<String> {
    run_readings(run_id).into_iter().next().map(|r| r.thread_id)
}

/// Whether `run_id` belongs to `thread_id` under either run format. Exact: the thread id
/// must be one of the run id's readings, whole.
pub fn are_correlated(thread_id: &str, run_id: &str) -> bool {
    correlation(thread_id, run_id).is_some()
}

/// Under which format `run_id` belongs to `thread_id`, if it does.
pub fn correlation(thread_id: &str, run_id: &str) -> Option<RunFormat> {
    let rest = run_id.strip_prefix("run_")?;
    if thread_id.is_empty() || run_id.len() > MAX_ID_LEN {
        return None;
    }
    if thread_id.strip_prefix("thread_") == Some(rest) && split_counter_h8(rest, |_| true).is_some()
    {
        return Some(RunFormat::Generator);
    }
    let tail = rest.strip_prefix(thread_id)?.strip_prefix('_')?;
    let (d, h8) = tail.split_once('_')?;
    (manager_run_digits(d)
        && d.bytes().all(|b| b.is_ascii_digit())
        && h8.len() == 8
        && is_lower_hex(h8))
    .then_some(RunFormat::Manager)
}

// ---- small shared helpers -------------------------------------------------------

/// Two lowercase hex digits for each byte value, in byte order: a byte is appended as one
/// two-byte slice of this `str`, with no per-char push and no UTF-8 check.
const HEX_PAIRS: &str = match std::str::from_utf8(&hex_pair_bytes()) {
    Ok(s) => s,
    Err(_) => panic!("hex digits are ASCII"),
};

const fn hex_pair_bytes() -> [u8; 512] {
    let digits = b"0123456789abcdef";
    let mut out = [0u8; 512];
    let mut b = 0;
    while b < 256 {
        out[2 * b] = digits[b >> 4];
        out[2 * b + 1] = digits[b & 15];
        b += 1;
    }
    out
}

/// Eight bytes as sixteen lowercase hex digits.
fn hex16(bytes: &[u8; 8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (pair, &v) in out.chunks_exact_mut(2).zip(bytes) {
        let at = 2 * v as usize;
        pair.copy_from_slice(&HEX_PAIRS.as_bytes()[at..at + 2]);
    }
    out
}

/// Appends the first `chars` hex digits of `bytes` (two per byte, high nibble first).
fn push_hex_bytes(out: &mut String, bytes: &[u8], chars: usize) {
    out.reserve(chars);
    for (i, &b) in bytes.iter().enumerate() {
        let at = 2 * b as usize;
        let width = if 2 * i + 1 < chars { 2 } else { 1 };
        out.push_str(&HEX_PAIRS[at..at + width]);
    }
}

fn push_u64(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
}

fn is_lower_hex(s: &str) -> bool {
    all_bytes(s.as_bytes(), lower_hex_word, |b| {
        b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
    })
}

/// Where `needle` first occurs in `haystack` (`str::find` with a string pattern), by
/// comparing at each place the needle's first byte occurs. Written out so the WebAssembly
/// build does not link the two-way substring searcher (~2 KB); the texts searched are
/// ids and keys of at most a few KB, so the plain scan is bounded.
pub(crate) fn find_text(haystack: &str, needle: &str) -> Option<usize> {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    let Some((&first, _)) = n.split_first() else {
        return Some(0);
    };
    (0..(h.len() + 1).checked_sub(n.len())?).find(|&i| h[i] == first && h[i..].starts_with(n))
}

/// Whether every byte passes: eight at a time with `word_ok` (which must agree with
/// `byte_ok` on each byte), the last bytes as one word that overlaps the one before.
fn all_bytes(b: &[u8], word_ok: impl Fn(u64) -> bool, byte_ok: impl Fn(u8) -> bool) -> bool {
    if b.len() < 8 {
        return b.iter().all(|&c| byte_ok(c));
    }
    b.chunks_exact(8).all(|c| word_ok(word(c))) && word_ok(word(&b[b.len() - 8..]))
}

// Inlined into each caller: the call and its register saves were ~10% of a parse.
#[inline(always)]
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    // What `all ASCII digits` + `str::parse::<u64>` accept: overflow is None. Up to 19
    // digits cannot overflow, so only longer ones pay for checked arithmetic.
    if (9..=16).contains(&s.len()) {
        // Two words, the second overlapping the first (a 13-digit ms timestamp is the
        // usual case): the bytes both words hold count once, as '0's in the second.
        let b = s.as_bytes();
        let n = b.len();
        let hi = eight_digits(word(&b[..8]))?;
        let seen = (1u64 << (8 * (16 - n))) - 1;
        let lo = eight_digits((word(&b[n - 8..]) & !seen) | ((ONES * 0x30) & seen))?;
        return Some(hi * POW10[n - 8] + lo);
    }
    if s.len() <= 19 {
        let mut b = s.as_bytes();
        let mut v: u64 = 0;
        while b.len() >= 8 {
            v = v * 100_000_000 + eight_digits(word(&b[..8]))?;
            b = &b[8..];
        }
        for &b in b {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + d as u64;
        }
        return Some(v);
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(d as u64)?;
    }
    Some(v)
}

/// The first `n` characters (not bytes) of `s`.
pub(crate) fn first_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `u8` of the contract: the first 8 characters of the user id.
fn user_prefix(user_id: &str) -> &str {
    first_chars(user_id, 8)
}

fn seconds_to_ms(ts: f64) -> Result<u64, IdError> {
    if !ts.is_finite() || !(0.0..=253_402_300_799.0).contains(&ts) {
        return Err(IdError::Timestamp {
            value: crate::decimal::float_text(ts),
        });
    }
    Ok((ts * 1000.0) as u64)
}

fn check_random_length(n: usize) -> Result<(), IdError> {
    if (1..=64).contains(&n) {
        Ok(())
    } else {
        Err(IdError::RandomLength { value: n })
    }
}

/// `BYTE_CLASS` bit: allowed in a label (ASCII letters, digits, `_`, `-`, `.`).
const LABEL: u8 = 1;
/// `BYTE_CLASS` bit: printable ASCII other than space and `:` (a user id made only of
/// these passes every user-id rule).
const PLAIN_USER: u8 = 2;

/// One table load per byte instead of a chain of range compares.
static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' {
            t[c] |= LABEL;
        }
        if b > b' ' && b < 0x7f && b != b':' {
            t[c] |= PLAIN_USER;
        }
        c += 1;
    }
    t
};

/// Labels (operations, prefixes, types) are code-chosen names: ASCII letters, digits,
/// `_`, `-` and `.`, so they can never hide a separator or a control character.
pub(crate) fn check_label(what: &'static str, value: &str) -> Result<(), IdError> {
    // The table entries of all bytes ANDed, tested once at the end: two instructions a
    // byte (the compiler unrolls the chain by four) where `all` spent six on a load, a
    // test and a branch per byte. Labels are at most 128 bytes, so a bad byte early
    // saves little.
    let ok = !value.is_empty()
        && value.len() <= MAX_LABEL_LEN
        && value
            .bytes()
            .fold(LABEL, |acc, b| acc & BYTE_CLASS[b as usize])
            != 0;
    if ok {
        Ok(())
    } else {
        Err(label_error(what, value))
    }
}

// Out of line natively, so that the check itself is small enough to be inlined where it
// is hot. WebAssembly leaves it to the optimiser (smaller).
#[cold]
#[cfg_attr(not(target_arch = "wasm32"), inline(never))]
fn label_error(what: &'static str, value: &str) -> IdError {
    IdError::InvalidPart {
        what,
        value: value.to_owned(),
        expected: "1 to 128 ASCII letters, digits, '_', '-' or '.'",
    }
}

/// Free text ids (thread ids from elsewhere): non-empty, no control characters, bounded.
pub(crate) fn check_text(what: &'static str, value: &str) -> Result<(), IdError> {
    let ok = !value.chars().all(char::is_whitespace)
        && value.len() <= MAX_ID_LEN
        && !value.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(IdError::InvalidPart {
            what,
            value: value.to_owned(),
            expected: "1 to 1024 bytes of printable text",
        })
    }
}

/// Every byte printable ASCII other than space and `:`.
fn is_plain_user(b: &[u8]) -> bool {
    all_bytes(
        b,
        |w| w & HIGHS == 0 && ascii_in_range(w, b'!', b'~') == HIGHS && byte_eq_mask(w, b':') == 0,
        |c| BYTE_CLASS[c as usize] & PLAIN_USER != 0,
    )
}

// Inlined natively: the fast path is a few words' arithmetic, less than the call it
// saves. Not in WebAssembly, where each of its six callers would carry a copy.
#[cfg_attr(not(target_arch = "wasm32"), inline(always))]
fn check_user_id(user_id: &str) -> Result<(), IdError> {
    // Fast path: printable ASCII with no space and no ':' passes every rule below.
    if !user_id.is_empty() && user_id.len() <= MAX_ID_LEN && is_plain_user(user_id.as_bytes()) {
        return Ok(());
    }
    check_user_id_slow(user_id)
}

#[cfg_attr(not(target_arch = "wasm32"), inline(never))]
fn check_user_id_slow(user_id: &str) -> Result<(), IdError> {
    check_text("user_id", user_id)?;
    if user_id.contains(':') {
        return Err(IdError::InvalidPart {
            what: "user_id",
            value: user_id.to_owned(),
            expected: "no ':' (it separates user and thread in isolation keys)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::entropy::SeededEntropy;

    const T0: u64 = 1_764_000_000_000;

    fn generator() -> (IdGenerator, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(T0));
        (
            IdGenerator::new(clock.clone(), SeededEntropy::from_seed(1)),
            clock,
        )
    }

    #[test]
    fn an_entropy_source_that_panics_leaves_the_generator_usable() {
        // The lock is released as the panicking thread unwinds, and the counter step
        // taken before the draw stays taken (no id reuses it).
        struct PanicsOnSecondFill(u32);
        impl Entropy for PanicsOnSecondFill {
            fn fill(&mut self, buf: &mut [u8]) {
                self.0 += 1;
                assert!(self.0 != 2, "entropy source failed");
                buf.fill(0xab);
            }
        }
        let g = Arc::new(IdGenerator::new(
            Arc::new(ManualClock::new(T0)),
            PanicsOnSecondFill(0),
        ));
        let first = g.user_context_ids("u", "op").unwrap();
        assert_eq!(first.thread_id(), "thread_op_1_abababab");
        let g2 = g.clone();
        let failed = std::thread::spawn(move || g2.user_context_ids("u", "op")).join();
        assert!(failed.is_err(), "the second draw panics");
        let third = g.user_context_ids("u", "op").unwrap();
        assert_eq!(third.thread_id(), "thread_op_3_abababab");
        assert_eq!(g.counter(), 3);
    }

    fn is_h8(s: &str) -> bool {
        s.len() == 8 && is_lower_hex(s)
    }

    #[test]
    fn user_context_ids_share_counter_and_random() {
        let (g, _) = generator();
        let ids = g.user_context_ids("user123", "websocket_factory").unwrap();
        let t = parse_context_id(ids.thread_id()).unwrap();
        let r = parse_context_id(ids.run_id()).unwrap();
        let q = parse_context_id(ids.request_id()).unwrap();
        assert_eq!(t.operation, "websocket_factory");
        assert_eq!((t.counter, r.counter, q.counter), (1, 1, 2));
        assert_eq!(t.random, r.random);
        assert!(is_h8(&t.random) && is_h8(&q.random));
        assert_eq!(
            &ids.thread_id()["thread_".len()..],
            &ids.run_id()["run_".len()..]
        );
        assert!(ids.thread_id().starts_with("thread_websocket_factory_1_"));
        assert!(ids.request_id().starts_with("req_websocket_factory_2_"));
        // One counter step per call.
        let again = g.user_context_ids("user123", "websocket_factory").unwrap();
        assert!(again.thread_id().starts_with("thread_websocket_factory_2_"));
    }

    #[test]
    fn context_ids_at_every_operation_length() {
        // Every operation length up to the limit: the buffer's exact size and the text
        // appended to it must agree at every counter width.
        let (g, _) = generator();
        for op_len in 1..=MAX_LABEL_LEN {
            let op = "o".repeat(op_len);
            let ids = g.user_context_ids("u", &op).unwrap();
            let n = g.counter();
            let (thread, run, request) = ids.clone().into_strings();
            let t = parse_context_id(&thread).unwrap();
            let q = parse_context_id(&request).unwrap();
            assert_eq!(thread, format!("thread_{op}_{n}_{}", t.random));
            assert_eq!(run, format!("run_{op}_{n}_{}", t.random));
            assert_eq!(request, format!("req_{op}_{}_{}", n + 1, q.random));
            assert_eq!(
                format!("{ids:?}"),
                format!(
                    "ContextIds {{ thread_id: {thread:?}, run_id: {run:?}, request_id: {request:?} }}"
                )
            );
        }
    }

    proptest::proptest! {
        /// `find_text` is `str::find`, on text from a small alphabet (so matches, near
        /// misses and overlaps are common) and on any text.
        #[test]
        fn find_text_is_str_find(
            h in "[ab_é]{0,40}",
            n in "[ab_é]{0,6}",
            any_h in ".{0,20}",
            any_n in ".{0,3}",
        ) {
            proptest::prop_assert_eq!(find_text(&h, &n), h.find(n.as_str()));
            proptest::prop_assert_eq!(find_text(&any_h, &any_n), any_h.find(any_n.as_str()));
            proptest::prop_assert_eq!(find_text(&h, &any_n), h.find(any_n.as_str()));
        }
    }

    #[test]
    fn check_label_is_the_per_character_rule() {
        // Every character up to U+00FF at every position of labels of 1 to 20 bytes
        // (the table's AND chain is unrolled by four), in otherwise valid text.
        for len in 1..=20 {
            for at in 0..len {
                for c in (0..=255u8).map(char::from) {
                    let mut label: Vec<char> = vec!['a'; len];
                    label[at] = c;
                    let label: String = label.into_iter().collect();
                    let rule = c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
                    assert_eq!(check_label("x", &label).is_ok(), rule, "{label:?}");
                }
            }
        }
        let longest = "a".repeat(MAX_LABEL_LEN);
        assert!(check_label("x", &longest).is_ok());
        assert!(check_label("x", &format!("{longest}a")).is_err());
        assert!(check_label("x", "").is_err());
    }

    #[test]
    fn request_counter_is_one_more_across_digit_carries() {
        // Through the digit carries 9 -> 10, 99 -> 100, 999 -> 1000.
        let (g, _) = generator();
        for n in 1..=1_000u64 {
            let ids = g.user_context_ids("u1", "op").unwrap();
            assert_eq!(parse_context_id(ids.thread_id()).unwrap().counter, n);
            assert_eq!(parse_context_id(ids.request_id()).unwrap().counter, n + 1);
            let q = ids.request_id();
            let expected = format!("req_op_{}_", n + 1);
            assert_eq!(&q[..q.len() - 8], expected, "request id {q}");
            let debug = format!("{ids:?}");
            assert!(debug.contains(&format!("request_id: {q:?}")), "{debug}");
        }
    }

    #[test]
    fn context_ids_serialise_as_three_named_strings() {
        let (g, _) = generator();
        let ids = g.user_context_ids("u1", "op").unwrap();
        let v = serde_json::to_value(&ids).unwrap();
        assert_eq!(v["thread_id"], ids.thread_id());
        assert_eq!(v["run_id"], ids.run_id());
        assert_eq!(v["request_id"], ids.request_id());
        assert_eq!(v.as_object().unwrap().len(), 3);
        let (t, r, q) = ids.clone().into_strings();
        assert_eq!(
            (t.as_str(), r.as_str(), q.as_str()),
            (ids.thread_id(), ids.run_id(), ids.request_id())
        );
    }

    #[test]
    fn base_id_formats() {
        let (g, _) = generator();
        let a = g.base_id("req", true, 8).unwrap();
        assert!(a.starts_with(&format!("req_{T0}_1_")), "{a}");
        assert_eq!(a.len(), format!("req_{T0}_1_").len() + 8);
        assert_eq!(g.base_id("req", false, 8).unwrap(), format!("req_{T0}_2"));
        assert_eq!(
            g.base_id("x", true, 5)
                .unwrap()
                .rsplit('_')
                .next()
                .unwrap()
                .len(),
            5
        );
        assert!(matches!(
            g.base_id("x", true, 0),
            Err(IdError::RandomLength { value: 0 })
        ));
        assert!(g.base_id("", true, 8).is_err());
        assert!(g.base_id("a b", true, 8).is_err());
    }

    #[test]
    fn user_scoped_formats() {
        let (g, _) = generator();
        let c = g.websocket_client_id("user-1234567890", None).unwrap();
        assert!(c.starts_with(&format!("ws_client_user-123_{T0}_1_")), "{c}");
        let c = g
            .websocket_connection_id("bob", Some(1_700_000_000.5))
            .unwrap();
        assert!(c.starts_with("ws_conn_bob_1700000000500_2_"), "{c}");
        let s = g.session_id("alice_long_name", "web").unwrap();
        assert!(
            s.starts_with(&format!("session_web_alice_lo_{T0}_3_")),
            "{s}"
        );
        let a = g.agent_execution_id("triage", "bob").unwrap();
        assert!(a.starts_with(&format!("agent_triage_bob_{T0}_4_")), "{a}");
        let m = g.message_id("chat", "bob", None).unwrap();
        assert!(m.starts_with(&format!("msg_chat_bob_{T0}_5_")), "{m}");
        let m = g
            .message_id("chat", "bob", Some("thread_ws_7_abcdef1234"))
            .unwrap();
        assert!(
            m.starts_with(&format!("msg_chat_bob_abcdef12_{T0}_6_")),
            "{m}"
        );
        assert_eq!(parse_id(&m).unwrap().prefix, "msg_chat_bob_abcdef12");
        // A user id's first 8 characters are taken as they are, whatever the user id
        // rule allows ('@', spaces, non-ASCII), as for the websocket ids.
        let s = g.session_id("user@example.com", "web").unwrap();
        assert!(
            s.starts_with(&format!("session_web_user@exa_{T0}_7_")),
            "{s}"
        );
        assert_eq!(parse_id(&s).unwrap().prefix, "session_web_user@exa");
        let a = g.agent_execution_id("triage", "üser 1 ünd more").unwrap();
        assert!(
            a.starts_with(&format!("agent_triage_üser 1 ü_{T0}_8_")),
            "{a}"
        );
        let m = g.message_id("chat", "u1", Some("x_a:b c d e")).unwrap();
        assert!(
            m.starts_with(&format!("msg_chat_u1_a:b c d _{T0}_9_")),
            "{m}"
        );
        // The parts are still checked, each by name.
        let e = g.session_id("a:b", "web").unwrap_err().to_string();
        assert!(e.starts_with("user_id \"a:b\""), "{e}");
        let e = g.session_id("bob", "w b").unwrap_err().to_string();
        assert!(e.starts_with("session_type \"w b\""), "{e}");
        let simple = g.simple_id("conn").unwrap();
        assert!(simple.starts_with("conn_") && is_h8(&simple[5..]));
        assert!(g.websocket_client_id("a:b", None).is_err());
        assert!(g.websocket_client_id("bob", Some(f64::NAN)).is_err());
        assert!(g.websocket_client_id("bob", Some(-1.0)).is_err());
    }

    #[test]
    fn batch_shares_one_ms() {
        let (g, clock) = generator();
        let ids = g.batch_ids("evt", 3, false).unwrap();
        assert_eq!(
            ids,
            vec![
                format!("evt_{T0}_1"),
                format!("evt_{T0}_2"),
                format!("evt_{T0}_3")
            ]
        );
        clock.advance(5);
        assert_eq!(g.batch_ids("evt", 0, true).unwrap().len(), 0);
        assert!(g.batch_ids("evt", MAX_BATCH + 1, true).is_err());
    }

    #[test]
    fn parse_reads_from_the_right() {
        let c = parse_id("session_web_user1234_1700000000000_42_deadbeef").unwrap();
        assert_eq!(c.prefix, "session_web_user1234");
        assert_eq!((c.timestamp_ms, c.counter), (1_700_000_000_000, 42));
        assert_eq!(c.random, "deadbeef");
        let c = parse_id("req_1700000000000_7").unwrap();
        assert_eq!(
            (c.prefix.as_str(), c.counter, c.random.as_str()),
            ("req", 7, "")
        );
        // Both readings parse; the one with a 13-digit timestamp wins.
        let c = parse_id("id_42_1700000000000_5").unwrap();
        assert_eq!(
            (c.prefix.as_str(), c.timestamp_ms, c.counter),
            ("id_42", 1_700_000_000_000, 5)
        );
        for bad in [
            "",
            "_",
            "a_b",
            "x_1_2_XYZ",
            "_1_2",
            "x_-1_2",
            "x_99999999999999999999999_1",
        ] {
            assert!(parse_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validity_window() {
        let id = format!("req_{T0}_1_abcdef12");
        assert!(is_valid_id(&id, None, T0));
        assert!(is_valid_id(&id, Some("re"), T0));
        assert!(!is_valid_id(&id, Some("msg"), T0));
        assert!(is_valid_id(&id, None, T0 + MAX_ID_AGE_MS));
        assert!(!is_valid_id(&id, None, T0 + MAX_ID_AGE_MS + 1));
        assert!(is_valid_id(&id, None, T0 - MAX_ID_FUTURE_MS));
        assert!(!is_valid_id(&id, None, T0 - MAX_ID_FUTURE_MS - 1));
        assert_eq!(id_age_ms(&id, T0 + 250).unwrap(), 250);
        assert_eq!(id_age_ms(&id, T0 - 250).unwrap(), -250);
        assert!(id_age_ms("nope", T0).is_err());
    }

    #[test]
    fn run_readings_of_the_contract_example() {
        let r = run_readings("run_thread_consistency_test_5_abcd1234");
        assert_eq!(
            r,
            vec![
                RunReading {
                    thread_id: "thread_thread_consistency_test_5_abcd1234".into(),
                    format: RunFormat::Generator
                },
                RunReading {
                    thread_id: "thread_consistency_test".into(),
                    format: RunFormat::Manager
                },
            ]
        );
        assert_eq!(
            thread_id_for_run("run_thread_consistency_test_5_abcd1234").unwrap(),
            "thread_thread_consistency_test_5_abcd1234"
        );
        assert!(are_correlated(
            "thread_consistency_test",
            "run_thread_consistency_test_5_abcd1234"
        ));
        assert!(are_correlated(
            "thread_thread_consistency_test_5_abcd1234",
            "run_thread_consistency_test_5_abcd1234"
        ));
        // A prefix of the thread is not the thread.
        assert!(!are_correlated(
            "thread_consistency",
            "run_thread_consistency_test_5_abcd1234"
        ));
        assert!(!are_correlated(
            "thread_consistency_test_5",
            "run_thread_consistency_test_5_abcd1234"
        ));
    }

    #[test]
    fn generator_and_manager_runs_correlate_with_their_threads() {
        let (g, clock) = generator();
        let ids = g.user_context_ids("u1", "websocket_factory").unwrap();
        assert_eq!(
            correlation(ids.thread_id(), ids.run_id()),
            Some(RunFormat::Generator)
        );
        assert_eq!(thread_id_for_run(ids.run_id()).unwrap(), ids.thread_id());
        let other = g.user_context_ids("u1", "websocket_factory").unwrap();
        assert!(!are_correlated(ids.thread_id(), other.run_id()));
        clock.set(1_700_000_012_345);
        let mr = g.manager_run_id("different-thread-abcd1234").unwrap();
        assert!(
            mr.starts_with("run_different-thread-abcd1234_12345_"),
            "{mr}"
        );
        assert_eq!(
            correlation("different-thread-abcd1234", &mr),
            Some(RunFormat::Manager)
        );
        // Read alone, the generator reading comes first; the manager one is still there.
        let readings = run_readings(&mr);
        assert_eq!(readings[0].format, RunFormat::Generator);
        assert_eq!(readings[1].thread_id, "different-thread-abcd1234");
        let mr2 = g.manager_run_id(ids.thread_id()).unwrap();
        assert!(are_correlated(ids.thread_id(), &mr2));
        assert!(run_readings(&mr2)
            .iter()
            .any(|r| r.thread_id == ids.thread_id()));
        // ms % 100000 == 0 prints "0".
        let g = IdGenerator::new(
            Arc::new(ManualClock::new(1_700_000_000_000)),
            SeededEntropy::from_seed(2),
        );
        let z = g.manager_run_id("t").unwrap();
        assert!(z.starts_with("run_t_0_"), "{z}");
        assert!(are_correlated("t", &z));
        assert!(!are_correlated("t", "run_t_00_abcdef12"));
        assert!(!are_correlated("t", "run_t_123456_abcdef12"));
    }

    #[test]
    fn clock_regression_keeps_ids_unique_and_is_counted() {
        let (g, clock) = generator();
        let a = g.base_id("x", false, 8).unwrap();
        clock.advance(-5_000);
        let b = g.base_id("x", false, 8).unwrap();
        assert_ne!(a, b);
        assert_eq!(parse_id(&b).unwrap().timestamp_ms, T0);
        assert_eq!(g.clock_regressions(), 1);
        assert_eq!(g.largest_clock_regression_ms(), 5_000);
    }

    #[test]
    fn uuid_is_v4() {
        let (g, _) = generator();
        let u = g.uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, g.uuid_v4());
    }

    #[test]
    fn fast_paths_match_the_plain_ones() {
        // The byte-scanning parser, digit writer and user-id check against the plain
        // rsplitn / format! / char-based versions they replaced.
        fn plain_digits(s: &str) -> Option<u64> {
            if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        }
        fn plain(id: &str) -> (Option<Reading<'_>>, Option<Reading<'_>>) {
            let mut it = id.rsplitn(4, '_');
            let a = (|| {
                let random = it.next()?;
                let counter = plain_digits(it.next()?)?;
                let ts = plain_digits(it.next()?)?;
                let prefix = it.next()?;
                (!prefix.is_empty() && is_lower_hex(random) && !random.is_empty())
                    .then_some((prefix, ts, counter, random))
            })();
            let mut it = id.rsplitn(3, '_');
            let b = (|| {
                let counter = plain_digits(it.next()?)?;
                let ts = plain_digits(it.next()?)?;
                let prefix = it.next()?;
                (!prefix.is_empty()).then_some((prefix, ts, counter, ""))
            })();
            (a, b)
        }
        let cases = [
            "",
            "_",
            "__",
            "___",
            "a_1_2",
            "a_1_2_",
            "_1_2_ab",
            "a__2_ab",
            "a_1__ab",
            "req_1700000000000_42_deadbeef",
            "x_1_2_XYZ",
            "x_-1_2",
            "x_+1_2",
            "x_18446744073709551615_1",
            "x_18446744073709551616_1",
            "x_00000000000000000001_1",
            "x_000000000000000000001_1",
            "id_42_1700000000000_5",
            "msg_chat_bob_abcdef12_1700000000000_6_0123abcd",
            "é_1_2_ab",
            "a_é_1_2",
            "a_1_2_3_4",
            "a_1_2_34567890",
        ];
        for id in cases {
            let (at, found) = last_three_underscores(id);
            assert_eq!(
                (
                    read_with_random(id, at, found),
                    read_without_random(id, at, found)
                ),
                plain(id),
                "{id:?}"
            );
        }
        // The whole parser (the canonical fast path, then the general reading) against
        // the plain rsplitn readings and tie-break, written without the word helpers.
        fn plain_hex(s: &str) -> bool {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        fn plain_parse(id: &str) -> Option<Reading<'_>> {
            if id.len() > MAX_ID_LEN {
                return None;
            }
            let (a, b) = plain(id);
            let a = a.filter(|a| plain_hex(a.3));
            let plausible = |ms: u64| (1_000_000_000_000..10_000_000_000_000).contains(&ms);
            match (a, b) {
                (Some(a), Some(b)) if !plausible(a.1) && plausible(b.1) => Some(b),
                (a, b) => a.or(b),
            }
        }
        fn check_whole(id: &str) {
            let want = plain_parse(id);
            let got = parse_id_parts(id);
            assert_eq!(
                got.as_ref()
                    .ok()
                    .map(|p| (p.prefix, p.timestamp_ms, p.counter, p.random)),
                want,
                "{id:?}"
            );
            match got {
                Ok(p) => assert!(std::ptr::eq(p.full_id, id)),
                Err(e) => assert_eq!(
                    e,
                    IdError::Unparsable {
                        value: id.to_owned(),
                        expected: "{prefix}_{ms}_{counter}[_{hex}]",
                    }
                ),
            }
            // The fast path only answers when the general reading gives the same.
            if id.len() <= MAX_ID_LEN {
                if let Some(fast) = read_canonical(id) {
                    assert_eq!(Some(fast), read_general(id), "{id:?}");
                }
                assert_eq!(read_general(id), want, "{id:?}");
            }
        }
        for id in cases {
            check_whole(id);
        }
        let digits = "98765432109876543210123";
        let hex = "deadbeef0123456789abcdef";
        let mut ids = Vec::new();
        for prefix in [
            "",
            "p",
            "req",
            "a_b",
            "_",
            "é",
            "x_1",
            "1",
            "session_web_u1",
        ] {
            for ms in [12, 13, 14] {
                for ms_first in ['1', '0', '9'] {
                    let ms = format!("{ms_first}{}", &digits[1..ms]);
                    for counter in 0..=21 {
                        let counter = &digits[digits.len() - counter..];
                        for h in 0..=17 {
                            let random = &hex[..h];
                            ids.push(format!("{prefix}_{ms}_{counter}_{random}"));
                            ids.push(format!("{prefix}_{ms}_{counter}"));
                        }
                        ids.push(format!("{prefix}_{ms}_{counter}_DEADBEEF"));
                        ids.push(format!("{prefix}_{ms}_{counter}_deadbeeF"));
                        ids.push(format!("{prefix}_{ms}_{counter}_deadbeeg"));
                    }
                }
            }
        }
        // Every canonical-looking id with one byte replaced, removed or added, at every
        // place; and all its beginnings and ends (ids of every length up to it).
        let base = [
            "req_1764000000000_42_deadbeef",
            "p_1764000000000_1_0123abcd",
            "a_b_1764000000000_1234567_ffffffff",
            "é_1764000000000_9_00000000",
        ];
        for id in base {
            let chars: Vec<char> = id.chars().collect();
            for i in 0..=chars.len() {
                ids.push(chars[..i].iter().collect());
                ids.push(chars[i..].iter().collect());
                for c in [
                    '_', '0', '1', 'a', 'f', 'g', 'A', 'X', 'é', '/', ':', '\u{7f}',
                ] {
                    let mut v = chars.clone();
                    v.insert(i, c);
                    ids.push(v.iter().collect());
                    if i < chars.len() {
                        let mut v = chars.clone();
                        v[i] = c;
                        ids.push(v.iter().collect());
                        v.remove(i);
                        ids.push(v.iter().collect());
                    }
                }
            }
        }
        // Ids of exactly 8, 9, 16 and 17 bytes, and one over the limit.
        for id in [
            "1_2_abcd",
            "a_1_2_abc",
            "a_123_45_abcdef0",
            "a_1234_56_abcdef0",
        ] {
            ids.push(id.to_owned());
        }
        let long = format!("{}_1764000000000_1_deadbeef", "p".repeat(MAX_ID_LEN));
        ids.push(long[long.len() - MAX_ID_LEN..].to_owned());
        ids.push(long[long.len() - MAX_ID_LEN - 1..].to_owned());
        let mut fast = 0;
        for id in &ids {
            check_whole(id);
            fast += usize::from(id.len() <= MAX_ID_LEN && read_canonical(id).is_some());
        }
        assert!(fast > 500, "{fast} of {} ids took the fast path", ids.len());
        // The fast path answers for every counter width it covers, with or without
        // `_` in the prefix, and declines the wider ones.
        for digits in 1..=17usize {
            let counter: String = (0..digits)
                .map(|i| char::from(b'9' - (i % 10) as u8))
                .collect();
            for prefix in ["r", "req", "msg_chat_bob"] {
                let id = format!("{prefix}_1764000000000_{counter}_0123abcd");
                let want = (digits <= 15).then(|| {
                    (
                        prefix,
                        1_764_000_000_000,
                        counter.parse().unwrap(),
                        "0123abcd",
                    )
                });
                assert_eq!(read_canonical(&id), want, "{id}");
                check_whole(&id);
            }
        }
        for v in [0, 1, 9, 10, 99, 100, 12345, u32::MAX as u64, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, v);
            assert_eq!(s, v.to_string());
        }
        for u in ["u", "user-1", "a b", " ", "", "a:b", "a\u{7f}", "é", "a\tb"] {
            let plain = check_text("user_id", u).is_ok() && !u.contains(':');
            assert_eq!(check_user_id(u).is_ok(), plain, "{u:?}");
        }
        let mut s = String::new();
        push_hex_bytes(&mut s, &[0xab, 0x01, 0xf0], 5);
        assert_eq!(s, "ab01f");
        for b in 0..=255u8 {
            let mut s = String::new();
            push_hex_bytes(&mut s, &[b], 2);
            assert_eq!(s, format!("{b:02x}"));
            // The byte-class table against the rules it encodes.
            let label = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
            assert_eq!(BYTE_CLASS[b as usize] & LABEL != 0, label, "{b}");
            let plain_user = b > b' ' && b < 0x7f && b != b':';
            assert_eq!(BYTE_CLASS[b as usize] & PLAIN_USER != 0, plain_user, "{b}");
        }
        for v in [0, 9, 10, 18_446_744_073_709_551_615] {
            assert_eq!(parse_digits(&v.to_string()), Some(v));
        }
        assert_eq!(parse_digits("18446744073709551616"), None);
        // Every length of the two-word path, with a bad byte at every position.
        for n in 1..=20usize {
            let digits: String = (0..n).map(|i| char::from(b'1' + (i % 9) as u8)).collect();
            assert_eq!(parse_digits(&digits), digits.parse().ok(), "{digits}");
            for bad in 0..n {
                for c in ['/', ':', 'a', ' '] {
                    let mut t = digits.clone().into_bytes();
                    t[bad] = c as u8;
                    let t = String::from_utf8(t).unwrap();
                    assert_eq!(parse_digits(&t), None, "{t}");
                }
            }
        }
        assert_eq!(
            parse_digits("9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
    }

    #[test]
    fn reset_counter() {
        let (g, _) = generator();
        g.base_id("x", false, 8).unwrap();
        g.reset_counter();
        assert_eq!(g.base_id("x", false, 8).unwrap(), format!("x_{T0}_1"));
    }
}
