// Nodes (admin): the stack's node is listed with its state; drained and undrained in the page,
// and the orchestrator agrees each time.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  adminToken,
  api,
  assertNoSecretsInStorage,
  env,
  eventually,
  launch,
  loggedIn,
  UI_TIMEOUT,
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
  // Whatever happened, leave the node taking jobs for the files after this one.
  await api('POST', `/v1/nodes/${env.nodeSlug}/undrain`, { token: await adminToken() });
  await assertNoSecretsInStorage(page);
  context?.assertClean({ allowConsole: [/40[134]/] });
  await browser?.close();
});

async function nodeState() {
  const resp = await api('GET', `/v1/nodes/${env.nodeSlug}`, { token: await adminToken() });
  assert.equal(resp.status, 200, JSON.stringify(resp.body));
  return resp.body.state;
}

describe('nodes', () => {
  test('the node list shows the node with its state and models, and links to it', async () => {
    await page.goto('/nodes');
    await waitReady(page);
    const row = page.getByRole('row').filter({ hasText: env.nodeSlug });
    await row.waitFor({ timeout: UI_TIMEOUT });
    assert.match(await row.innerText(), /active/);
    assert.match(await row.innerText(), new RegExp((process.env.MODEL || 'smollm2:135m').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    await row.getByRole('link', { name: env.nodeSlug }).click();
    await page.waitForURL((url) => url.pathname === `/nodes/${env.nodeSlug}`);
  });

  test('an admin drains the node and undrains it; the page and the orchestrator agree', { timeout: 120_000 }, async () => {
    await page.goto(`/nodes/${env.nodeSlug}`);
    await waitReady(page);
    const main = page.getByRole('main');
    await page.getByRole('heading', { level: 1, name: new RegExp(env.nodeSlug) }).waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await nodeState(), 'active');

    await page.getByRole('button', { name: /^Drain/ }).click();
    const dialog = page.getByRole('dialog');
    if (await dialog.isVisible()) {
      // A deadline may be offered; the default is fine.
      await dialog.getByRole('button', { name: /^Drain/ }).click();
    }
    await eventually(async () => (await nodeState()) === 'drained', { message: 'the orchestrator to see the node drained' });
    await eventually(async () => /\bdrained\b/i.test(await main.innerText()), { message: 'the page to show drained' });
    const undrain = page.getByRole('button', { name: /^Undrain/ });
    await undrain.waitFor({ timeout: UI_TIMEOUT });

    await undrain.click();
    if (await dialog.isVisible()) await dialog.getByRole('button', { name: /^Undrain/ }).click();
    await eventually(async () => (await nodeState()) === 'active', { message: 'the orchestrator to see the node active' });
    await page.getByRole('button', { name: /^Drain/ }).waitFor({ timeout: UI_TIMEOUT });
    assert.doesNotMatch(await page.locator('.state, [data-state]').first().innerText().catch(() => ''), /drained/i);
  });
});
