// Type declarations of the threadline package, for the Node build (index.mjs, index.cjs)
// and the web build (browser.mjs, web/threadline.js) alike.
//
// Methods and option names are camelCase. Data objects handed back (ids, analyses,
// snapshots, violations, stats, events) use the core's field names, snake_case, exactly
// as in the report JSON. Absent values are `null`. Every failure is thrown as a
// ThreadlineError; ThreadGuard's checks never throw.

/** Loads the web build's .wasm (browsers). The Node build is ready on import, so there it does nothing. */
export default function init(input?: unknown): Promise<unknown>;
/** Synchronous `init` from bytes or a compiled module (web build); does nothing on Node. */
export function initSync(module?: unknown): unknown;

/**
 * Stable error kinds: `"argument"` (a JS value of the wrong type or shape), `"freed"` (an
 * object used after `free()`), `"internal"`, else the core's `{concern}.{case}`.
 */
export type ErrorKind =
  | 'argument'
  | 'freed'
  | 'internal'
  | 'id.invalid_part'
  | 'id.random_length'
  | 'id.batch_count'
  | 'id.timestamp'
  | 'id.unparsable'
  | 'id.seed'
  | 'context.empty'
  | 'context.placeholder'
  | 'context.placeholder_prefix'
  | 'context.colon_in_user_id'
  | 'context.control_character'
  | 'context.too_long'
  | 'context.depth'
  | 'key.unparsable'
  | 'key.too_long'
  | 'registry.limit_exceeded'
  | 'registry.isolation_violation'
  | 'registry.unknown_manager'
  | 'registry.inactive'
  | 'registry.config'
  | 'report.too_large'
  | 'report.too_deep'
  | 'report.json'
  | 'report.schema'
  | 'report.field'
  | 'report.capacity'
  | 'report.empty'
  | 'report.metadata_too_deep'
  | 'report.too_long';

/**
 * What every threadline call throws: an `Error` named `"ThreadlineError"` with a `kind`
 * and the core's message. `instanceof ThreadlineError` matches errors from any build.
 */
export class ThreadlineError extends Error {
  constructor(kind: ErrorKind, message: string);
  readonly name: 'ThreadlineError';
  readonly kind: ErrorKind;
}

/** JSON-like data: what `JSON.stringify` keeps. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Metadata = { [key: string]: Json };
/** Unix time in milliseconds. Defaults to `Date.now`. */
export type Clock = () => number;

// ---- data objects (snake_case, as in the report JSON) ----------------------------------

export interface ContextIds {
  thread_id: string;
  run_id: string;
  request_id: string;
}

export interface IdComponents {
  prefix: string;
  timestamp_ms: number;
  counter: number;
  /** `""` for an id made without a random part. */
  random: string;
  full_id: string;
}

export interface ContextIdParts {
  kind: 'thread' | 'run' | 'request';
  operation: string;
  counter: number;
  random: string;
}

export type RunFormat = 'generator' | 'manager';

export interface RunReading {
  thread_id: string;
  format: RunFormat;
}

export interface SessionIds {
  thread_id: string;
  run_id: string;
  request_id: string;
  created: boolean;
}

export interface Session {
  user_id: string;
  thread_id: string;
  run_id: string;
  request_id: string;
  operation: string;
  created_ms: number;
  last_access_ms: number;
  accesses: number;
}

export interface ContextData {
  user_id: string;
  thread_id: string;
  run_id: string;
  request_id: string;
  websocket_client_id: string | null;
  agent_context: Metadata;
  audit_metadata: Metadata;
  operation_depth: number;
  parent_request_id: string | null;
}

export interface KeyData {
  user_id: string;
  thread_id: string;
  form: 'canonical' | 'legacy';
  run_token: string | null;
  canonical: string;
}

export interface Connection {
  connection_id: string;
  user_id: string;
  connected_ms: number;
  metadata: Metadata;
}

export interface ManagerInfo {
  id: number;
  key: string;
  user_id: string;
  thread_id: string;
  run_id: string;
  created_ms: number;
  last_activity_ms: number;
  active: boolean;
  messages_routed: number;
  connections: Connection[];
}

export interface Created {
  id: number;
  reused: boolean;
  stale_cleaned: number;
}

export interface RegistryStats {
  managers_created: number;
  managers_reused: number;
  managers_cleaned_up: number;
  stale_cleaned: number;
  expired_cleaned: number;
  forced_cleaned: number;
  limit_hits: number;
  isolation_violations: number;
  messages_routed: number;
  events_dropped: number;
  managers_registered: number;
  active_managers: number;
  users: number;
  connections: number;
}

export type CleanupReason = 'explicit' | 'forced' | 'stale' | 'expired' | 'replaced' | 'shutdown';

export type RegistryEvent = {
  manager_id: number | null;
  key: string;
  user_id: string;
  thread_id: string;
  at_ms: number;
} & (
  | { kind: 'created' }
  | { kind: 'reused' }
  | { kind: 'cleaned_up'; reason: CleanupReason }
  | { kind: 'limit_exceeded'; count: number; max: number }
  | { kind: 'connection_added'; connection_id: string }
  | { kind: 'connection_removed'; connection_id: string }
  | { kind: 'deactivated'; connections: number }
);

export interface Snapshot {
  /** Position in the whole history (kept when older snapshots are dropped). */
  index: number;
  timestamp_ms: number;
  operation: string;
  thread_id_user_context: string | null;
  thread_id_manager_context: string | null;
  thread_id_isolation_key: string | null;
  thread_id_cleanup_lookup: string | null;
  manager_instance_id: number | null;
  isolation_key: string | null;
  user_id: string | null;
  websocket_client_id: string | null;
  mismatch: boolean;
  metadata: Metadata;
}

export interface ThreadIdSummary {
  user_context: string | null;
  manager_context: string | null;
  isolation_key: string | null;
  cleanup_lookup: string | null;
}

export interface Violation {
  index: number;
  timestamp_ms: number;
  type: string;
  severity: string;
  operation: string | null;
  snapshot_index: number | null;
  thread_id_summary: ThreadIdSummary | null;
  details: Metadata;
}

export interface Analysis {
  total_snapshots: number;
  retained_snapshots: number;
  total_violations: number;
  unique_thread_ids_found: number;
  /** In first-seen order. */
  thread_ids: string[];
  inconsistent_snapshots: number;
  /** Violations per operation, in first-seen order. */
  operation_violations: { [operation: string]: number };
  /** Consistent snapshots / all snapshots x 100 (100 with no snapshots). */
  consistency_score: number;
  /** Seconds from the tracker's start to the analysis. */
  analysis_duration: number;
  thread_ids_by_user: { [userId: string]: string[] };
  users_with_multiple_thread_ids: string[];
  first_divergence: number | null;
  last_consistent_before_divergence: number | null;
  managers_created: number;
  managers_cleaned_up: number;
  leaked_managers: number;
}

export interface OperationChange {
  operation: string;
  before: number;
  after: number;
}

export interface Comparison {
  score_before: number;
  score_after: number;
  score_delta: number;
  violations_before: number;
  violations_after: number;
  violations_delta: number;
  inconsistent_delta: number;
  unique_thread_ids_delta: number;
  leaked_managers_delta: number;
  changed_operations: OperationChange[];
}

export interface SnapshotOutcome {
  index: number;
  mismatch: boolean;
  /** Indexes of the violations this snapshot recorded. */
  violations: number[];
}

/** Every given condition must hold (the core's `SnapshotFilter`, snake_case). */
export interface SnapshotFilter {
  user_id?: string | null;
  operation?: string | null;
  /** A substring of any of the four thread ids. */
  thread_id?: string | null;
  mismatches_only?: boolean | null;
}

// ---- options (camelCase) ----------------------------------------------------------------

export interface SnapshotInput {
  operation: string;
  userId?: string | null;
  userContextThreadId?: string | null;
  websocketClientId?: string | null;
  managerThreadId?: string | null;
  managerInstanceId?: number | null;
  /** Canonical `user:thread` or the older `user_thread_..._run`; parsed by the core, the thread kept whole. */
  isolationKey?: string | null;
  cleanupLookupThreadId?: string | null;
  metadata?: Metadata | null;
}

export interface TrackerOptions {
  /**
   * Keep only the last `capacity` snapshots and violations (1 to 2^32-1); every count
   * stays exact.
   */
  capacity?: number;
  clock?: Clock;
  /** Tracking start (Unix ms); defaults to the clock's now. */
  startedMs?: number;
}

export interface ReportLimits {
  /** Default 256 MiB. */
  maxBytes?: number;
  /** Default 64. */
  maxDepth?: number;
  clock?: Clock;
}

export interface UserContextFields {
  userId: string;
  threadId: string;
  runId: string;
  /** Default: a UUID v4. */
  requestId?: string | null;
  websocketClientId?: string | null;
  agentContext?: Metadata | null;
  auditMetadata?: Metadata | null;
  operationDepth?: number | null;
  parentRequestId?: string | null;
  /** Allow `test_` ids (test environments). */
  testMode?: boolean | null;
}

export interface WebsocketContextOptions {
  websocketClientId?: string | null;
  /** Default `"websocket_session"`. */
  operation?: string | null;
  testMode?: boolean | null;
}

export interface RegistryOptions {
  maxManagersPerUser?: number;
  proactiveCleanupPercent?: number;
  staleIdleMs?: number;
  staleUnconnectedAgeMs?: number;
  connectionTimeoutMs?: number;
  eventCapacity?: number;
  clock?: Clock;
}

export interface ThreadGuardOptions {
  userId: string;
  /** The conversation's thread id, when already known. */
  threadId?: string | null;
  /** Checks kept by the guard's tracker (default 1000, at most 2^32-1). */
  capacity?: number;
  /** Operation of locally minted thread ids (default `"websocket_session"`). */
  operation?: string | null;
  testMode?: boolean | null;
  /**
   * Time for the guard's tracker and the ids it mints (`connected()`'s `ws_client_...`
   * ids); given, the guard mints with its own generator, else with the shared one.
   */
  clock?: Clock;
}

/** A message to check: an object with an optional `thread_id`, or its JSON text. */
export type GuardMessage = { thread_id?: unknown; [key: string]: unknown } | string;

export type GuardResult =
  | { ok: true; checked: false }
  | { ok: true; checked: true; adopted?: true }
  | { ok: false; checked: true; expected: string | null; got: unknown; reason?: string };

// ---- classes ----------------------------------------------------------------------------

/** Snapshots, violations, analysis, the report text and its JSON. */
export class Tracker {
  constructor(options?: TrackerOptions);
  /** Reads a report written by `toJSON` (by any language's binding). */
  static fromJSON(text: string, limits?: ReportLimits): Tracker;
  /** `fromJSON` from the report's UTF-8 bytes (`await file.arrayBuffer()`): no JS string of a large report. */
  static fromJSONBytes(bytes: Uint8Array | ArrayBuffer, limits?: ReportLimits): Tracker;
  /** The report JSON text, schema `threadline.report/1`. */
  toJSON(): string;
  /** The report text, in the seed suite's layout. */
  reportText(): string;
  analyze(): Analysis;
  takeSnapshot(input: SnapshotInput): SnapshotOutcome;
  /** A cleanup looking for `targetThreadId`, recorded beside the latest manager snapshot (of `userId` when given). */
  simulateCleanupLookup(targetThreadId: string, options?: { userId?: string | null; metadata?: Metadata | null }): SnapshotOutcome;
  /** Returns the violation's index. */
  recordViolation(type: string, severity: string, options?: { operation?: string | null; details?: Metadata | null }): number;
  readonly retainedCount: number;
  readonly totalSnapshots: number;
  readonly totalViolations: number;
  readonly capacity: number | null;
  readonly startedMs: number;
  /**
   * Retained snapshots at positions `start..end` (0 = oldest retained, end exclusive,
   * clamped). Both must be numbers (not NaN).
   */
  snapshotRange(start: number, end: number): Snapshot[];
  violationList(): Violation[];
  /** Positions (0 = oldest retained) of the retained snapshots the filter keeps. */
  filterPositions(filter: SnapshotFilter): Uint32Array;
  free(): void;
  [Symbol.dispose](): void;
}

/** Mints every Netra ID format. */
export class IdGenerator {
  /** `seed` makes the random parts repeatable (tests); otherwise seeded from `crypto.getRandomValues`. */
  constructor(options?: { seed?: number; clock?: Clock });
  /** The generator `UserContext`, `SessionStore` and `ThreadGuard` use unless given another. */
  static shared(): IdGenerator;
  userContextIds(userId: string, operation?: string): ContextIds;
  baseId(prefix?: string, options?: { includeRandom?: boolean; randomLength?: number }): string;
  simpleId(prefix: string): string;
  /** `connectionTimestamp` is Unix seconds. */
  websocketClientId(userId: string, connectionTimestamp?: number | null): string;
  websocketConnectionId(userId: string, connectionTimestamp?: number | null): string;
  sessionId(userId: string, sessionType?: string): string;
  agentExecutionId(agentType: string, userId: string): string;
  messageId(messageType: string, userId: string, threadId?: string | null): string;
  batchIds(prefix: string, count: number, includeRandom?: boolean): string[];
  /** The older `run_{threadId}_{ms % 100000}_{h8}` format. */
  managerRunId(threadId: string): string;
  uuidV4(): string;
  /** A correlated context minted by this generator (Netra's `from_websocket_request`). */
  websocketContext(userId: string, options?: WebsocketContextOptions): UserContext;
  isValidId(id: string, expectedPrefix?: string | null): boolean;
  resetCounter(): void;
  readonly counter: number;
  readonly clockRegressions: number;
  free(): void;
  [Symbol.dispose](): void;
}

/** One user's validated, immutable execution context (Netra's `UserExecutionContext`). */
export class UserContext {
  constructor(fields: UserContextFields);
  /** Correlated ids from the shared generator. */
  static fromWebsocketRequest(userId: string, options?: WebsocketContextOptions): UserContext;
  readonly userId: string;
  readonly threadId: string;
  readonly runId: string;
  readonly requestId: string;
  readonly websocketClientId: string | null;
  readonly parentRequestId: string | null;
  readonly operationDepth: number;
  readonly agentContext: Metadata;
  readonly auditMetadata: Metadata;
  /** `{userId}:{threadId}`. */
  readonly isolationKey: string;
  toJSON(): ContextData;
  free(): void;
  [Symbol.dispose](): void;
}

/**
 * The same thread id for the same conversation on every call. `clock` stamps the store's
 * sessions (their ages and expiry); the ids are minted by a generator, on that
 * generator's clock and random stream: the shared one for `new SessionStore()`, `ids` for
 * `withIds` (a run id derived from a given thread id, and a minted websocket client id,
 * carry the generator's time).
 */
export class SessionStore {
  constructor(options?: { testMode?: boolean; clock?: Clock });
  /** A store minting with `ids` (and reading its clock unless `clock` is given). */
  static withIds(ids: IdGenerator, options?: { testMode?: boolean; clock?: Clock }): SessionStore;
  getOrCreate(userId: string, options?: { threadId?: string | null; runId?: string | null; operation?: string | null }): SessionIds;
  context(
    userId: string,
    options?: { threadId?: string | null; runId?: string | null; operation?: string | null; websocketClientId?: string | null },
  ): UserContext;
  getExisting(userId: string, threadId?: string | null): Session | null;
  /** Drops sessions unused for more than `maxAgeMs` (default 24 h); returns how many. */
  cleanupExpired(maxAgeMs?: number): number;
  invalidateUser(userId: string): number;
  readonly activeCount: number;
  userCount(userId: string): number;
  readonly testMode: boolean;
  free(): void;
  [Symbol.dispose](): void;
}

/** A user id and the whole thread id it is filed under. */
export class IsolationKey {
  constructor(userId: string, threadId: string);
  /** `{user}:{thread}` or the older `{user}_thread_..._{run token}`. */
  static parse(key: string): IsolationKey;
  readonly userId: string;
  readonly threadId: string;
  readonly form: 'canonical' | 'legacy';
  readonly runToken: string | null;
  canonical(): string;
  /** The key in the form it was read in. */
  toString(): string;
  toJSON(): KeyData;
  free(): void;
  [Symbol.dispose](): void;
}

/** The per-user manager limit and cleanup rules (Netra's `WebSocketManagerFactory`). */
export class Registry {
  constructor(options?: RegistryOptions);
  create(context: UserContext): Created;
  get(key: string): ManagerInfo | null;
  manager(id: number): ManagerInfo | null;
  isActive(id: number): boolean;
  cleanup(key: string): boolean;
  cleanupId(id: number): boolean;
  forceCleanupUser(userId: string): number;
  cleanupStaleForUser(userId: string): number;
  expireIdle(): number;
  enforceLimits(userId: string): boolean;
  shutdown(): number;
  addConnection(key: string, connection: { connectionId: string; userId: string; connectedMs?: number; metadata?: Metadata }): void;
  removeConnection(key: string, connectionId: string): boolean;
  deactivate(key: string): number;
  touch(key: string): void;
  sendToUser(key: string, userId: string): string[];
  findByThread(userId: string, threadId: string): ManagerInfo | null;
  findByRun(userId: string, runId: string): ManagerInfo | null;
  userCount(userId: string): number;
  readonly size: number;
  keys(): string[];
  stats(): RegistryStats;
  userCounts(): { [userId: string]: number };
  drainEvents(): RegistryEvent[];
  /** `drainEvents`, each event also observed by `tracker`. */
  drainEventsInto(tracker: Tracker): RegistryEvent[];
  free(): void;
  [Symbol.dispose](): void;
}

/**
 * Holds a conversation's thread id across reconnects (given, else the first `thread_id`
 * a message carries, else minted locally), builds its isolation key, and checks every
 * message's `thread_id` against it. Checks never throw; each is recorded in a bounded
 * tracker.
 */
export class ThreadGuard {
  constructor(options: ThreadGuardOptions);
  readonly threadId: string | null;
  readonly isolationKey: string | null;
  readonly threadSource: 'given' | 'message' | 'minted' | null;
  readonly userId: string;
  ensureThreadId(): string;
  /** A (re)connection opened; returns its client id (the given one, or a new `ws_client_...`). */
  connected(websocketClientId?: string | null): string;
  incoming(message: GuardMessage | unknown): GuardResult;
  outgoing(message: GuardMessage | unknown): GuardResult;
  /** A copy of `message` with `thread_id` set to the held thread id (minted if none yet). */
  stamp<M extends object>(message: M): M & { thread_id: string };
  newConversation(): void;
  readonly checks: number;
  readonly mismatches: number;
  readonly connections: number;
  /** The guard's tracker (shared, not a copy). */
  readonly tracker: Tracker;
  free(): void;
  [Symbol.dispose](): void;
}

// ---- free functions -------------------------------------------------------------------

export function compareAnalyses(before: Analysis, after: Analysis): Comparison;
export function parseId(id: string): IdComponents;
export function parseContextId(id: string): ContextIdParts;
/** `nowMs` defaults to `Date.now()`. */
export function isValidId(id: string, expectedPrefix?: string | null, nowMs?: number | null): boolean;
export function idAgeMs(id: string, nowMs?: number | null): number;
export function runReadings(runId: string): RunReading[];
export function threadIdForRun(runId: string): string | null;
export function areCorrelated(threadId: string, runId: string): boolean;
export function correlation(threadId: string, runId: string): RunFormat | null;
export function version(): string;
