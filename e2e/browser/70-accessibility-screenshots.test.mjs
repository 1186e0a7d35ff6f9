// Every page, as an admin (and the login page and a refusal as others): axe-core finds no
// serious or critical violation in the light or the dark theme, and each page is saved as a
// screenshot at desktop (1280×800) and phone (390×844) widths in $CONSOLE_ARTIFACTS.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  adminToken,
  api,
  assertNoSecretsInStorage,
  axeViolations,
  createUser,
  env,
  eventually,
  launch,
  loggedIn,
  newContext,
  screenshots,
  UI_TIMEOUT,
  waitReady,
} from './lib.mjs';

let browser;
let task;
before(async () => {
  browser = await launch();
  // A finished commands task for the detail page.
  const token = await adminToken();
  const created = await api('POST', '/v1/tasks', {
    token,
    body: { prompt: 'echo "hello from the sandbox"; echo "a warning" >&2', input_mode: 'commands', task_name: `a11y-${Date.now()}` },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  task = created.body.id;
  await eventually(async () => ['completed', 'failed'].includes((await api('GET', `/v1/tasks/${task}`, { token })).body.status), {
    timeout: 120_000,
    interval: 500,
    message: 'the task for the detail page to finish',
  });
});
after(async () => {
  await browser?.close();
});

/** Waits until the page has loaded what it shows: no "Loading…" status left in <main>. */
async function settle(page) {
  await waitReady(page);
  await eventually(async () => (await page.getByRole('main').getByRole('status').filter({ hasText: /^Loading/ }).count()) === 0, {
    message: `${page.url()} to finish loading`,
  });
}

async function check(page, name, { shoot = true } = {}) {
  await settle(page);
  assert.ok(await page.getByRole('heading', { level: 1 }).count() >= 1, `${name} has no h1`);
  // The pictures first: they are worth having most when the page has a problem.
  if (shoot) await screenshots(page, name);
  const violations = await axeViolations(page);
  assert.deepEqual(violations, [], `${name}: serious or critical accessibility violations`);
}

const ADMIN_PAGES = [
  ['tasks', '/tasks'],
  ['task-new', '/tasks/new'],
  ['task-detail', () => `/tasks/${task}`],
  ['chat', '/chat'],
  ['chat-thread', () => `/chat/${env.xssThread}`],
  ['keys', '/keys'],
  ['preferences', '/preferences'],
  ['projects', '/projects'],
  ['password', '/account/password'],
  ['api-docs', '/api-docs'],
  ['nodes', '/nodes'],
  ['node-detail', () => `/nodes/${env.nodeSlug}`],
  ['users', '/admin/users'],
  ['groups', '/admin/groups'],
  ['audit', '/admin/audit'],
  ['rules', '/admin/rules'],
  ['not-found', '/no/such/page'],
];

for (const scheme of ['light', 'dark']) {
  describe(`every page in the ${scheme} theme`, () => {
    let context;
    let page;
    before(async () => {
      ({ context, page } = await loggedIn(browser, env.adminHandle, env.adminPassword, { colorScheme: scheme }));
    });
    after(async () => {
      await assertNoSecretsInStorage(page);
      // The hostile answer in the chat-thread page: DOMPurify's inert parse of it is reported.
      context.assertClean({
        allowConsole: [/40[134]/],
        allowCsp: [new RegExp(`/chat/${env.xssThread}: Executing inline event handler`)],
      });
      await context.close();
    });

    for (const [name, target] of ADMIN_PAGES) {
      test(`${name}: no serious or critical axe violation${scheme === 'light' ? ', screenshots saved' : ''}`, async () => {
        await page.goto(typeof target === 'function' ? target() : target);
        await check(page, scheme === 'light' ? name : `${name}-dark`, { shoot: scheme === 'light' || name === 'tasks' });
      });
    }

    test(`login: no serious or critical axe violation${scheme === 'light' ? ', screenshots saved' : ''}`, async () => {
      const anonymous = await newContext(browser, { colorScheme: scheme });
      const login = await anonymous.newPage();
      await login.goto('/login');
      await login.getByRole('button', { name: 'Log in' }).waitFor({ timeout: UI_TIMEOUT });
      await check(login, scheme === 'light' ? 'login' : 'login-dark');
      anonymous.assertClean({ allowConsole: [/401/] });
      await anonymous.close();
    });

    test(`a refused page (a member opening Nodes): no serious or critical axe violation`, async () => {
      const member = await createUser('a11y-member');
      const { context: theirs, page: theirPage } = await loggedIn(browser, member.handle, member.password, { colorScheme: scheme });
      await theirPage.goto('/nodes');
      await check(theirPage, scheme === 'light' ? 'forbidden' : 'forbidden-dark');
      theirs.assertClean({ allowConsole: [/40[134]/] });
      await theirs.close();
    });
  });
}

describe('keyboard', () => {
  test('the skip link is the first stop and moves focus to the main content; focus is visible', async () => {
    const { context, page } = await loggedIn(browser);
    await page.goto('/tasks');
    await settle(page);
    await page.keyboard.press('Tab');
    const first = await page.evaluate(() => ({ text: document.activeElement?.textContent?.trim(), tag: document.activeElement?.tagName }));
    assert.deepEqual(first, { text: 'Skip to main content', tag: 'A' });
    // A visible focus indicator: an outline or a box shadow on the focused element.
    const ring = await page.evaluate(() => {
      const s = getComputedStyle(document.activeElement);
      return { outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0, shadow: s.boxShadow !== 'none' };
    });
    assert.ok(ring.outline || ring.shadow, `no visible focus on the skip link: ${JSON.stringify(ring)}`);
    await page.keyboard.press('Enter');
    await eventually(() => page.evaluate(() => document.activeElement?.id === 'main' || document.activeElement?.closest('main') !== null), {
      message: 'focus in <main> after the skip link',
    });
    await context.close();
  });
});
