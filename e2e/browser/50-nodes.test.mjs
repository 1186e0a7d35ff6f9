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
    await page.getByRole('heading', { level: 1, name: new RegExp(env.nodeSlug) }).waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await nodeState(), 'active');

    const state = page.locator('[data-testid="node-derived"] .badge').first();
    assert.equal((await state.innerText()).trim(), 'active');
    // Drain, confirmed in a dialog that offers a deadline.
    await page.getByRole('button', { name: 'Drain', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: `Drain node ${env.nodeSlug}?` });
    await dialog.getByLabel(/^Deadline/).fill('600');
    await dialog.getByRole('button', { name: 'Drain node' }).click();
    await eventually(async () => (await nodeState()) === 'drained', { message: 'the orchestrator to see the node drained' });
    await eventually(async () => (await state.innerText()).trim() === 'drained', { message: 'the page to show drained' });
    const drained = await api('GET', `/v1/nodes/${env.nodeSlug}`, { token: await adminToken() });
    assert.ok(drained.body.drain_deadline, `no drain deadline: ${JSON.stringify(drained.body)}`);
    assert.ok(Math.abs(Date.parse(drained.body.drain_deadline) - Date.now() - 600_000) < 120_000, drained.body.drain_deadline);

    // Undrain, confirmed too.
    await page.getByRole('button', { name: 'Undrain', exact: true }).click();
    await page.getByRole('dialog', { name: `Undrain node ${env.nodeSlug}?` }).getByRole('button', { name: 'Undrain node' }).click();
    await eventually(async () => (await nodeState()) === 'active', { message: 'the orchestrator to see the node active' });
    await eventually(async () => (await state.innerText()).trim() === 'active', { message: 'the page to show active' });
    await page.getByRole('button', { name: 'Drain', exact: true }).waitFor({ timeout: UI_TIMEOUT });
    // What the node reported is shown apart from what the orchestrator derived.
    const reported = page.locator('[data-testid="node-reported"]');
    assert.match(await reported.getByRole('heading').first().innerText(), /Reported by the node/);
  });
});
