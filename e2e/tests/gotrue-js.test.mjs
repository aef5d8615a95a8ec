// gotrue-js (1.0.x and 0.9.x) against the release binary, through every call the client makes.
// Node stands in for the browser: global fetch (with a cookie jar, as a browser sending
// credentials would), `window.atob` (0.9 decodes the JWT with it) and an in-memory
// localStorage (both versions save the remembered session there).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';

import { FakeGitHub, operator, SmtpSink, startGotrue, waitFor } from '../lib/harness.mjs';

// ---- browser stand-ins -------------------------------------------------------------------

class MemoryStorage {
  #m = new Map();
  getItem(k) {
    return this.#m.has(k) ? this.#m.get(k) : null;
  }
  setItem(k, v) {
    this.#m.set(k, String(v));
  }
  removeItem(k) {
    this.#m.delete(k);
  }
  clear() {
    this.#m.clear();
  }
}
globalThis.window = globalThis;
globalThis.localStorage = new MemoryStorage();
globalThis.window.addEventListener ??= () => {};

/** Every Set-Cookie the server answered, and a per-origin jar sent back like a browser. */
const setCookies = [];
const jar = new Map();
const realFetch = globalThis.fetch;
const sentHeaders = [];
globalThis.fetch = async (url, init = {}) => {
  const u = new URL(url);
  const headers = new Headers(init.headers || {});
  sentHeaders.push({ url: u.pathname, method: init.method || 'GET', headers: Object.fromEntries(headers), body: init.body });
  const cookies = jar.get(u.origin);
  if (cookies && cookies.size) headers.set('Cookie', [...cookies].map(([k, v]) => `${k}=${v}`).join('; '));
  const r = await realFetch(url, { ...init, headers });
  for (const c of r.headers.getSetCookie()) {
    setCookies.push(c);
    const [pair, ...attrs] = c.split(';');
    const [k, v] = pair.split('=');
    const m = jar.get(u.origin) || new Map();
    if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || v === '') m.delete(k.trim());
    else m.set(k.trim(), v);
    jar.set(u.origin, m);
  }
  return r;
};

const require = createRequire(import.meta.url);
const clients = {
  '1.0': (await import('gotrue-js')).default,
  '0.9': require('gotrue-js-09').default,
};

// ---- the stack ---------------------------------------------------------------------------

const SITE = 'http://127.0.0.1:9';
let smtp;
let gotrue;
let github;

before(async () => {
  smtp = await new SmtpSink().start();
  github = await new FakeGitHub().start();
  gotrue = await startGotrue({
    smtpPort: smtp.port,
    siteUrl: SITE,
    env: {
      GOTRUE_EXTERNAL_GITHUB_ENABLED: 'true',
      GOTRUE_EXTERNAL_GITHUB_CLIENT_ID: github.clientId,
      GOTRUE_EXTERNAL_GITHUB_SECRET: github.clientSecret,
      GOTRUE_EXTERNAL_GITHUB_URL: github.url,
      GOTRUE_EXTERNAL_GITHUB_REDIRECT_URI: 'http://127.0.0.1:9/callback',
    },
  });
});

after(async () => {
  await gotrue?.stop();
  await github?.stop();
  await smtp?.stop();
});

const expectError = async (p, status, message) => {
  await assert.rejects(p, (e) => {
    assert.equal(e.status, status, `status of ${e.message}`);
    if (message) assert.match(e.message, message);
    return true;
  });
};

for (const [version, GoTrue] of Object.entries(clients)) {
  describe(`gotrue-js ${version}`, () => {
    const tag = version.replace('.', '');
    const email = (name) => `${name}-${tag}@example.com`;
    let auth;
    before(() => {
      localStorage.clear();
      auth = new GoTrue({ APIUrl: gotrue.url, setCookie: false });
    });

    test('settings', async () => {
      const s = await auth.settings();
      assert.equal(s.autoconfirm, false);
      assert.equal(s.disable_signup, false);
      assert.equal(s.external.email, true);
      assert.equal(s.external.github, true);
      assert.equal(s.external.google, false);
      if (version === '1.0') {
        const sent = sentHeaders.findLast((h) => h.url === '/settings');
        assert.equal(sent.headers['x-nf-client'], 'gotrue-js', '1.0 names itself on every request');
      }
    });

    test('signup, confirm from the mailed link, current user', async () => {
      const who = email('signup');
      const signed = await auth.signup(who, 'first-password', { full_name: 'Sign Up' });
      assert.equal(signed.email, who);
      assert.ok(signed.confirmation_sent_at, 'confirmation mail sent');
      assert.ok(!signed.confirmed_at);
      assert.equal(signed.user_metadata.full_name, 'Sign Up');
      await expectError(auth.login(who, 'first-password'), 400, /confirm/i);

      const { token, link } = await smtp.token(who, 'confirmation');
      assert.ok(link.startsWith(`${SITE}/#confirmation_token=`), link);
      const user = await auth.confirm(token, true);
      assert.equal(user.email, who);
      assert.ok(user.confirmed_at);
      assert.equal(user.user_metadata.full_name, 'Sign Up');
      assert.ok(user.token.access_token && user.token.refresh_token);
      assert.ok(user.token.expires_at > Date.now());
      assert.equal(auth.currentUser().email, who, 'current user in memory');
      assert.ok(localStorage.getItem('gotrue.user'), 'remembered session saved');
      await expectError(auth.confirm(token), 404);
    });

    test('login (form-encoded /token), refresh, current user from storage, logout', async () => {
      const who = email('signup');
      await expectError(auth.login(who, 'wrong-password'), 400);
      const user = await auth.login(who, 'first-password', true);
      const sent = sentHeaders.findLast((h) => h.url === '/token');
      assert.equal(sent.headers['content-type'], 'application/x-www-form-urlencoded');
      assert.match(sent.body, /^grant_type=password&username=/);
      assert.equal(user.email, who);
      const firstRefresh = user.token.refresh_token;

      const fresh = await user.jwt(true);
      assert.equal(typeof fresh, 'string');
      assert.notEqual(user.token.refresh_token, firstRefresh, 'refresh token rotated');
      const again = await user.getUserData();
      assert.equal(again.email, who, 'the refreshed token works');

      const saved = JSON.parse(localStorage.getItem('gotrue.user'));
      assert.equal(saved.email, who);
      assert.equal(saved.token.refresh_token, user.token.refresh_token, 'saved session follows the refresh');

      await user.logout();
      assert.equal(auth.currentUser(), null);
      assert.equal(localStorage.getItem('gotrue.user'), null);
      const r = await fetch(`${gotrue.url}/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: `grant_type=refresh_token&refresh_token=${user.token?.refresh_token || saved.token.refresh_token}`,
      });
      assert.equal(r.status, 400, 'logout revoked the refresh tokens');
    });

    test('update user: metadata, password, email change', async () => {
      const who = email('update');
      const newer = email('updated');
      const made = await operator(gotrue.url, 'POST', '/admin/users', { email: who, password: 'password-one', confirm: true });
      assert.equal(made.status, 200, made.text);
      const user = await auth.login(who, 'password-one');
      const u1 = await user.update({ data: { color: 'blue', full_name: 'Up Date' } });
      assert.equal(u1.user_metadata.color, 'blue');
      assert.equal(u1.user_metadata.full_name, 'Up Date');

      await user.update({ password: 'password-two' });
      await expectError(auth.login(who, 'password-one'), 400);
      const user2 = await auth.login(who, 'password-two');

      const before = smtp.mails.length;
      const u2 = await user2.update({ email: newer });
      assert.equal(u2.email, who, 'unchanged until confirmed');
      assert.equal(u2.new_email, newer);
      const { token, link } = await smtp.token(newer, 'email_change', { after: before });
      assert.ok(link.includes('#email_change_token='), link);
      // What the widget does with #email_change_token=...
      const u3 = await user2.update({ email_change_token: token });
      assert.equal(u3.email, newer);
      const user3 = await auth.login(newer, 'password-two');
      assert.equal(user3.email, newer);
      await expectError(auth.login(who, 'password-two'), 400);
    });

    test('recovery', async () => {
      const who = email('recover');
      await operator(gotrue.url, 'POST', '/admin/users', { email: who, password: 'forgotten', confirm: true });
      const before = smtp.mails.length;
      await auth.requestPasswordRecovery(who);
      const { token, link } = await smtp.token(who, 'recovery', { after: before });
      assert.ok(link.includes('#recovery_token='), link);
      const user = await auth.recover(token);
      assert.equal(user.email, who);
      await user.update({ password: 'remembered' });
      assert.equal((await auth.login(who, 'remembered')).email, who);
      await expectError(auth.recover(token), 404);
    });

    test('accept invite', async () => {
      const who = email('invite');
      const before = smtp.mails.length;
      const r = await operator(gotrue.url, 'POST', '/invite', { email: who, data: { full_name: 'In Vited' } });
      assert.equal(r.status, 200, r.text);
      const { token, link } = await smtp.token(who, 'invite', { after: before });
      assert.ok(link.includes('#invite_token='), link);
      assert.equal(auth.acceptInviteExternalUrl('github', token), `${gotrue.url}/authorize?provider=github&invite_token=${token}`);
      const user = await auth.acceptInvite(token, 'invited-password', true);
      assert.equal(user.email, who);
      assert.ok(user.confirmed_at);
      assert.equal(user.user_metadata.full_name, 'In Vited');
      assert.equal((await auth.login(who, 'invited-password')).email, who);
    });

    test('external login URL leads to the provider', async () => {
      const url = auth.loginExternalUrl('github');
      assert.equal(url, `${gotrue.url}/authorize?provider=github`);
      const r = await fetch(url, { redirect: 'manual' });
      assert.equal(r.status, 302);
      assert.ok(r.headers.get('location').startsWith(`${github.url}/login/oauth/authorize?`), r.headers.get('location'));
    });

    test('admin calls with an admin token', async () => {
      const who = email('admin');
      const created = await operator(gotrue.url, 'POST', '/admin/users', { email: who, password: 'admin-pw', confirm: true });
      assert.equal(created.status, 200, created.text);
      const promoted = await operator(gotrue.url, 'PUT', `/admin/users/${created.json.id}`, { role: 'admin' });
      assert.equal(promoted.status, 200, promoted.text);
      const admin = await auth.login(who, 'admin-pw');
      assert.equal(admin.role, 'admin');

      const list = await admin.admin.listUsers('');
      // 0.9's micro-api-client wraps a paginated answer (Link header) as {pagination, items}.
      const body = version === '0.9' && list.pagination ? list.items : list;
      if (version === '0.9') assert.ok(list.pagination, 'the Link header reached micro-api-client');
      const users = body.users;
      assert.ok(users.some((u) => u.email === who), 'listUsers finds the admin');

      const managed = email('managed');
      const made = await admin.admin.createUser(managed, 'managed-pw', { user_metadata: { from: 'admin' }, confirm: true });
      assert.equal(made.email, managed);
      const got = await admin.admin.getUser(made);
      assert.equal(got.id, made.id);
      const updated = await admin.admin.updateUser(made, { app_metadata: { plan: 'pro' } });
      assert.equal(updated.app_metadata.plan, 'pro');
      assert.equal((await auth.login(managed, 'managed-pw')).email, managed);
      await admin.admin.deleteUser(made);
      await expectError(admin.admin.getUser(made), 404);

      const plain = await auth.login(email('recover'), 'remembered');
      await expectError(plain.admin.listUsers(''), 401);
    });

    test('X-Use-Cookie: the nf_jwt cookie as a browser gets it', async () => {
      const cookieAuth = new GoTrue({ APIUrl: gotrue.url, setCookie: true });
      const who = email('cookie');
      await operator(gotrue.url, 'POST', '/admin/users', { email: who, password: 'cookie-pw', confirm: true });
      const n = setCookies.length;
      const user = await cookieAuth.login(who, 'cookie-pw', true);
      const sent = sentHeaders.findLast((h) => h.url === '/token');
      assert.equal(sent.headers['x-use-cookie'], '1');
      const set = setCookies.slice(n).find((c) => c.startsWith('nf_jwt='));
      assert.ok(set, 'nf_jwt set');
      assert.ok(set.startsWith(`nf_jwt=${user.token.access_token};`), set);
      assert.match(set, /; HttpOnly/);
      assert.match(set, /; SameSite=Lax/);
      assert.match(set, /; Max-Age=86400/);
      assert.doesNotMatch(set, /Secure/, 'SITE_URL is plain http');
      assert.equal(jar.get(new URL(gotrue.url).origin).get('nf_jwt'), user.token.access_token);

      const m = setCookies.length;
      await cookieAuth.login(who, 'cookie-pw', false);
      const session = setCookies.slice(m).find((c) => c.startsWith('nf_jwt='));
      assert.ok(session && !/Max-Age|Expires/.test(session), `session cookie: ${session}`);

      const k = setCookies.length;
      await cookieAuth.currentUser().logout();
      const cleared = setCookies.slice(k).find((c) => c.startsWith('nf_jwt='));
      assert.ok(cleared && /Max-Age=0/.test(cleared), `logout clears the cookie: ${cleared}`);
      await waitFor('jar cleared', () => !jar.get(new URL(gotrue.url).origin).has('nf_jwt'), 1000);
    });
  });
}
