// netlify-identity-widget 2.0.x in Debian's Chromium (driven by playwright-core), served by
// nginx with the API proxied under /.netlify/identity/ on the same origin: the widget runs
// with no APIUrl. The site is reached as http://site.test:<port> (mapped to 127.0.0.1 by
// Chromium's resolver rules) because the widget treats localhost and 127.0.0.1 as a
// development server and asks for a Netlify site URL instead of using the API.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, test } from 'node:test';

import { chromium } from 'playwright-core';

import {
  E2E_DIR,
  FakeGitHub,
  freePort,
  operator,
  SmtpSink,
  startGotrue,
  startNginx,
  startStatic,
  tmpDir,
} from '../lib/harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const ARTIFACTS = path.join(E2E_DIR, 'artifacts');
const STEP_TIMEOUT = 15_000;

let smtp;
let github;
let gotrue;
let nginx;
let other;
let browser;
let context;
let page;
let SITE;
let OTHER;

before(async () => {
  const siteRoot = tmpDir('site-e2e-');
  const nm = path.join(E2E_DIR, 'node_modules');
  fs.copyFileSync(path.join(E2E_DIR, 'site', 'index.html'), path.join(siteRoot, 'index.html'));
  fs.copyFileSync(path.join(E2E_DIR, 'site', 'cross-origin.html'), path.join(siteRoot, 'cross-origin.html'));
  fs.copyFileSync(path.join(nm, 'netlify-identity-widget', 'build', 'netlify-identity-widget.js'), path.join(siteRoot, 'netlify-identity-widget.js'));
  fs.copyFileSync(path.join(nm, 'gotrue-js', 'browser', 'gotrue.js'), path.join(siteRoot, 'gotrue.js'));
  for (const f of fs.readdirSync(siteRoot)) fs.chmodSync(path.join(siteRoot, f), 0o644);

  const nginxPort = await freePort();
  const otherPort = await freePort();
  SITE = `http://site.test:${nginxPort}`;
  OTHER = `http://other.test:${otherPort}`;
  smtp = await new SmtpSink().start();
  github = await new FakeGitHub().start();
  gotrue = await startGotrue({
    smtpPort: smtp.port,
    siteUrl: SITE,
    env: {
      GOTRUE_CORS_ALLOWED_ORIGINS: `${SITE},${OTHER}`,
      GOTRUE_EXTERNAL_GITHUB_ENABLED: 'true',
      GOTRUE_EXTERNAL_GITHUB_CLIENT_ID: github.clientId,
      GOTRUE_EXTERNAL_GITHUB_SECRET: github.clientSecret,
      GOTRUE_EXTERNAL_GITHUB_URL: github.url,
      GOTRUE_EXTERNAL_GITHUB_REDIRECT_URI: `${SITE}/.netlify/identity/callback`,
    },
  });
  nginx = await startNginx({ siteRoot, gotruePort: gotrue.port, port: nginxPort });
  other = await startStatic(siteRoot, otherPort);

  // launch() gives Chromium a fresh --user-data-dir of its own (a new temporary profile,
  // removed on close); passing one ourselves is refused by playwright-core.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP site.test 127.0.0.1, MAP other.test 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await other?.stop();
  await nginx?.stop();
  await gotrue?.stop();
  await github?.stop();
  await smtp?.stop();
});

const consoleLines = [];
const trace = (msg) => process.env.E2E_TRACE && console.error(`[widget] ${msg}`);
async function freshPage() {
  await context?.close().catch(() => {});
  context = await browser.newContext();
  context.setDefaultTimeout(STEP_TIMEOUT);
  page = await context.newPage();
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  return page;
}

/** Runs a browser test; on failure keeps a screenshot and the page's console. */
function browserTest(name, fn) {
  test(name, async (t) => {
    consoleLines.length = 0;
    try {
      await fn(t);
    } catch (e) {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      const base = path.join(ARTIFACTS, name.replace(/[^a-z0-9]+/gi, '-'));
      await page?.screenshot({ path: `${base}.png`, fullPage: true }).catch(() => {});
      fs.writeFileSync(`${base}.console.log`, consoleLines.join('\n'));
      if (gotrue) fs.copyFileSync(gotrue.logPath, `${base}.gotrue.log`);
      throw e;
    }
  });
}

afterEach(async () => {
  await context?.close().catch(() => {});
  context = null;
});

const modal = () => page.frameLocator('#netlify-identity-widget');
const status = () => page.locator('#status');

async function openSite(url = SITE) {
  await freshPage();
  await page.goto(url);
  await page.waitForFunction(() => typeof window.netlifyIdentity !== 'undefined');
}

/** Follows a mailed link as a click in the mail client would: a full page load (going
 *  from the site to the same URL with only a new fragment would not reload it). */
async function followMailedLink(link) {
  trace(`following ${link}`);
  await page.goto('about:blank');
  await page.goto(link);
  await page.waitForFunction(() => typeof window.netlifyIdentity !== 'undefined');
}

async function expectLoggedIn(email) {
  await status().filter({ hasText: `logged in as ${email}` }).waitFor();
  const user = await page.evaluate(() => window.netlifyIdentity.currentUser()?.email);
  assert.equal(user, email);
}

async function logOutThroughTheWidget() {
  // The widget opens on its logged-in page ("Logged in as ..."); log out there.
  await page.evaluate(() => window.netlifyIdentity.open());
  await modal().locator('button', { hasText: 'Log out' }).click();
  await status().filter({ hasText: 'logged out' }).waitFor();
}

async function fillAndSubmit(fields) {
  const m = modal();
  for (const [name, value] of Object.entries(fields)) await m.locator(`input[name=${name}]`).fill(value);
  await m.locator('button[type=submit]').click();
}

async function nfJwtCookie() {
  return (await context.cookies(SITE)).find((c) => c.name === 'nf_jwt' && c.httpOnly);
}

browserTest('open, sign up, confirm through the mailed link, logged-in state, log out, log in', async () => {
  const email = 'widget-signup@example.com';
  await openSite();
  await status().filter({ hasText: 'logged out' }).waitFor();
  await page.locator('[data-netlify-identity-menu]').getByText('Sign up').click();
  await modal().locator('input[name=name]').waitFor();
  await fillAndSubmit({ name: 'Widget User', email, password: 'widget-pw-1' });
  await modal().getByText('A confirmation message was sent to your email').waitFor();

  trace('signed up');
  const { link } = await smtp.token(email, 'confirmation');
  trace(`mailed ${link}`);
  assert.ok(link.startsWith(`${SITE}/#confirmation_token=`), link);
  await followMailedLink(link);
  await expectLoggedIn(email);
  await modal().getByText('Logged in as').waitFor();
  assert.ok(await nfJwtCookie(), 'the server set the HttpOnly nf_jwt cookie through the proxy');
  const meta = await page.evaluate(() => window.netlifyIdentity.currentUser().user_metadata.full_name);
  assert.equal(meta, 'Widget User');

  await modal().locator('button', { hasText: 'Log out' }).click();
  await status().filter({ hasText: 'logged out' }).waitFor();
  assert.equal(await nfJwtCookie(), undefined, 'logout cleared nf_jwt');

  await page.evaluate(() => window.netlifyIdentity.open('login'));
  await fillAndSubmit({ email, password: 'widget-pw-1' });
  await expectLoggedIn(email);
  await modal().getByText('Logged in as').waitFor();

  // Still logged in after a reload (remembered session, refreshed through the proxy).
  await page.reload();
  await expectLoggedIn(email);
  await logOutThroughTheWidget();
});

browserTest('a wrong password shows the server message', async () => {
  await openSite();
  await page.evaluate(() => window.netlifyIdentity.open('login'));
  await fillAndSubmit({ email: 'widget-signup@example.com', password: 'not-it' });
  await modal().locator('.error, .flashMessage').filter({ hasText: /invalid|password|no user/i }).first().waitFor();
});

browserTest('recover a password', async () => {
  const email = 'widget-recover@example.com';
  const r = await operator(gotrue.url, 'POST', '/admin/users', { email, password: 'old-password', confirm: true });
  assert.equal(r.status, 200, r.text);
  await openSite();
  await page.evaluate(() => window.netlifyIdentity.open('login'));
  await modal().getByText('Forgot password?').click();
  const before = smtp.mails.length;
  await fillAndSubmit({ email });
  await modal().getByText("We've sent a recovery email").waitFor();

  const { link } = await smtp.token(email, 'recovery', { after: before });
  await followMailedLink(link);
  await modal().getByText('Recover password').waitFor();
  await fillAndSubmit({ password: 'new-password' });
  await expectLoggedIn(email);

  const login = await fetch(`${gotrue.url}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username: email, password: 'new-password' }),
  });
  assert.equal(login.status, 200, 'the new password works');
});

browserTest('accept an invite', async () => {
  const email = 'widget-invite@example.com';
  const before = smtp.mails.length;
  const r = await operator(gotrue.url, 'POST', '/invite', { email });
  assert.equal(r.status, 200, r.text);
  const { link } = await smtp.token(email, 'invite', { after: before });
  await openSite(link);
  await modal().getByText('Complete your signup').waitFor();
  await fillAndSubmit({ password: 'invited-pw' });
  await expectLoggedIn(email);
  await logOutThroughTheWidget();
});

browserTest('log in with GitHub through a fake provider on loopback', async () => {
  await openSite();
  await page.evaluate(() => window.netlifyIdentity.open('login'));
  await modal().getByRole('button', { name: /GitHub/ }).click();
  await expectLoggedIn(github.account.email);
  assert.ok(github.hits.token >= 1 && github.hits.user >= 1, 'the server talked to the fake provider');
  const provider = await page.evaluate(() => window.netlifyIdentity.currentUser().app_metadata.provider);
  assert.equal(provider, 'github');
  await logOutThroughTheWidget();
});

browserTest('cross-origin: gotrue-js on another origin, API direct, preflights with X-Nf-Client pass', async () => {
  await freshPage();
  const preflights = [];
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.requestWillBeSent', (e) => {
    if (e.request.method === 'OPTIONS') preflights.push(e.request.url);
  });
  await page.goto(`${OTHER}/cross-origin.html`);
  const result = await page.evaluate(async (api) => {
    const GoTrue = window.GoTrue.default || window.GoTrue;
    const auth = new GoTrue({ APIUrl: api, setCookie: true });
    const settings = await auth.settings();
    const user = await auth.login('widget-recover@example.com', 'new-password', true);
    const fresh = await user.update({ data: { via: 'cross-origin' } });
    await user.logout();
    return { github: settings.external.github, email: user.email, via: fresh.user_metadata.via };
  }, gotrue.url);
  assert.deepEqual(result, { github: true, email: 'widget-recover@example.com', via: 'cross-origin' });

  // An origin outside GOTRUE_CORS_ALLOWED_ORIGINS is refused by the browser.
  await page.goto(`${other.url}/cross-origin.html`);
  const refused = await page.evaluate(async (api) => {
    const GoTrue = window.GoTrue.default || window.GoTrue;
    try {
      await new GoTrue({ APIUrl: api }).settings();
      return 'allowed';
    } catch (e) {
      return `refused: ${e.message}`;
    }
  }, gotrue.url);
  assert.match(refused, /^refused/);
  // Chromium reports preflights only sometimes through CDP; when it does, they went to the API.
  for (const u of preflights) assert.ok(u.startsWith(gotrue.url), u);
});
