// The package as shipped: entry points, exports map, types, the web build, the .wasm.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { tl, pkgDir } from './helpers.mjs';

const require = createRequire(import.meta.url);
const pkgJson = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
const wasmBytes = readFileSync(join(pkgDir, 'web', 'threadline_bg.wasm'));

// The limits: at most 300 KB and 120 KB gzipped, read as decimal kilobytes (the
// stricter reading), gzip at zlib level 9 (Node's zlib). See pkg/README.md, "Size".
const MAX_WASM_BYTES = 300_000;
const MAX_WASM_GZIP_BYTES = 120_000;

/** Public names a generated build exports (wasm-bindgen's internals start with `__`). */
function publicNames(mod) {
  return Object.keys(mod)
    .filter((n) => !n.startsWith('__') && n !== 'default' && n !== 'initSync')
    .sort();
}

const nodeBuild = require(join(pkgDir, 'node', 'threadline.js'));
const API = publicNames(nodeBuild);

test('the Node build exports the whole API', () => {
  for (const name of [
    'Tracker',
    'ThreadGuard',
    'IdGenerator',
    'UserContext',
    'SessionStore',
    'IsolationKey',
    'Registry',
    'compareAnalyses',
    'parseId',
    'isValidId',
    'runReadings',
    'threadIdForRun',
    'areCorrelated',
  ]) {
    assert.ok(API.includes(name), `${name} missing from ${API}`);
  }
});

test('index.mjs, index.cjs and browser.mjs export the same names, plus ThreadlineError and init', async () => {
  const esm = publicNames(tl);
  const cjs = publicNames(require(join(pkgDir, 'index.cjs')));
  const web = await import(join(pkgDir, 'web', 'threadline.js'));
  const browser = await import(join(pkgDir, 'browser.mjs'));
  const withExtras = [...API, 'ThreadlineError', 'init'].sort();
  assert.deepEqual(esm, [...API, 'ThreadlineError'].sort());
  assert.deepEqual(cjs, withExtras);
  assert.deepEqual(publicNames(web), API, 'the web and Node builds export the same API');
  assert.deepEqual(publicNames(browser), [...API, 'ThreadlineError'].sort());
  assert.equal(typeof tl.default, 'function');
  assert.equal(typeof browser.default, 'function');
  assert.equal(typeof browser.initSync, 'function');
  // One module instance behind index.mjs and the Node build.
  assert.equal(tl.Tracker, nodeBuild.Tracker);
});

test('index.d.ts declares every export', () => {
  const dts = readFileSync(join(pkgDir, 'index.d.ts'), 'utf8');
  const declared = new Set(
    [...dts.matchAll(/^export (?:declare )?(?:class|function|const) (\w+)/gm)].map((m) => m[1]),
  );
  for (const name of [...API, 'ThreadlineError', 'initSync']) assert.ok(declared.has(name), `index.d.ts lacks ${name}`);
  assert.match(dts, /^export default function init/m);
  // Every method of every class is declared (names from the built prototypes).
  for (const name of API) {
    const cls = nodeBuild[name];
    if (typeof cls !== 'function' || !cls.prototype || cls.prototype.constructor !== cls || !/^[A-Z]/.test(name)) continue;
    const body = dts.slice(dts.indexOf(`export class ${name} `));
    const block = body.slice(0, body.indexOf('\n}\n'));
    const members = [
      ...Object.getOwnPropertyNames(cls.prototype),
      ...Object.getOwnPropertyNames(cls).filter((n) => !['length', 'name', 'prototype'].includes(n)),
    ].filter((n) => n !== 'constructor' && !n.startsWith('__'));
    for (const m of members) {
      assert.match(block, new RegExp(`\\b${m}\\b`), `index.d.ts: ${name}.${m} is not declared`);
    }
  }
});

test('the exports map sends Node to the Node build and browsers to the web build', () => {
  const e = pkgJson.exports['.'];
  assert.equal(e.types, './index.d.ts');
  assert.equal(e.node.import, './index.mjs');
  assert.equal(e.node.require, './index.cjs');
  assert.equal(e.browser, './browser.mjs');
  assert.equal(e.default, './browser.mjs');
  assert.equal(Object.keys(e)[0], 'types', 'types first');
  assert.ok(Object.keys(e).indexOf('node') < Object.keys(e).indexOf('browser'));
  for (const f of pkgJson.files) {
    // A folder entry (the JS snippets the glue imports) must hold them.
    if (f.endsWith('/')) {
      const names = readdirSync(join(pkgDir, f), { recursive: true });
      assert.ok(names.some((n) => n.endsWith('.js')), `${f} holds no .js file`);
    } else {
      readFileSync(join(pkgDir, f));
    }
  }
});

test('installed with npm, the package works through import and require', () => {
  const dir = mkdtempSync(join(tmpdir(), 'threadline-install-'));
  try {
    writeFileSync(join(dir, 'package.json'), '{ "name": "scratch", "private": true }');
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', '--install-links', pkgDir], {
      cwd: dir,
      stdio: 'pipe',
    });
    const script = `
      import init, { Tracker, ThreadGuard, ThreadlineError } from 'threadline';
      import { createRequire } from 'node:module';
      await init();
      const t = new Tracker();
      t.takeSnapshot({ operation: 'op', userContextThreadId: 'thread_a', managerThreadId: 'thread_b' });
      const cjs = createRequire(import.meta.url)('threadline');
      let kind = null;
      try { new cjs.ThreadGuard({ userId: 'null' }); } catch (e) { kind = e instanceof ThreadlineError && e.kind; }
      console.log(JSON.stringify({ mismatch: t.analyze().inconsistent_snapshots, kind, same: cjs.version() }));
    `;
    writeFileSync(join(dir, 'check.mjs'), script);
    const out = JSON.parse(execFileSync(process.execPath, ['check.mjs'], { cwd: dir, encoding: 'utf8' }));
    assert.deepEqual(out, { mismatch: 1, kind: 'context.placeholder', same: tl.version() });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the web build runs after initSync', async () => {
  const web = await import(join(pkgDir, 'web', 'threadline.js'));
  web.initSync({ module: wasmBytes });
  const t = new web.Tracker({ clock: () => 1000 });
  t.takeSnapshot({ operation: 'op', isolationKey: 'u1:thread_a', managerThreadId: 'thread_a' });
  assert.equal(t.analyze().consistency_score, 100);
  let err;
  try {
    web.parseId('nope');
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof tl.ThreadlineError, 'errors of the web build are ThreadlineErrors too');
  assert.equal(err.kind, 'id.unparsable');
});

test('the .wasm imports nothing from env (both builds)', () => {
  for (const dir of ['web', 'node']) {
    const m = new WebAssembly.Module(readFileSync(join(pkgDir, dir, 'threadline_bg.wasm')));
    const imports = WebAssembly.Module.imports(m);
    const env = imports.filter((i) => i.module === 'env').map((i) => i.name);
    assert.deepEqual(env, [], `${dir}: env imports`);
    // wasm-bindgen's own import module, and the JS it copies from bindings/wasm/js/.
    const modules = [...new Set(imports.map((i) => i.module))];
    const own = modules.filter((m) => !m.startsWith('./snippets/threadline-wasm-'));
    assert.equal(own.length, 1, `${dir}: import modules ${modules.join(', ')}`);
    assert.ok(imports.length > 0);
  }
});

test(`each .wasm is at most ${MAX_WASM_BYTES} bytes and ${MAX_WASM_GZIP_BYTES} gzipped`, () => {
  for (const build of ['web', 'node']) {
    const bytes = readFileSync(join(pkgDir, build, 'threadline_bg.wasm'));
    const gz = gzipSync(bytes, { level: 9 }).length;
    console.log(`# ${build}/threadline_bg.wasm: ${bytes.length} bytes, ${gz} gzipped`);
    assert.ok(bytes.length <= MAX_WASM_BYTES, `${build}: ${bytes.length} bytes`);
    assert.ok(gz <= MAX_WASM_GZIP_BYTES, `${build}: ${gz} bytes gzipped`);
  }
});

test('examples/browser-client.html uses only what the web build exports', async () => {
  const html = readFileSync(join(pkgDir, '..', 'examples', 'browser-client.html'), 'utf8');
  const m = /import init, \{ ([\w, ]+) \} from '\.\.\/pkg\/web\/threadline\.js'/.exec(html);
  assert.ok(m, 'imports the web build');
  const web = await import(join(pkgDir, 'web', 'threadline.js'));
  for (const name of m[1].split(',').map((x) => x.trim())) assert.equal(typeof web[name], 'function', name);
  const proto = Object.getOwnPropertyNames(web.ThreadGuard.prototype);
  for (const used of new Set([...html.matchAll(/guard\??\.(\w+)/g)].map((x) => x[1]))) {
    assert.ok(proto.includes(used), `ThreadGuard has no ${used}`);
  }
});
