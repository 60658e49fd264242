// End-to-end test of constrained output in `qnext serve` with the official `openai` client:
// response_format json_schema and json_object, tool_choice "required" and a named function,
// streamed and not. The model's weights are random, so only the grammar makes its output JSON:
// every completion that ends with "stop" / "tool_calls" must parse and conform to its schema,
// checked here by a small validator independent of the server's grammar.
//
//   cd tests/server/e2e && npm ci && QNEXT_BIN=../../../build/qnext node --test constrained.test.mjs
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertErrorBody, makeClient, makeModel, rawPost, servers, startServer, stopServer, test } from './harness.mjs';

let tmpDir;
let srv;
let client;

before(async () => {
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qnext-constrained-'));
  const modelDir = path.join(tmpDir, 'model');
  makeModel(modelDir);
  srv = await startServer(modelDir, ['--api-key', 'e2e-secret-key', '--parallel', '4'], { name: 'constrained' });
  client = makeClient(srv);
});

after(async () => {
  for (const s of [...servers]) await stopServer(s, 2000);
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
});

// The JSON Schema subset the tests use: type, properties, required, additionalProperties: false,
// enum, const, items, minItems / maxItems, minimum / maximum, minLength / maxLength, anyOf.
function conforms(v, s, where = '$') {
  const fail = (why) => { throw new Error(`${where}: ${why} (${JSON.stringify(v)})`); };
  if (s.anyOf) {
    const errors = [];
    for (const alt of s.anyOf) {
      try { conforms(v, alt, where); return; } catch (e) { errors.push(e.message); }
    }
    fail(`matches no anyOf branch: ${errors.join('; ')}`);
  }
  if ('const' in s && JSON.stringify(v) !== JSON.stringify(s.const)) fail(`not the const ${JSON.stringify(s.const)}`);
  if (s.enum && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) fail('not in the enum');
  const type = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  if (s.type) {
    const types = [].concat(s.type);
    const ok = types.some((t) => t === type || (t === 'integer' && Number.isInteger(v)) ||
                                 (t === 'number' && type === 'number'));
    if (!ok) fail(`type ${type}, want ${types.join('|')}`);
  }
  if (type === 'number') {
    if (s.minimum != null && v < s.minimum) fail(`below ${s.minimum}`);
    if (s.maximum != null && v > s.maximum) fail(`above ${s.maximum}`);
  }
  if (type === 'string') {
    const n = [...v].length;
    if (s.minLength != null && n < s.minLength) fail(`shorter than ${s.minLength}`);
    if (s.maxLength != null && n > s.maxLength) fail(`longer than ${s.maxLength}`);
  }
  if (type === 'array') {
    if (s.minItems != null && v.length < s.minItems) fail(`fewer than ${s.minItems} items`);
    if (s.maxItems != null && v.length > s.maxItems) fail(`more than ${s.maxItems} items`);
    if (s.items) v.forEach((x, i) => conforms(x, s.items, `${where}[${i}]`));
  }
  if (type === 'object') {
    for (const k of s.required ?? []) if (!(k in v)) fail(`no required '${k}'`);
    for (const [k, x] of Object.entries(v)) {
      if (s.properties && k in s.properties) conforms(x, s.properties[k], `${where}.${k}`);
      else if (s.additionalProperties === false) fail(`extra key '${k}'`);
    }
  }
}

const person = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    role: { enum: ['admin', 'user', null, 7] },
    tags: { type: 'array', items: { type: 'string', maxLength: 6 }, maxItems: 3 },
    ok: { type: 'boolean' },
  },
  required: ['name', 'age', 'role'],
  additionalProperties: false,
};

const shapes = {
  anyOf: [
    { type: 'object', properties: { kind: { const: 'circle' }, r: { type: 'integer', minimum: 0, maximum: 99 } },
      required: ['kind', 'r'], additionalProperties: false },
    { type: 'array', items: { type: 'boolean' }, minItems: 1, maxItems: 4 },
  ],
};

const weather = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather for a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 10 }, unit: { enum: ['c', 'f'] } },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
  },
};
const clock = {
  type: 'function',
  function: {
    name: 'get_time',
    parameters: { type: 'object', properties: { zone: { type: 'integer', minimum: 0, maximum: 23 } },
                  required: ['zone'], additionalProperties: false },
  },
};

const user = (content) => [{ role: 'user', content }];

test('response_format json_schema: every finished completion parses and conforms', async () => {
  let finished = 0;
  for (const [schema, name] of [[person, 'person'], [shapes, 'shapes']]) {
    for (const seed of [1, 2, 3, 4]) {
      const r = await client.chat.completions.create({
        model: 'm', messages: user('Describe someone'), max_tokens: 160, temperature: 1, seed,
        response_format: { type: 'json_schema', json_schema: { name, schema, strict: true } },
      });
      const c = r.choices[0];
      if (c.finish_reason === 'length') continue;  // cut off: only a prefix
      assert.equal(c.finish_reason, 'stop');
      conforms(JSON.parse(c.message.content), schema);
      ++finished;
    }
  }
  assert.ok(finished >= 4, `only ${finished} of 8 completions finished within max_tokens`);
});

test('response_format json_schema streamed: the concatenated deltas conform', async () => {
  const stream = await client.chat.completions.create({
    model: 'm', messages: user('Hi'), max_tokens: 160, temperature: 0.8, seed: 5, stream: true,
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema: person } },
  });
  let text = '';
  let finish;
  for await (const ch of stream) {
    text += ch.choices[0]?.delta?.content ?? '';
    finish = ch.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(finish, 'stop', `finish ${finish}: ${text}`);
  conforms(JSON.parse(text), person);
});

test('response_format json_object: finished completions are JSON objects', async () => {
  let finished = 0;
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const r = await client.chat.completions.create({
      model: 'm', messages: user('Give me JSON'), max_tokens: 120, temperature: 1, seed,
      response_format: { type: 'json_object' },
    });
    const c = r.choices[0];
    assert.match(c.message.content, /^\s*\{/);
    if (c.finish_reason === 'length') continue;
    const v = JSON.parse(c.message.content);
    assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), c.message.content);
    ++finished;
  }
  assert.ok(finished >= 1, 'no json_object completion finished within max_tokens');
});

function checkCalls(calls, tools) {
  assert.ok(Array.isArray(calls) && calls.length >= 1, JSON.stringify(calls));
  for (const call of calls) {
    assert.equal(call.type, 'function');
    const tool = tools.find((t) => t.function.name === call.function.name);
    assert.ok(tool, `called an unknown tool ${call.function.name}`);
    conforms(JSON.parse(call.function.arguments), tool.function.parameters);
  }
}

test('tool_choice "required": the answer is tool calls with conforming arguments', async () => {
  let finished = 0;
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({
      model: 'm', messages: user('Weather in Paris?'), max_tokens: 200, temperature: 1, seed,
      tools: [weather, clock], tool_choice: 'required',
    });
    const c = r.choices[0];
    if (c.finish_reason === 'length') continue;
    assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c));
    checkCalls(c.message.tool_calls, [weather, clock]);
    ++finished;
  }
  assert.ok(finished >= 2, `only ${finished} of 3 finished`);
});

// A streamed chat's tool calls put together from their deltas.
async function streamedCalls(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true });
  const calls = [];
  let finish;
  let content = '';
  for await (const ch of stream) {
    const d = ch.choices[0]?.delta ?? {};
    content += d.content ?? '';
    for (const t of d.tool_calls ?? []) {
      calls[t.index] ??= { type: 'function', function: { name: '', arguments: '' } };
      if (t.function?.name) calls[t.index].function.name += t.function.name;
      if (t.function?.arguments) calls[t.index].function.arguments += t.function.arguments;
    }
    finish = ch.choices[0]?.finish_reason ?? finish;
  }
  return { calls, finish, content };
}

const getTime = { type: 'function', function: { name: 'get_time' } };

test('tool_choice naming a function, streamed: exactly one call of it', async () => {
  const s = await streamedCalls({ model: 'm', messages: user('What time is it?'), max_tokens: 200, temperature: 1,
                                  seed: 9, tools: [weather, clock], tool_choice: getTime });
  assert.equal(s.finish, 'tool_calls', `finish ${s.finish}, content ${JSON.stringify(s.content)}`);
  assert.equal(s.calls.length, 1);
  assert.equal(s.calls[0].function.name, 'get_time');
  checkCalls(s.calls, [clock]);
});

test('tool_choice naming a function, not streamed; "required", streamed', async () => {
  const r = await client.chat.completions.create({
    model: 'm', messages: user('Time?'), max_tokens: 200, temperature: 1, seed: 4, tools: [weather, clock],
    tool_choice: getTime,
  });
  assert.equal(r.choices[0].finish_reason, 'tool_calls', JSON.stringify(r.choices[0]));
  assert.equal(r.choices[0].message.tool_calls.length, 1);
  assert.equal(r.choices[0].message.tool_calls[0].function.name, 'get_time');
  checkCalls(r.choices[0].message.tool_calls, [clock]);
  const s = await streamedCalls({ model: 'm', messages: user('Weather?'), max_tokens: 200, temperature: 1, seed: 6,
                                  tools: [weather, clock], tool_choice: 'required' });
  assert.equal(s.finish, 'tool_calls', `finish ${s.finish}, content ${JSON.stringify(s.content)}`);
  checkCalls(s.calls, [weather, clock]);
});

test('constraints that cannot be enforced are refused with 400 naming the field', async () => {
  const bad = await rawPost(srv, '/v1/chat/completions', JSON.stringify({
    messages: user('x'), response_format: { type: 'json_schema', json_schema: { name: 'p', schema: { type: 'string', pattern: 'a+' } } },
  }));
  assert.equal(bad.status, 400, bad.text);
  assertErrorBody(bad.json, 'pattern');
  assert.equal(bad.json.error.param, 'response_format.json_schema.schema');
  assert.match(bad.json.error.message, /pattern/);
  const both = await rawPost(srv, '/v1/chat/completions', JSON.stringify({
    messages: user('x'), tools: [weather], tool_choice: 'required', response_format: { type: 'json_object' },
  }));
  assert.equal(both.status, 400, both.text);
  assert.equal(both.json.error.param, 'response_format');
  const health = await fetch(`${srv.base}/health`);
  assert.equal(health.status, 200);
});
