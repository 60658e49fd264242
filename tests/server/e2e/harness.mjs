// What the end-to-end tests of `qnext serve` share: processes.mjs (the tiny model, server
// processes, raw HTTP helpers) plus the official `openai` client. See serve.test.mjs for how to
// run them.
import { API_KEY, HERE, SCALE } from './processes.mjs';

export * from './processes.mjs';

// A clear message instead of ERR_MODULE_NOT_FOUND when `npm ci` has not been run here.
export const { default: OpenAI } = await import('openai').catch((e) => {
  throw new Error(`the openai package is missing: run \`npm ci\` in ${HERE} (scripts/test.sh does) [${e.message}]`);
});

export function makeClient(srv, opts = {}) {
  return new OpenAI({ baseURL: `${srv.base}/v1`, apiKey: API_KEY, maxRetries: 0, timeout: 60_000 * SCALE, ...opts });
}

