// The chat page `qnext serve` serves at /, driven in Debian's headless chromium (puppeteer-core)
// against real servers on the tiny random-weight model: loading, streaming, stop (the server frees
// the sequence), reload, edit and resend, regenerate, settings in the request body, the API key,
// errors, hostile user text through the real server and hostile model output from a fake server,
// import/export, accessibility basics, and screenshots (light/dark, desktop/phone).
//
//   cd tests/server/webui && npm ci && QNEXT_BIN=../../../build/qnext node --test webui.test.mjs
//
// Environment: as the e2e tests (QNEXT_BIN, QNEXT_ROOT, QNEXT_E2E_TIMEOUT_SCALE), plus
// QNEXT_CHROMIUM (default /usr/bin/chromium) and QNEXT_WEBUI_SCREENSHOTS (a folder for the
// screenshots; default a temporary one). ctest runs it as `server_webui`.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import {
  API_KEY, ROOT, SCALE, makeModel, metricValue, parseMetrics, rawGet, servers, sleep, startServer, stopServer, test,
} from '../e2e/processes.mjs';
import {
  WAIT, assertNoErrors, chunk, closeSettings, finish, goto, launch, openPage, openSettings, send, setField, shown,
  startFakeServer, usage, waitAnswered, waitReady,
} from './browser.mjs';
import { CANNED, DEMO_QUESTION, HOSTILE, PAYLOADS } from './payloads.mjs';

let tmp;
let modelDir;
let srv;     // the main server: no key, the Qwen3 hybrid template (a thinking switch)
let keySrv;  // --api-key
let browser;
let fake;    // the fake chat server for canned answers
let MODEL;
let chat;    // the page the chat-flow tests share, in order

const CTX = 8192;
const shotsDir = () => process.env.QNEXT_WEBUI_SCREENSHOTS || path.join(tmp, 'screenshots');

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qnext-webui-'));
  modelDir = path.join(tmp, 'model');
  makeModel(modelDir);
  fs.copyFileSync(path.join(ROOT, 'assets/tokenizer/qwen3-hybrid.jinja'), path.join(modelDir, 'chat_template.jinja'));
  // --queue 1: a fourth request while two run and one waits is answered 503 (the busy test).
  [srv, keySrv, browser, fake] = await Promise.all([
    startServer(modelDir, ['--ctx', String(CTX), '--parallel', '2', '--queue', '1', '--alias', 'qnext-tiny'], { name: 'webui' }),
    startServer(modelDir, ['--api-key', API_KEY, '--parallel', '1', '--alias', 'qnext-tiny'], { name: 'webui-key' }),
    launch(),
    startFakeServer(CANNED),
  ]);
  MODEL = (await rawGet(srv, '/props', {})).json.model;
});

after(async () => {
  if (browser) await browser.cleanup();
  if (fake) await fake.close();
  for (const s of [...servers]) await stopServer(s, 2000);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// GET with exact request headers (fetch adds and undoes its own Accept-Encoding).
function get(s, route, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get(`${s.base}${route}`, { headers }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
    }).on('error', reject);
  });
}

async function runningSequences(s = srv) {
  const r = await rawGet(s, '/metrics', {});
  assert.equal(r.status, 200);
  const ms = parseMetrics(r.text);
  return {
    running: metricValue(ms, 'qnext_running_sequences'),
    queued: metricValue(ms, 'qnext_queue_depth'),
    cancelled: metricValue(ms, 'qnext_requests_cancelled_total'),
  };
}

async function waitMetric(pred, what, s = srv) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < 10_000 * SCALE) {
    last = await runningSequences(s);
    if (pred(last)) return last;
    await sleep(50);
  }
  assert.fail(`${what}: ${JSON.stringify(last)}`);
}

// Sets window flags only when a payload's code runs; CSP is bypassed in these pages, so a
// rendering bug would run it. A canary with the same mechanism, inserted by the test itself, shows
// the flags work and that the page had the time to run an inserted handler.
async function assertNoPayloadRan(page) {
  await page.evaluate(() => {
    const probe = document.createElement('div');
    probe.innerHTML = '<img src="data:," onerror="window.__canary = 1">';
    document.body.append(probe);
  });
  await page.waitForFunction(() => window.__canary === 1, WAIT());
  const ran = await page.evaluate((n) => Array.from({ length: n }, (_, i) => window[`__pwned${i}`]).map((v, i) => (v ? i : -1)).filter((i) => i >= 0), PAYLOADS.length);
  assert.deepEqual(ran, [], `payloads that ran: ${ran.map((i) => PAYLOADS[i]).join(' | ')}`);
  const bad = await page.$$eval('#messages script, #messages img, #messages iframe, #messages object, #messages embed, #messages [onerror], #messages [onload], #messages [ontoggle], #messages [srcdoc], #conversations script, #conversations img',
    (els) => els.map((e) => e.outerHTML));
  assert.deepEqual(bad, [], 'elements from message text');
  const links = await page.$$eval('#messages a', (as) => as.map((a) => ({ href: a.getAttribute('href'), protocol: a.protocol, rel: a.rel, target: a.target })));
  for (const a of links) {
    assert.ok(['http:', 'https:', 'mailto:'].includes(a.protocol), `link ${a.href}`);
    assert.equal(a.rel, 'noopener noreferrer', `rel of ${a.href}`);
    assert.equal(a.target, '_blank');
  }
  return links;
}

// ---------------------------------------------------------------------------------------------

test('GET / and its files: types, CSP, gzip, ETag, open without the key; --no-webui turns it off', async () => {
  const plain = await get(srv, '/');
  assert.equal(plain.status, 200);
  assert.equal(plain.headers['content-type'], 'text/html; charset=utf-8');
  const csp = plain.headers['content-security-policy'];
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe/);
  assert.equal(plain.headers['x-content-type-options'], 'nosniff');
  assert.equal(plain.headers['content-encoding'], undefined);
  const gz = await get(srv, '/', { 'Accept-Encoding': 'gzip, deflate, br' });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.ok(gz.body.length < plain.body.length / 2);
  assert.deepEqual(zlib.gunzipSync(gz.body), plain.body, 'the gzip copy is the page');
  assert.equal((await get(srv, '/', { 'If-None-Match': plain.headers.etag })).status, 304);

  // Every file index.html and the modules name, with its type, gzip-encoded as asked.
  const html = plain.body.toString();
  const files = [...html.matchAll(/(?:src|href)="([a-z0-9_.-]+)"/g)].map((m) => m[1]);
  const types = { mjs: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', svg: 'image/svg+xml' };
  const seen = new Set();
  while (files.length) {
    const f = files.pop();
    if (seen.has(f)) continue;
    seen.add(f);
    const r = await get(srv, `/${f}`, { 'Accept-Encoding': 'gzip' });
    assert.equal(r.status, 200, f);
    assert.equal(r.headers['content-type'], types[f.split('.').pop()], f);
    assert.equal(r.headers['content-encoding'], 'gzip', f);
    const text = zlib.gunzipSync(r.body).toString();
    for (const m of text.matchAll(/from '\.\/([a-z0-9_-]+\.mjs)'/g)) files.push(m[1]);
  }
  assert.ok(seen.size >= 8, `files: ${[...seen]}`);

  // With --api-key: the page and /props are open (the page must load to ask for the key), /v1 is not.
  assert.equal((await get(keySrv, '/')).status, 200);
  const props = await rawGet(keySrv, '/props', {});
  assert.equal(props.status, 200);
  assert.equal(props.json.api_key_required, true);
  assert.equal((await rawGet(keySrv, '/v1/models', {})).status, 401);
  const p = (await rawGet(srv, '/props', {})).json;
  assert.equal(p.context_size, CTX);
  assert.deepEqual(p.thinking, { switchable: true, on_by_default: true });
  assert.equal(p.default_sampling.temperature, 0.7);

  const off = await startServer(modelDir, ['--no-webui'], { name: 'no-webui' });
  try {
    const r = await rawGet(off, '/', {});
    assert.equal(r.status, 404);
    assert.equal(r.json.error.code, 'not_found');
    assert.equal((await rawGet(off, '/app.mjs', {})).status, 404);
    assert.equal((await rawGet(off, '/props', {})).status, 200, '/props stays');
  } finally {
    await stopServer(off, 2000);
  }
});

test('loads without errors, sends with Enter (Shift+Enter: new line), the answer grows in steps, usage shown', async () => {
  chat = await openPage(browser, `${srv.base}/`);
  await waitReady(chat, MODEL);
  assert.equal(await chat.title(), 'qnext chat');
  // The defaults come from generation_config.json through /props.
  await openSettings(chat);
  const placeholders = await chat.$$eval('#sampling-fields input', (is) => Object.fromEntries(is.map((i) => [i.id, i.placeholder])));
  assert.equal(placeholders['set-temperature'], '0.7');
  assert.equal(placeholders['set-top-p'], '0.8');
  assert.equal(placeholders['set-top-k'], '20');
  assert.equal(await chat.$eval('#set-thinking', (e) => e.checked && !e.closest('[hidden]')), true);
  // A seed makes the random model's answer the same each run; 160 tokens take several frames.
  await setField(chat, '#set-seed', 7);
  await setField(chat, '#set-max-tokens', 160);
  await closeSettings(chat);

  // Record the answer's length at every change of the page.
  await chat.evaluate(() => {
    window.__lengths = [];
    new MutationObserver(() => {
      const a = document.querySelector('#messages article.msg.assistant .content');
      const busy = document.querySelector('#messages').getAttribute('aria-busy') === 'true';
      if (a && busy) window.__lengths.push(a.textContent.length);
    }).observe(document.querySelector('#messages'), { childList: true, subtree: true, characterData: true });
  });
  await chat.click('#input');
  await chat.keyboard.type('Hi');
  await chat.keyboard.down('Shift');
  await chat.keyboard.press('Enter');
  await chat.keyboard.up('Shift');
  await chat.keyboard.type('there');
  assert.equal(await chat.$eval('#input', (e) => e.value), 'Hi\nthere');
  assert.equal(chat.chatRequests.length, 0, 'Shift+Enter does not send');
  await chat.keyboard.press('Enter');
  const msgs = await waitAnswered(chat);
  assert.equal(msgs.length, 2);
  assert.deepEqual(msgs[0], { role: 'user', text: 'Hi\nthere', meta: '' });
  assert.ok(msgs[1].text.length > 0, 'an answer');
  const lengths = await chat.evaluate(() => [...new Set(window.__lengths.filter((n) => n > 0))]);
  assert.ok(lengths.length >= 2, `the answer should appear in steps, saw lengths ${lengths}`);
  assert.ok(lengths.every((n, i) => i === 0 || n > lengths[i - 1]), `lengths only grow: ${lengths}`);

  const body = chat.chatRequests[0].body;
  assert.equal(body.stream, true);
  assert.deepEqual(body.stream_options, { include_usage: true });
  assert.equal(body.model, MODEL);
  assert.deepEqual(body.messages, [{ role: 'user', content: 'Hi\nthere' }]);
  assert.equal(body.temperature, 0.7);
  assert.equal(body.top_p, 0.8);
  assert.equal(body.top_k, 20);
  assert.equal(body.seed, 7);
  assert.equal(body.max_tokens, 160);
  assert.deepEqual(body.chat_template_kwargs, { enable_thinking: true });
  assert.equal(chat.chatRequests[0].headers.authorization, undefined, 'no key without --api-key');

  // Usage: token counts and speed under the answer, context used in the header.
  const m = /^(\d+) tokens · ([\d.]+) tok\/s · prompt (\d+)/.exec(msgs[1].meta);
  assert.ok(m, `stats line: ${msgs[1].meta}`);
  assert.ok(Number(m[1]) >= 1 && Number(m[1]) <= 160);
  assert.ok(Number(m[2]) > 0);
  const ctx = await chat.$eval('#ctx', (e) => e.textContent);
  assert.equal(ctx, `· context ${(Number(m[3]) + Number(m[1])).toLocaleString('en-US')} / ${CTX.toLocaleString('en-US')}`);
  assert.equal(await chat.$eval('#title', (e) => e.textContent), 'Hi');
  // Nothing from anywhere but the server: no CDN, font or script from the network.
  assert.deepEqual(chat.urls.filter((u) => !u.startsWith(`${srv.base}/`)), []);
  for (const f of ['/', '/app.mjs', '/markdown.mjs', '/style.css', '/favicon.svg', '/props'])
    assert.ok(chat.urls.includes(`${srv.base}${f}`), `the page loaded ${f}`);
  assertNoErrors(chat);
});

test('Stop and Esc abort mid-stream; the server frees the sequence', async () => {
  // Long answers for this test: the request goes to the real server with ignore_eos added.
  chat.route = async (req) => {
    if (!(req.url().endsWith('/v1/chat/completions') && req.method() === 'POST')) return false;
    const body = JSON.parse(req.postData());
    await req.continue({ postData: JSON.stringify({ ...body, ignore_eos: true, max_tokens: 4000 }) });
    return true;
  };
  try {
    for (const how of ['button', 'Escape']) {
      const { cancelled } = await runningSequences();
      await send(chat, `stop me (${how})`);
      await chat.waitForFunction(() => (document.querySelector('#messages article.msg.assistant:last-of-type .content')?.textContent.length ?? 0) > 0, WAIT());
      await waitMetric((m) => m.running === 1, 'the answer runs on the server');
      if (how === 'button') await chat.click('#stop');
      else await chat.keyboard.press('Escape');
      const msgs = await waitAnswered(chat);
      const last = msgs[msgs.length - 1];
      assert.ok(last.text.length > 0, 'the partial answer stays');
      assert.match(last.meta, /stopped/);
      await waitMetric((m) => m.running === 0 && m.cancelled === cancelled + 1, `no running sequence after ${how}`);
    }
  } finally {
    chat.route = null;
  }
  assert.equal(await chat.$eval('#send', (e) => e.hidden), false);
  assertNoErrors(chat);
});

test('reload finds the conversation; new chat, switch, rename, delete', async () => {
  const before = await shown(chat);
  await goto(chat, `${srv.base}/`);
  await waitReady(chat, MODEL);
  assert.deepEqual(await shown(chat), before, 'the conversation reopens as it was');
  const titles = () => chat.$$eval('#conversations .conv-title', (es) => es.map((e) => e.textContent));
  assert.deepEqual(await titles(), ['Hi']);

  await chat.click('#new-chat');
  assert.equal((await shown(chat)).length, 0);
  await send(chat, 'second chat');
  await waitAnswered(chat);
  assert.deepEqual(await titles(), ['second chat', 'Hi'], 'newest first');

  // Back to the first one, then rename it (the list is drawn anew on each change).
  await chat.click('#conversations .conv:nth-child(2) .conv-open');
  assert.deepEqual(await shown(chat), before);
  await chat.click('#conversations .conv:nth-child(2) .conv-rename');
  await chat.waitForSelector('.rename-box', WAIT());
  await chat.keyboard.down('Control');
  await chat.keyboard.press('a');
  await chat.keyboard.up('Control');
  await chat.keyboard.type('Greetings');
  await chat.keyboard.press('Enter');
  assert.deepEqual(await titles(), ['second chat', 'Greetings']);
  assert.equal(await chat.$eval('#title', (e) => e.textContent), 'Greetings');

  // Delete the other (the page asks first; this page accepts).
  await chat.click('#conversations .conv:first-child .conv-delete');
  await chat.waitForFunction(() => document.querySelectorAll('#conversations .conv').length === 1, WAIT());
  await goto(chat, `${srv.base}/`);
  await waitReady(chat, MODEL);
  assert.deepEqual(await titles(), ['Greetings'], 'rename and delete are kept');
  assert.deepEqual(await shown(chat), before);
  assertNoErrors(chat);
});

test('edit an earlier message and resend from there; regenerate; copy', async () => {
  await send(chat, 'a follow-up');
  let msgs = await waitAnswered(chat);
  assert.equal(msgs.length, 8);  // Hi, its answer, two stopped exchanges, the follow-up and its answer

  // Edit the first message: everything after it goes, and the request starts from the new text.
  await chat.click('#messages article.msg.user[data-index="0"] .act-edit');
  await chat.waitForSelector('.edit-box', WAIT());
  await chat.$eval('.edit-box', (e) => { e.value = ''; });
  await chat.type('.edit-box', 'Hello again');
  const n = chat.chatRequests.length;
  await chat.keyboard.press('Enter');
  msgs = await waitAnswered(chat);
  assert.equal(msgs.length, 2);
  assert.equal(msgs[0].text, 'Hello again');
  assert.deepEqual(chat.chatRequests[n].body.messages, [{ role: 'user', content: 'Hello again' }]);

  // Regenerate: the same request again, without the old answer.
  await chat.click('#messages article.msg.assistant[data-index="1"] .act-regenerate');
  msgs = await waitAnswered(chat);
  assert.equal(msgs.length, 2);
  assert.deepEqual(chat.chatRequests[n + 1].body.messages, [{ role: 'user', content: 'Hello again' }]);

  // The second turn's request carries the history.
  await send(chat, 'and then?');
  msgs = await waitAnswered(chat);
  const history = chat.chatRequests[n + 2].body.messages;
  assert.deepEqual(history.map((m) => m.role), ['user', 'assistant', 'user']);

  // Copy gives a message's text as written (the answer's Markdown source, as sent back above).
  await chat.click('#messages article.msg.user[data-index="2"] .act-copy');
  await chat.click('#messages article.msg.assistant[data-index="1"] .act-copy');
  assert.deepEqual(await chat.evaluate(() => window.__copied), ['and then?', history[1].content]);
  assertNoErrors(chat);
});

test('settings: each field and the system prompt arrive in the request body; bad values are refused', async () => {
  await chat.click('#new-chat');
  await openSettings(chat);
  await chat.type('#set-system', 'Be terse.');
  for (const [id, v] of [['#set-temperature', 0.3], ['#set-top-p', 0.9], ['#set-top-k', 5], ['#set-min-p', 0.05],
    ['#set-presence-penalty', 0.5], ['#set-max-tokens', 24], ['#set-seed', 42]]) await setField(chat, id, v);
  await chat.click('#set-thinking');
  await setField(chat, '#set-top-p', 0);  // (0, 1]: refused, the 0.9 stays
  assert.equal(await chat.$eval('#set-top-p', (e) => e.getAttribute('aria-invalid')), 'true');
  assert.match(await chat.$eval('#set-top-p-hint', (e) => e.textContent), /above 0/);
  await closeSettings(chat);
  const n = await send(chat, 'with settings');
  let msgs = await waitAnswered(chat);
  const body = chat.chatRequests[n].body;
  assert.deepEqual(body.messages, [{ role: 'system', content: 'Be terse.' }, { role: 'user', content: 'with settings' }]);
  for (const [k, v] of Object.entries({ temperature: 0.3, top_p: 0.9, top_k: 5, min_p: 0.05, presence_penalty: 0.5, max_tokens: 24, seed: 42 }))
    assert.equal(body[k], v, k);
  assert.deepEqual(body.chat_template_kwargs, { enable_thinking: false });
  assert.match(msgs[1].meta, /^(24 tokens|\d+ tokens)/);
  if (msgs[1].meta.startsWith('24 tokens')) assert.match(msgs[1].meta, /cut at the token limit/);

  // Kept across a reload (settings for every chat, the system prompt with its conversation).
  await goto(chat, `${srv.base}/`);
  await waitReady(chat, MODEL);
  await openSettings(chat);
  assert.equal(await chat.$eval('#set-system', (e) => e.value), 'Be terse.');
  assert.equal(await chat.$eval('#set-top-k', (e) => e.value), '5');
  // Back to the model's defaults (no token limit: stopped once the request is seen).
  await chat.click('#reset-settings');
  await closeSettings(chat);
  const m = await send(chat, 'defaults again');
  await chat.waitForSelector('#stop:not([hidden])', WAIT());
  await chat.click('#stop');
  msgs = await waitAnswered(chat);
  const b2 = chat.chatRequests[m].body;
  assert.deepEqual([b2.temperature, b2.top_p, b2.top_k, b2.seed, b2.max_tokens], [0.7, 0.8, 20, undefined, undefined]);
  assert.deepEqual(b2.chat_template_kwargs, { enable_thinking: true });
  assertNoErrors(chat);
});

test('errors: the server\'s own message (400), busy (503), both shown; the page stays usable', async () => {
  // 400: more tokens than the context holds.
  await openSettings(chat);
  await setField(chat, '#set-max-tokens', 100000);
  await closeSettings(chat);
  await send(chat, 'too long please');
  await waitAnswered(chat);
  await chat.waitForSelector('#banner:not([hidden])', WAIT());
  assert.match(await chat.$eval('#banner-text', (e) => e.textContent),
    /^The server rejected the request: This model's maximum context length is 8192 tokens/);
  assertNoErrors(chat, [/status of 400/], { expected: true });
  // The unanswered message stays, with "Send again".
  let msgs = await shown(chat);
  assert.equal(msgs[msgs.length - 1].text, 'too long please');
  assert.ok(await chat.$('#messages article.msg.user:last-of-type .act-regenerate'));
  await openSettings(chat);
  await setField(chat, '#set-max-tokens', 8);
  await closeSettings(chat);
  await chat.click('#messages article.msg.user:last-of-type .act-regenerate');
  msgs = await waitAnswered(chat);
  assert.equal(msgs[msgs.length - 1].role, 'assistant');
  assert.equal(await chat.$eval('#banner', (e) => e.hidden), true, 'the banner goes with the next request');

  // 503: three long requests fill --parallel 2 and --queue 1, one after the other (a request
  // waits in the queue until the engine takes it, so sent at once the third could find it full).
  const aborts = [];
  const hogs = [];
  for (const [running, queued] of [[1, 0], [2, 0], [2, 1]]) {
    const a = new AbortController();
    aborts.push(a);
    hogs.push(fetch(`${srv.base}/v1/chat/completions`, {
      method: 'POST', signal: a.signal, headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }], max_tokens: 4000, ignore_eos: true, stream: true }),
    }).then((r) => r.body.getReader().read()).catch(() => {}));
    await waitMetric((x) => x.running === running && x.queued === queued, `${running} running, ${queued} queued`);
  }
  try {
    await send(chat, 'are you busy?');
    await waitAnswered(chat);
    await chat.waitForSelector('#banner:not([hidden])', WAIT());
    assert.match(await chat.$eval('#banner-text', (e) => e.textContent), /^The server is busy: .*queue full.*Try again in a moment\.$/);
  } finally {
    for (const a of aborts) a.abort();
    await Promise.all(hogs);
  }
  await waitMetric((x) => x.running === 0 && x.queued === 0, 'the hogs are gone');
  assertNoErrors(chat, [/status of 503/], { expected: true });
  await openSettings(chat);
  await chat.click('#reset-settings');
  await closeSettings(chat);
});

test('API key: asked once, sent as Bearer, asked again when refused; unreachable server explained', async () => {
  const page = await openPage(browser, `${keySrv.base}/`);
  await page.waitForSelector('#key-dialog[open]', WAIT());
  await waitReady(page, MODEL);
  await page.type('#key-input', 'wrong-key');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#key-error:not([hidden])', WAIT());
  assert.equal(await page.$eval('#key-error', (e) => e.textContent), 'The server did not accept this key.');
  assert.equal(await page.$eval('#key-dialog', (e) => e.open), true);
  await page.$eval('#key-input', (e) => { e.value = ''; });
  await page.type('#key-input', API_KEY);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#key-dialog:not([open])', WAIT());
  await openSettings(page);
  await setField(page, '#set-max-tokens', 8);
  await closeSettings(page);
  const n = await send(page, 'with a key');
  let msgs = await waitAnswered(page);
  assert.equal(msgs.length, 2);
  assert.ok(msgs[1].text.length > 0 || msgs[1].meta.length > 0);
  assert.equal(page.chatRequests[n].headers.authorization, `Bearer ${API_KEY}`);
  // Not asked again after a reload.
  await goto(page, `${keySrv.base}/`);
  await waitReady(page, MODEL);
  assert.equal(await page.$eval('#key-dialog', (e) => e.open), false);
  // A key the server no longer takes: asked again, with the server's message.
  await page.evaluate(() => localStorage.setItem('qnext.apiKey', JSON.stringify('stale')));
  await goto(page, `${keySrv.base}/`);
  await waitReady(page, MODEL);
  await send(page, 'stale key');
  await page.waitForSelector('#key-dialog[open]', WAIT());
  assert.match(await page.$eval('#key-error', (e) => e.textContent), /invalid or missing API key/);
  assertNoErrors(page, [/status of 401/], { expected: true });
  await page.type('#key-input', API_KEY);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#key-dialog:not([open])', WAIT());

  // The server goes away: the page says so.
  await stopServer(keySrv, 2000);
  await send(page, 'anyone there?');
  await waitAnswered(page);
  await page.waitForSelector('#banner:not([hidden])', WAIT());
  assert.match(await page.$eval('#banner-text', (e) => e.textContent), /^Cannot reach the server/);
  assertNoErrors(page, [/ERR_CONNECTION_REFUSED/], { expected: true });
  await page.browserContext().close();
});

test('hostile user text goes through the real server and shows as text (also the title, also after reload)', async () => {
  const page = await openPage(browser, `${srv.base}/`, { bypassCSP: true });
  await waitReady(page, MODEL);
  await openSettings(page);
  await setField(page, '#set-max-tokens', 8);
  await closeSettings(page);
  for (const payload of PAYLOADS) {
    await send(page, payload);
    await waitAnswered(page);
  }
  const users = (await shown(page)).filter((m) => m.role === 'user').map((m) => m.text);
  assert.deepEqual(users, PAYLOADS);
  assert.equal(await page.$eval('#conversations .conv-title', (e) => e.textContent), PAYLOADS[0]);
  await assertNoPayloadRan(page);
  await goto(page, `${srv.base}/`);
  await waitReady(page, MODEL);
  assert.deepEqual((await shown(page)).filter((m) => m.role === 'user').map((m) => m.text), PAYLOADS);
  await assertNoPayloadRan(page);
  assertNoErrors(page);
  await page.browserContext().close();
});

test('hostile model output (fake server) shows as text; Markdown, reasoning and tool calls render', async () => {
  const page = await openPage(browser, `${srv.base}/`, { bypassCSP: true, route: fake.route('hostile') });
  await waitReady(page, MODEL);
  await send(page, 'say something nasty');
  // Held mid-stream after the reasoning: the block is open while it streams.
  await fake.atGate('hostile');
  await page.waitForFunction(() => document.querySelector('details.reasoning')?.textContent.includes('think'), WAIT());
  assert.equal(await page.$eval('details.reasoning', (d) => d.open), true, 'open while the reasoning streams');
  fake.release('hostile');
  await waitAnswered(page);
  assert.equal(await page.$eval('details.reasoning', (d) => d.open), false, 'closed after');
  assert.ok((await page.$eval('details.reasoning .reasoning-body', (e) => e.textContent)).includes(HOSTILE.reasoning));

  const links = await assertNoPayloadRan(page);
  assert.deepEqual(links.map((l) => l.href), ['https://example.com/docs', 'mailto:someone@example.com', 'https://example.org/auto']);
  const md = await page.$eval('#messages article.msg.assistant .content', (c) => ({
    text: c.textContent,
    tags: [...c.querySelectorAll('*')].map((e) => e.tagName.toLowerCase()),
    keywords: [...c.querySelectorAll('pre .tok-keyword')].map((e) => e.textContent),
  }));
  for (const tag of ['h3', 'strong', 'em', 'del', 'ul', 'ol', 'li', 'blockquote', 'table', 'th', 'td', 'pre', 'code', 'a', 'hr', 'br'])
    assert.ok(md.tags.includes(tag), `<${tag}> in the rendered answer (got ${[...new Set(md.tags)]})`);
  for (const p of HOSTILE.visible) assert.ok(md.text.includes(p), `shown as text: ${p}`);
  assert.deepEqual(md.keywords, ['def', 'return']);
  // Tool calls: name and arguments, as text.
  const tools = await page.$$eval('.tool-call', (ts) => ts.map((t) => ({ name: t.querySelector('.tool-name').textContent, args: t.querySelector('.tool-args').textContent })));
  assert.deepEqual(tools.map((t) => t.name), [HOSTILE.toolName, 'get_weather']);
  assert.deepEqual(JSON.parse(tools[0].args), HOSTILE.toolArgs);
  assert.deepEqual(JSON.parse(tools[1].args), { city: 'Paris' });
  assert.match(await page.$eval('#messages article.msg.assistant .meta', (e) => e.textContent), /^42 tokens/);
  // The code block's copy button copies the code.
  await page.click('#messages .codeblock .copy-code');
  assert.deepEqual(await page.evaluate(() => window.__copied), [HOSTILE.code]);
  // Stored and shown again after a reload, still as text.
  page.route = null;
  await goto(page, `${srv.base}/`);
  await waitReady(page, MODEL);
  await assertNoPayloadRan(page);
  assert.equal((await page.$$('.tool-call')).length, 2);
  assertNoErrors(page);
  await page.browserContext().close();
});

test('export and import as JSON; an imported file with hostile text shows it as text', async () => {
  const page = await openPage(browser, `${srv.base}/`, { bypassCSP: true });
  await waitReady(page, MODEL);
  const file = path.join(tmp, 'import.json');
  fs.writeFileSync(file, JSON.stringify({
    format: 'qnext-chat', version: 1, conversations: [
      { id: 'x1', title: PAYLOADS[1], system: PAYLOADS[0], messages: [
        { role: 'user', content: PAYLOADS[2] },
        { role: 'assistant', content: PAYLOADS.join('\n\n'), reasoning: PAYLOADS[3], tool_calls: [{ name: PAYLOADS[1], arguments: '{}' }] },
        { role: 'system', content: 'dropped: not a role the page keeps' },
        { role: 'user', content: { not: 'a string' } },
      ] },
      { title: 'second', messages: [{ role: 'user', content: 'plain' }] },
      'not a conversation',
    ],
  }));
  const input = await page.$('#import-file');
  await input.uploadFile(file);
  await page.waitForFunction(() => document.querySelectorAll('#conversations .conv').length === 2, WAIT());
  assert.equal(await page.$eval('#title', (e) => e.textContent), PAYLOADS[1]);
  const msgs = await shown(page);
  assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant', 'user']);
  assert.equal(msgs[0].text, PAYLOADS[2]);
  assert.equal(msgs[2].text, '');
  await assertNoPayloadRan(page);

  // Export: the download holds both conversations; importing it elsewhere gives them back.
  const downloads = path.join(tmp, 'downloads');
  fs.mkdirSync(downloads);
  await page.browserContext().setDownloadBehavior({ policy: 'allow', downloadPath: downloads });
  await page.click('#export');
  const t0 = Date.now();
  let exported;
  while (!(exported = fs.readdirSync(downloads).find((f) => f.endsWith('.json'))) && Date.now() - t0 < 10_000 * SCALE) await sleep(50);
  assert.ok(exported, 'a .json download');
  const data = JSON.parse(fs.readFileSync(path.join(downloads, exported), 'utf8'));
  assert.equal(data.format, 'qnext-chat');
  assert.deepEqual(data.conversations.map((c) => c.title).sort(), [PAYLOADS[1], 'second'].sort());
  const other = await openPage(browser, `${srv.base}/`);
  await (await other.$('#import-file')).uploadFile(path.join(downloads, exported));
  await other.waitForFunction(() => document.querySelectorAll('#conversations .conv').length === 2, WAIT());
  assert.deepEqual((await shown(other)).map((m) => m.text), msgs.map((m) => m.text));
  // Not JSON: refused with a message.
  const bad = path.join(tmp, 'bad.json');
  fs.writeFileSync(bad, '{ nope');
  await (await other.$('#import-file')).uploadFile(bad);
  await other.waitForSelector('#banner:not([hidden])', WAIT());
  assert.match(await other.$eval('#banner-text', (e) => e.textContent), /^Could not import bad\.json: the file is not JSON/);
  assertNoErrors(page);
  assertNoErrors(other);
  await page.browserContext().close();
  await other.browserContext().close();
});

test('keyboard and screen readers: named controls, labelled fields, Tab order, Esc', async () => {
  const names = await chat.evaluate(() => {
    const name = (e) => (e.getAttribute('aria-label') || (e.labels && [...e.labels].map((l) => l.textContent).join(' ')) ||
      e.textContent || e.title || '').trim();
    return [...document.querySelectorAll('button, input, textarea')].filter((e) => e.type !== 'file').map((e) => ({ id: e.id || e.className, name: name(e) }));
  });
  assert.deepEqual(names.filter((n) => !n.name), [], 'controls without an accessible name');
  assert.ok(names.length > 20);
  // Tab from the message box reaches Send; Esc closes the settings dialog.
  await chat.focus('#input');
  await chat.keyboard.type('x');
  await chat.keyboard.press('Tab');
  assert.equal(await chat.evaluate(() => document.activeElement.id), 'send');
  await chat.$eval('#input', (e) => { e.value = ''; });
  await openSettings(chat);
  await chat.keyboard.press('Escape');
  await chat.waitForSelector('#settings:not([open])', WAIT());
  assertNoErrors(chat);
});

test('screenshots: desktop and phone, light and dark; nothing overflows a phone screen', async () => {
  fs.mkdirSync(shotsDir(), { recursive: true });
  const page = await openPage(browser, `${srv.base}/`, { route: fake.route('demo') });
  await waitReady(page, MODEL);
  await send(page, DEMO_QUESTION);
  await waitAnswered(page);
  await page.click('details.reasoning summary');
  const files = [];
  for (const [name, viewport] of [['desktop', { width: 1280, height: 860 }], ['phone', { width: 390, height: 844, deviceScaleFactor: 2 }]]) {
    await page.setViewport(viewport);
    for (const scheme of ['light', 'dark']) {
      await page.emulateMediaFeatures([{ name: 'prefers-color-scheme', value: scheme }]);
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(bg, scheme === 'dark' ? 'rgb(22, 24, 29)' : 'rgb(255, 255, 255)', `${scheme} background`);
      await page.$eval('#messages', (m) => { m.scrollTop = 0; });
      const file = path.join(shotsDir(), `chat-${name}-${scheme}.png`);
      await page.screenshot({ path: file });
      files.push(file);
    }
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${name}: the page is ${overflow}px wider than the screen`);
  }
  // Phone: the conversation list is a drawer.
  assert.equal(await page.$eval('#sidebar', (e) => getComputedStyle(e).visibility), 'hidden');
  await page.click('#open-sidebar');
  await page.waitForFunction(() => getComputedStyle(document.querySelector('#sidebar')).visibility === 'visible', WAIT());
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => getComputedStyle(document.querySelector('#sidebar')).visibility === 'hidden', WAIT());
  for (const f of files) {
    const png = fs.readFileSync(f);
    assert.equal(png.subarray(1, 4).toString(), 'PNG', f);
    assert.ok(png.length > 10_000, `${f}: ${png.length} bytes`);
  }
  assertNoErrors(page);
  await page.browserContext().close();
});
