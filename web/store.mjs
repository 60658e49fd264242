// What the page keeps in the browser (localStorage): conversations, the open one, sampling
// settings the user changed, and the API key. Everything read back, and every imported file, goes
// through normalize() first: wrong types are dropped or coerced, sizes bounded.

const KEYS = {
  conversations: 'qnext.conversations.v1',
  current: 'qnext.current',
  settings: 'qnext.settings.v1',
  apiKey: 'qnext.apiKey',
};
export const EXPORT_FORMAT = 'qnext-chat';

const MAX_TEXT = 4 << 20;  // characters in one message
const MAX_MESSAGES = 10000;
const MAX_CONVERSATIONS = 10000;

export const newId = () => `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

const str = (v, max = MAX_TEXT) => (typeof v === 'string' ? v.slice(0, max) : '');
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

function normalizeMessage(m) {
  if (!m || typeof m !== 'object' || (m.role !== 'user' && m.role !== 'assistant')) return null;
  const out = { role: m.role, content: str(m.content) };
  if (m.role === 'assistant') {
    if (m.reasoning) out.reasoning = str(m.reasoning);
    if (Array.isArray(m.tool_calls)) {
      out.tool_calls = m.tool_calls.slice(0, 64).filter((c) => c && typeof c === 'object')
        .map((c) => ({ id: str(c.id, 256), name: str(c.name, 1024), arguments: str(c.arguments) }));
    }
    if (m.stats && typeof m.stats === 'object') {
      const s = {};
      for (const k of ['prompt_tokens', 'completion_tokens', 'cached_tokens', 'tokens_per_second', 'first_token_s', 'seconds'])
        if (num(m.stats[k]) !== undefined) s[k] = m.stats[k];
      out.stats = s;
    }
    if (m.stopped === true) out.stopped = true;
    if (typeof m.finish_reason === 'string') out.finish_reason = str(m.finish_reason, 32);
  }
  return out;
}

export function normalize(c) {
  if (!c || typeof c !== 'object' || !Array.isArray(c.messages)) return null;
  return {
    id: typeof c.id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(c.id) ? c.id : newId(),
    title: str(c.title, 200),
    system: str(c.system),
    created: num(c.created) ?? Date.now(),
    updated: num(c.updated) ?? Date.now(),
    messages: c.messages.slice(0, MAX_MESSAGES).map(normalizeMessage).filter(Boolean),
  };
}

function read(key, fallback) {
  try {
    const v = localStorage.getItem(key);
    return v === null ? fallback : JSON.parse(v);
  } catch {
    return fallback;
  }
}

// Returns an error message, or '' when saved.
function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
    return '';
  } catch (e) {
    return e && e.name === 'QuotaExceededError'
      ? 'The browser has no room left to save conversations: export and delete some.'
      : `Could not save: ${e && e.message}`;
  }
}

export function loadConversations() {
  const list = read(KEYS.conversations, []);
  return Array.isArray(list) ? list.slice(0, MAX_CONVERSATIONS).map(normalize).filter(Boolean) : [];
}
export const saveConversations = (list) => write(KEYS.conversations, list);

export const loadCurrent = () => {
  const v = read(KEYS.current, null);
  return typeof v === 'string' ? v : null;
};
export const saveCurrent = (id) => write(KEYS.current, id);

// Only the settings the user set; the rest follow the model's defaults (GET /props).
export function loadSettings() {
  const s = read(KEYS.settings, {});
  return s && typeof s === 'object' && !Array.isArray(s) ? s : {};
}
export const saveSettings = (s) => write(KEYS.settings, s);

export const loadApiKey = () => {
  const v = read(KEYS.apiKey, '');
  return typeof v === 'string' ? v : '';
};
export const saveApiKey = (key) => (key ? write(KEYS.apiKey, key) : (localStorage.removeItem(KEYS.apiKey), ''));

// Calls f() when another tab changes the conversations.
export function onOtherTabChange(f) {
  window.addEventListener('storage', (e) => { if (e.key === KEYS.conversations) f(); });
}

export function exportJson(list) {
  return JSON.stringify({ format: EXPORT_FORMAT, version: 1, exported: new Date().toISOString(), conversations: list }, null, 2);
}

// Conversations from an export (or one conversation, or a bare list); throws with the reason.
export function importJson(text) {
  let data;
  try { data = JSON.parse(text); } catch { throw new Error('the file is not JSON'); }
  let list;
  if (Array.isArray(data)) list = data;
  else if (data && Array.isArray(data.conversations)) list = data.conversations;
  else if (data && Array.isArray(data.messages)) list = [data];
  else throw new Error('no conversations in the file');
  const out = list.slice(0, MAX_CONVERSATIONS).map(normalize).filter(Boolean);
  if (!out.length) throw new Error('no conversations in the file');
  return out;
}
