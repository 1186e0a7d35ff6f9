// Shared by the browser tests of the web console: Debian's Chromium driven by playwright-core
// against a real stack that e2e/tests/it/console.rs started (orchestrator serving console/dist,
// node manager, worker API, Podman, llama.cpp). Nothing here contacts anything but loopback:
// Chromium gets a dead proxy and a resolver that knows only localhost, and every request a page
// makes is checked to stay on 127.0.0.1/localhost.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

function required(name) {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: these tests are run by e2e/tests/it/console.rs (cargo nextest run -p cynode-e2e console)`);
  return value;
}

export const env = {
  gateway: required('GATEWAY_URL').replace(/\/$/, ''),
  adminHandle: process.env.ADMIN_HANDLE || 'admin',
  adminPassword: required('ADMIN_PASSWORD'),
  python: required('PYTHON'),
  nodeSlug: required('NODE_SLUG'),
  artifacts: path.resolve(process.env.CONSOLE_ARTIFACTS || path.join(repo, 'target', 'console-artifacts')),
  // The loopback address the gateway trusts as a TLS-terminating proxy (X-Forwarded-Proto).
  trustedProxy: process.env.TRUSTED_PROXY || '',
  // A thread of the admin's whose stored assistant message is hostile Markdown (seeded by console.rs).
  xssThread: process.env.XSS_THREAD_ID || '',
};
fs.mkdirSync(env.artifacts, { recursive: true });

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** How long a page may take to show something that needs no model (the stack is local). */
export const UI_TIMEOUT = 15_000;
/** How long the model (SmolLM2-135M on two shared cores) may take to answer. */
export const MODEL_TIMEOUT = 240_000;

// The flags keep Chromium off the network: no background services, QUIC, pings or component
// updates, every hostname but localhost unresolvable and every proxied request sent to a port
// where nothing listens (loopback itself bypasses the proxy).
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--no-pings',
  '--metrics-recording-only',
  '--proxy-server=http://127.0.0.1:9',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
];

/**
 * Debian's Chromium, never a downloaded one. playwright's launch() gives every browser a fresh
 * temporary --user-data-dir of its own and removes it on close.
 */
export async function launch() {
  assert.ok(fs.existsSync('/usr/bin/chromium'), '/usr/bin/chromium is missing: run scripts/bootstrap.sh');
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * A browser context at desktop size that records what went wrong: uncaught page errors,
 * console errors (CSP violations among them) and any request to a host other than loopback.
 * `assertClean()` fails the test on any of them.
 */
export async function newContext(browser, options = {}) {
  const context = await browser.newContext({ viewport: DESKTOP, baseURL: env.gateway, ...options });
  const problems = { pageErrors: [], consoleErrors: [], offHost: [], csp: [] };
  context.problems = problems;
  context.on('request', (request) => {
    const url = new URL(request.url());
    if (['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol) && !LOOPBACK.has(url.hostname)) {
      problems.offHost.push(request.url());
    }
  });
  context.on('page', (page) => watchPage(page, problems));
  context.assertClean = ({ allowConsole = [], allowCsp = [] } = {}) => {
    assert.deepEqual(problems.offHost, [], 'the console requested something off this machine');
    assert.deepEqual(problems.pageErrors, [], 'uncaught errors in the page');
    const csp = problems.csp.filter((text) => !allowCsp.some((re) => re.test(text)));
    assert.deepEqual(csp, [], 'the page broke its own Content-Security-Policy');
    const unexpected = problems.consoleErrors.filter(
      (text) => !allowConsole.some((re) => re.test(text)) && !/Failed to load resource/.test(text),
    );
    assert.deepEqual(unexpected, [], 'console errors');
  };
  return context;
}

function watchPage(page, problems) {
  page.on('pageerror', (error) => problems.pageErrors.push(`${page.url()}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    if (/Content.Security.Policy|Refused to (load|execute|apply|connect|frame)/i.test(text)) {
      problems.csp.push(`${page.url()}: ${text}`);
    } else {
      problems.consoleErrors.push(`${page.url()}: ${text}`);
    }
  });
}

/** A context and a page in it, logged in through the login form. */
export async function loggedIn(browser, handle = env.adminHandle, password = env.adminPassword, options = {}) {
  const context = await newContext(browser, options);
  const page = await context.newPage();
  await login(page, handle, password);
  return { context, page };
}

/** The login form's fields and button, by their accessible names. */
export function loginForm(page) {
  return {
    handle: page.getByLabel(/^(handle|user ?name|user)$/i),
    password: page.getByLabel(/^password$/i),
    submit: page.getByRole('button', { name: /^(log ?in|sign ?in)$/i }),
  };
}

/**
 * Logs in through the page at /login (or wherever `page` already is, if that is the login
 * page) and waits until the app has left it.
 */
export async function login(page, handle = env.adminHandle, password = env.adminPassword, { from = '/login' } = {}) {
  if (!new URL(page.url(), env.gateway).pathname.startsWith('/login') || page.url() === 'about:blank') {
    await page.goto(from);
  }
  const form = loginForm(page);
  await form.handle.fill(handle, { timeout: UI_TIMEOUT });
  await form.password.fill(password);
  await form.submit.click();
  await page.waitForURL((url) => !url.pathname.startsWith('/login'), { timeout: UI_TIMEOUT });
  await waitReady(page);
}

/**
 * The app has rendered its main landmark and finished its first requests. Pages mark themselves
 * ready with `performance.mark('console-ready')` where the console does so; the main landmark is
 * the condition either way.
 */
export async function waitReady(page) {
  await page.getByRole('main').waitFor({ timeout: UI_TIMEOUT });
  await page.waitForLoadState('networkidle', { timeout: UI_TIMEOUT }).catch(() => {
    // Live pages keep an event stream open: networkidle never comes. The landmark suffices.
  });
}

/** Every key and value in localStorage and sessionStorage of the page's origin. */
export async function webStorage(page) {
  return page.evaluate(() => {
    const dump = (storage) => {
      const out = {};
      for (let i = 0; i < storage.length; i += 1) {
        const key = storage.key(i);
        out[key] = storage.getItem(key);
      }
      return out;
    };
    return { local: dump(window.localStorage), session: dump(window.sessionStorage) };
  });
}

/**
 * No credential in web storage: no JWT (`eyJ...`), no API key (`cyn_...`), none of the session
 * cookies' values, and none of `secrets`.
 */
export async function assertNoSecretsInStorage(page, secrets = []) {
  const storage = await webStorage(page);
  const text = JSON.stringify(storage);
  const cookies = await page.context().cookies();
  const cookieValues = cookies.filter((c) => c.value.length >= 16).map((c) => c.value);
  assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, `a JWT in web storage: ${text}`);
  assert.doesNotMatch(text, /cyn_[A-Za-z0-9]{16,}/, `an API key in web storage: ${text}`);
  for (const secret of [...cookieValues, ...secrets]) {
    assert.ok(!text.includes(secret), `a credential in web storage: ${text}`);
  }
  return storage;
}

/**
 * Saves the page at desktop (1280×800) and phone (390×844) widths as
 * `$CONSOLE_ARTIFACTS/<name>-desktop.png` and `<name>-phone.png`, then restores the viewport.
 */
export async function screenshots(page, name) {
  const before = page.viewportSize() || DESKTOP;
  const saved = [];
  for (const [label, size] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await page.setViewportSize(size);
    // Layout follows the resize on the next frames; two animation frames settle it.
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
    const file = path.join(env.artifacts, `${name}-${label}.png`);
    await page.screenshot({ path: file, fullPage: true });
    assert.ok(fs.statSync(file).size > 1000, `${file} is empty`);
    saved.push(file);
  }
  await page.setViewportSize(before);
  return saved;
}

/** `fetch` on the gateway with a bearer token; JSON in, `{status, headers, body}` out. */
export async function api(method, pathname, { token, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers.authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(`${env.gateway}${pathname}`, init);
  const text = await resp.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: resp.status, headers: resp.headers, body: parsed };
}

/** A bearer token for `handle` through the programs' login (`POST /v1/auth/login`). */
export async function token(handle = env.adminHandle, password = env.adminPassword) {
  const resp = await api('POST', '/v1/auth/login', { body: { handle, password } });
  assert.equal(resp.status, 200, `login of ${handle}: ${JSON.stringify(resp.body)}`);
  return resp.body.access_token;
}

let adminTokenCache;
export async function adminToken() {
  adminTokenCache ??= await token();
  return adminTokenCache;
}

/** A new user through the admin API, with a password; returns `{id, handle, password}`. */
export async function createUser(prefix = 'user') {
  const handle = `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
  const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  const resp = await api('POST', '/v1/users', { token: await adminToken(), body: { handle, password } });
  assert.equal(resp.status, 201, `create user ${handle}: ${JSON.stringify(resp.body)}`);
  return { id: resp.body.user.id, handle, password };
}

/** Runs `$PYTHON -c script` with `extraEnv`; resolves to `{code, stdout, stderr}`. */
export function python(script, extraEnv = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(env.python, ['-c', script], {
      env: { ...process.env, ...extraEnv, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * axe-core over the page as it is now: resolves to the violations of impact `serious` or
 * `critical`. The console's CSP allows no inline script, so axe is evaluated through the
 * DevTools protocol (page.evaluate), which the page's CSP does not govern; nothing is injected
 * into the page's own script sources.
 */
const AXE_SOURCE = fs.readFileSync(path.join(here, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
export async function axeViolations(page) {
  const hasAxe = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!hasAxe) await page.evaluate(AXE_SOURCE);
  const results = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
    }));
  });
  return results.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** Polls `fn` until it returns a truthy value (returned) or `timeout` ms pass (an assertion error). */
export async function eventually(fn, { timeout = UI_TIMEOUT, interval = 200, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) assert.fail(`${message} not met within ${timeout} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((resolve) => { setTimeout(resolve, interval); });
  }
}

/** A short unique suffix for names made by a test. */
export function unique(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}
