// What the end-to-end tests of `qnext serve` share and that needs no npm package: the tiny model,
// server processes, raw HTTP and /metrics helpers. harness.mjs adds the `openai` client; the
// browser test (../webui) imports this file directly.
import { test as nodeTest } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = process.env.QNEXT_ROOT || path.resolve(HERE, '../../..');
export const BIN = process.env.QNEXT_BIN || path.join(ROOT, 'build/qnext');
const VERBOSE = !!process.env.QNEXT_E2E_VERBOSE;

export const API_KEY = 'e2e-secret-key';
export const THREADS = '2';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// QNEXT_E2E_TIMEOUT_SCALE stretches the deadlines below (tests, requests, server start, waiting
// for idle): sanitizer builds run the model several times slower (scripts/test.sh --tsan sets 4).
export const SCALE = Number(process.env.QNEXT_E2E_TIMEOUT_SCALE) || 1;
// Every test gets a deadline, so a hung request fails its test instead of the whole run.
export const test = (name, fn) => nodeTest(name, { timeout: 60_000 * SCALE }, fn);

// ---------------------------------------------------------------------------------------------
// The model directory and server processes

export const servers = new Set();

export function makeModel(dir) {
  const r = spawnSync(BIN, ['synth', '--preset', 'tiny', '--seed', '1', '--out', dir, '-t', THREADS],
                      { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`qnext synth failed (${r.status}): ${r.stderr}${r.error ?? ''}`);
  for (const f of ['tokenizer.json', 'tokenizer_config.json'])
    fs.copyFileSync(path.join(ROOT, 'assets/tokenizer', f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({
    do_sample: true, temperature: 0.7, top_p: 0.8, top_k: 20, eos_token_id: [151645, 151643],
  }, null, 2));
}

// Starts `qnext serve` and resolves once it prints `listening on http://HOST:PORT`. launcher:
// a command line that runs it (e.g. mpirun and its options), or none.
export function startServer(modelDir, extraArgs,
                            { name = 'server', timeoutMs = 60_000 * SCALE, launcher = [], threads = THREADS } = {}) {
  const args = ['serve', '--model', modelDir, '--port', '0', '-t', threads, ...extraArgs];
  const proc = launcher.length ? spawn(launcher[0], [...launcher.slice(1), BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
                               : spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const srv = { proc, name, args, log: () => log, exited: null };
  servers.add(srv);
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { log += d; if (VERBOSE) process.stderr.write(`[${name} out] ${d}`); });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${name}: no "listening on" line within ${timeoutMs} ms; output:\n${log}`));
    }, timeoutMs);
    proc.stderr.on('data', (d) => {
      log += d;
      if (VERBOSE) process.stderr.write(`[${name}] ${d}`);
      const m = /listening on http:\/\/(\S+?):(\d+)/.exec(log);
      if (m && !srv.port) {
        clearTimeout(timer);
        srv.port = Number(m[2]);
        srv.base = `http://127.0.0.1:${srv.port}`;
        resolve(srv);
      }
    });
    proc.on('exit', (code, signal) => {
      srv.exited = { code, signal };
      servers.delete(srv);
      if (!srv.port) {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code ?? signal}) before listening: ${args.join(' ')}\n${log}`));
      }
    });
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

// SIGTERM, then SIGKILL after graceMs. Resolves to { code, signal, forced }.
export async function stopServer(srv, graceMs = 5000) {
  if (srv.exited) return { ...srv.exited, forced: false };
  const exited = new Promise((r) => srv.proc.once('exit', (code, signal) => r({ code, signal })));
  srv.proc.kill('SIGTERM');
  const first = await Promise.race([exited, sleep(graceMs).then(() => null)]);
  if (first) return { ...first, forced: false };
  srv.proc.kill('SIGKILL');
  return { ...(await exited), forced: true };
}

process.on('exit', () => { for (const s of servers) try { s.proc.kill('SIGKILL'); } catch {} });

// ---------------------------------------------------------------------------------------------
// Raw HTTP helpers

export const authHeaders = { Authorization: `Bearer ${API_KEY}` };

export async function rawPost(srv, route, body, headers = {}) {
  const res = await fetch(`${srv.base}${route}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...authHeaders, ...headers },
    body,
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: res.status, headers: res.headers, text, json };
}

export async function rawGet(srv, route, headers = authHeaders) {
  const res = await fetch(`${srv.base}${route}`, { headers });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: res.status, headers: res.headers, text, json };
}

// An OpenAI error body: {"error": {"message", "type", "param", "code"}}.
export function assertErrorBody(json, what) {
  assert.ok(json && typeof json === 'object', `${what}: the body is not JSON`);
  const e = json.error;
  assert.ok(e && typeof e === 'object', `${what}: no "error" object in ${JSON.stringify(json)}`);
  assert.equal(typeof e.message, 'string', `${what}: error.message`);
  assert.ok(e.message.length > 0, `${what}: empty error.message`);
  assert.equal(typeof e.type, 'string', `${what}: error.type`);
  for (const k of ['param', 'code'])
    assert.ok(k in e, `${what}: error.${k} missing (null when not applicable): ${JSON.stringify(json)}`);
}

// Prometheus text format -> [{ name, labels: {k: v}, value }]
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const kv of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

export function metricValue(ms, name, labels = {}) {
  const hits = ms.filter((m) => m.name === name && Object.entries(labels).every(([k, v]) => m.labels[k] === v));
  if (!hits.length) return undefined;
  return hits.reduce((s, m) => s + m.value, 0);
}
