// DOM helpers for the chat page. Text only ever enters the page through textContent (el's string
// children become Text nodes); attributes are set one by one, never from markup.

// el('p', { class: 'x', 'aria-label': 'y' }, 'text', child, ...): an element with its children.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  append(e, children);
  return e;
}

export function append(parent, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return parent;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// Line icons drawn for this page: each is one or more SVG path strings (24x24, stroked).
const ICONS = {
  plus: ['M12 5v14', 'M5 12h14'],
  close: ['M6 6l12 12', 'M18 6L6 18'],
  menu: ['M4 7h16', 'M4 12h16', 'M4 17h16'],
  copy: ['M9 9h10v10H9z', 'M5 15V5h10'],
  edit: ['M4 20h4L19 9l-4-4L4 16z', 'M13.5 6.5l4 4'],
  trash: ['M5 7h14', 'M10 7V4h4v3', 'M7 7l1 13h8l1-13'],
  redo: ['M19 12a7 7 0 1 1-2.05-4.95', 'M19 4v4h-4'],
  stop: ['M7 7h10v10H7z'],
  send: ['M5 12h13', 'M13 6l6 6-6 6'],
  gear: ['M4 6h9', 'M17 6h3', 'M4 12h3', 'M11 12h9', 'M4 18h11', 'M19 18h1', 'M15 4v4', 'M9 10v4', 'M17 16v4'],
  check: ['M5 12l5 5 9-10'],
  down: ['M12 4v12', 'M6 11l6 6 6-6', 'M5 20h14'],
  up: ['M12 17V5', 'M6 10l6-6 6 6', 'M5 20h14'],
};

const SVG = 'http://www.w3.org/2000/svg';
export function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  for (const [k, v] of [['viewBox', '0 0 24 24'], ['aria-hidden', 'true'], ['focusable', 'false'], ['class', 'icon']])
    svg.setAttribute(k, v);
  for (const d of ICONS[name]) {
    const p = document.createElementNS(SVG, 'path');
    p.setAttribute('d', d);
    svg.append(p);
  }
  return svg;
}

// A button with an icon and a label: visible text, or (iconOnly) an aria-label and a tooltip.
export function button(label, iconName, attrs = {}, iconOnly = false) {
  const b = el('button', { type: 'button', ...attrs });
  if (iconName) b.append(icon(iconName));
  if (iconOnly) {
    b.setAttribute('aria-label', label);
    b.title = label;
    b.classList.add('icon-only');
  } else {
    b.append(el('span', { text: label }));
  }
  return b;
}

// Copies text; falls back to a hidden textarea where the Clipboard API is missing (plain http
// from another machine is not a secure context).
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const t = el('textarea', { class: 'offscreen', 'aria-hidden': 'true' });
    t.value = text;
    document.body.append(t);
    t.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    t.remove();
    return ok;
  }
}

// Shows "Copied" on a button for a moment.
export function flash(btn, text = 'Copied') {
  const label = btn.querySelector('span');
  const old = btn.getAttribute('aria-label');
  if (label) {
    const before = label.textContent;
    label.textContent = text;
    setTimeout(() => { label.textContent = before; }, 1200);
  } else {
    btn.setAttribute('aria-label', text);
    btn.classList.add('done');
    setTimeout(() => { btn.setAttribute('aria-label', old); btn.classList.remove('done'); }, 1200);
  }
}
