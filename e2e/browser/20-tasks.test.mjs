// Tasks in the page: a prompt answered by the real model with its steps, commands whose log
// lines arrive while they run, a failure and its reason, and an upload over the published limit.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  adminToken,
  api,
  assertNoSecretsInStorage,
  env,
  eventually,
  launch,
  loggedIn,
  MODEL_TIMEOUT,
  UI_TIMEOUT,
  unique,
  waitReady,
} from './lib.mjs';

const TERMINAL = ['completed', 'failed', 'canceled', 'superseded'];

let browser;
let context;
let page;
before(async () => {
  browser = await launch();
  ({ context, page } = await loggedIn(browser));
});
after(async () => {
  await assertNoSecretsInStorage(page);
  context?.assertClean({ allowConsole: [/40[134]/] });
  await browser?.close();
});

/** Fills the new-task form in `mode` ("Ask the model", "Run commands") and submits it; returns the task id. */
async function createInPage(mode, text, name) {
  await page.goto('/tasks/new');
  await waitReady(page);
  await page.getByRole('radio', { name: mode }).check();
  const field = mode === 'Ask the model' ? page.getByLabel('Prompt', { exact: true }) : page.getByLabel(/^Commands/);
  await field.fill(text);
  if (name) await page.getByLabel(/^Name/).fill(name);
  const created = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/tasks' && r.request().method() === 'POST');
  await page.getByRole('button', { name: 'Create task' }).click();
  const resp = await created;
  assert.equal(resp.status(), 201, await resp.text());
  const task = await resp.json();
  await page.waitForURL((url) => url.pathname === `/tasks/${task.id}`, { timeout: UI_TIMEOUT });
  return task.id;
}

/** The status word the detail page shows. */
function statusBadge() {
  return page.locator('.status-line .badge');
}

async function taskStatus(id) {
  const resp = await api('GET', `/v1/tasks/${id}`, { token: await adminToken() });
  assert.equal(resp.status, 200, JSON.stringify(resp.body));
  return resp.body.status;
}

/** The largest file /openapi.json says POST /v1/tasks takes (its multipart `files` items' maxLength). */
async function publishedUploadLimit() {
  const spec = await api('GET', '/openapi.json');
  assert.equal(spec.status, 200);
  const post = spec.body.paths['/v1/tasks'].post;
  const content = post.requestBody?.content?.['multipart/form-data'];
  assert.ok(content, `POST /v1/tasks publishes no multipart upload: ${JSON.stringify(post.requestBody)}`);
  const deref = (s) => (s?.$ref ? s.$ref.slice(2).split('/').reduce((o, k) => o[k], spec.body) : s);
  const schema = deref(content.schema);
  const limit = post['x-max-upload-bytes'] ?? deref(deref(schema.properties?.files)?.items)?.maxLength;
  assert.ok(Number.isInteger(limit) && limit > 0, `no upload limit published: ${JSON.stringify(schema)}`);
  return limit;
}

describe('tasks', () => {
  test('a prompt task shows the model\'s answer and its steps', { timeout: MODEL_TIMEOUT + 60_000 }, async () => {
    const id = await createInPage('Ask the model', 'Tell me what model you are', unique('prompt'));
    await eventually(async () => TERMINAL.includes((await statusBadge().innerText()).trim()), {
      timeout: MODEL_TIMEOUT,
      interval: 500,
      message: 'the prompt task to end in the page',
    });
    assert.equal((await statusBadge().innerText()).trim(), 'completed');
    const result = await api('GET', `/v1/tasks/${id}/result`, { token: await adminToken() });
    assert.ok(result.body.answer?.trim(), JSON.stringify(result.body));

    const answer = page.locator('.answer');
    await answer.waitFor({ timeout: UI_TIMEOUT });
    const shown = (await answer.innerText()).replace(/^Answer\s*/, '').trim();
    assert.ok(shown.length > 0, 'the answer section is empty');
    // The page shows the API's answer (rendered from Markdown: compare its words).
    const words = result.body.answer.match(/[A-Za-z]{4,}/g) ?? [];
    for (const word of words.slice(0, 5)) assert.ok(shown.includes(word), `"${word}" of the answer is not shown: ${shown}`);

    const steps = await api('GET', `/v1/tasks/${id}/steps`, { token: await adminToken() });
    const expected = steps.body.steps;
    assert.ok(expected.length >= 1);
    const table = page.getByRole('table').filter({ has: page.getByRole('columnheader', { name: 'Model' }) });
    await eventually(async () => (await table.locator('tbody tr').count()) === expected.length, {
      message: `${expected.length} step rows`,
    });
    const rows = table.locator('tbody tr');
    for (let i = 0; i < expected.length; i += 1) {
      const cells = rows.nth(i).getByRole('cell');
      assert.match(await cells.nth(1).innerText(), new RegExp(expected[i].model.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      assert.match(await cells.nth(3).innerText(), new RegExp(`${expected[i].prompt_tokens}\\s*/\\s*${expected[i].completion_tokens}`));
    }
    assert.match(await rows.last().getByRole('cell').nth(2).innerText(), /answer/);
  });

  test('a commands task\'s log lines appear while it is still running', { timeout: 180_000 }, async () => {
    // Record, in the page, when each line first shows up in the log.
    await page.addInitScript(() => {
      window.__lineSeen = {};
      new MutationObserver(() => {
        const log = document.querySelector('[role="log"]');
        if (!log) return;
        for (const m of log.innerText.matchAll(/line-(\d)/g)) window.__lineSeen[m[1]] ??= performance.now();
      }).observe(document, { subtree: true, childList: true, characterData: true });
    });
    const id = await createInPage('Run commands', 'for i in 1 2 3 4 5; do echo line-$i; sleep 1; done', unique('lines'));
    const log = page.getByRole('log');
    await log.getByText('line-1').waitFor({ timeout: 120_000 });
    // The first line is on screen: the task must still be running on the server...
    const statusThen = await taskStatus(id);
    assert.ok(!TERMINAL.includes(statusThen), `line-1 appeared only once the task was ${statusThen}`);
    // ...and the page must not claim otherwise.
    assert.ok(!TERMINAL.includes((await statusBadge().innerText()).trim()));
    await eventually(async () => (await statusBadge().innerText()).trim() === 'completed', {
      timeout: 120_000,
      message: 'the commands task to complete in the page',
    });
    const seen = await page.evaluate(() => window.__lineSeen);
    const text = await log.innerText();
    const order = [1, 2, 3, 4, 5].map((n) => text.indexOf(`line-${n}`));
    assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1])), `lines out of order: ${text}`);
    // A second passed between lines in the sandbox: they arrived apart, not in one piece at the end.
    assert.ok(seen['5'] - seen['1'] >= 2000, `lines 1 and 5 appeared ${seen['5'] - seen['1']} ms apart`);
  });

  test('a task that fails shows why', { timeout: 180_000 }, async () => {
    const id = await createInPage('Run commands', 'echo about-to-fail >&2\nexit 3', unique('fails'));
    await eventually(async () => (await statusBadge().innerText()).trim() === 'failed', {
      timeout: 120_000,
      message: 'the failing task to show failed',
    });
    const why = page.getByRole('alert').filter({ hasText: 'Why it failed' });
    await why.waitFor({ timeout: UI_TIMEOUT });
    // The status can arrive (with the log stream's end) a moment before the job's result.
    await eventually(async () => /exit code 3/.test(await why.innerText()), { message: 'the exit code in the failure reason' });
    const text = await why.innerText();
    assert.match(text, /about-to-fail/);
    assert.equal(await taskStatus(id), 'failed');
    // The list shows it under its status filter, and not under another.
    await page.goto('/tasks?status=failed');
    await waitReady(page);
    await page.getByRole('link', { name: new RegExp('^fails-') }).first().waitFor({ timeout: UI_TIMEOUT });
    await page.goto('/tasks?status=completed');
    await waitReady(page);
    await page.getByRole('region', { name: /^Task/ }).or(page.getByText('No tasks match')).first().waitFor();
    assert.equal(await page.getByRole('link', { name: new RegExp('^fails-') }).count(), 0);
  });

  test('a file over the limit /openapi.json publishes is refused in the page, in the API\'s words, with no request sent', { timeout: 120_000 }, async () => {
    const limit = await publishedUploadLimit();

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cynode-upload-'));
    const big = path.join(dir, 'too-big.bin');
    fs.writeFileSync(big, Buffer.alloc(limit + 1, 120));
    try {
      await page.goto('/tasks/new');
      await waitReady(page);
      await page.getByText(/At most \d+ files/).waitFor({ timeout: UI_TIMEOUT });
      const sent = [];
      const watch = (r) => {
        if (new URL(r.url()).pathname === '/v1/tasks' && r.method() === 'POST') sent.push(r.url());
      };
      page.on('request', watch);
      await page.getByRole('radio', { name: 'Run commands' }).check();
      await page.getByLabel(/^Commands/).fill('ls attachments');
      await page.getByLabel('Attach files').setInputFiles(big);
      await page.getByRole('button', { name: 'Create task' }).click();
      const alert = page.locator('#task-files-error');
      await alert.waitFor({ timeout: UI_TIMEOUT });
      const said = (await alert.innerText()).trim();
      assert.ok(said.includes(String(limit + 1)) && said.includes(String(limit)), said);
      assert.equal(new URL(page.url()).pathname, '/tasks/new');
      // Nothing left the page (the file would have been a request of its own).
      await page.waitForLoadState('networkidle');
      page.off('request', watch);
      assert.deepEqual(sent, []);

      // The API's words for the same file, sent anyway: the page said the same.
      const form = new FormData();
      form.append('task', new Blob([JSON.stringify({ prompt: 'ls attachments', input_mode: 'commands' })], { type: 'application/json' }));
      form.append('file', new Blob([fs.readFileSync(big)]), 'too-big.bin');
      const direct = await fetch(`${env.gateway}/v1/tasks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await adminToken()}` },
        body: form,
      });
      const problem = await direct.json();
      assert.equal(direct.status, 413, JSON.stringify(problem));
      assert.ok(said.includes(problem.detail), `page: ${said}\nAPI: ${problem.detail}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a file of exactly the published limit is accepted with the task', { timeout: 120_000 }, async () => {
    const limit = await publishedUploadLimit();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cynode-upload-'));
    const file = path.join(dir, 'at-limit.bin');
    fs.writeFileSync(file, Buffer.alloc(limit, 120));
    try {
      await page.goto('/tasks/new');
      await waitReady(page);
      await page.getByText(/At most \d+ files/).waitFor({ timeout: UI_TIMEOUT });
      await page.getByRole('radio', { name: 'Run commands' }).check();
      await page.getByLabel(/^Commands/).fill('wc -c attachments/at-limit.bin');
      await page.getByLabel('Attach files').setInputFiles(file);
      assert.equal(await page.locator('#task-files-error').count(), 0, 'the page refused a file of exactly the limit');
      const created = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/tasks' && r.request().method() === 'POST', { timeout: 60_000 });
      await page.getByRole('button', { name: 'Create task' }).click();
      const resp = await created;
      assert.equal(resp.status(), 201, `a file of exactly the published ${limit} bytes was refused: ${await resp.text()}`);
      await page.waitForURL(/\/tasks\/[0-9a-f-]{36}$/, { timeout: UI_TIMEOUT });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
