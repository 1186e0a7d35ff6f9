// Chat: an answer streamed from the node's real model arrives in pieces, a thread has a deep
// link, and a model's answer holding hostile Markdown is rendered inert.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  assertNoSecretsInStorage,
  env,
  launch,
  loggedIn,
  MODEL_TIMEOUT,
  UI_TIMEOUT,
  waitReady,
} from './lib.mjs';

const MODEL = process.env.MODEL || 'smollm2:135m';

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

describe('chat', () => {
  test('an answer streams in: several pieces reach the page before it is complete', { timeout: MODEL_TIMEOUT }, async () => {
    await page.goto('/chat');
    await waitReady(page);
    await page.getByLabel('Model').selectOption(MODEL);
    // Every change of the answer's text while it is still streaming, seen from inside the page.
    await page.evaluate(() => {
      window.__answerTexts = [];
      window.__streamEnded = null;
      const seen = () => {
        const answers = document.querySelectorAll('article.msg.assistant');
        const last = answers[answers.length - 1];
        if (!last) return;
        const body = last.querySelector('.markdown, .md, div:not(.who)') ?? last;
        const text = body.textContent ?? '';
        const list = window.__answerTexts;
        if (last.classList.contains('streaming')) {
          if (text && list[list.length - 1] !== text && !/^Thinking/.test(text.trim())) list.push(text);
        } else if (list.length && window.__streamEnded === null) {
          window.__streamEnded = text;
        }
      };
      new MutationObserver(seen).observe(document.querySelector('main'), {
        subtree: true,
        childList: true,
        characterData: true,
        attributes: true,
        attributeFilter: ['class'],
      });
    });
    const sse = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/chat/completions');
    const message = 'Write three short sentences about the sea. <b>not bold</b>';
    await page.getByLabel('Message').fill(message);
    await page.getByRole('button', { name: 'Send' }).click();
    const response = await sse;
    assert.equal(response.status(), 200);
    assert.match((await response.allHeaders())['content-type'] ?? '', /text\/event-stream/);
    // While it streams, Stop is offered; when it ends, Send is back.
    await page.getByRole('button', { name: 'Stop' }).waitFor({ timeout: UI_TIMEOUT }).catch(() => {
      // a very short answer may already be over
    });
    await page.getByRole('button', { name: 'Send' }).waitFor({ timeout: MODEL_TIMEOUT });
    const texts = await page.evaluate(() => window.__answerTexts);
    const final = await page.evaluate(() => window.__streamEnded);
    assert.ok(texts.length >= 3, `only ${texts.length} partial answers were shown: ${JSON.stringify(texts)}`);
    for (let i = 1; i < texts.length; i += 1) {
      assert.ok(texts[i].length >= texts[i - 1].length, `the answer shrank while streaming: ${JSON.stringify(texts)}`);
    }
    assert.ok(final && final.trim().length > 0, 'no final answer');
    assert.ok(texts[0].length < final.length, 'the first piece shown was already the whole answer');

    const answer = page.getByRole('article', { name: /^Answer/ }).last();
    assert.match(await answer.innerText(), /Tokens: \d+ in · \d+ out/);
    // The user's own words are shown as text, never as markup.
    const mine = page.getByRole('article', { name: 'You' }).last();
    assert.ok((await mine.innerText()).includes('<b>not bold</b>'));
    assert.equal(await mine.locator('b').count(), 0);

    // The thread has a deep link: the URL names it, and opening it shows the conversation.
    await page.waitForURL(/\/chat\/[0-9a-f-]{36}$/, { timeout: UI_TIMEOUT });
    const threadUrl = page.url();
    await page.goto(threadUrl);
    await waitReady(page);
    await page.getByRole('article', { name: 'You' }).filter({ hasText: 'three short sentences' }).waitFor({ timeout: UI_TIMEOUT });
    const stored = page.getByRole('article', { name: /^Answer/ }).last();
    assert.equal((await stored.innerText()).includes(final.trim().slice(0, 20)), true, 'the stored answer differs from the streamed one');
    assert.ok(await page.getByRole('navigation', { name: 'Chat threads' }).getByRole('link').count() >= 1);
  });

  test('Markdown in an answer is rendered, and its script and javascript: links are inert', async () => {
    assert.ok(env.xssThread, 'XSS_THREAD_ID is not set by console.rs');
    const flagged = [];
    page.on('dialog', (d) => {
      flagged.push(d.message());
      void d.dismiss();
    });
    await page.goto(`/chat/${env.xssThread}`);
    await waitReady(page);
    const answer = page.getByRole('article', { name: /^Answer/ }).filter({ hasText: 'Rendered heading' });
    await answer.waitFor({ timeout: UI_TIMEOUT });
    // It is Markdown, rendered: a heading and bold text are elements, not characters.
    assert.equal(await answer.getByRole('heading', { name: 'Rendered heading' }).count(), 1);
    assert.equal(await answer.locator('strong', { hasText: 'bold' }).count(), 1);
    // The hostile parts are gone or harmless.
    assert.equal(await answer.locator('script, iframe, object, embed').count(), 0);
    const handlers = await answer.evaluate((el) =>
      [...el.querySelectorAll('*')].flatMap((n) => [...n.attributes].filter((a) => /^on/i.test(a.name)).map((a) => `${n.tagName}.${a.name}`)),
    );
    assert.deepEqual(handlers, []);
    const hrefs = await page.locator('a[href]').evaluateAll((links) => links.map((a) => a.getAttribute('href')));
    assert.deepEqual(hrefs.filter((h) => /^\s*javascript:/i.test(h)), []);
    const safe = answer.getByRole('link', { name: 'a safe link' });
    assert.equal(await safe.getAttribute('href'), 'https://example.invalid/docs');
    assert.match((await safe.getAttribute('rel')) ?? '', /noopener/);
    // Clicking what is left of the javascript: links runs nothing.
    for (const text of ['a javascript link', 'an html link']) {
      const el = answer.getByText(text, { exact: true });
      assert.equal(await el.count(), 1, `"${text}" is not shown`);
      await el.click();
    }
    await page.waitForLoadState('networkidle');
    // Two frames after everything loaded (an <img> that failed would have fired onerror).
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
    assert.equal(await page.evaluate(() => window.__cynodeXss), undefined, 'the hostile Markdown ran script');
    assert.deepEqual(flagged, []);
    assert.equal(new URL(page.url()).pathname, `/chat/${env.xssThread}`);
  });
});
