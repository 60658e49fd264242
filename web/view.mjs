// One message on screen: a user's text (plain, as typed), or an answer (Markdown, its reasoning in
// a collapsible block, its tool calls, its numbers), with its buttons. Built with el() and the
// Markdown renderer only: message text never becomes markup.
import { button, el } from './dom.mjs';
import { renderMarkdown } from './markdown.mjs';

const fmt = (n) => (Number.isFinite(n) ? n.toLocaleString('en-US') : '?');

export function statsLine(m) {
  const s = m.stats;
  const parts = [];
  if (s) {
    if (s.completion_tokens !== undefined) parts.push(`${fmt(s.completion_tokens)} tokens`);
    if (s.tokens_per_second !== undefined) parts.push(`${s.tokens_per_second.toFixed(1)} tok/s`);
    if (s.prompt_tokens !== undefined) {
      const cached = s.cached_tokens ? ` (${fmt(s.cached_tokens)} cached)` : '';
      parts.push(`prompt ${fmt(s.prompt_tokens)}${cached}`);
    }
    if (s.first_token_s !== undefined) parts.push(`first token ${s.first_token_s.toFixed(2)} s`);
  }
  if (m.stopped) parts.push('stopped');
  else if (m.finish_reason === 'length') parts.push('cut at the token limit');
  return parts.join(' · ');
}

// The DOM of one message; `actions` says which buttons it gets ({ copy, edit, regenerate }).
// Returns { root, update(m, streaming) } so a streaming answer is redrawn in place.
export function messageView(m, index, actions) {
  const root = el('article', {
    class: `msg ${m.role}`,
    'data-index': index,
    'aria-label': m.role === 'user' ? 'You said' : 'The model answered',
  });
  const who = el('div', { class: 'who', text: m.role === 'user' ? 'You' : 'Model' });
  const body = el('div', { class: 'body' });
  root.append(who, body);

  let reasoning = null;   // <details> while the answer has reasoning
  let reasoningBody = null;
  let closedOnce = false; // closed when the reasoning ended; the user may open it again
  const content = el('div', { class: m.role === 'user' ? 'content plain' : 'content markdown' });
  const tools = el('div', { class: 'tool-calls' });
  const meta = el('p', { class: 'meta muted' });
  body.append(content, tools, meta);

  const bar = el('div', { class: 'actions' });
  if (actions.copy) bar.append(button('Copy', 'copy', { class: 'act-copy', 'data-action': 'copy' }, true));
  if (actions.edit) bar.append(button('Edit and resend', 'edit', { class: 'act-edit', 'data-action': 'edit' }, true));
  if (actions.regenerate) {
    const label = m.role === 'user' ? 'Send again' : 'Regenerate';
    bar.append(button(label, 'redo', { class: 'act-regenerate', 'data-action': 'regenerate' }, true));
  }
  root.append(bar);

  function update(msg, streaming = false) {
    if (msg.role === 'user') {
      content.textContent = msg.content;
    } else {
      if (msg.reasoning) {
        if (!reasoning) {
          reasoningBody = el('div', { class: 'reasoning-body' });
          reasoning = el('details', { class: 'reasoning' }, el('summary', { text: 'Thinking' }), reasoningBody);
          reasoning.open = streaming;
          body.insertBefore(reasoning, content);
        }
        reasoningBody.textContent = msg.reasoning;
        const thinking = streaming && !msg.content && !(msg.tool_calls && msg.tool_calls.length);
        reasoning.querySelector('summary').textContent = thinking ? 'Thinking…' : 'Thinking';
        reasoning.classList.toggle('live', thinking);
        if (!thinking && !closedOnce) {
          reasoning.open = false;
          closedOnce = true;
        }
      }
      content.replaceChildren(renderMarkdown(msg.content));
      tools.replaceChildren(...(msg.tool_calls ?? []).map(toolCallView));
      if (streaming && !msg.content && !msg.reasoning && !(msg.tool_calls ?? []).length) {
        content.append(el('span', { class: 'typing', 'aria-label': 'waiting for the answer', role: 'img' }));
      }
    }
    meta.textContent = streaming ? '' : statsLine(msg);
    meta.hidden = !meta.textContent;
    root.classList.toggle('streaming', streaming);
  }
  update(m);
  return { root, update, content };
}

function toolCallView(call) {
  let args = call.arguments;
  try { args = JSON.stringify(JSON.parse(call.arguments), null, 2); } catch { /* still streaming, or not JSON */ }
  return el('div', { class: 'tool-call' },
    el('div', { class: 'tool-head' }, el('span', { class: 'tool-label', text: 'Tool call' }), ' ',
       el('code', { class: 'tool-name', text: call.name || '(unnamed)' })),
    el('pre', { class: 'tool-args' }, el('code', { text: args || '{}' })));
}

// A user message being edited: its text in a box, with Send and Cancel.
export function editorView(text, { onSave, onCancel }) {
  const box = el('textarea', { class: 'edit-box', 'aria-label': 'Edit your message', rows: 3 });
  box.value = text;
  const save = button('Send', 'send', { class: 'primary act-save' });
  const cancel = button('Cancel', null, { class: 'act-cancel' });
  save.addEventListener('click', () => onSave(box.value));
  cancel.addEventListener('click', onCancel);
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); onSave(box.value); }
    else if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); onCancel(); }
  });
  const wrap = el('div', { class: 'editor' }, box, el('div', { class: 'row' }, save, cancel));
  return { root: wrap, focus: () => { box.focus(); box.setSelectionRange(box.value.length, box.value.length); } };
}
