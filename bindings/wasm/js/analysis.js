// The analysis object from the parts `Tracker.analyze` hands over (bindings/wasm/src/
// tracker.rs): its fields as JSON with the three lists empty, and the lists' strings,
// the thread ids in one text and the users in another, one after another. A JSON text of the whole analysis (tens of
// thousands of ids) costs more to write in the wasm and to parse here than slicing one
// text. A tracker's thread ids and users only grow, so each tracker keeps the strings
// its earlier analyses made (`strings`) and is sent only the new ones: a user's thread
// ids are the same JS strings as those in `thread_ids`, and a user seen before is a key
// JS has already interned. Same fields, order and values as `JSON.parse` of the core's
// analysis JSON; every array and object returned is new.

/** Where in `text` the `bytes` UTF-8 bytes that start at unit `at` end, in UTF-16 units. */
function utf16End(text, at, bytes) {
  while (bytes > 0) {
    const unit = text.charCodeAt(at);
    // A surrogate pair (a character past U+FFFF) is two units and four bytes.
    const size = unit < 0x80 ? 1 : unit < 0x800 ? 2 : unit >= 0xd800 && unit < 0xdc00 ? 4 : 3;
    at += size === 4 ? 2 : 1;
    bytes -= size;
  }
  return at;
}

/** The strings one tracker's analyses share: thread ids and users, in first-seen order. */
export function newAnalysisStrings() {
  return { threads: [], users: [] };
}

//   strings  this tracker's `newAnalysisStrings()`, from earlier calls
//   head     the analysis as JSON, lists empty
//   threadText  the new thread ids, one after another
//   userText    the new users, one after another
//   lengths     each new thread id's length in UTF-8 bytes, then each new user's
//   shape    [new thread ids, new users, users, then for each user its thread count and
//            its threads' positions among the thread ids, users with multiple thread
//            ids, then their positions among the users]
export function assembleAnalysis(strings, head, threadText, userText, lengths, shape) {
  const analysis = JSON.parse(head);
  const { threads, users } = strings;
  const newThreads = shape[0];
  const newUsers = shape[1];
  const userCount = shape[2];
  let k = 3;
  let s = 0;
  const slice = (text, count, into) => {
    let bytes = 0;
    for (let i = 0; i < count; i++) bytes += lengths[s + i];
    // UTF-8 takes more bytes than UTF-16 takes units for every character past ASCII, so
    // equal sizes mean ASCII text, where a byte length is a length in units.
    const ascii = bytes === text.length;
    let at = 0;
    for (let i = 0; i < count; i++) {
      const end = ascii ? at + lengths[s++] : utf16End(text, at, lengths[s++]);
      into.push(text.substring(at, end));
      at = end;
    }
  };
  slice(threadText, newThreads, threads);
  slice(userText, newUsers, users);
  // Filled with no prototype, so every user is set as an own property, as JSON.parse
  // makes it: with Object.prototype behind it, an assignment to a name it has would set
  // the object's prototype (`__proto__`), call a setter, or, where Object.prototype is
  // frozen (hardened JS), fail. It gets its prototype once, at the end.
  const byUser = Object.create(null);
  for (let u = 0; u < userCount; u++) {
    const user = users[u];
    const list = new Array(shape[k++]);
    for (let i = 0; i < list.length; i++) list[i] = threads[shape[k++]];
    byUser[user] = list;
  }
  const multiple = new Array(shape[k++]);
  for (let i = 0; i < multiple.length; i++) multiple[i] = users[shape[k++]];
  // Assigned in place, so the fields keep the core's order.
  analysis.thread_ids = threads.slice();
  analysis.thread_ids_by_user = Object.setPrototypeOf(byUser, Object.prototype);
  analysis.users_with_multiple_thread_ids = multiple;
  return analysis;
}
