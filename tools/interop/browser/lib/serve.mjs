// A tiny static file server for the browser test: the page (page/) and
// Converse's prebuilt dist/ (from node_modules), on 127.0.0.1 only. The page
// is served from its own port, so it is another origin than switchboard's,
// as in a real deployment: BOSH goes through CORS and the WebSocket carries
// an Origin header switchboard checks.
//
//   node lib/serve.mjs PORT...   serve until killed (to look at the page by hand)
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const PAGE_DIR = join(HERE, '..', 'page');
const DIST_DIR = join(HERE, '..', 'node_modules', 'converse.js', 'dist');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
};

/** The file behind a URL path, or null when it lies outside the two roots. */
function fileFor(pathname) {
  let root = PAGE_DIR;
  let rest = pathname === '/' ? '/index.html' : pathname;
  if (rest.startsWith('/dist/')) {
    root = DIST_DIR;
    rest = rest.slice('/dist'.length);
  }
  const file = normalize(join(root, decodeURIComponent(rest)));
  return file.startsWith(root + sep) ? file : null;
}

/**
 * Listens on 127.0.0.1:`port`; resolves to the server once it listens.
 * `onRequest(method, path, status)` sees every request (the test asserts on them).
 */
export function servePage(port, onRequest = () => {}) {
  const server = createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://127.0.0.1');
    const file = req.method === 'GET' || req.method === 'HEAD' ? fileFor(pathname) : null;
    let status = 404;
    let body = Buffer.from('not found\n');
    let type = 'text/plain';
    if (file) {
      try {
        body = await readFile(file);
        status = 200;
        type = TYPES[extname(file)] ?? 'application/octet-stream';
      } catch {
        // 404 as set above.
      }
    }
    onRequest(req.method, pathname, status);
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': body.length, 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** Closes `server` and every connection it still has (keep-alive ones too). */
export function closeServer(server) {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const ports = process.argv.slice(2).map(Number);
  if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p <= 0)) {
    console.error('usage: node lib/serve.mjs PORT...');
    process.exit(2);
  }
  for (const port of ports) {
    await servePage(port, (method, path, status) => console.log(`:${port} ${method} ${path} ${status}`));
    console.log(`serving http://127.0.0.1:${port}/`);
  }
}
