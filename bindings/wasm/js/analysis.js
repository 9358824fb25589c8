// The analysis object from the parts `Tracker.analyze` hands over (bindings/wasm/src/
// tracker.rs): its fields as JSON with the three lists empty, and the lists' strings
// written one after another into one text. A JSON text of the whole analysis (tens of
// thousands of ids) costs more to write in the wasm and to parse here than slicing one
// text, and a user's thread ids are the same JS strings as those in `thread_ids`. Same
// fields, order and values as `JSON.parse` of the core's analysis JSON.
//
//   head     the analysis as JSON, lists empty
//   text     the thread ids, then the users, one after another
//   lengths  each of those strings' length in UTF-16 units, in order
//   shape    [thread ids, users, then for each user its thread count and its threads'
//            positions among the thread ids, users with multiple thread ids, then
//            their positions among the users]
export function assembleAnalysis(head, text, lengths, shape) {
  const analysis = JSON.parse(head);
  let at = 0;
  let s = 0;
  let k = 0;
  const next = () => {
    const end = at + lengths[s++];
    const part = text.substring(at, end);
    at = end;
    return part;
  };
  const threadIds = new Array(shape[k++]);
  for (let i = 0; i < threadIds.length; i++) threadIds[i] = next();
  const users = new Array(shape[k++]);
  const byUser = {};
  for (let u = 0; u < users.length; u++) {
    const user = next();
    const threads = new Array(shape[k++]);
    for (let i = 0; i < threads.length; i++) threads[i] = threadIds[shape[k++]];
    users[u] = user;
    if (user === '__proto__') {
      // As JSON.parse makes it: an own property, not the object's prototype.
      Object.defineProperty(byUser, user, { value: threads, enumerable: true, writable: true, configurable: true });
    } else {
      byUser[user] = threads;
    }
  }
  const multiple = new Array(shape[k++]);
  for (let i = 0; i < multiple.length; i++) multiple[i] = users[shape[k++]];
  // Assigned in place, so the fields keep the core's order.
  analysis.thread_ids = threadIds;
  analysis.thread_ids_by_user = byUser;
  analysis.users_with_multiple_thread_ids = multiple;
  return analysis;
}
