// End-to-end test of `qnext serve`: a real server process on a tiny random-weight model with the
// real Qwen tokenizer, driven by the official `openai` npm client (and plain fetch where the client
// cannot express a request: malformed JSON, oversized bodies, unknown routes, /health, /metrics).
//
//   cd tests/server/e2e && npm ci && QNEXT_BIN=../../../build/qnext node --test serve.test.mjs
//
// Environment: QNEXT_BIN (the qnext executable; default <root>/build/qnext), QNEXT_ROOT (the
// repository; default three folders up from here), QNEXT_E2E_VERBOSE=1 (echo the servers' stderr),
// QNEXT_E2E_TIMEOUT_SCALE (multiplies the deadlines, for sanitizer builds).
// ctest runs it as `server_e2e` with both variables set.
//
// The model's weights are random, so its text is noise: the tests check the protocol (shapes,
// status codes, counts, streaming, cancellation) and determinism (greedy and seeded sampling),
// never what the text says.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  API_KEY, BIN, OpenAI, SCALE, assertErrorBody, authHeaders, makeClient, makeModel, metricValue, parseMetrics,
  rawGet, rawPost, servers, sleep, startServer as startServerIn, stopServer, test,
} from './harness.mjs';

const CTX = 4096;           // the main server's --ctx: long generations fit; a long prompt does not
const MAX_BODY = 65536;     // the main server's --max-body (bytes)

let tmpDir;
let modelDir;
let main;   // the main server: { base, port, proc, log() }
let MODEL;  // the id /v1/models reports
let client; // an OpenAI client for `main`
const startServer = (extraArgs, opts) => startServerIn(modelDir, extraArgs, opts);
async function assertHealthy(srv = main) {
  const r = await rawGet(srv, '/health', {});
  assert.equal(r.status, 200, `/health after the previous request: ${r.status} ${r.text}`);
}

async function metrics(srv = main) {
  const r = await rawGet(srv, '/metrics');
  assert.equal(r.status, 200, `/metrics: ${r.status} ${r.text}`);
  return parseMetrics(r.text);
}

// Polls /metrics until nothing runs or waits (the sequences of aborted requests are gone).
async function waitIdle(srv = main, timeoutMs = 5000 * SCALE) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < timeoutMs) {
    const ms = await metrics(srv);
    last = { running: metricValue(ms, 'qnext_running_sequences'), queued: metricValue(ms, 'qnext_queue_depth') };
    if (last.running === 0 && last.queued === 0) return Date.now() - t0;
    await sleep(100);
  }
  assert.fail(`not idle ${timeoutMs} ms after the abort: ${JSON.stringify(last)}`);
}

async function waitRunning(srv = main, timeoutMs = 5000 * SCALE) {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if ((metricValue(await metrics(srv), 'qnext_running_sequences') ?? 0) >= 1) return;
    await sleep(25);
  }
  assert.fail(`no running sequence within ${timeoutMs} ms`);
}

// ---------------------------------------------------------------------------------------------
// Request helpers

const user = (content) => [{ role: 'user', content }];

async function chat(params, c = client) {
  return c.chat.completions.create({ model: MODEL, ...params });
}

async function greedy(content, max_tokens = 16, c = client) {
  const r = await chat({ messages: user(content), temperature: 0, max_tokens }, c);
  return r.choices[0].message.content;
}

// Collects a streamed chat completion: { text, chunks, finish, usage }.
async function streamChat(params, c = client) {
  const stream = await c.chat.completions.create({ model: MODEL, stream: true, ...params });
  const chunks = [];
  let text = '';
  let finish = null;
  for await (const ch of stream) {
    chunks.push(ch);
    for (const choice of ch.choices ?? []) {
      if (choice.delta?.content) text += choice.delta.content;
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  const last = chunks.at(-1);
  return { text, chunks, finish, usage: last?.usage ?? null };
}

async function expectApiError(promise, status, what) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `${what}: expected an APIError, got ${e}`);
    assert.equal(e.status, status, `${what}: status ${e.status} (${e.message})`);
    return e;
  }
  assert.fail(`${what}: expected HTTP ${status}, the request succeeded`);
}

// A "clean" (no U+FFFD, no whitespace-only) 2-character piece from the middle of text, for stops.
function pickStop(text) {
  for (let k = Math.floor(text.length / 2); k < text.length - 1; ++k) {
    const s = text.slice(k, k + 2);
    if (!s.includes('\uFFFD') && s.trim().length === 2) return s;
  }
  for (let k = 1; k < text.length; ++k) {
    const s = text[k];
    if (s !== '\uFFFD' && s.trim()) return s;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------

before(async () => {
  assert.ok(fs.existsSync(BIN), `QNEXT_BIN ${BIN} does not exist (build qnext first)`);
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qnext-e2e-'));
  modelDir = path.join(tmpDir, 'model');
  makeModel(modelDir);
  main = await startServer(['--parallel', '8', '--ctx', String(CTX), '--max-body', String(MAX_BODY),
                            '--api-key', API_KEY], { name: 'main' });
  client = makeClient(main);
  MODEL = path.basename(modelDir); // what `qnext serve` names the model by default; checked below
});

after(async () => {
  for (const s of [...servers]) await stopServer(s, 2000);
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
});

// --- discovery -------------------------------------------------------------------------------

test('GET /health answers 200 (no key needed)', async () => {
  await assertHealthy();
});

test('models.list() returns one model', async () => {
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  assert.equal(models.length, 1, JSON.stringify(models));
  assert.equal(typeof models[0].id, 'string');
  assert.ok(models[0].id.length > 0);
  assert.equal(models[0].object, 'model');
  assert.equal(models[0].id, MODEL, 'the model directory\'s name');
});

// --- chat completions --------------------------------------------------------------------------

// The greedy answer to "Hello" (max_tokens 12), non-streamed; the reference for later requests.
let greedyHello;
async function helloRef() {
  if (!greedyHello) {
    const r = await chat({ messages: user('Hello'), temperature: 0, max_tokens: 12 });
    greedyHello = { text: r.choices[0].message.content, usage: r.usage, finish: r.choices[0].finish_reason };
  }
  return greedyHello;
}

test('chat completion, non-streamed: shape and usage', async () => {
  const r = await chat({ messages: user('Hello'), temperature: 0, max_tokens: 12 });
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.object, 'chat.completion');
  assert.equal(typeof r.created, 'number');
  assert.equal(typeof r.model, 'string');
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(c.index, 0);
  assert.equal(c.message.role, 'assistant');
  assert.equal(typeof c.message.content, 'string');
  assert.ok(['stop', 'length'].includes(c.finish_reason), c.finish_reason);
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 12, JSON.stringify(r.usage));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  greedyHello = { text: c.message.content, usage: r.usage, finish: c.finish_reason };
});

test('chat completion, streamed with include_usage: chunks, usage last with choices []', async () => {
  const s = await streamChat({ messages: user('Hello'), temperature: 0, max_tokens: 12,
                               stream_options: { include_usage: true } });
  assert.ok(s.chunks.length >= 2, `only ${s.chunks.length} chunks`);
  const id = s.chunks[0].id;
  assert.match(id, /^chatcmpl-/);
  for (const ch of s.chunks) {
    assert.equal(ch.object, 'chat.completion.chunk');
    assert.equal(ch.id, id, 'every chunk carries the same id');
  }
  assert.equal(s.chunks[0].choices[0].delta.role, 'assistant', 'the first delta has the role');
  const last = s.chunks.at(-1);
  assert.deepEqual(last.choices, [], 'the usage chunk has choices []');
  assert.ok(last.usage, 'the last chunk has usage');
  for (const ch of s.chunks.slice(0, -1))
    assert.ok(ch.usage == null, `only the last chunk has usage: ${JSON.stringify(ch)}`);
  assert.ok(['stop', 'length'].includes(s.finish), `finish_reason ${s.finish}`);
  // Same request, same greedy text and counts as non-streamed.
  const ref = await helloRef();
  assert.equal(s.text, ref.text);
  assert.equal(s.finish, ref.finish);
  assert.deepEqual(last.usage.prompt_tokens, ref.usage.prompt_tokens);
  assert.deepEqual(last.usage.completion_tokens, ref.usage.completion_tokens);
  assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
});

test('streamed without include_usage: no usage anywhere', async () => {
  const s = await streamChat({ messages: user('Hello'), temperature: 0, max_tokens: 4 });
  for (const ch of s.chunks) assert.ok(ch.usage == null, JSON.stringify(ch));
  assert.ok(s.finish);
});

test('raw SSE: text/event-stream, data: lines, ends with data: [DONE]', async () => {
  const res = await fetch(`${main.base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...authHeaders },
    body: JSON.stringify({ model: MODEL, messages: user('Hi'), max_tokens: 4, stream: true }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const body = await res.text();
  const events = body.split('\n\n').filter((e) => e.trim());
  assert.ok(events.length >= 2, body);
  for (const e of events) assert.match(e, /^data: /m, `event without data: ${JSON.stringify(e)}`);
  assert.equal(events.at(-1).trim(), 'data: [DONE]');
  for (const e of events.slice(0, -1)) JSON.parse(e.replace(/^data: /, ''));
});

test('max_tokens caps the completion', async () => {
  const r = await chat({ messages: user('Count to one hundred'), max_tokens: 5, temperature: 1, seed: 3 });
  const c = r.choices[0];
  assert.ok(r.usage.completion_tokens <= 5, JSON.stringify(r.usage));
  if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 5);
  const s = await streamChat({ messages: user('Count to one hundred'), max_tokens: 3, temperature: 0,
                               stream_options: { include_usage: true } });
  assert.ok(s.usage.completion_tokens <= 3);
  if (s.finish === 'length') assert.equal(s.usage.completion_tokens, 3);
});

test('max_completion_tokens is honoured like max_tokens', async () => {
  const r = await chat({ messages: user('Count to one hundred'), max_completion_tokens: 4, temperature: 0 });
  assert.ok(r.usage.completion_tokens <= 4, JSON.stringify(r.usage));
});

test('stop strings end the text before the stop (non-streamed and streamed)', async () => {
  const full = await greedy('Tell me a story', 24);
  const stop = pickStop(full);
  assert.ok(stop, `no usable stop string in ${JSON.stringify(full)}`);
  const expected = full.slice(0, full.indexOf(stop));
  const r = await chat({ messages: user('Tell me a story'), temperature: 0, max_tokens: 24, stop: [stop, 'zzzzqqq'] });
  assert.equal(r.choices[0].message.content, expected, `stop ${JSON.stringify(stop)} in ${JSON.stringify(full)}`);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const r2 = await chat({ messages: user('Tell me a story'), temperature: 0, max_tokens: 24, stop });
  assert.equal(r2.choices[0].message.content, expected, 'stop as a plain string');
  const s = await streamChat({ messages: user('Tell me a story'), temperature: 0, max_tokens: 24, stop: [stop] });
  assert.equal(s.text, expected, 'streamed: no part of the stop string is sent');
  assert.equal(s.finish, 'stop');
});

test('seed: same seed and temperature give the same text; another seed differs', async () => {
  const p = { messages: user('Write something random'), temperature: 1.0, top_p: 1, max_tokens: 16 };
  const a = await chat({ ...p, seed: 42 });
  const b = await chat({ ...p, seed: 42 });
  const c = await chat({ ...p, seed: 4242 });
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  assert.notEqual(a.choices[0].message.content, c.choices[0].message.content,
                  'seeds 42 and 4242 gave the same 16 tokens');
  const s = await streamChat({ ...p, seed: 42 });
  assert.equal(s.text, a.choices[0].message.content, 'streamed with the same seed');
});

const weatherTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};

function assertWellFormedMessage(r) {
  assert.equal(r.object, 'chat.completion');
  const c = r.choices[0];
  assert.equal(c.message.role, 'assistant');
  assert.ok(c.message.content === null || typeof c.message.content === 'string');
  assert.ok(['stop', 'length', 'tool_calls'].includes(c.finish_reason), c.finish_reason);
  if (c.message.tool_calls != null) {
    assert.ok(Array.isArray(c.message.tool_calls));
    for (const t of c.message.tool_calls) {
      assert.equal(typeof t.id, 'string');
      assert.equal(t.type, 'function');
      assert.equal(typeof t.function.name, 'string');
      assert.equal(typeof t.function.arguments, 'string');
    }
  }
}

test('tools + tool_choice auto: accepted, well-formed response', async () => {
  const r = await chat({ messages: user('What is the weather in Paris?'), tools: [weatherTool],
                         tool_choice: 'auto', max_tokens: 16, temperature: 0 });
  assertWellFormedMessage(r);
  // The tool definitions are in the prompt.
  const plain = await chat({ messages: user('What is the weather in Paris?'), max_tokens: 1, temperature: 0 });
  assert.ok(r.usage.prompt_tokens > plain.usage.prompt_tokens + 20,
            `tools did not lengthen the prompt: ${r.usage.prompt_tokens} vs ${plain.usage.prompt_tokens}`);
  const s = await streamChat({ messages: user('What is the weather in Paris?'), tools: [weatherTool],
                               tool_choice: 'auto', max_tokens: 8 });
  assert.ok(s.finish);
});

test('history with assistant tool_calls and a role "tool" message is accepted', async () => {
  const r = await chat({
    tools: [weatherTool],
    max_tokens: 8,
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'What is the weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [
        { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      ] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temperature_c": 21, "sky": "clear"}' },
    ],
  });
  assertWellFormedMessage(r);
  // The call and its result are in the prompt.
  const head = await chat({ tools: [weatherTool], max_tokens: 1, messages: [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'What is the weather in Paris?' },
  ] });
  assert.ok(r.usage.prompt_tokens > head.usage.prompt_tokens + 15,
            `${r.usage.prompt_tokens} prompt tokens with the call and its result, ${head.usage.prompt_tokens} without`);
});

test('content given as an array of text parts is accepted', async () => {
  const a = await chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello' }] }],
                         temperature: 0, max_tokens: 12 });
  assert.equal(a.choices[0].message.content, (await helloRef()).text, 'same prompt as the plain string "Hello"');
});

test('logprobs + top_logprobs: shape, <= 0, sorted, greedy token is the top one', async () => {
  const r = await chat({ messages: user('Hello'), temperature: 0, max_tokens: 8, logprobs: true, top_logprobs: 3 });
  const c = r.choices[0];
  const lp = c.logprobs?.content;
  assert.ok(Array.isArray(lp), `choices[0].logprobs.content: ${JSON.stringify(c.logprobs)}`);
  assert.equal(lp.length, r.usage.completion_tokens);
  const bytes = [];
  for (const t of lp) {
    assert.equal(typeof t.token, 'string');
    assert.equal(typeof t.logprob, 'number');
    assert.ok(t.logprob <= 0, `logprob ${t.logprob}`);
    assert.ok(t.bytes === null || Array.isArray(t.bytes));
    if (Array.isArray(t.bytes)) bytes.push(...t.bytes); else bytes.push(null);
    assert.equal(t.top_logprobs.length, 3);
    for (let i = 0; i < 3; ++i) {
      assert.equal(typeof t.top_logprobs[i].token, 'string');
      assert.ok(t.top_logprobs[i].logprob <= 0);
      if (i) assert.ok(t.top_logprobs[i - 1].logprob >= t.top_logprobs[i].logprob, 'top_logprobs sorted best first');
    }
    assert.ok(Math.abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4,
              `greedy token ${JSON.stringify(t)} is not the most likely`);
    assert.equal(t.top_logprobs[0].token, t.token);
  }
  if (c.finish_reason === 'length' && !bytes.includes(null))
    assert.equal(Buffer.from(bytes).toString('utf8'), c.message.content, 'the tokens\' bytes make the content');
  // Without the flag: no logprobs.
  const plain = await chat({ messages: user('Hello'), temperature: 0, max_tokens: 2 });
  assert.ok(plain.choices[0].logprobs == null);
  // Streamed: one entry per token across the chunks.
  const s = await streamChat({ messages: user('Hello'), temperature: 0, max_tokens: 8, logprobs: true, top_logprobs: 2,
                               stream_options: { include_usage: true } });
  const n = s.chunks.flatMap((ch) => ch.choices.flatMap((x) => x.logprobs?.content ?? [])).length;
  assert.equal(n, s.usage.completion_tokens, 'streamed logprobs entries');
});

// --- legacy completions ------------------------------------------------------------------------

test('completions: string prompt, id cmpl-, usage', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  assert.equal(typeof r.choices[0].text, 'string');
  assert.equal(r.choices[0].index, 0);
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens >= 3);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 8);
});

test('completions: echo + logprobs 2', async () => {
  const prompt = 'Once upon a time';
  const r = await client.completions.create({ model: MODEL, prompt, max_tokens: 6, temperature: 0, echo: true, logprobs: 2 });
  assert.match(r.id, /^cmpl-/);
  const c = r.choices[0];
  assert.ok(c.text.startsWith(prompt), `echo: ${JSON.stringify(c.text)}`);
  const lp = c.logprobs;
  assert.ok(lp, 'choices[0].logprobs');
  const n = lp.tokens.length;
  for (const k of ['token_logprobs', 'top_logprobs', 'text_offset'])
    assert.equal(lp[k].length, n, `logprobs.${k} has ${lp[k].length} entries, tokens ${n}`);
  const { prompt_tokens: P, completion_tokens: C } = r.usage;
  assert.ok(n === P + C || n === C, `logprobs cover ${n} tokens; prompt ${P}, completion ${C}`);
  for (let i = 0; i < n; ++i) {
    assert.equal(typeof lp.tokens[i], 'string');
    if (i) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1], 'text_offset non-decreasing');
  }
  for (let i = n - C; i < n; ++i) {
    assert.equal(typeof lp.token_logprobs[i], 'number');
    assert.ok(lp.token_logprobs[i] <= 0);
    const top = lp.top_logprobs[i];
    assert.ok(top && typeof top === 'object', `top_logprobs[${i}]`);
    const vals = Object.values(top);
    assert.ok(vals.length >= 1 && vals.length <= 3, `top_logprobs[${i}] has ${vals.length} entries`);
    for (const v of vals) assert.ok(v <= 0);
    assert.ok(lp.text_offset[i] >= prompt.length, 'completion offsets count the echoed prompt');
  }
  if (n === P + C) assert.equal(lp.text_offset[0], 0);
  console.log(`echo+logprobs covers ${n === P + C ? 'prompt and completion' : 'the completion only'}; ` +
              `first token logprob ${lp.token_logprobs[0]}`);
});

test('completions: token-id array prompt', async () => {
  const ids = [9707, 11, 1879]; // "Hello", ",", " world"
  const r = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: 4, temperature: 0, echo: true });
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.usage.prompt_tokens, 3);
  assert.ok(r.choices[0].text.startsWith('Hello, world'), JSON.stringify(r.choices[0].text));
  const s = await client.completions.create({ model: MODEL, prompt: 'Hello, world', max_tokens: 4, temperature: 0 });
  const t = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: 4, temperature: 0 });
  assert.equal(t.choices[0].text, s.choices[0].text, 'ids and the same text continue alike');
});

test('completions: streamed', async () => {
  const stream = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 6,
                                                   temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let last;
  for await (const ch of stream) {
    assert.match(ch.id, /^cmpl-/);
    for (const c of ch.choices) text += c.text;
    last = ch;
  }
  assert.ok(last.usage, 'usage chunk');
  const r = await client.completions.create({ model: MODEL, prompt: 'Once upon a time', max_tokens: 6, temperature: 0 });
  assert.equal(text, r.choices[0].text);
});

// --- metrics -------------------------------------------------------------------------------------

test('GET /metrics: Prometheus text with the counters', async () => {
  const r = await rawGet(main, '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain/);
  const ms = parseMetrics(r.text);
  for (const name of ['qnext_requests_total', 'qnext_prompt_tokens_total', 'qnext_completion_tokens_total',
                      'qnext_queue_depth', 'qnext_running_sequences', 'qnext_cache_hits_total',
                      'qnext_cache_bytes', 'qnext_decode_tokens_per_second'])
    assert.ok(metricValue(ms, name) !== undefined, `metric ${name} missing in:\n${r.text}`);
  assert.ok(metricValue(ms, 'qnext_requests_total', { code: '200' }) >= 10, 'requests_total{code="200"}');
  assert.ok(metricValue(ms, 'qnext_prompt_tokens_total') > 0);
  assert.ok(metricValue(ms, 'qnext_completion_tokens_total') > 0);
  assert.equal(metricValue(ms, 'qnext_running_sequences'), 0);
  assert.equal(metricValue(ms, 'qnext_queue_depth'), 0);
  // The same prompt again hits the prefix cache... only if the prompt reaches a snapshot; here we
  // only check that the counter is a number.
  assert.ok(Number.isFinite(metricValue(ms, 'qnext_cache_hits_total')));
  // Counters move.
  const before = metricValue(ms, 'qnext_completion_tokens_total');
  await chat({ messages: user('Hello'), max_tokens: 3, temperature: 0 });
  const after = metricValue(await metrics(), 'qnext_completion_tokens_total');
  assert.ok(after >= before + 1, `completion tokens ${before} -> ${after}`);
});

// --- errors --------------------------------------------------------------------------------------

test('malformed JSON -> 400 with an OpenAI error body', async () => {
  for (const route of ['/v1/chat/completions', '/v1/completions']) {
    for (const body of ['{"model": ', 'not json at all', '[1, 2', '']) {
      const r = await rawPost(main, route, body);
      assert.equal(r.status, 400, `${route} ${JSON.stringify(body)}: ${r.status} ${r.text}`);
      assertErrorBody(r.json, `${route} ${JSON.stringify(body)}`);
      await assertHealthy();
    }
  }
  const r = await rawPost(main, '/v1/chat/completions', '"a string, not an object"');
  assert.equal(r.status, 400);
  assertErrorBody(r.json, 'a JSON string body');
  await assertHealthy();
});

test('missing messages / prompt -> 400', async () => {
  const e = await expectApiError(client.chat.completions.create({ model: MODEL }), 400, 'no messages');
  assert.ok(e instanceof OpenAI.BadRequestError);
  assert.equal(e.error?.param, 'messages', `param: ${JSON.stringify(e.error)}`);
  await assertHealthy();
  await expectApiError(chat({ messages: [] }), 400, 'empty messages');
  await assertHealthy();
  await expectApiError(client.completions.create({ model: MODEL }), 400, 'no prompt');
  await assertHealthy();
});

test('ill-typed fields -> 400 naming the field', async () => {
  const cases = [
    [{ messages: 'hi' }, 'messages'],
    [{ messages: user('hi'), temperature: 'hot' }, 'temperature'],
    [{ messages: user('hi'), max_tokens: 'ten' }, 'max_tokens'],
    [{ messages: user('hi'), stream: 'yes' }, 'stream'],
    [{ messages: user('hi'), stop: 5 }, 'stop'],
    [{ messages: [{ role: 'wizard', content: 'hi' }] }, 'messages'],
    [{ messages: [{ role: 'user', content: 42 }] }, 'messages'],
    [{ messages: user('hi'), top_logprobs: 50, logprobs: true }, 'top_logprobs'],
    [{ messages: user('hi'), temperature: -1 }, 'temperature'],
  ];
  for (const [params, field] of cases) {
    const e = await expectApiError(chat({ max_tokens: 2, ...params }), 400, JSON.stringify(params));
    assert.equal(e.type, 'invalid_request_error', `type for ${JSON.stringify(params)}: ${JSON.stringify(e.error)}`);
    assert.ok(String(e.param ?? '').startsWith(field), `param for ${JSON.stringify(params)}: ${JSON.stringify(e.error)}`);
    await assertHealthy();
  }
});

test('max_tokens 0 -> 400', async () => {
  const e = await expectApiError(chat({ messages: user('hi'), max_tokens: 0 }), 400, 'max_tokens 0');
  assert.equal(e.param, 'max_tokens', JSON.stringify(e.error));
  await assertHealthy();
  await expectApiError(client.completions.create({ model: MODEL, prompt: 'hi', max_tokens: 0 }), 400, 'legacy max_tokens 0');
  await assertHealthy();
});

test('prompt over the context -> 400 fast; max_tokens over the context -> 400', async () => {
  const long = 'hello '.repeat(CTX + 500); // ~CTX+500 tokens, ~27 KB: under --max-body
  const t0 = Date.now();
  const e = await expectApiError(chat({ messages: user(long), max_tokens: 4 }), 400, 'prompt over ctx');
  const ms = Date.now() - t0;
  assert.ok(ms < 3000, `took ${ms} ms`);
  console.log(`prompt over ctx: ${ms} ms, code ${JSON.stringify(e.code)}: ${e.message}`);
  await assertHealthy();
  await expectApiError(client.completions.create({ model: MODEL, prompt: long, max_tokens: 4 }), 400, 'legacy prompt over ctx');
  await assertHealthy();
  await expectApiError(chat({ messages: user('hi'), max_tokens: 1_000_000 }), 400, 'max_tokens over ctx');
  await assertHealthy();
});

test('wrong or missing API key -> 401', async () => {
  const bad = makeClient(main, { apiKey: 'wrong-key' });
  const e = await expectApiError(bad.chat.completions.create({ model: MODEL, messages: user('hi'), max_tokens: 2 }),
                                 401, 'wrong key');
  assert.ok(e instanceof OpenAI.AuthenticationError);
  await expectApiError(bad.models.list(), 401, 'wrong key, models');
  const r = await rawPost(main, '/v1/chat/completions', JSON.stringify({ model: MODEL, messages: user('hi') }),
                          { Authorization: '' });
  assert.equal(r.status, 401, `no key: ${r.status} ${r.text}`);
  assertErrorBody(r.json, 'no key');
  const m = await rawGet(main, '/metrics', {});
  assert.equal(m.status, 401, `/metrics without the key: ${m.status}`);
  await assertHealthy();
});

test('unknown route -> 404', async () => {
  const r = await rawGet(main, '/v1/nope');
  assert.equal(r.status, 404, `${r.status} ${r.text}`);
  assertErrorBody(r.json, '404');
  const p = await rawPost(main, '/v1/engines/x/completions', '{}');
  assert.equal(p.status, 404, `${p.status} ${p.text}`);
  await assertHealthy();
});

test('body over --max-body -> 413', async () => {
  const big = JSON.stringify({ model: MODEL, messages: user('x'.repeat(MAX_BODY * 2)), max_tokens: 1 });
  const r = await rawPost(main, '/v1/chat/completions', big);
  assert.equal(r.status, 413, `${r.status} ${r.text.slice(0, 300)}`);
  if (r.json) assertErrorBody(r.json, '413');
  await assertHealthy();
});

// --- cancellation ----------------------------------------------------------------------------------

test('abort mid-stream: the sequence is dropped, the server goes on', async () => {
  const ac = new AbortController();
  const stream = await client.chat.completions.create(
    { model: MODEL, messages: user('Go on forever'), stream: true, max_tokens: CTX - 64, temperature: 1 },
    { signal: ac.signal });
  let n = 0;
  try {
    for await (const ch of stream) {
      if (ch.choices?.[0]?.delta?.content !== undefined) ++n;
      if (n >= 2) { ac.abort(); }
    }
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError', `${e}`);
  }
  const ms = await waitIdle(main, 5000);
  console.log(`idle ${ms} ms after aborting a stream`);
  assert.equal(await greedy('Hello', 12), (await helloRef()).text, 'a new request after the abort');
});

test('abort before the first byte (immediately, and while a non-streamed request generates)', async () => {
  const ac = new AbortController();
  const p = client.chat.completions.create(
    { model: MODEL, messages: user('Go on forever'), stream: true, max_tokens: CTX - 64 }, { signal: ac.signal });
  ac.abort();
  await assert.rejects(p, (e) => e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError');
  await waitIdle(main, 5000);
  // Non-streamed: nothing is sent until the end, so the server must notice the closed socket.
  const ac2 = new AbortController();
  const p2 = client.chat.completions.create(
    { model: MODEL, messages: user('Go on forever'), max_tokens: CTX - 64 }, { signal: ac2.signal });
  p2.catch(() => {});
  await waitRunning(main, 5000);
  ac2.abort();
  await assert.rejects(p2, (e) => e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError');
  const ms = await waitIdle(main, 5000);
  console.log(`idle ${ms} ms after aborting a non-streamed request`);
  assert.equal(await greedy('Hello', 12), (await helloRef()).text, 'a new request after the abort');
  await assertHealthy();
});

// --- concurrency ---------------------------------------------------------------------------------

test('8 parallel streams all complete', async () => {
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) =>
    streamChat({ messages: user(`Stream number ${i}`), max_tokens: 24, temperature: 0.8, seed: i,
                 stream_options: { include_usage: true } })));
  for (const [i, s] of results.entries()) {
    assert.ok(['stop', 'length'].includes(s.finish), `stream ${i} finish ${s.finish}`);
    assert.ok(s.usage && s.usage.completion_tokens >= 1, `stream ${i} usage ${JSON.stringify(s.usage)}`);
    if (s.finish === 'length') assert.equal(s.usage.completion_tokens, 24);
  }
  await waitIdle(main, 5000);
});

test('greedy results are the same whether 1 or 8 requests run at once', async () => {
  // One by one, then all at once: the batch decodes from cached prompt states.
  const prompts = ['The sky is', 'Two plus two', 'Write a haiku about rain', 'List three fruits',
                   'Translate "cat" to French', 'What is 7 times 6?', 'Name a prime number', 'Say hi'];
  const solo = [];
  for (const p of prompts) solo.push(await greedy(p, 20));
  const together = await Promise.all(prompts.map((p) => greedy(p, 20)));
  for (let i = 0; i < prompts.length; ++i)
    assert.equal(together[i], solo[i], `prompt ${i} ${JSON.stringify(prompts[i])}`);
  // All at once first (fresh prompts: batched prefill), then one by one.
  const fresh = prompts.map((p, i) => `${p} (${i + 1}) and then some more words to prefill`);
  const together2 = await Promise.all(fresh.map((p) => greedy(p, 20)));
  for (let i = 0; i < fresh.length; ++i)
    assert.equal(await greedy(fresh[i], 20), together2[i], `fresh prompt ${i} ${JSON.stringify(fresh[i])}`);
  // The seeded sampler under batching.
  const seededSolo = await chat({ messages: user(prompts[0]), temperature: 1, seed: 7, max_tokens: 16 });
  const seededMany = await Promise.all(prompts.map((p) =>
    chat({ messages: user(p), temperature: 1, seed: 7, max_tokens: 16 })));
  assert.equal(seededMany[0].choices[0].message.content, seededSolo.choices[0].message.content,
               'seeded sampling is independent of the batch');
});

// --- queue full ----------------------------------------------------------------------------------

test('queue full -> 503 with Retry-After (second server: --parallel 1 --queue 1)', async () => {
  const small = await startServer(['--parallel', '1', '--queue', '1', '--ctx', String(CTX)], { name: 'small' });
  try {
    const c = makeClient(small, { apiKey: 'unused' });
    // 6 long requests at once: 1 runs, 1 waits, the rest must be turned away at once. Whatever
    // has not answered after 3 s is running or queued; it is aborted then.
    const acs = [];
    const outcomes = await Promise.all(Array.from({ length: 6 }, (_, i) => {
      const ac = new AbortController();
      acs.push(ac);
      const p = c.chat.completions.create(
        { model: MODEL, messages: user(`Long request ${i}`), max_tokens: 2000 }, { signal: ac.signal })
        .then(() => ({ ok: true }), (e) => ({ ok: false, e }));
      return Promise.race([p, sleep(3000).then(() => ({ ok: false, pending: true }))]);
    }));
    for (const ac of acs) ac.abort();
    const rejected = outcomes.filter((o) => o.e && o.e.status === 503);
    const summary = outcomes.map((o) => o.ok ? 'ok' : o.pending ? 'pending' : `${o.e?.status ?? o.e}`);
    assert.ok(rejected.length >= 1, `no 503 among ${JSON.stringify(summary)}`);
    assert.ok(rejected.length <= 5, `all rejected: ${JSON.stringify(summary)}`);
    for (const o of rejected) {
      const ra = o.e.headers?.get('retry-after');
      assert.ok(ra && Number(ra) >= 1, `Retry-After: ${ra}`);
      assert.ok(o.e.error?.message, `503 error body: ${JSON.stringify(o.e.error)}`);
    }
    console.log(`queue test outcomes: ${summary.join(' ')}`);
    await waitIdle(small, 5000);
    await assertHealthy(small);
    // The full queue has drained: a request succeeds.
    const r = await c.chat.completions.create({ model: MODEL, messages: user('hi'), max_tokens: 2 });
    assert.ok(r.choices[0].finish_reason);
  } finally {
    await stopServer(small, 2000);
  }
});

// --- MTP speculative decoding --------------------------------------------------------------------

test('--mtp: a lone request drafts with the MTP head and answers exactly as without it', async () => {
  const spec = await startServer(['--mtp', '3', '--ctx', String(CTX)], { name: 'mtp' });
  try {
    const c = makeClient(spec, { apiKey: 'unused' });
    for (const p of ['The sky is', 'Write a haiku about rain', 'Say hi']) {
      const want = await greedy(p, 20);  // the main server, no drafts
      assert.equal(await greedy(p, 20, c), want, `non-streamed ${JSON.stringify(p)}`);
      const s = await streamChat({ messages: user(p), temperature: 0, max_tokens: 20 }, c);
      assert.equal(s.text, want, `streamed ${JSON.stringify(p)}`);
    }
    const m = await metrics(spec);
    assert.ok(metricValue(m, 'qnext_mtp_steps_total') > 0, 'no speculative step');
    assert.ok(metricValue(m, 'qnext_mtp_drafts_total') > 0, 'no drafts');
    await assertHealthy(spec);
  } finally {
    await stopServer(spec, 2000);
  }
});

// --- models larger than the memory budget ---------------------------------------------------------

test('--mem-budget below the model: experts stream from disk through the cache, same answers', async () => {
  // The tiny model is 83 MB, 79 MB of it dense (the embeddings); 0.0805 GB leaves the cache room
  // for about a third of its routed experts, so serving evicts all the time.
  const cached = await startServer(['--mem-budget', '0.0805', '--parallel', '4', '--ctx', String(CTX)],
                                   { name: 'expert-cache' });
  try {
    assert.match(cached.log(), /routed experts in a cache of \d+ of \d+/);
    const c = makeClient(cached, { apiKey: 'unused' });
    const prompts = ['The sky is', 'Write a haiku about rain', 'Say hi', 'List three fruits'];
    const want = [];
    for (const p of prompts) want.push(await greedy(p, 20));  // the main server, everything mapped
    const together = await Promise.all(prompts.map((p) => greedy(p, 20, c)));  // batched forwards
    for (let i = 0; i < prompts.length; ++i)
      assert.equal(together[i], want[i], `prompt ${i} ${JSON.stringify(prompts[i])}`);
    const s = await streamChat({ messages: user(prompts[1]), temperature: 0, max_tokens: 20 }, c);
    assert.equal(s.text, want[1], 'streamed');
    await assertHealthy(cached);
  } finally {
    await stopServer(cached, 2000);
  }
});

// --- shutdown ------------------------------------------------------------------------------------

test('SIGTERM stops the server within 2 s, even with an idle keep-alive connection open', async () => {
  await assertHealthy(); // fetch keeps this connection open (keep-alive) while the server stops
  const t0 = Date.now();
  const r = await stopServer(main, 8000);
  const ms = Date.now() - t0;
  console.log(`main server exit after SIGTERM: ${ms} ms, ${JSON.stringify(r)}`);
  assert.equal(r.forced, false, 'needed SIGKILL');
  assert.equal(r.code, 0, 'exit status');
  assert.ok(ms < 2000, `took ${ms} ms to exit`);
});
