// What webui.test.mjs needs around the browser: Debian's chromium through puppeteer-core, pages
// that record console errors, the chat page's own waits, and a fake chat server on 127.0.0.1 that
// streams canned SSE answers (hostile ones too) in steps the test releases.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCALE } from '../e2e/processes.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const CHROMIUM = process.env.QNEXT_CHROMIUM || '/usr/bin/chromium';

const { default: puppeteer } = await import('puppeteer-core').catch((e) => {
  throw new Error(`the puppeteer-core package is missing: run \`npm ci\` in ${HERE} (scripts/test.sh does) [${e.message}]`);
});

// Without the background-networking flags chromium keeps trying the network, which is closed here.
export async function launch() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: install it (scripts/install-deps.sh) or set QNEXT_CHROMIUM`);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qnext-webui-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir,
    protocolTimeout: 60_000 * SCALE,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  browser.cleanup = async () => {
    await browser.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return browser;
}

export const WAIT = () => ({ timeout: 20_000 * SCALE });

// A page in its own browser context (its own localStorage), with console errors, uncaught
// exceptions and every chat request body recorded. opts: { bypassCSP, viewport, route } where
// route(request) may answer a request itself (return true) instead of letting it through.
export async function openPage(browser, url, opts = {}) {
  const context = opts.context ?? await browser.createBrowserContext();
  const page = await context.newPage();
  page.errors = [];
  page.urls = [];  // every request the page made
  page.chatRequests = [];
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => page.errors.push(`uncaught: ${e.message}`));
  page.on('dialog', (d) => d.accept());  // the delete confirmation
  await page.setViewport(opts.viewport ?? { width: 1280, height: 800 });
  if (opts.bypassCSP) await page.setBypassCSP(true);
  await page.setRequestInterception(true);
  page.on('request', async (req) => {
    page.urls.push(req.url());
    if (req.url().endsWith('/v1/chat/completions') && req.method() === 'POST')
      page.chatRequests.push({ headers: req.headers(), body: JSON.parse(req.postData()) });
    if (page.route && (await page.route(req))) return;
    await req.continue();
  });
  page.route = opts.route ?? null;
  // A record of what the page copied (the system clipboard is not there in headless mode).
  await page.evaluateOnNewDocument(() => {
    window.__copied = [];
    Object.defineProperty(navigator, 'clipboard', { value: { writeText: async (t) => { window.__copied.push(t); } } });
  });
  if (url) await goto(page, url);
  return page;
}

export async function goto(page, url) {
  await page.goto(url, { waitUntil: 'load', ...WAIT() });
}

// Fails with the page's errors, less those matching an allowed pattern (which must each appear
// when `expected` is set: a test that provokes an error also checks that it came).
export function assertNoErrors(page, allowed = [], { expected = false } = {}) {
  const unexpected = page.errors.filter((e) => !allowed.some((re) => re.test(e)));
  assert.deepEqual(unexpected, [], 'console errors or uncaught exceptions');
  if (expected) for (const re of allowed) assert.ok(page.errors.some((e) => re.test(e)), `expected a console error matching ${re}`);
  page.errors.length = 0;
}

// The page has asked /props and shows the model.
export async function waitReady(page, model) {
  await page.waitForFunction((m) => document.querySelector('#model').textContent === m, WAIT(), model);
}

// Types into the message box and sends with Enter (long texts are set at once, then Enter).
export async function send(page, text) {
  await page.waitForSelector('#send:not([hidden])', WAIT());
  if (text.length > 40) {
    await page.$eval('#input', (e, v) => { e.value = v; e.dispatchEvent(new Event('input')); }, text);
    await page.focus('#input');
  } else {
    await page.click('#input');
    await page.keyboard.type(text);
  }
  const before = page.chatRequests.length;
  await page.keyboard.press('Enter');
  return before;
}

// Waits until no answer streams, then returns the conversation as shown.
export async function waitAnswered(page) {
  await page.waitForFunction(() => document.querySelector('#messages').getAttribute('aria-busy') === 'false' &&
    !document.querySelector('#stop:not([hidden])'), WAIT());
  return shown(page);
}

export function shown(page) {
  return page.$$eval('#messages article.msg', (els) => els.map((e) => ({
    role: e.classList.contains('user') ? 'user' : 'assistant',
    text: e.querySelector('.content')?.textContent ?? '',
    meta: e.querySelector('.meta')?.textContent ?? '',
  })));
}

export async function openSettings(page) {
  await page.click('#open-settings');
  await page.waitForSelector('#settings[open]', WAIT());
}

export async function closeSettings(page) {
  await page.click('#settings-close');
  await page.waitForSelector('#settings:not([open])', WAIT());
}

// Sets a settings field as a user does: select its text, type, leave the field.
export async function setField(page, id, value) {
  await page.click(id, { count: 3 });
  await page.keyboard.press('Backspace');
  if (value !== '') await page.keyboard.type(String(value));
  await page.keyboard.press('Tab');
}

// ---------------------------------------------------------------------------------------------
// The fake chat server: POST /sse/<name> streams canned[name]: SSE data payloads, { pause: ms }
// steps, and 'gate' markers where it waits until the test calls release(name).

export async function startFakeServer(canned) {
  const gates = new Map();
  const waiting = new Map();
  const server = http.createServer(async (req, res) => {
    const name = decodeURIComponent(req.url.replace(/^\/sse\//, ''));
    const steps = canned[name];
    if (!steps) { res.writeHead(404).end(); return; }
    req.resume();
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    for (const step of steps) {
      if (step.pause) {
        await new Promise((r) => setTimeout(r, step.pause));
        continue;
      }
      if (step === 'gate') {
        await new Promise((r) => {
          gates.set(name, r);
          const w = waiting.get(name);
          if (w) w();
        });
        continue;
      }
      res.write(`data: ${typeof step === 'string' ? step : JSON.stringify(step)}\n\n`);
    }
    res.end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    // Sends the page's chat request to canned[name] instead of the real server.
    route: (name) => async (req) => {
      if (!(req.url().endsWith('/v1/chat/completions') && req.method() === 'POST')) return false;
      await req.continue({ url: `${base}/sse/${encodeURIComponent(name)}` });
      return true;
    },
    // Resolves once the stream of `name` is held at a gate.
    atGate: (name) => new Promise((r) => { if (gates.has(name)) r(); else waiting.set(name, r); }),
    release: (name) => { const g = gates.get(name); gates.delete(name); waiting.delete(name); if (g) g(); },
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}

// SSE chunks of a chat completion in OpenAI's streaming shape.
export const chunk = (delta, extra = {}) => ({
  id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model: 'fake',
  choices: [{ index: 0, delta, finish_reason: null }], ...extra,
});
export const finish = (reason) => ({
  id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model: 'fake',
  choices: [{ index: 0, delta: {}, finish_reason: reason }],
});
export const usage = (prompt, completion) => ({
  id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1, model: 'fake', choices: [],
  usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
});
