// Test harness: the release gotrue binary, a plain-SMTP sink, a fake GitHub on loopback
// and nginx in front of a static site. Everything binds 127.0.0.1; every wait is bounded.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = path.resolve(E2E_DIR, '..');

export const JWT_SECRET = 'e2e-jwt-secret-that-is-long-enough-0123456789';
export const OPERATOR_TOKEN = 'e2e-operator-token';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value, at most `timeoutMs`. */
export async function waitFor(what, fn, timeoutMs = 10_000, stepMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(stepMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function tmpDir(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(d, 0o755);
  return d;
}

// ---------------------------------------------------------------- SMTP sink

/** Decodes a MIME body part well enough to find links: quoted-printable and base64. */
function decodeMail(raw) {
  const qp = raw.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
  const out = [qp];
  // base64 parts: the lines after a `Content-Transfer-Encoding: base64` header block.
  for (const part of raw.split(/\r?\n--/)) {
    const sep = part.search(/\r?\n\r?\n/);
    if (sep < 0 || !/content-transfer-encoding:\s*base64/i.test(part.slice(0, sep))) continue;
    out.push(Buffer.from(part.slice(sep).replace(/\s+/g, ''), 'base64').toString('utf8'));
  }
  return out.join('\n');
}

/** A plain SMTP server on loopback that accepts every mail and keeps it. */
export class SmtpSink {
  constructor() {
    this.mails = [];
    this.sockets = new Set();
  }

  async start() {
    this.server = net.createServer((sock) => this._session(sock));
    this.port = await new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve(this.server.address().port)));
    return this;
  }

  _session(sock) {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => {});
    sock.setTimeout(30_000, () => sock.destroy());
    let buf = '';
    let inData = false;
    let envelope = { from: '', to: [] };
    let data = '';
    const reply = (s) => sock.write(`${s}\r\n`);
    reply('220 e2e-sink ESMTP');
    sock.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          const atStart = data === '' && buf.startsWith('.\r\n');
          if (end < 0 && !atStart) {
            data += buf.slice(0, Math.max(0, buf.length - 4));
            buf = buf.slice(Math.max(0, buf.length - 4));
            return;
          }
          data += atStart ? '' : buf.slice(0, end);
          buf = buf.slice(atStart ? 3 : end + 5);
          inData = false;
          const body = data.replace(/\r\n\.\./g, '\r\n.');
          this.mails.push({ from: envelope.from, to: envelope.to, raw: body, text: decodeMail(body) });
          envelope = { from: '', to: [] };
          data = '';
          reply('250 2.0.0 queued');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') {
          reply('250-e2e-sink');
          reply('250-8BITMIME');
          reply('250 SMTPUTF8');
        } else if (verb === 'HELO') reply('250 e2e-sink');
        else if (verb === 'MAIL') {
          envelope.from = (line.match(/<([^>]*)>/) || [])[1] || '';
          reply('250 2.1.0 ok');
        } else if (verb === 'RCPT') {
          envelope.to.push(((line.match(/<([^>]*)>/) || [])[1] || '').toLowerCase());
          reply('250 2.1.5 ok');
        } else if (verb === 'DATA') {
          inData = true;
          data = '';
          reply('354 end with .');
        } else if (verb === 'RSET') {
          envelope = { from: '', to: [] };
          reply('250 ok');
        } else if (verb === 'NOOP') reply('250 ok');
        else if (verb === 'QUIT') {
          reply('221 bye');
          sock.end();
          return;
        } else reply('502 not implemented');
      }
    });
  }

  /** The newest mail to `to` whose text carries `<kind>_token=...`, waiting for it. */
  async token(to, kind, { after = 0 } = {}) {
    const re = new RegExp(`${kind}_token=([A-Za-z0-9_\\-]+)`);
    const mail = await waitFor(`a ${kind} mail to ${to}`, () =>
      this.mails.slice(after).reverse().find((m) => m.to.includes(to.toLowerCase()) && re.test(m.text)),
    );
    const link = (mail.text.match(new RegExp(`https?://[^\\s"'<>]*${kind}_token=[A-Za-z0-9_\\-]+`)) || [])[0];
    return { token: mail.text.match(re)[1], link, mail };
  }

  async stop() {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(() => r()));
  }
}

// ---------------------------------------------------------------- fake GitHub

/** A fake GitHub (Enterprise-style base URL) answering the OAuth dance on loopback. */
export class FakeGitHub {
  constructor({ clientId = 'e2e-client', clientSecret = 'e2e-secret' } = {}) {
    this.clientId = clientId;
    this.clientSecret = clientSecret;
    this.account = { id: 4242, login: 'octo', name: 'Octo Cat', email: 'octo@example.com' };
    this.codes = new Map();
    this.hits = { authorize: 0, token: 0, user: 0 };
  }

  async start() {
    this.server = http.createServer((req, res) => this._handle(req, res).catch(() => res.destroy()));
    this.port = await new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve(this.server.address().port)));
    this.url = `http://127.0.0.1:${this.port}`;
    return this;
  }

  async _handle(req, res) {
    const u = new URL(req.url, this.url);
    const json = (status, v) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    if (req.method === 'GET' && u.pathname === '/login/oauth/authorize') {
      this.hits.authorize++;
      const back = new URL(u.searchParams.get('redirect_uri'));
      const code = `code-${Math.random().toString(36).slice(2)}`;
      this.codes.set(code, u.searchParams.get('redirect_uri'));
      back.searchParams.set('code', code);
      back.searchParams.set('state', u.searchParams.get('state') || '');
      res.writeHead(302, { Location: back.toString() });
      res.end();
      return;
    }
    if (req.method === 'POST' && u.pathname === '/login/oauth/access_token') {
      this.hits.token++;
      let body = '';
      for await (const c of req) body += c;
      const form = new URLSearchParams(body);
      const basic = (req.headers.authorization || '').replace(/^Basic /, '');
      const [id, secret] = basic ? Buffer.from(basic, 'base64').toString().split(':') : [form.get('client_id'), form.get('client_secret')];
      if (id !== this.clientId || secret !== this.clientSecret) return json(401, { error: 'invalid_client' });
      if (!this.codes.delete(form.get('code'))) return json(400, { error: 'invalid_grant' });
      return json(200, { access_token: 'gh-access', token_type: 'bearer', scope: 'user:email' });
    }
    const authed = req.headers.authorization === 'Bearer gh-access' || req.headers.authorization === 'token gh-access';
    if (u.pathname === '/api/v3/user') {
      this.hits.user++;
      if (!authed) return json(401, { message: 'Bad credentials' });
      const a = this.account;
      return json(200, { id: a.id, login: a.login, name: a.name, avatar_url: `${this.url}/avatar.png` });
    }
    if (u.pathname === '/api/v3/user/emails') {
      if (!authed) return json(401, { message: 'Bad credentials' });
      return json(200, [{ email: this.account.email, verified: true, primary: true }]);
    }
    json(404, { message: 'Not Found' });
  }

  async stop() {
    this.server.closeAllConnections?.();
    await new Promise((r) => this.server.close(() => r()));
  }
}

// ---------------------------------------------------------------- gotrue

export function gotrueBinary() {
  const target = process.env.CARGO_TARGET_DIR || path.join(REPO_DIR, 'target');
  const bin = process.env.GOTRUE_BIN || path.join(target, 'release', 'gotrue');
  if (!fs.existsSync(bin)) throw new Error(`no gotrue binary at ${bin}: run cargo build --release (e2e/run.sh does)`);
  return bin;
}

/** Starts the release binary on a fresh SQLite database; resolves once /health answers. */
export async function startGotrue({ smtpPort, siteUrl, env = {} }) {
  const port = await freePort();
  const dir = tmpDir('gotrue-e2e-');
  const logPath = path.join(dir, 'gotrue.log');
  const log = fs.openSync(logPath, 'a');
  const fullEnv = {
    PATH: process.env.PATH,
    GOTRUE_API_HOST: '127.0.0.1',
    PORT: String(port),
    GOTRUE_API_PORT: String(port),
    GOTRUE_DB_DATABASE_URL: path.join(dir, 'gotrue.db'),
    GOTRUE_SITE_URL: siteUrl,
    GOTRUE_JWT_SECRET: JWT_SECRET,
    GOTRUE_OPERATOR_TOKEN: OPERATOR_TOKEN,
    GOTRUE_SMTP_HOST: '127.0.0.1',
    GOTRUE_SMTP_PORT: String(smtpPort),
    GOTRUE_SMTP_ADMIN_EMAIL: 'E2E Site <noreply@example.com>',
    GOTRUE_SMTP_MAX_FREQUENCY: '1s',
    GOTRUE_PASSWORD_ARGON2_MEMORY_KIB: '1024',
    GOTRUE_PASSWORD_ARGON2_ITERATIONS: '1',
    GOTRUE_LOG_LEVEL: 'info',
    ...env,
  };
  const child = spawn(gotrueBinary(), ['serve'], { env: fullEnv, stdio: ['ignore', log, log] });
  const url = `http://127.0.0.1:${port}`;
  let exited = null;
  child.on('exit', (code) => {
    exited = code;
  });
  try {
    await waitFor('gotrue /health', async () => {
      if (exited !== null) throw new Error(`gotrue exited with ${exited}: ${fs.readFileSync(logPath, 'utf8').slice(-2000)}`);
      const r = await fetch(`${url}/health`);
      return r.ok;
    }, 20_000, 100);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    url,
    port,
    dir,
    logPath,
    async stop() {
      if (exited !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, sleep(5000)]);
      if (exited === null) child.kill('SIGKILL');
    },
  };
}

/** Admin API calls with the operator token (no gotrue-js involved). */
export async function operator(gotrueUrl, method, p, body) {
  const r = await fetch(`${gotrueUrl}${p}`, {
    method,
    headers: { Authorization: `Bearer ${OPERATOR_TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text, headers: r.headers };
}

// ---------------------------------------------------------------- nginx

export function nginxBinary() {
  for (const p of [process.env.NGINX_BIN, '/usr/sbin/nginx', '/usr/bin/nginx']) if (p && fs.existsSync(p)) return p;
  throw new Error('nginx is not installed (apt-get install nginx; e2e/run.sh does)');
}

/**
 * The deployment the widget expects: the site and the API on one origin, the API under
 * /.netlify/identity/ with the prefix stripped. Mirrors the README's recipe.
 */
export async function startNginx({ siteRoot, gotruePort, port }) {
  port ??= await freePort();
  const dir = tmpDir('nginx-e2e-');
  const conf = `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  include /etc/nginx/mime.types;
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    server_name localhost;
    root ${siteRoot};
    location / { try_files $uri $uri/ /index.html; }
    location /.netlify/identity/ {
      proxy_pass http://127.0.0.1:${gotruePort}/;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host:$server_port;
      proxy_set_header X-Forwarded-Prefix /.netlify/identity;
      proxy_redirect off;
    }
  }
}
`;
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf);
  const log = fs.openSync(path.join(dir, 'stderr.log'), 'a');
  const child = spawn(nginxBinary(), ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', log, log] });
  let exited = null;
  child.on('exit', (code) => {
    exited = code;
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('nginx', async () => {
    if (exited !== null) throw new Error(`nginx exited with ${exited}: ${fs.readFileSync(path.join(dir, 'stderr.log'), 'utf8')}`);
    return (await fetch(`${url}/.netlify/identity/health`)).ok;
  }, 10_000, 100);
  return {
    url,
    port,
    dir,
    async stop() {
      if (exited !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGQUIT');
      await Promise.race([gone, sleep(5000)]);
      if (exited === null) child.kill('SIGKILL');
    },
  };
}

/** A static file server for the cross-origin check (a site on another port). */
export async function startStatic(root, port = 0) {
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const p = path.join(root, path.normalize(u.pathname === '/' ? '/index.html' : u.pathname));
    if (!p.startsWith(root) || !fs.existsSync(p) || fs.statSync(p).isDirectory()) {
      res.writeHead(404);
      res.end();
      return;
    }
    const type = p.endsWith('.html') ? 'text/html' : p.endsWith('.js') ? 'application/javascript' : 'application/octet-stream';
    res.writeHead(200, { 'Content-Type': type });
    fs.createReadStream(p).pipe(res);
  });
  const bound = await new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server.address().port)));
  return {
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    async stop() {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(() => r()));
    },
  };
}
