// API keys: created in the page and shown once, copied, used by the official `openai` Python
// client against the gateway, revoked in the page, and then refused to that client.

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
  python,
  UI_TIMEOUT,
  unique,
  waitReady,
} from './lib.mjs';

const MODEL = process.env.MODEL || 'smollm2:135m';

/** Lists the models with the key; prints `{"status": 200, "models": [...]}` or the error's status. */
const LIST_MODELS = `
import json, os
import openai
from openai import OpenAI
client = OpenAI(base_url=os.environ["GATEWAY_URL"] + "/v1", api_key=os.environ["API_KEY"], max_retries=0, timeout=60)
try:
    print(json.dumps({"status": 200, "models": [m.id for m in client.models.list()]}))
except openai.APIStatusError as e:
    print(json.dumps({"status": e.status_code, "type": type(e).__name__}))
`;

let browser;
let context;
let page;
before(async () => {
  browser = await launch();
  ({ context, page } = await loggedIn(browser, env.adminHandle, env.adminPassword, {
    permissions: ['clipboard-read', 'clipboard-write'],
  }));
});
after(async () => {
  context?.assertClean({ allowConsole: [/40[134]/] });
  await browser?.close();
});

async function listModels(key) {
  const run = await python(LIST_MODELS, { GATEWAY_URL: env.gateway, API_KEY: key });
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout.trim().split('\n').pop());
}

describe('API keys', () => {
  test('a key made in the page works for the openai client until it is revoked in the page', { timeout: 180_000 }, async () => {
    const name = unique('openai-client');
    await page.goto('/keys');
    await waitReady(page);
    await page.getByLabel(/^Name/).fill(name);
    const created = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/users/me/api-keys' && r.request().method() === 'POST');
    await page.getByRole('button', { name: /^Create( API)? key$/ }).click();
    assert.equal((await created).status(), 201);

    // Shown once, in full, in a read-only field with a copy button.
    const main = page.getByRole('main');
    const shown = page.getByRole('region', { name: /shown only now/ });
    const field = shown.getByLabel('API key');
    await field.waitFor({ timeout: UI_TIMEOUT });
    const key = await field.inputValue();
    assert.match(key, /^cyn_[A-Za-z0-9]{16,}$/);
    await shown.getByRole('button', { name: 'Copy' }).click();
    const copied = await eventually(() => page.evaluate(() => navigator.clipboard.readText()), { message: 'the key on the clipboard' });
    assert.equal(copied.trim(), key);
    await assertNoSecretsInStorage(page, [key]);

    // The official client lists the models with it.
    const before = await listModels(key);
    assert.equal(before.status, 200, JSON.stringify(before));
    assert.ok(before.models.includes(MODEL), JSON.stringify(before));

    // The list names it (never the key itself once the page has moved on).
    await page.reload();
    await waitReady(page);
    const row = page.getByRole('row').filter({ hasText: name });
    await row.waitFor({ timeout: UI_TIMEOUT });
    assert.ok(!(await page.content()).includes(key), 'the key is in the page again after a reload');
    assert.match(await row.innerText(), /active/);

    // Revoked in the page, after confirming.
    await row.getByRole('button', { name: /^Revoke/ }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor({ timeout: UI_TIMEOUT });
    const revoked = page.waitForResponse((r) => new URL(r.url()).pathname.startsWith('/v1/users/me/api-keys/') && r.request().method() === 'DELETE');
    await dialog.getByRole('button', { name: 'Revoke key' }).click();
    assert.ok([200, 204].includes((await revoked).status()));
    await eventually(async () => /revoked/i.test(await row.innerText()), { message: 'the key shown as revoked' });
    assert.equal(await row.getByRole('button', { name: /^Revoke/ }).count(), 0);
    assert.ok(!(await main.innerText()).includes(key));

    const after = await listModels(key);
    assert.deepEqual(after, { status: 401, type: 'AuthenticationError' });
    const listed = await api('GET', '/v1/users/me/api-keys', { token: await adminToken() });
    const entry = (listed.body.keys ?? listed.body.api_keys ?? listed.body).find?.((k) => k.name === name);
    assert.ok(entry, JSON.stringify(listed.body));
    assert.ok(entry.revoked_at || entry.status === 'revoked', JSON.stringify(entry));
    await assertNoSecretsInStorage(page, [key]);
  });
});
