// The chat page of `qnext serve`: conversations kept in this browser, answers streamed from the
// server's own /v1/chat/completions. Plain ES modules, no framework, nothing from the network but
// this server. Model and user text only ever reaches the page as text (view.js, markdown.js).
import { ApiError, checkKey, fetchProps, mergeToolCalls, streamChat } from './api.mjs';
import { $, button, copyText, el, flash, icon } from './dom.mjs';
import { Settings } from './settings.mjs';
import * as store from './store.mjs';
import { editorView, messageView } from './view.mjs';

const state = {
  props: null,          // GET /props, once it answered
  key: store.loadApiKey(),
  conversations: store.loadConversations(),
  currentId: store.loadCurrent(),
  draftSystem: '',      // the system prompt of a chat not started yet
  streaming: null,      // { controller, conv, msg, view } while an answer streams
};
const settings = new Settings(store.loadSettings(), (s) => report(store.saveSettings(s)));

const current = () => state.conversations.find((c) => c.id === state.currentId) ?? null;

// ---------------------------------------------------------------------------------------------
// Server, key and errors

let propsRetry = 0;
async function loadProps() {
  try {
    state.props = await fetchProps();
  } catch (e) {
    $('#model').textContent = 'server unreachable';
    showError(e);
    // The server may be restarting: try again, less and less often.
    propsRetry = Math.min(30_000, Math.max(2_000, propsRetry * 2));
    setTimeout(() => { if (!state.props) loadProps(); }, propsRetry);
    return false;
  }
  hideBanner();
  const p = state.props;
  $('#model').textContent = p.model;
  settings.setModel(p);
  $('#key-settings').hidden = !p.api_key_required;
  showContext();
  if (p.api_key_required && !state.key) askKey();
  return true;
}

function askKey(message = '') {
  const d = $('#key-dialog');
  $('#key-error').hidden = !message;
  $('#key-error').textContent = message;
  $('#key-input').value = '';
  if (!d.open) d.showModal();
  $('#key-input').focus();
}

async function submitKey(e) {
  e.preventDefault();
  const key = $('#key-input').value.trim();
  if (!key) return;
  const err = $('#key-error');
  try {
    if (!(await checkKey(key))) {
      err.textContent = 'The server did not accept this key.';
      err.hidden = false;
      return;
    }
  } catch (ex) {
    err.textContent = ex.message;
    err.hidden = false;
    return;
  }
  state.key = key;
  report(store.saveApiKey(key));
  $('#key-dialog').close();
  hideBanner();
  setStatus('API key accepted');
  $('#input').focus();
}

function showError(e) {
  if (e instanceof ApiError && e.kind === 'auth') {
    state.key = '';
    store.saveApiKey('');
    askKey(`The server refused the request: ${e.message}`);
    return;
  }
  let text = e.message || String(e);
  if (e instanceof ApiError && e.kind === 'busy') text += ' Try again in a moment.';
  else if (e instanceof ApiError && e.kind === 'rejected') text = `The server rejected the request: ${text}`;
  showBanner(text);
}

function showBanner(text) {
  $('#banner-text').textContent = text;
  $('#banner').hidden = false;
  setStatus(text);
}
const hideBanner = () => { $('#banner').hidden = true; };
const setStatus = (text) => { $('#status').textContent = text; };
// Storage failures (full quota) are shown, not thrown.
function report(error) { if (error) showBanner(error); }

// ---------------------------------------------------------------------------------------------
// Conversations list

function save() {
  report(store.saveConversations(state.conversations));
}

function open(id) {
  state.currentId = id;
  report(store.saveCurrent(id));
  renderSidebar();
  renderConversation();
  closeSidebar();
}

function renderSidebar() {
  const list = $('#conversations');
  const sorted = [...state.conversations].sort((a, b) => b.updated - a.updated);
  list.replaceChildren(...sorted.map((c) => {
    const title = c.title || 'Untitled';
    const openBtn = el('button', { type: 'button', class: 'conv-open', 'aria-current': c.id === state.currentId ? 'page' : false },
      el('span', { class: 'conv-title', text: title }));
    openBtn.addEventListener('click', () => open(c.id));
    const rename = button(`Rename “${title}”`, 'edit', { class: 'conv-rename' }, true);
    rename.addEventListener('click', () => startRename(c, li));
    const del = button(`Delete “${title}”`, 'trash', { class: 'conv-delete' }, true);
    del.addEventListener('click', () => remove(c));
    const li = el('li', { class: 'conv', 'data-id': c.id }, openBtn, rename, del);
    return li;
  }));
  $('#no-conversations').hidden = state.conversations.length > 0;
}

function startRename(c, li) {
  const input = el('input', { class: 'rename-box', type: 'text', 'aria-label': 'New title', maxlength: 200 });
  input.value = c.title;
  let done = false;
  const finish = (keep) => {
    if (done) return;
    done = true;
    if (keep && input.value.trim()) {
      c.title = input.value.trim().slice(0, 200);
      save();
      renderConversationTitle();
    }
    renderSidebar();
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); finish(true); }
    else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); finish(false); }
  });
  input.addEventListener('blur', () => finish(true));
  li.replaceChildren(input);
  input.focus();
  input.select();
}

function remove(c) {
  if (!window.confirm(`Delete the conversation “${c.title || 'Untitled'}”?`)) return;
  if (state.streaming && state.streaming.conv === c) state.streaming.controller.abort();
  state.conversations = state.conversations.filter((x) => x !== c);
  save();
  if (state.currentId === c.id) {
    state.currentId = null;
    report(store.saveCurrent(null));
    renderConversation();
  }
  renderSidebar();
  setStatus('Conversation deleted');
}

function exportAll() {
  const blob = new Blob([store.exportJson(state.conversations)], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: `qnext-chats-${new Date().toISOString().slice(0, 10)}.json` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function importFile(file) {
  try {
    const list = store.importJson(await file.text());
    const ids = new Set(state.conversations.map((c) => c.id));
    for (const c of list) {
      if (ids.has(c.id)) c.id = store.newId();
      ids.add(c.id);
    }
    state.conversations.push(...list);
    save();
    open(list[0].id);
    setStatus(`Imported ${list.length} conversation${list.length === 1 ? '' : 's'}`);
  } catch (e) {
    showBanner(`Could not import ${file.name}: ${e.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Messages

function renderConversationTitle() {
  const c = current();
  $('#title').textContent = c ? c.title || 'Untitled' : 'New chat';
  document.title = c && c.title ? `${c.title} · qnext` : 'qnext chat';
}

function showContext() {
  const c = current();
  const last = c && [...c.messages].reverse().find((m) => m.stats && m.stats.prompt_tokens !== undefined);
  const limit = state.props && state.props.context_size;
  const out = $('#ctx');
  if (!last || !limit) { out.textContent = limit ? `· context ${limit.toLocaleString('en-US')} tokens` : ''; return; }
  const used = last.stats.prompt_tokens + (last.stats.completion_tokens ?? 0);
  out.textContent = `· context ${used.toLocaleString('en-US')} / ${limit.toLocaleString('en-US')}`;
  out.classList.toggle('warn', used > 0.9 * limit);
}

function renderConversation() {
  const c = current();
  renderConversationTitle();
  showContext();
  const box = $('#messages');
  const views = [];
  if (!c || !c.messages.length) {
    box.replaceChildren(emptyNode);
  } else {
    const n = c.messages.length;
    box.replaceChildren(...c.messages.map((m, i) => {
      const streamingThis = state.streaming && state.streaming.msg === m;
      const v = messageView(m, i, {
        copy: true,
        edit: m.role === 'user',
        regenerate: i === n - 1 && !state.streaming,
      });
      if (streamingThis) {
        state.streaming.view = v;
        v.update(m, true);
      }
      views.push(v);
      return v.root;
    }));
  }
  box.scrollTop = box.scrollHeight;
  return views;
}
const emptyNode = $('#empty');

function onMessageAction(e) {
  const copyCode = e.target.closest('.copy-code');
  if (copyCode) {
    const code = copyCode.closest('.codeblock').querySelector('pre').textContent;
    copyText(code).then((ok) => flash(copyCode, ok ? 'Copied' : 'Copy failed'));
    return;
  }
  const btn = e.target.closest('[data-action]');
  const article = btn && btn.closest('article.msg');
  const c = current();
  if (!article || !c) return;
  const index = Number(article.dataset.index);
  const m = c.messages[index];
  if (!m) return;
  const action = btn.dataset.action;
  if (action === 'copy') copyText(m.content).then((ok) => flash(btn, ok ? 'Copied' : 'Copy failed'));
  else if (action === 'edit') startEdit(c, index, article);
  else if (action === 'regenerate') regenerate();
}

function startEdit(c, index, article) {
  if (state.streaming) return;
  const ed = editorView(c.messages[index].content, {
    onSave: (text) => {
      if (!text.trim()) return;
      c.messages = c.messages.slice(0, index);
      c.messages.push({ role: 'user', content: text });
      if (index === 0) c.title = titleOf(text);
      generate(c);
    },
    onCancel: () => renderConversation(),
  });
  article.querySelector('.body').replaceChildren(ed.root);
  article.querySelector('.actions').hidden = true;
  ed.focus();
}

const titleOf = (text) => {
  const line = text.trim().split('\n')[0];
  return line.length > 60 ? `${line.slice(0, 57)}…` : line || 'Untitled';
};

// ---------------------------------------------------------------------------------------------
// Sending and streaming

function send() {
  const input = $('#input');
  const text = input.value;
  if (!text.trim() || state.streaming) return;
  let c = current();
  if (!c) {
    c = { id: store.newId(), title: titleOf(text), system: state.draftSystem, created: Date.now(), updated: Date.now(), messages: [] };
    state.draftSystem = '';
    state.conversations.push(c);
    state.currentId = c.id;
    report(store.saveCurrent(c.id));
  }
  c.messages.push({ role: 'user', content: text });
  input.value = '';
  autosize();
  generate(c);
}

function regenerate() {
  const c = current();
  if (!c || state.streaming || !c.messages.length) return;
  if (c.messages[c.messages.length - 1].role === 'assistant') c.messages.pop();
  generate(c);
}

function stop() {
  if (state.streaming) state.streaming.controller.abort();
}

const isJson = (s) => { try { JSON.parse(s); return true; } catch { return false; } };

// The request for the next answer of c: its history (answers without their reasoning; tool calls
// whose arguments are complete JSON), the system prompt and the sampling settings.
function requestBody(c) {
  const messages = [];
  if (c.system.trim()) messages.push({ role: 'system', content: c.system });
  for (const m of c.messages) {
    if (m.role === 'user') { messages.push({ role: 'user', content: m.content }); continue; }
    const calls = (m.tool_calls ?? []).filter((t) => t.name && isJson(t.arguments || '{}'));
    if (!m.content && !calls.length) continue;
    const a = { role: 'assistant', content: m.content };
    if (calls.length) {
      a.tool_calls = calls.map((t, k) => ({
        id: t.id || `call_${k}`, type: 'function', function: { name: t.name, arguments: t.arguments || '{}' },
      }));
    }
    messages.push(a);
  }
  return { model: state.props.model, messages, stream: true, stream_options: { include_usage: true }, ...settings.requestFields() };
}

function setBusy(busy) {
  $('#send').hidden = busy;
  $('#stop').hidden = !busy;
  $('#messages').setAttribute('aria-busy', busy ? 'true' : 'false');
  for (const b of document.querySelectorAll('.act-regenerate, .act-edit')) b.disabled = busy;
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const s = state.streaming;
    if (!s || !s.view || !s.view.root.isConnected) return;
    const box = $('#messages');
    const pinned = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    s.view.update(s.msg, true);
    if (pinned) box.scrollTop = box.scrollHeight;
  });
}

async function generate(c) {
  hideBanner();
  if (!state.props && !(await loadProps())) return failUnsent(c);
  if (state.props.api_key_required && !state.key) {
    askKey();
    return failUnsent(c);
  }
  const body = requestBody(c);
  const msg = { role: 'assistant', content: '', reasoning: '', tool_calls: [] };
  c.messages.push(msg);
  c.updated = Date.now();
  save();
  const controller = new AbortController();
  state.streaming = { controller, conv: c, msg, view: null };
  renderSidebar();
  renderConversation();
  setBusy(true);
  setStatus('Answering…');

  const t0 = performance.now();
  let tFirst = null;
  let usage = null;
  let error = null;
  try {
    const r = await streamChat(body, {
      key: state.key,
      signal: controller.signal,
      on: {
        delta: (d) => {
          if (tFirst === null) tFirst = performance.now();
          msg.content += d.content;
          msg.reasoning += d.reasoning;
          if (d.toolCalls.length) mergeToolCalls(msg.tool_calls, d.toolCalls);
          scheduleRender();
        },
        usage: (u) => { usage = u; },
      },
    });
    msg.finish_reason = r.finishReason ?? undefined;
  } catch (e) {
    if (e.name === 'AbortError') msg.stopped = true;
    else error = e;
  }
  const tEnd = performance.now();
  msg.stats = statsOf(usage, t0, tFirst, tEnd);
  if (!msg.reasoning) delete msg.reasoning;
  if (!msg.tool_calls.length) delete msg.tool_calls;
  if (!msg.finish_reason) delete msg.finish_reason;
  if (error && !msg.content && !msg.reasoning && !msg.tool_calls) c.messages.pop();
  state.streaming = null;
  setBusy(false);
  save();
  if (current() === c) renderConversation();
  if (error) showError(error);
  else setStatus(msg.stopped ? 'Stopped' : 'Answer complete');
}

// A request that never left: the user's message stays, with "Send again" on it.
function failUnsent(c) {
  save();
  renderSidebar();
  if (current() === c) renderConversation();
}

function statsOf(usage, t0, tFirst, tEnd) {
  const s = {};
  if (usage) {
    s.prompt_tokens = usage.prompt_tokens;
    s.completion_tokens = usage.completion_tokens;
    const cached = usage.prompt_tokens_details && usage.prompt_tokens_details.cached_tokens;
    if (cached) s.cached_tokens = cached;
    // Decode rate: tokens after the first over the time after it (not when they came at once).
    if (tFirst !== null && usage.completion_tokens > 1 && tEnd - tFirst >= 20)
      s.tokens_per_second = (usage.completion_tokens - 1) / ((tEnd - tFirst) / 1000);
  }
  if (tFirst !== null) s.first_token_s = (tFirst - t0) / 1000;
  s.seconds = (tEnd - t0) / 1000;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Composer, settings, layout

function autosize() {
  const t = $('#input');
  t.style.height = 'auto';
  t.style.height = `${Math.min(t.scrollHeight + 2, Math.round(window.innerHeight * 0.4))}px`;
}

function openSettings() {
  const c = current();
  $('#set-system').value = c ? c.system : state.draftSystem;
  settings.show();
  $('#settings').showModal();
}

function onSystemInput() {
  const c = current();
  if (c) c.system = $('#set-system').value;
  else state.draftSystem = $('#set-system').value;
}

function openSidebar() {
  $('#app').classList.add('sidebar-open');
  $('#scrim').hidden = false;
  $('#open-sidebar').setAttribute('aria-expanded', 'true');
  $('#new-chat').focus();
}
function closeSidebar() {
  if (!$('#app').classList.contains('sidebar-open')) return;
  $('#app').classList.remove('sidebar-open');
  $('#scrim').hidden = true;
  $('#open-sidebar').setAttribute('aria-expanded', 'false');
}

function wire() {
  for (const b of document.querySelectorAll('[data-icon]')) b.prepend(icon(b.dataset.icon));
  $('#send').prepend(icon('send'));
  $('#stop').prepend(icon('stop'));
  $('#new-chat').prepend(icon('plus'));
  $('#open-settings').prepend(icon('gear'));
  $('#export').prepend(icon('down'));
  $('#import').prepend(icon('up'));

  $('#composer').addEventListener('submit', (e) => { e.preventDefault(); send(); });
  $('#input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  $('#input').addEventListener('input', autosize);
  $('#stop').addEventListener('click', stop);
  $('#messages').addEventListener('click', onMessageAction);
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || document.querySelector('dialog[open]')) return;
    if (state.streaming) { e.preventDefault(); stop(); }
    else closeSidebar();
  });

  $('#new-chat').addEventListener('click', () => {
    state.currentId = null;
    report(store.saveCurrent(null));
    renderSidebar();
    renderConversation();
    closeSidebar();
    $('#input').focus();
  });
  $('#export').addEventListener('click', exportAll);
  $('#import').addEventListener('click', () => $('#import-file').click());
  $('#import-file').addEventListener('change', (e) => {
    const f = e.target.files && e.target.files[0];
    e.target.value = '';
    if (f) importFile(f);
  });
  $('#open-sidebar').addEventListener('click', openSidebar);
  $('#close-sidebar').addEventListener('click', closeSidebar);
  $('#scrim').addEventListener('click', closeSidebar);
  $('#banner-close').addEventListener('click', hideBanner);

  $('#open-settings').addEventListener('click', openSettings);
  $('#set-system').addEventListener('input', onSystemInput);
  $('#settings').addEventListener('close', () => { save(); $('#open-settings').focus(); });
  $('#forget-key').addEventListener('click', () => {
    state.key = '';
    store.saveApiKey('');
    $('#settings').close();
    askKey();
  });
  $('#key-form').addEventListener('submit', submitKey);

  store.onOtherTabChange(() => {
    if (state.streaming) return;
    state.conversations = store.loadConversations();
    renderSidebar();
    renderConversation();
  });
}

wire();
renderSidebar();
renderConversation();
loadProps();
$('#input').focus();
