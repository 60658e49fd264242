// `qnext serve` under `mpirun -np 2|3` (expert parallelism, src/runtime/expert_parallel.h), driven by
// the official openai client: streamed and whole chat completions, several at once (continuous
// batching), answer as the single-process server does; the job ends cleanly on SIGTERM.
//   cd tests/server/e2e && npm ci && QNEXT_MPIRUN=$(command -v mpirun) QNEXT_BIN=../../../build/qnext node --test mpi.test.mjs
// Every MPI transport is held to the loopback interface. Without QNEXT_MPIRUN (a build without
// MPI) the tests are skipped with the reason; CI installs Open MPI (scripts/install-deps.sh).
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { API_KEY, makeClient, makeModel, servers, startServer, stopServer, test } from './harness.mjs';

const MPIRUN = process.env.QNEXT_MPIRUN || '';
const skip = MPIRUN ? false : 'built without MPI (QNEXT_MPIRUN unset): install openmpi-bin and libopenmpi-dev';
// Each job gets its own session directory (TMPDIR): Open MPI's default, /tmp/ompi.HOST.UID, is
// shared by every mpirun of the user, and one job removing it as it ends while another creates it
// fails the second ("mkdir ... File exists"), as CI once saw with ctest running MPI tests side by side.
const mpirun = (np) => ['env', `TMPDIR=${sessionDir()}`, MPIRUN, '--allow-run-as-root', '--oversubscribe', '--mca', 'btl', 'self,vader,tcp',
                        '--mca', 'btl_tcp_if_include', 'lo', '--mca', 'oob_tcp_if_include', 'lo',
                        '--mca', 'btl_vader_single_copy_mechanism', 'none', '-np', String(np)];

let tmpDir, modelDir, one, two, three;

function sessionDir() {
  return fs.mkdtempSync(path.join(tmpDir, 'ompi-'));
}

before(async () => {
  if (skip) return;
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qnext-e2e-mpi-'));
  modelDir = path.join(tmpDir, 'model');
  makeModel(modelDir);
  // One thread per rank: three ranks share this machine's cores.
  const args = ['--parallel', '4', '--api-key', API_KEY];
  [one, two, three] = await Promise.all([
    startServer(modelDir, args, { name: 'one process', threads: '1' }),
    startServer(modelDir, args, { name: 'mpirun -np 2', launcher: mpirun(2), threads: '1' }),
    startServer(modelDir, args, { name: 'mpirun -np 3', launcher: mpirun(3), threads: '1' }),
  ]);
});

after(async () => {
  for (const s of [...servers]) await stopServer(s, 5000);
  if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
});

const prompts = ['Hello', 'Write a haiku about the sea.', 'Count from one to ten.', 'What is 2 + 2?'];

async function streamed(srv, content) {
  const stream = await makeClient(srv).chat.completions.create({
    model: 'm', messages: [{ role: 'user', content }], temperature: 0, max_tokens: 24, stream: true,
  });
  let text = '', finish = null, chunks = 0;
  for await (const chunk of stream) {
    ++chunks;
    const c = chunk.choices[0];
    if (c?.delta?.content) text += c.delta.content;
    if (c?.finish_reason) finish = c.finish_reason;
  }
  return { text, finish, chunks };
}

test('streamed chat completions under mpirun -np 2 and -np 3 answer as one process does', { skip }, async () => {
  for (const content of prompts.slice(0, 2)) {
    const want = await streamed(one, content);
    assert.ok(want.text.length > 0 && want.chunks > 2, `one process answered: ${JSON.stringify(want)}`);
    for (const srv of [two, three]) {
      const got = await streamed(srv, content);
      assert.equal(got.text, want.text, `${srv.name}, "${content}"`);
      assert.equal(got.finish, want.finish, `${srv.name}, "${content}"`);
    }
  }
});

test('several requests at once (one batch through the experts) under mpirun -np 3', { skip }, async () => {
  const want = await Promise.all(prompts.map((p) => streamed(one, p)));
  const got = await Promise.all(prompts.map((p) => streamed(three, p)));
  for (let i = 0; i < prompts.length; ++i) assert.equal(got[i].text, want[i].text, `"${prompts[i]}"`);
  const whole = await makeClient(two).chat.completions.create({
    model: 'm', messages: [{ role: 'user', content: prompts[3] }], temperature: 0, max_tokens: 24,
  });
  assert.equal(whole.choices[0].message.content, want[3].text, 'non-streamed, -np 2');
});

test('SIGTERM ends the whole job, every rank', { skip }, async () => {
  const r = await stopServer(two, 10_000);
  assert.equal(r.forced, false, `mpirun -np 2 still ran 10 s after SIGTERM:\n${two.log()}`);
});
