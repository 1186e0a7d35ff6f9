// Administration: an admin creates a user in the page, and that user logs in (in a browser
// context of their own) and sees no admin pages; an access rule made and deleted in the page
// holds and stops holding for that user's API calls.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  adminToken,
  api,
  assertNoSecretsInStorage,
  eventually,
  launch,
  loggedIn,
  login,
  newContext,
  UI_TIMEOUT,
  unique,
  waitReady,
} from './lib.mjs';

let browser;
let context;
let page;
before(async () => {
  browser = await launch();
  ({ context, page } = await loggedIn(browser));
});
after(async () => {
  context?.assertClean({ allowConsole: [/40[134]/] });
  await browser?.close();
});

describe('users', () => {
  test('an admin creates a user in the page, who then logs in', { timeout: 90_000 }, async () => {
    const handle = unique('newcomer');
    const password = `Pw-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    await page.goto('/admin/users');
    await waitReady(page);
    const form = page.getByRole('form', { name: 'Create a user' });
    await form.getByLabel('Handle').fill(handle);
    await form.getByRole('radio', { name: 'Set an initial password' }).check();
    await form.getByLabel('Initial password', { exact: true }).fill(password);
    await form.getByLabel('Confirm initial password').fill(password);
    const created = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/users' && r.request().method() === 'POST');
    await form.getByRole('button', { name: 'Create user' }).click();
    const resp = await created;
    assert.equal(resp.status(), 201, await resp.text());
    await page.getByRole('row').filter({ hasText: handle }).waitFor({ timeout: UI_TIMEOUT });
    const listed = await api('GET', `/v1/users?q=${encodeURIComponent(handle)}`, { token: await adminToken() });
    assert.ok(listed.body.users.some((u) => u.handle === handle && u.is_active), JSON.stringify(listed.body));

    // The new user, in a browser context of their own.
    const theirs = await newContext(browser);
    const theirPage = await theirs.newPage();
    await login(theirPage, handle, password);
    assert.equal(new URL(theirPage.url()).pathname, '/tasks');
    await eventually(async () => (await theirPage.getByRole('button', { name: `Account: ${handle}` }).count()) === 1, {
      message: 'the new user named in the header',
    });
    const nav = theirPage.getByRole('navigation', { name: 'Main' });
    assert.equal(await nav.getByRole('link', { name: 'Users', exact: true }).count(), 0);
    assert.equal(await nav.getByRole('link', { name: 'Nodes', exact: true }).count(), 0);
    await assertNoSecretsInStorage(theirPage, [password]);
    theirs.assertClean({ allowConsole: [/40[134]/] });
    await theirs.close();
    await assertNoSecretsInStorage(page, [password]);
  });
});

describe('access rules', () => {
  test('a deny rule made in the page refuses the named user at once, and deleting it in the page lifts it', { timeout: 90_000 }, async () => {
    const handle = unique('ruled');
    const password = `Pw-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const admin = await adminToken();
    const made = await api('POST', '/v1/users', { token: admin, body: { handle, password } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const session = await api('POST', '/v1/auth/login', { body: { handle, password } });
    assert.equal(session.status, 200, JSON.stringify(session.body));
    const theirs = session.body.access_token;
    const me = await api('GET', '/v1/users/me', { token: theirs });
    // Their own default project: readable by its owner, until a rule says otherwise.
    const readProject = () => api('GET', `/v1/projects/default-${me.body.id}`, { token: theirs });
    assert.equal((await readProject()).status, 200);

    await page.goto('/admin/rules');
    await waitReady(page);
    const form = page.getByRole('form', { name: 'Create a rule' });
    await form.getByLabel('Effect').selectOption('deny');
    await form.getByLabel('Action').fill('project.read');
    await form.getByLabel('Resource type').fill('project');
    await form.getByLabel('Resource pattern').fill('*');
    await form.getByLabel('Subject (handle, slug or id)').fill(handle);
    await form.getByLabel('Reason').fill('browser test');
    const created = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/access-rules' && r.request().method() === 'POST');
    await form.getByRole('button', { name: 'Create rule' }).click();
    assert.equal((await created).status(), 201);
    const row = page.getByRole('row').filter({ hasText: 'browser test' });
    await row.waitFor({ timeout: UI_TIMEOUT });
    await eventually(async () => [403, 404].includes((await readProject()).status), { message: 'the rule refuses the user' });

    await row.getByRole('button', { name: /^Delete rule deny project\.read/ }).click();
    const deleted = page.waitForResponse((r) => new URL(r.url()).pathname.startsWith('/v1/access-rules/') && r.request().method() === 'DELETE');
    await page.getByRole('dialog').getByRole('button', { name: 'Delete rule' }).click();
    assert.equal((await deleted).status(), 204);
    await eventually(async () => (await row.count()) === 0, { message: 'the rule left the list' });
    assert.equal((await readProject()).status, 200, 'the user is allowed again');
    await assertNoSecretsInStorage(page, [password]);
  });
});
