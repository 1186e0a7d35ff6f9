// Performance: what the login page and the task list cost to load (gzip-compressed JS and CSS),
// the browser's own time-to-interactive numbers, and a list of over a thousand tasks that keeps
// at most 200 rows in the DOM and scrolls without a long task over 50 ms. The numbers are
// printed as `console-<name>=<value>` lines and saved in $CONSOLE_ARTIFACTS/metrics.json.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';

import {
  api,
  assertNoSecretsInStorage,
  createUser,
  env,
  eventually,
  launch,
  login,
  newContext,
  token,
  UI_TIMEOUT,
  waitReady,
} from './lib.mjs';

// `just bench-console`: times are asserted too (no long task over 50 ms while scrolling, time to
// interactive under a second); in the test suite they are recorded in metrics.json only.
const STRICT = process.env.CONSOLE_PERF_STRICT === '1';

const BUDGET_BYTES = 300 * 1024;
/** The task list's scrolling box: the region holding the ARIA table of tasks. */
const LIST = 'main [role="region"]:has([role="table"])';
const TASKS = 1_050;
const metrics = {};

function record(name, value) {
  metrics[name] = value;
  console.log(`console-${name.replace(/_/g, '-')}=${value}`);
}

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  const file = path.join(env.artifacts, 'metrics.json');
  const previous = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
  fs.writeFileSync(file, `${JSON.stringify({ ...previous, ...metrics }, null, 2)}\n`);
  await browser?.close();
});

describe('performance', () => {
  test('the login page and the task list load at most 300 KB of gzip-compressed JS and CSS', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    const loaded = [];
    page.on('requestfinished', async (request) => {
      const type = request.resourceType();
      if (type !== 'script' && type !== 'stylesheet') return;
      const response = await request.response();
      const sizes = await request.sizes();
      const headers = await response.allHeaders();
      loaded.push({
        url: request.url(),
        type,
        encoding: headers['content-encoding'] ?? 'identity',
        transferred: sizes.responseBodySize,
        body: await response.body(),
      });
    });
    await page.goto('/login');
    await page.getByRole('button', { name: 'Log in' }).waitFor({ timeout: UI_TIMEOUT });
    await login(page);
    await page.getByRole('heading', { level: 1, name: 'Tasks' }).waitFor();
    await page.waitForLoadState('networkidle');
    assert.ok(loaded.length >= 2, `only ${loaded.length} scripts and stylesheets seen`);
    for (const r of loaded) {
      assert.ok(new URL(r.url).origin === env.gateway, `${r.url} is not from the gateway`);
      assert.equal(r.encoding, 'gzip', `${r.url} was not served gzip-compressed`);
    }
    // What went over the wire, compressed; and the same bodies gzipped here at level 9 as a check.
    const transferred = loaded.reduce((n, r) => n + r.transferred, 0);
    const gzip9 = loaded.reduce((n, r) => n + zlib.gzipSync(r.body, { level: 9 }).length, 0);
    const raw = loaded.reduce((n, r) => n + r.body.length, 0);
    record('gzip_js_css_bytes_login_and_tasks', transferred);
    record('raw_js_css_bytes_login_and_tasks', raw);
    console.log(`console-js-css-files=${loaded.map((r) => `${new URL(r.url).pathname}:${r.transferred}`).join(',')}`);
    assert.ok(transferred <= BUDGET_BYTES, `login + task list load ${transferred} bytes of compressed JS+CSS, over ${BUDGET_BYTES}`);
    assert.ok(gzip9 <= BUDGET_BYTES, `gzip -9 of the JS+CSS is ${gzip9} bytes`);
    // Lazily loaded pages stayed out: no chunk of the chat, keys, admin pages or Swagger UI.
    for (const r of loaded) {
      assert.doesNotMatch(new URL(r.url).pathname, /swagger|ApiDocs|Chat|Nodes|Users|Audit/i, `${r.url} loaded eagerly`);
    }
    context.assertClean({ allowConsole: [/401/] });
    await context.close();
  });

  test('time to interactive of the task list, from the browser\'s performance API', async () => {
    // A task in the list to render.
    const made = await api('POST', '/v1/tasks', { token: await token(), body: { prompt: 'true', input_mode: 'commands' } });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const context = await newContext(browser);
    const page = await context.newPage();
    await login(page);
    // A fresh load of the list, timed by the browser: the navigation entry, and when the table's
    // first row was in the DOM (observed from the document's start).
    await page.addInitScript(() => {
      new MutationObserver((_, observer) => {
        if (document.querySelector('main [role="table"] [role="row"][aria-rowindex="2"]')) {
          performance.mark('test-list-rendered');
          observer.disconnect();
        }
      }).observe(document, { subtree: true, childList: true });
    });
    await page.goto('/tasks');
    await waitReady(page);
    await page.waitForFunction(() => performance.getEntriesByName('test-list-rendered').length > 0, null, { timeout: UI_TIMEOUT });
    const timing = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const ready = performance.getEntriesByName('console-ready')[0];
      return {
        domInteractive: nav.domInteractive,
        domContentLoaded: nav.domContentLoadedEventEnd,
        load: nav.loadEventEnd,
        consoleReady: ready ? ready.startTime : null,
        listRendered: performance.getEntriesByName('test-list-rendered')[0].startTime,
      };
    });
    assert.ok(timing.domInteractive > 0 && timing.listRendered >= timing.domInteractive, JSON.stringify(timing));
    const tti = Math.round(timing.consoleReady ?? timing.domContentLoaded);
    record('tti_ms', tti);
    record('dom_interactive_ms', Math.round(timing.domInteractive));
    record('task_list_rendered_ms', Math.round(timing.listRendered));
    // A time is a measurement, not a test (a busy machine is slower, the console no worse):
    // it is asserted only when measuring on purpose (`just bench-console`).
    if (STRICT) assert.ok(tti < 1_000, `time to interactive ${tti} ms`);
    await context.close();
  });

  test('a list of over 1,000 tasks keeps at most 200 rows in the DOM while it scrolls to the end (long tasks measured; asserted by just bench-console)', { timeout: 600_000 }, async () => {
    // A user of their own whose tasks ask for a node label no node has: real tasks through the
    // real API, which stay queued (with the reason) instead of making a thousand sandboxes.
    const user = await createUser('perf');
    const bearer = await token(user.handle, user.password);
    let made = 0;
    const worker = async () => {
      while (made < TASKS) {
        const n = made;
        made += 1;
        const resp = await api('POST', '/v1/tasks', {
          token: bearer,
          body: {
            prompt: `echo task ${n}`,
            input_mode: 'commands',
            task_name: `perf-${String(n).padStart(4, '0')}`,
            requirements: { labels: ['perf-test-no-such-label'] },
          },
        });
        assert.equal(resp.status, 201, JSON.stringify(resp.body));
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: 6 }, worker));
    console.log(`console-created-${TASKS}-tasks-ms=${Date.now() - started}`);
    try {
      await scrollTheList(user, bearer);
    } finally {
      // The thousand queued tasks go, so that they hold up no job that comes after this test.
      await cancelAll(bearer);
    }
  });
});

/** Logs in as the perf user and scrolls their list of a thousand tasks. */
async function scrollTheList(user, bearer) {
  const context = await newContext(browser);
  await context.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, duration: e.duration });
    }).observe({ type: 'longtask', buffered: true });
  });
  const page = await context.newPage();
  await login(page, user.handle, user.password);

  // Long tasks are wall-clock time: on this 2-core machine, shared with the model server and
  // other tests, a pass can be held up by someone else. Up to three passes, each on a freshly
  // loaded list; a long task that is the console's own shows up in every one of them.
  const passes = [];
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const pass = await scrollThrough(page);
    passes.push(pass);
    console.log(`console-scroll-pass-${attempt + 1}=${JSON.stringify({ ...pass, longTasks: pass.longTasks.map((e) => Math.round(e.duration)) })} load=${os.loadavg()[0].toFixed(2)}`);
    assert.ok(pass.lastIndex >= TASKS + 1, `the list scrolled only to row ${pass.lastIndex} of ${TASKS + 1}`);
    assert.ok(pass.most > 5 && pass.most <= 200, `${pass.most} rows in the DOM at most`);
    if (!pass.longTasks.some((e) => e.duration > 50)) break;
  }
  const best = passes.reduce((a, b) => (longestOf(b) < longestOf(a) ? b : a));
  record('longest_long_task_ms', Math.round(longestOf(best)));
  record('max_rows_in_dom', Math.max(...passes.map((p) => p.most)));
  // Two frames per step: about 33 ms when nothing holds the main thread up.
  record('slowest_scroll_step_ms', Math.round(best.slowestStep));
  record('scroll_passes', passes.length);
  if (STRICT) {
    assert.deepEqual(best.longTasks.filter((e) => e.duration > 50), [], `long tasks over 50 ms in each of ${passes.length} scroll passes`);
  }
  await assertNoSecretsInStorage(page, [bearer]);
  context.assertClean({ allowConsole: [/40[134]/] });
  await context.close();
}

/** Cancels every unfinished task the bearer's user created. */
async function cancelAll(bearer) {
  const ids = [];
  let cursor = '';
  do {
    const page = await api('GET', `/v1/tasks?mine=true&status=queued&limit=200${cursor ? `&cursor=${cursor}` : ''}`, { token: bearer });
    assert.equal(page.status, 200, JSON.stringify(page.body));
    ids.push(...page.body.tasks.map((t) => t.id));
    cursor = page.body.next_cursor ?? (page.body.next_offset != null ? String(page.body.next_offset) : '');
  } while (cursor);
  let next = 0;
  await Promise.all(Array.from({ length: 6 }, async () => {
    while (next < ids.length) {
      const id = ids[next];
      next += 1;
      const resp = await api('POST', `/v1/tasks/${id}/cancel`, { token: bearer });
      assert.ok([200, 409].includes(resp.status), JSON.stringify(resp.body));
    }
  }));
}

function longestOf(pass) {
  return pass.longTasks.reduce((m, e) => Math.max(m, e.duration), 0);
}

/**
 * Loads the task list afresh and scrolls it from top to bottom the way a fast wheel would, 600 px
 * every two frames, until its last task is on screen (pages load as the end comes near). Checks
 * the DOM's row count at every step; returns the long tasks seen while scrolling.
 */
async function scrollThrough(page) {
  await page.goto('/tasks');
  await waitReady(page);
  const region = page.locator(LIST);
  await region.getByRole('row').nth(1).waitFor({ timeout: UI_TIMEOUT });
  const scrollStart = await page.evaluate(() => performance.now());
  let most = 0;
  let lastIndex = 0;
  let slowestStep = 0;
  for (let step = 0; step < 2_000 && lastIndex < TASKS + 1; step += 1) {
    const stepMs = await page.evaluate((list) => new Promise((resolve) => {
      const el = document.querySelector(list);
      const t0 = performance.now();
      el.scrollTop += 600;
      requestAnimationFrame(() => requestAnimationFrame(() => resolve(performance.now() - t0)));
    }), LIST);
    slowestStep = Math.max(slowestStep, stepMs);
    const state = await page.evaluate((list) => {
      const el = document.querySelector(list);
      const indexes = [...el.querySelectorAll('[role="row"][aria-rowindex]')].map((r) => Number(r.getAttribute('aria-rowindex')));
      return { rows: el.querySelectorAll('[role="row"]').length, last: Math.max(...indexes), atEnd: el.scrollTop + el.clientHeight >= el.scrollHeight - 2 };
    }, LIST);
    most = Math.max(most, state.rows);
    lastIndex = Math.max(lastIndex, state.last);
    assert.ok(state.rows <= 200, `${state.rows} rows in the DOM at step ${step}`);
    if (state.atEnd && lastIndex < TASKS + 1) {
      // At the bottom of what is loaded: the next page must come.
      await eventually(() => page.evaluate((list) => {
        const el = document.querySelector(list);
        return el.scrollTop + el.clientHeight < el.scrollHeight - 2;
      }, LIST), { timeout: UI_TIMEOUT, message: `more tasks to load after row ${lastIndex}` });
    }
  }
  const longTasks = await page.evaluate((t0) => window.__longTasks.filter((e) => e.start >= t0), scrollStart);
  return { most, lastIndex, slowestStep: Math.round(slowestStep), longTasks };
}
