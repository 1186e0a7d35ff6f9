// Log in and out, the session cookie, CSRF, the headers on every console response, and what
// happens when a session ends or a role is missing.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import {
  adminToken,
  api,
  assertNoSecretsInStorage,
  createUser,
  env,
  eventually,
  launch,
  loggedIn,
  login,
  loginForm,
  newContext,
  UI_TIMEOUT,
  unique,
  waitReady,
} from './lib.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** The Set-Cookie lines of a cookie-session login made with node's http client. */
function sessionLogin(gateway, { handle = env.adminHandle, password = env.adminPassword, headers = {}, localAddress } = {}) {
  const url = new URL('/v1/auth/session', gateway);
  const body = JSON.stringify({ handle, password });
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        localAddress,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => { text += d; });
        res.on('end', () => resolve({ status: res.statusCode, cookies: res.headers['set-cookie'] ?? [], body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function cookieLine(lines, name) {
  const line = lines.find((l) => l.startsWith(`${name}=`));
  assert.ok(line, `no ${name} cookie in ${JSON.stringify(lines)}`);
  return line;
}

function attributes(line) {
  return line.split(';').slice(1).map((a) => a.trim().toLowerCase());
}

describe('logging in', () => {
  test('a wrong password is refused in the API\'s words; the right one opens the task list', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto('/');
    await page.waitForURL(/\/login/);
    const form = loginForm(page);
    await form.handle.fill(env.adminHandle);
    await form.password.fill('not-the-password');
    await form.submit.click();
    const alert = page.getByRole('alert');
    await alert.waitFor({ timeout: UI_TIMEOUT });
    const said = (await alert.innerText()).trim();
    // The gateway's own problem detail for a bad login, shown as it came.
    const direct = await api('POST', '/v1/auth/session', { body: { handle: env.adminHandle, password: 'not-the-password' } });
    assert.equal(direct.status, 401);
    assert.ok(said.includes(direct.body.detail || direct.body.title), `page said ${JSON.stringify(said)}; API said ${JSON.stringify(direct.body)}`);
    assert.match(new URL(page.url()).pathname, /^\/login/);
    assert.equal((await context.cookies()).filter((c) => c.name.startsWith('cynode_')).length, 0);

    await login(page);
    assert.equal(new URL(page.url()).pathname, '/tasks');
    await page.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
    await assertNoSecretsInStorage(page);
    context.assertClean({ allowConsole: [/401/] });
    await context.close();
  });

  test('logging out revokes the session on the server, not only in the page', async () => {
    const { context, page } = await loggedIn(browser);
    const before = await context.cookies();
    const access = before.find((c) => c.name === 'cynode_session');
    const refresh = before.find((c) => c.name === 'cynode_refresh');
    assert.ok(access && refresh, JSON.stringify(before.map((c) => c.name)));
    const withCookies = { cookie: `cynode_session=${access.value}; cynode_refresh=${refresh.value}` };
    assert.equal((await api('GET', '/v1/auth/session', { headers: withCookies })).status, 200);

    await page.getByRole('button', { name: `Account: ${env.adminHandle}` }).click();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(/\/login/);
    const left = (await context.cookies()).filter((c) => c.name.startsWith('cynode_') && c.value);
    assert.deepEqual(left.map((c) => c.name), [], 'logout left session cookies in the browser');
    // The old cookies, replayed by someone who kept them, open nothing.
    assert.equal((await api('GET', '/v1/auth/session', { headers: withCookies })).status, 401);
    assert.equal((await api('GET', '/v1/tasks', { headers: withCookies })).status, 401);
    const session = await api('GET', '/v1/auth/session', { headers: { cookie: `cynode_refresh=${refresh.value}` } });
    assert.equal(session.status, 401);
    context.assertClean({ allowConsole: [/401/] });
    await context.close();
  });
});

describe('the session cookie', () => {
  test('is HttpOnly and SameSite=Strict, and not Secure over plain http', async () => {
    const { context, page } = await loggedIn(browser);
    const cookies = await context.cookies();
    const access = cookies.find((c) => c.name === 'cynode_session');
    const refresh = cookies.find((c) => c.name === 'cynode_refresh');
    assert.ok(access, JSON.stringify(cookies));
    assert.equal(access.httpOnly, true);
    assert.equal(access.sameSite, 'Strict');
    assert.equal(access.secure, false);
    assert.equal(access.path, '/');
    assert.ok(refresh, JSON.stringify(cookies));
    assert.equal(refresh.httpOnly, true);
    assert.equal(refresh.sameSite, 'Strict');
    assert.equal(refresh.path, '/v1/auth/session');
    // Script in the page cannot read either.
    const visible = await page.evaluate(() => document.cookie);
    assert.ok(!visible.includes('cynode_'), `document.cookie shows ${visible}`);

    const { status, cookies: lines } = await sessionLogin(env.gateway);
    assert.equal(status, 200);
    for (const name of ['cynode_session', 'cynode_refresh']) {
      const attrs = attributes(cookieLine(lines, name));
      assert.ok(attrs.includes('httponly'), `${name}: ${attrs}`);
      assert.ok(attrs.includes('samesite=strict'), `${name}: ${attrs}`);
      assert.ok(!attrs.includes('secure'), `${name} is Secure over http: ${attrs}`);
    }
    await context.close();
  });

  test('is Secure when a trusted proxy says the request came over https, and only then', async () => {
    assert.ok(env.trustedProxy, 'TRUSTED_PROXY is not set: console.rs starts the gateway trusting a proxy address');
    const forwarded = { 'x-forwarded-proto': 'https' };
    const fromProxy = await sessionLogin(env.gateway, { headers: forwarded, localAddress: env.trustedProxy });
    assert.equal(fromProxy.status, 200, fromProxy.body);
    for (const name of ['cynode_session', 'cynode_refresh']) {
      const attrs = attributes(cookieLine(fromProxy.cookies, name));
      assert.ok(attrs.includes('secure'), `${name} via the trusted proxy: ${attrs}`);
      assert.ok(attrs.includes('httponly') && attrs.includes('samesite=strict'), `${name}: ${attrs}`);
    }
    // The same header from an address the gateway does not trust changes nothing.
    const spoofed = await sessionLogin(env.gateway, { headers: forwarded, localAddress: '127.0.0.1' });
    assert.equal(spoofed.status, 200, spoofed.body);
    assert.ok(!attributes(cookieLine(spoofed.cookies, 'cynode_session')).includes('secure'), spoofed.cookies.join('\n'));
  });

  test('is Secure when the gateway\'s public URL is https', async () => {
    assert.ok(process.env.HTTPS_GATEWAY_URL, 'HTTPS_GATEWAY_URL is not set by console.rs');
    const { status, cookies, body } = await sessionLogin(process.env.HTTPS_GATEWAY_URL, { password: process.env.HTTPS_ADMIN_PASSWORD });
    assert.equal(status, 200, body);
    for (const name of ['cynode_session', 'cynode_refresh']) {
      const attrs = attributes(cookieLine(cookies, name));
      assert.ok(attrs.includes('secure'), `${name}: ${attrs}`);
      assert.ok(attrs.includes('httponly') && attrs.includes('samesite=strict'), `${name}: ${attrs}`);
    }
  });
});

describe('CSRF', () => {
  test('a state-changing call with the cookie but without the CSRF token is refused and changes nothing', async () => {
    const { context, page } = await loggedIn(browser);
    const name = unique('csrf-probe');
    const answer = await page.evaluate(async (keyName) => {
      const resp = await fetch('/v1/users/me/api-keys', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: keyName }),
      });
      return { status: resp.status, type: resp.headers.get('content-type'), body: await resp.text() };
    }, name);
    assert.equal(answer.status, 403, JSON.stringify(answer));
    assert.match(answer.type ?? '', /application\/problem\+json/);
    assert.match(JSON.parse(answer.body).title, /csrf/i);

    // The same call from outside the browser with the cookies and a foreign Origin: refused;
    // with the session's token (which only GET /v1/auth/session hands out): accepted.
    const cookies = await context.cookies();
    const cookie = cookies.filter((c) => c.name === 'cynode_session').map((c) => `${c.name}=${c.value}`).join('; ');
    const foreign = await api('POST', '/v1/users/me/api-keys', {
      body: { name },
      headers: { cookie, origin: 'http://attacker.localhost' },
    });
    assert.equal(foreign.status, 403, JSON.stringify(foreign.body));
    const keys = await api('GET', '/v1/users/me/api-keys', { headers: { cookie } });
    assert.equal(keys.status, 200);
    assert.ok(!JSON.stringify(keys.body).includes(name), `a key named ${name} was created: ${JSON.stringify(keys.body)}`);

    const session = await api('GET', '/v1/auth/session', { headers: { cookie } });
    assert.equal(session.status, 200);
    assert.ok(session.body.csrf_token, JSON.stringify(session.body));
    const withToken = await api('POST', '/v1/users/me/api-keys', {
      body: { name },
      headers: { cookie, 'x-csrf-token': session.body.csrf_token },
    });
    assert.equal(withToken.status, 201, JSON.stringify(withToken.body));
    const revoke = await api('DELETE', `/v1/users/me/api-keys/${withToken.body.id}`, { token: await adminToken() });
    assert.ok([200, 204].includes(revoke.status), JSON.stringify(revoke));
    context.assertClean({ allowConsole: [/403/] });
    await context.close();
  });

  test('a form posted from another site creates nothing', async () => {
    const { context, page } = await loggedIn(browser);
    const name = unique('csrf-cross-site');
    // The attacker's page, on another site of this machine (localhost is not 127.0.0.1).
    const target = `${env.gateway}/v1/users/me/api-keys`;
    const attackerHtml = `<!doctype html><title>attacker</title>
      <form method="POST" action="${target}" enctype="text/plain">
        <input name='{"name":"${name}","x":"' value='"}'>
      </form>
      <script>document.forms[0].submit()</script>`;
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(attackerHtml);
    });
    await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
    const { port } = server.address();
    try {
      const posted = page.waitForResponse((r) => r.url() === target && r.request().method() === 'POST');
      await page.goto(`http://localhost:${port}/`);
      const response = await posted;
      assert.ok([401, 403].includes(response.status()), `the cross-site POST got ${response.status()}`);
    } finally {
      server.close();
    }
    const keys = await api('GET', '/v1/users/me/api-keys', { token: await adminToken() });
    assert.ok(!JSON.stringify(keys.body).includes(name), `the cross-site form created a key: ${JSON.stringify(keys.body)}`);
    await context.close();
  });
});

describe('what the gateway serves', () => {
  const CSP_MUST = [
    "default-src 'self'",
    "script-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "connect-src 'self'",
  ];

  function assertHardened(path, headers) {
    const csp = headers.get('content-security-policy');
    assert.ok(csp, `${path}: no Content-Security-Policy`);
    for (const part of CSP_MUST) assert.ok(csp.includes(part), `${path}: CSP lacks ${part}: ${csp}`);
    const scriptSrc = csp.split(';').map((d) => d.trim()).find((d) => d.startsWith('script-src')) ?? '';
    assert.doesNotMatch(scriptSrc, /unsafe-inline|unsafe-eval|https?:|\*/, `${path}: script-src is not strict: ${scriptSrc}`);
    assert.equal(headers.get('x-frame-options'), 'DENY', path);
    assert.equal(headers.get('referrer-policy'), 'no-referrer', path);
    assert.equal(headers.get('x-content-type-options'), 'nosniff', path);
  }

  test('every console response carries the CSP and the other hardening headers', async () => {
    const index = await fetch(`${env.gateway}/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type'), /text\/html/);
    const html = await index.text();
    assertHardened('/', index.headers);
    // No inline script in the page: every <script> has a src on this origin.
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    assert.ok(scripts.length > 0, html);
    for (const [, attrs, body] of scripts) {
      assert.match(attrs, /\bsrc="\/[^/]/, `a script without a same-origin src: <script${attrs}>`);
      assert.equal(body.trim(), '', 'an inline script body');
    }
    assert.doesNotMatch(html, /https?:\/\/(?!127\.0\.0\.1|localhost)/, 'index.html names a remote origin');
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
    assert.ok(assets.length >= 2, `no assets in index.html: ${html}`);
    const paths = [
      ...assets,
      '/login',
      '/tasks/00000000-0000-0000-0000-000000000000',
      '/chat/some/deep/link',
      '/favicon.svg',
    ];
    for (const path of paths) {
      const resp = await fetch(`${env.gateway}${path}`);
      assert.equal(resp.status, 200, path);
      assertHardened(path, resp.headers);
      if (!path.startsWith('/assets/') && !path.includes('.')) {
        assert.match(resp.headers.get('content-type'), /text\/html/, path);
        assert.equal(await resp.text(), html, `${path} is not the app's index.html`);
      } else {
        await resp.arrayBuffer();
      }
    }
    // In the browser too: every document the console loads is served with its CSP.
    const context = await newContext(browser);
    const page = await context.newPage();
    const documents = [];
    page.on('response', (r) => {
      if (r.request().resourceType() === 'document') documents.push(r);
    });
    await page.goto('/tasks?from=csp-check');
    await waitReady(page);
    assert.ok(documents.length >= 1);
    for (const r of documents) {
      assert.ok((await r.allHeaders())['content-security-policy'], `${r.url()} has no CSP`);
    }
    context.assertClean({ allowConsole: [/401/] });
    await context.close();
  });

  test('/v1/ never falls back to the console: an unknown API path is a 404 problem', async () => {
    for (const path of ['/v1/unknown', '/v1/tasks/x/no-such-thing', '/v1/']) {
      const resp = await fetch(`${env.gateway}${path}`, { headers: { accept: 'text/html' } });
      const text = await resp.text();
      assert.equal(resp.status, 404, `${path}: ${resp.status} ${text.slice(0, 200)}`);
      assert.match(resp.headers.get('content-type') ?? '', /application\/problem\+json/, path);
      assert.doesNotMatch(text, /<!doctype|<html/i, `${path} answered with HTML`);
      const problem = JSON.parse(text);
      assert.equal(problem.status, 404, text);
      assert.ok(problem.title, text);
    }
  });
});

describe('when the session ends', () => {
  test('an expired session goes back to the login page with the page remembered, and returns there', async () => {
    const { context, page } = await loggedIn(browser);
    await page.goto('/tasks?status=completed');
    await waitReady(page);
    // The browser drops both cookies, as it does when they expire.
    await context.clearCookies();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Chat' }).click();
    await page.waitForURL((url) => url.pathname === '/login', { timeout: UI_TIMEOUT });
    const next = new URL(page.url()).searchParams.get('next');
    assert.equal(next, '/chat');
    await login(page);
    assert.equal(new URL(page.url()).pathname, '/chat');

    // A deep link opened without a session remembers itself too, query included.
    await context.clearCookies();
    await page.goto('/tasks?status=failed');
    await page.waitForURL((url) => url.pathname === '/login');
    assert.equal(new URL(page.url()).searchParams.get('next'), '/tasks?status=failed');
    await login(page);
    const back = new URL(page.url());
    assert.equal(`${back.pathname}${back.search}`, '/tasks?status=failed');
    await assertNoSecretsInStorage(page);
    context.assertClean({ allowConsole: [/401/] });
    await context.close();
  });

  test('sessions revoked by an admin end in the page: back to login, page remembered', async () => {
    const user = await createUser('revoked');
    const { context, page } = await loggedIn(browser, user.handle, user.password);
    await page.goto('/keys');
    await waitReady(page);
    const revoke = await api('POST', `/v1/users/${user.id}/revoke_sessions`, { token: await adminToken() });
    assert.ok([200, 204].includes(revoke.status), JSON.stringify(revoke));
    await page.reload();
    await page.waitForURL((url) => url.pathname === '/login', { timeout: UI_TIMEOUT });
    assert.equal(new URL(page.url()).searchParams.get('next'), '/keys');
    context.assertClean({ allowConsole: [/401/] });
    await context.close();
  });

  test('when the API stops answering, the console still shows its pages and says what happened', async () => {
    const { context, page } = await loggedIn(browser);
    await page.goto('/tasks');
    await waitReady(page);
    // From here on every API call fails as it does when the gateway is down or unreachable.
    await page.route('**/v1/**', (route) => route.abort('connectionrefused'));
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Chat' }).click();
    const banner = page.getByRole('alert').filter({ hasText: 'The gateway is unreachable.' });
    await banner.first().waitFor({ timeout: UI_TIMEOUT });
    assert.match(await banner.first().innerText(), /orchestrator is running/);
    // The shell and the page are still there, and nothing sent the user away.
    assert.equal(new URL(page.url()).pathname, '/chat');
    assert.ok(await page.getByRole('heading', { level: 1 }).count() >= 1);
    assert.ok(await page.getByRole('navigation', { name: 'Main' }).isVisible());
    // Once the gateway answers again, the banner goes with the next call that gets through.
    await page.unroute('**/v1/**');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tasks' }).click();
    await eventually(async () => (await banner.count()) === 0, { message: 'the banner left after the gateway came back' });
    context.assertClean({ allowConsole: [/ERR_CONNECTION_REFUSED|net::/] });
    await context.close();
  });

  test('a page the user has no role for explains the refusal instead of showing nothing', async () => {
    const user = await createUser('member');
    const { context, page } = await loggedIn(browser, user.handle, user.password);
    // Admin pages are not offered to a member...
    const nav = page.getByRole('navigation', { name: 'Main' });
    for (const name of ['Nodes', 'Users', 'Groups', 'Audit']) {
      assert.equal(await nav.getByRole('link', { name, exact: true }).count(), 0, `${name} offered to a member`);
    }
    // ...and opened anyway, each says why it shows nothing.
    for (const path of ['/nodes', '/admin/users', `/nodes/${env.nodeSlug}`]) {
      await page.goto(path);
      await waitReady(page);
      const main = page.getByRole('main');
      await eventually(async () => /role|allow|permission|forbidden|not allowed|admin/i.test(await main.innerText()), {
        message: `an explanation on ${path}`,
      });
      const text = await main.innerText();
      assert.ok(text.trim().length > 40, `${path}: ${text}`);
      assert.ok(await page.getByRole('heading', { level: 1 }).count() >= 1, `${path} has no heading`);
    }
    await assertNoSecretsInStorage(page);
    context.assertClean({ allowConsole: [/403/] });
    await context.close();
  });
});
