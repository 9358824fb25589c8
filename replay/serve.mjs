// Static server for the replay page: serves replay/, pkg/web/ and threadline-reports/
// (plus any extra folders given with --mount) on 127.0.0.1 only. No other network.
//
//   node replay/serve.mjs [--port 8765] [--root DIR] [--mount /prefix/=DIR ...]
//
// Also importable: `startServer({ root, port, mounts })` resolves to { server, url }.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HOST = '127.0.0.1';
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
  '.d.ts': 'text/plain; charset=utf-8',
};

function typeOf(file) {
  return TYPES[path.extname(file).toLowerCase()] || 'application/octet-stream';
}

/** Resolves `rel` inside `dir`, or null when it would step outside it. */
function inside(dir, rel) {
  const full = path.resolve(dir, '.' + path.sep + rel);
  const base = path.resolve(dir);
  return full === base || full.startsWith(base + path.sep) ? full : null;
}

export function startServer({ root, port = 8765, mounts = {} } = {}) {
  root = path.resolve(root || path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
  // Longest prefix first. Values are folders on disk.
  const table = {
    '/replay/': path.join(root, 'replay'),
    '/pkg/web/': path.join(root, 'pkg', 'web'),
    '/threadline-reports/': path.join(root, 'threadline-reports'),
    ...mounts,
  };
  const prefixes = Object.keys(table).sort((a, b) => b.length - a.length);

  const server = http.createServer((req, res) => {
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      res.writeHead(400).end('bad request');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (pathname === '/' || pathname === '/replay') {
      res.writeHead(302, { Location: '/replay/' }).end();
      return;
    }
    const prefix = prefixes.find((p) => pathname.startsWith(p) || pathname + '/' === p);
    if (!prefix) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    const rel = pathname.slice(prefix.length);
    let file = inside(table[prefix], rel);
    if (!file) {
      res.writeHead(403).end('forbidden');
      return;
    }
    fs.stat(file, (err, st) => {
      if (!err && st.isDirectory()) {
        const index = path.join(file, 'index.html');
        if (fs.existsSync(index)) {
          if (!pathname.endsWith('/')) {
            res.writeHead(302, { Location: pathname + '/' }).end();
            return;
          }
          file = index;
          st = fs.statSync(index);
        } else {
          // A JSON listing of the reports in the folder, for the page's report menu.
          let names = [];
          try {
            names = fs
              .readdirSync(file)
              .filter((n) => n.endsWith('.json'))
              .sort();
          } catch {}
          const body = JSON.stringify({ files: names });
          res.writeHead(200, {
            'Content-Type': TYPES['.json'],
            'Cache-Control': 'no-store',
          });
          res.end(req.method === 'HEAD' ? undefined : body);
          return;
        }
      }
      if (err && rel === '' && prefix === '/threadline-reports/') {
        // No reports yet: an empty listing rather than an error.
        res.writeHead(200, { 'Content-Type': TYPES['.json'], 'Cache-Control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : '{"files":[]}');
        return;
      }
      if (err || !st.isFile()) {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: ' + pathname);
        return;
      }
      res.writeHead(200, {
        'Content-Type': typeOf(file),
        'Content-Length': st.size,
        'Cache-Control': 'no-store',
      });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      fs.createReadStream(file, { highWaterMark: 1 << 20 }).pipe(res);
    });
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => {
      const { port: p } = server.address();
      resolve({ server, url: `http://${HOST}:${p}/replay/` });
    });
  });
}

function parseArgs(argv) {
  const out = { mounts: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') out.port = Number(argv[++i]);
    else if (a === '--root') out.root = argv[++i];
    else if (a === '--mount') {
      const [prefix, dir] = argv[++i].split('=');
      out.mounts[prefix.endsWith('/') ? prefix : prefix + '/'] = path.resolve(dir);
    } else if (a === '--help' || a === '-h') {
      console.log('usage: node replay/serve.mjs [--port N] [--root DIR] [--mount /prefix/=DIR]');
      process.exit(0);
    } else {
      console.error(`unknown argument: ${a}`);
      process.exit(2);
    }
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] || '').href) {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.port === undefined) opts.port = Number(process.env.REPLAY_PORT || 8765);
  startServer(opts).then(
    ({ url }) => {
      console.log(`threadline replay: ${url}`);
      console.log(`reports:           ${url.replace(/replay\/$/, 'threadline-reports/')}`);
      console.log(`open one with:     ${url}?report=../threadline-reports/<name>.json`);
      console.log('(Ctrl-C to stop)');
    },
    (e) => {
      console.error(`threadline replay: cannot listen on ${HOST}:${opts.port}: ${e.message}`);
      process.exit(1);
    },
  );
}
