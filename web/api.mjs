// The server's own endpoints as the page uses them: GET /props, GET /v1/models (to check a key),
// and POST /v1/chat/completions streamed as server-sent events. Every failure becomes an ApiError
// whose kind says what the page should tell the user.

export class ApiError extends Error {
  // kind: 'unreachable' | 'busy' (503) | 'auth' (401) | 'rejected' (any other error answer) |
  //       'stream' (the answer broke off)
  constructor(kind, message, status = 0) {
    super(message);
    this.kind = kind;
    this.status = status;
  }
}

const authHeader = (key) => (key ? { Authorization: `Bearer ${key}` } : {});

async function request(path, init) {
  try {
    return await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError('unreachable', 'Cannot reach the server. Is `qnext serve` still running?');
  }
}

// The message of an OpenAI error body, or the status line when the body is not one.
async function failure(res) {
  let message = '';
  try {
    const body = await res.json();
    if (body && body.error && typeof body.error.message === 'string') message = body.error.message;
  } catch { /* not JSON */ }
  if (!message) message = `HTTP ${res.status} ${res.statusText}`.trim();
  if (res.status === 401) return new ApiError('auth', message, 401);
  if (res.status === 503) return new ApiError('busy', `The server is busy: ${message}`, 503);
  return new ApiError('rejected', message, res.status);
}

export async function fetchProps() {
  const res = await request('/props', { cache: 'no-store' });
  if (!res.ok) throw await failure(res);
  return res.json();
}

// True when the server takes the key (or wants none).
export async function checkKey(key) {
  const res = await request('/v1/models', { headers: authHeader(key), cache: 'no-store' });
  if (res.status === 401) return false;
  if (!res.ok) throw await failure(res);
  return true;
}

// Streams one chat completion. on.delta({content, reasoning, toolCalls}) for each chunk's delta
// (toolCalls: the chunk's tool_calls array), on.usage(usage) for the usage chunk. Resolves to
// { finishReason }; rejects with an ApiError, or an AbortError when `signal` aborted it.
export async function streamChat(body, { key, signal, on }) {
  const res = await request('/v1/chat/completions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', ...authHeader(key) },
    body: JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw await failure(res);
  if (!res.body) throw new ApiError('stream', 'The server sent no answer.');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let finishReason = null;
  let done = false;
  const handle = (data) => {
    if (data === '[DONE]') { done = true; return; }
    let chunk;
    try { chunk = JSON.parse(data); } catch { throw new ApiError('stream', 'The server sent an event that is not JSON.'); }
    if (chunk.error) throw new ApiError('rejected', String(chunk.error.message ?? 'the server reported an error'));
    if (chunk.usage) on.usage(chunk.usage);
    for (const choice of chunk.choices ?? []) {
      const d = choice.delta ?? {};
      const content = typeof d.content === 'string' ? d.content : '';
      const reasoning = typeof d.reasoning_content === 'string' ? d.reasoning_content : '';
      const toolCalls = Array.isArray(d.tool_calls) ? d.tool_calls : [];
      if (content || reasoning || toolCalls.length) on.delta({ content, reasoning, toolCalls });
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }
  };
  while (!done) {
    const { value, done: ended } = await reader.read();
    if (ended) break;
    buf += value.replace(/\r\n?/g, '\n');
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const event = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
      if (data) handle(data);
      if (done) break;
    }
  }
  if (!done) throw new ApiError('stream', 'The connection closed before the answer was complete.');
  reader.cancel().catch(() => {});
  return { finishReason };
}

// Folds one streamed tool_calls delta into the list being built (OpenAI's streaming shape: the
// first delta of a call has its id and name, later ones add to its arguments).
export function mergeToolCalls(list, deltas) {
  for (const d of deltas) {
    const index = Number.isInteger(d.index) ? d.index : list.length;
    if (index < 0 || index > 1024) continue;
    const call = (list[index] ??= { id: '', name: '', arguments: '' });
    if (typeof d.id === 'string') call.id = d.id;
    if (d.function) {
      if (typeof d.function.name === 'string') call.name += d.function.name;
      if (typeof d.function.arguments === 'string') call.arguments += d.function.arguments;
    }
  }
  for (let k = 0; k < list.length; k++) list[k] ??= { id: '', name: '', arguments: '' };
}
