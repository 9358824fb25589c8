// The analysis object from the parts `Tracker.analyze` hands over (bindings/wasm/src/
// tracker.rs): its fields as JSON with the three lists empty, and the lists' strings
// written one after another into one text. A JSON text of the whole analysis (tens of
// thousands of ids) costs more to write in the wasm and to parse here than slicing one
// text. A tracker's thread ids and users only grow, so each tracker keeps the strings
// its earlier analyses made (`strings`) and is sent only the new ones: a user's thread
// ids are the same JS strings as those in `thread_ids`, and a user seen before is a key
// JS has already interned. Same fields, order and values as `JSON.parse` of the core's
// analysis JSON; every array and object returned is new.

/** The strings one tracker's analyses share: thread ids and users, in first-seen order. */
export function newAnalysisStrings() {
  return { threads: [], users: [] };
}

//   strings  this tracker's `newAnalysisStrings()`, from earlier calls
//   head     the analysis as JSON, lists empty
//   text     the new thread ids, then the new users, one after another
//   lengths  each of those strings' length in UTF-16 units, in order
//   shape    [new thread ids, new users, users, then for each user its thread count and
//            its threads' positions among the thread ids, users with multiple thread
//            ids, then their positions among the users]
export function assembleAnalysis(strings, head, text, lengths, shape) {
  const analysis = JSON.parse(head);
  const { threads, users } = strings;
  let at = 0;
  let s = 0;
  const next = () => {
    const end = at + lengths[s++];
    const part = text.substring(at, end);
    at = end;
    return part;
  };
  const newThreads = shape[0];
  const newUsers = shape[1];
  const userCount = shape[2];
  let k = 3;
  for (let i = 0; i < newThreads; i++) threads.push(next());
  for (let i = 0; i < newUsers; i++) users.push(next());
  const byUser = {};
  for (let u = 0; u < userCount; u++) {
    const user = users[u];
    const list = new Array(shape[k++]);
    for (let i = 0; i < list.length; i++) list[i] = threads[shape[k++]];
    if (user === '__proto__') {
      // As JSON.parse makes it: an own property, not the object's prototype.
      Object.defineProperty(byUser, user, { value: list, enumerable: true, writable: true, configurable: true });
    } else {
      byUser[user] = list;
    }
  }
  const multiple = new Array(shape[k++]);
  for (let i = 0; i < multiple.length; i++) multiple[i] = users[shape[k++]];
  // Assigned in place, so the fields keep the core's order.
  analysis.thread_ids = threads.slice();
  analysis.thread_ids_by_user = byUser;
  analysis.users_with_multiple_thread_ids = multiple;
  return analysis;
}
