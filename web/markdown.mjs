// A small Markdown renderer for model output. parse() turns text into a tree of plain objects and
// render() builds DOM nodes from it with createElement and textContent only: no text is ever
// parsed as HTML, so "<script>", "<img onerror=...>" or any raw HTML stays visible text. Links
// keep only absolute http:, https: and mailto: URLs (anything else, javascript: included, renders
// as its text) and open with rel="noopener noreferrer".
//
// Covered: paragraphs (single newlines are line breaks, as chat text means them), ATX and setext
// headings, emphasis (* _ ** __ ~~), inline code, fenced code (an unclosed fence runs to the end,
// so code streams in as code), block quotes, nested ordered / unordered lists, GFM tables,
// thematic breaks, links, images (shown as links: nothing is loaded), <autolinks> and bare
// http(s) URLs. parse() has no DOM dependency (the tests run it under node).
import { highlight } from './highlight.mjs';

const MAX_DEPTH = 12;           // nesting of quotes and lists; deeper is read as text
const MAX_OPENER_SEARCH = 64;   // emphasis openers looked at per closer: keeps parsing near-linear
const MAX_LINK_TEXT = 2000;     // the longest [text] or "title" of a link
const MAX_URL = 2048;           // the longest link destination or autolink

export function safeUrl(raw) {
  const s = String(raw).trim();
  if (!s) return null;
  let u;
  try { u = new URL(s); } catch { return null; }  // relative or malformed: not a link
  return ['http:', 'https:', 'mailto:'].includes(u.protocol) ? u.href : null;
}

// ---------------------------------------------------------------------------------------------
// Blocks

const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
const ATX = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:([ \t]+)(.*)|$)/;
// Underlines of one character are left alone: mid-stream, "Intro:\n-" is a list about to start.
const SETEXT = /^ {0,3}(={2,}|-{2,})[ \t]*$/;
const TABLE_DELIM = /^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const blank = (l) => /^[ \t]*$/.test(l);

export function parse(text, depth = 0) {
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  return parseBlocks(lines, depth);
}

function parseBlocks(lines, depth) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (blank(line)) { i++; continue; }
    let m;
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const indent = line.length - line.trimStart().length;
      const body = [];
      i++;
      while (i < lines.length) {
        const close = lines[i].trim();
        if (close.length >= fence.length && close[0] === fence[0] && new RegExp(`^\\${fence[0]}+$`).test(close)) { i++; break; }
        body.push(lines[i].replace(new RegExp(`^ {0,${indent}}`), ''));
        i++;
      }
      out.push({ type: 'code', lang: m[2] || '', text: body.join('\n') });
      continue;
    }
    if ((m = ATX.exec(line))) {
      out.push({ type: 'heading', level: m[1].length, children: parseInline(m[2] || '') });
      i++;
      continue;
    }
    if (HR.test(line)) { out.push({ type: 'hr' }); i++; continue; }
    if (depth < MAX_DEPTH && QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && QUOTE.test(lines[i])) inner.push(lines[i++].replace(QUOTE, ''));
      out.push({ type: 'quote', children: parseBlocks(inner, depth + 1) });
      continue;
    }
    if (depth < MAX_DEPTH && ITEM.test(line)) {
      i = parseList(lines, i, depth, out);
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_DELIM.test(lines[i + 1])) {
      const table = parseTable(lines, i);
      if (table) { out.push(table.node); i = table.next; continue; }
    }
    // A paragraph: up to a blank line or the start of another block.
    const para = [line];
    i++;
    while (i < lines.length && !blank(lines[i]) && !startsBlock(lines, i)) para.push(lines[i++]);
    if (i < lines.length && para.length >= 1 && SETEXT.exec(lines[i])) {
      out.push({ type: 'heading', level: lines[i].trim()[0] === '=' ? 1 : 2, children: parseInline(para.join('\n')) });
      i++;
      continue;
    }
    out.push({ type: 'paragraph', children: parseInline(para.join('\n')) });
  }
  return out;
}

function startsBlock(lines, i) {
  const l = lines[i];
  if (FENCE.test(l) || ATX.test(l) || HR.test(l) || QUOTE.test(l)) return true;
  if (SETEXT.test(l)) return true;  // ends the paragraph as its underline
  const m = ITEM.exec(l);
  // A list interrupts a paragraph only when it has text and, if ordered, starts at 1.
  if (m && m[4] && m[4].trim() && (/^[-*+]$/.test(m[2]) || /^1[.)]$/.test(m[2]))) return true;
  return l.includes('|') && i + 1 < lines.length && TABLE_DELIM.test(lines[i + 1]);
}

// One list from lines[i]; pushes it to out and returns the index after it.
function parseList(lines, i, depth, out) {
  const first = ITEM.exec(lines[i]);
  const ordered = /\d/.test(first[2]);
  const marker = first[2].slice(-1);  // '-', '*', '+', '.' or ')': a different one starts a new list
  const list = { type: 'list', ordered, start: ordered ? parseInt(first[2], 10) : 1, items: [] };
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || /\d/.test(m[2]) !== ordered || m[2].slice(-1) !== marker) break;
    // The item's content column: after the marker and its spaces (one space when 5+ follow: code).
    const spaces = m[3] ? m[3].replace(/\t/g, '    ').length : 1;
    const width = m[1].length + m[2].length + (spaces > 4 ? 1 : spaces);
    const body = [m[4] !== undefined ? (spaces > 4 ? ' '.repeat(spaces - 1) : '') + m[4] : ''];
    i++;
    let lastBlank = false;
    while (i < lines.length) {
      const l = lines[i];
      if (blank(l)) { body.push(''); lastBlank = true; i++; continue; }
      const indent = l.length - l.trimStart().length;
      if (indent >= width) { body.push(l.slice(width)); lastBlank = false; i++; continue; }
      // Lazy continuation of the item's paragraph.
      if (!lastBlank && !ITEM.test(l) && !startsBlock(lines, i)) { body.push(l); i++; continue; }
      break;
    }
    while (body.length && blank(body[body.length - 1])) body.pop();
    list.items.push(parseBlocks(body, depth + 1));
    // A blank line then something that is not an item of this list ends it.
    if (lastBlank && i < lines.length && !ITEM.test(lines[i])) break;
  }
  out.push(list);
  return i;
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cur = '';
  let code = false;
  for (let k = 0; k < s.length; k++) {
    const c = s[k];
    if (c === '\\' && s[k + 1] === '|') { cur += '|'; k++; continue; }
    if (c === '`') code = !code;
    if (c === '|' && !code) { cells.push(cur.trim()); cur = ''; continue; }
    cur += c;
  }
  cells.push(cur.trim());
  return cells;
}

function parseTable(lines, i) {
  const head = splitRow(lines[i]);
  const delims = splitRow(lines[i + 1]);
  if (head.length !== delims.length) return null;
  const align = delims.map((d) => (d.startsWith(':') && d.endsWith(':') ? 'center' : d.endsWith(':') ? 'right' : d.startsWith(':') ? 'left' : ''));
  const rows = [];
  let k = i + 2;
  while (k < lines.length && !blank(lines[k]) && lines[k].includes('|')) {
    const cells = splitRow(lines[k++]);
    rows.push(head.map((_, c) => parseInline(cells[c] ?? '')));
  }
  return { node: { type: 'table', align, head: head.map((h) => parseInline(h)), rows }, next: k };
}

// ---------------------------------------------------------------------------------------------
// Inline

const PUNCT = /[!-/:-@[-`{-~]/;
const isPunct = (c) => c !== undefined && PUNCT.test(c);
const isSpace = (c) => c === undefined || /\s/.test(c);

export function parseInline(src, inLink = false) {
  // Nodes live in a doubly linked list while emphasis is matched, then become arrays.
  const head = { next: null };
  let tail = head;
  const push = (node) => { node.prev = tail; node.next = null; tail.next = node; tail = node; return node; };
  const delims = [];
  let buf = '';
  const flush = () => { if (buf) { push({ type: 'text', text: buf }); buf = ''; } };

  const n = src.length;
  const pairs = inLink ? null : bracketPairs(src);
  let i = 0;
  while (i < n) {
    const c = src[i];
    if (c === '\\' && i + 1 < n) {
      if (src[i + 1] === '\n') { flush(); push({ type: 'br' }); i += 2; continue; }
      if (isPunct(src[i + 1])) { buf += src[i + 1]; i += 2; continue; }
    }
    if (c === '\n') {
      buf = buf.replace(/[ \t]+$/, '');
      flush();
      push({ type: 'br' });
      i++;
      while (i < n && (src[i] === ' ' || src[i] === '\t')) i++;
      continue;
    }
    if (c === '`') {
      let k = i;
      while (k < n && src[k] === '`') k++;
      const run = k - i;
      const end = findBackticks(src, k, run);
      if (end >= 0) {
        let code = src.slice(k, end).replace(/\n/g, ' ');
        if (code.length > 2 && code[0] === ' ' && code[code.length - 1] === ' ' && code.trim()) code = code.slice(1, -1);
        flush();
        push({ type: 'code', text: code });
        i = end + run;
      } else {
        buf += src.slice(i, k);
        i = k;
      }
      continue;
    }
    if (c === '<' && !inLink) {
      const m = /^<([a-zA-Z][a-zA-Z0-9+.-]{1,31}:[^<>\s]*)>/.exec(src.slice(i, i + MAX_URL));
      const href = m && safeUrl(m[1]);
      if (href) {
        flush();
        push({ type: 'link', href, title: '', children: [{ type: 'text', text: m[1] }] });
        i += m[0].length;
        continue;
      }
    }
    if ((c === '[' || (c === '!' && src[i + 1] === '[')) && !inLink) {
      const link = parseLink(src, c === '!' ? i + 1 : i, pairs);
      if (link) {
        flush();
        const label = parseInline(link.text, true);
        if (c === '!' && !label.length) label.push({ type: 'text', text: 'image' });
        const href = safeUrl(link.dest);
        if (href) push({ type: 'link', href, title: link.title, children: label });
        else for (const node of label) push(node);  // an unsafe or relative URL: the text alone
        i = link.end;
        continue;
      }
    }
    if (c === 'h' && !inLink && src.startsWith('http', i) && (i === 0 || !/[A-Za-z0-9]/.test(src[i - 1]))) {
      const m = /^https?:\/\/[^\s<>]+/.exec(src.slice(i, i + MAX_URL));
      if (m) {
        const url = trimUrl(m[0]);
        const href = safeUrl(url);
        if (href && url.length > 8) {
          flush();
          push({ type: 'link', href, title: '', children: [{ type: 'text', text: url }] });
          i += url.length;
          continue;
        }
      }
    }
    if (c === '*' || c === '_' || c === '~') {
      let k = i;
      while (k < n && src[k] === c) k++;
      const run = k - i;
      if (c === '~' && run !== 2) { buf += src.slice(i, k); i = k; continue; }
      const before = src[i - 1], after = src[k];
      const left = !isSpace(after) && (!isPunct(after) || isSpace(before) || isPunct(before));
      const right = !isSpace(before) && (!isPunct(before) || isSpace(after) || isPunct(after));
      const canOpen = c === '_' ? left && (!right || isPunct(before)) : left;
      const canClose = c === '_' ? right && (!left || isPunct(after)) : right;
      flush();
      const node = push({ type: 'text', text: src.slice(i, k) });
      if (canOpen || canClose) delims.push({ node, ch: c, count: run, canOpen, canClose });
      i = k;
      continue;
    }
    buf += c;
    i++;
  }
  flush();
  matchEmphasis(delims);
  return toArray(head.next);
}

function findBackticks(src, from, run) {
  let k = from;
  while ((k = src.indexOf('`'.repeat(run), k)) >= 0) {
    let e = k + run;
    if (src[e] !== '`' && src[k - 1] !== '`') return k;
    while (src[e] === '`') e++;
    k = e;
  }
  return -1;
}

// Trailing punctuation is the sentence's, not the URL's; a ")" only when unbalanced.
function trimUrl(url) {
  for (;;) {
    const last = url[url.length - 1];
    if ('.,:;!?\'"*_~'.includes(last)) url = url.slice(0, -1);
    else if (last === ')' && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) url = url.slice(0, -1);
    else return url;
  }
}

// Where each '[' of src closes: one pass, skipping escapes and code spans as parseInline does, so
// that looking for a link costs nothing per bracket (a quadratic scan otherwise).
function bracketPairs(src) {
  const pairs = new Map();
  const open = [];
  for (let k = 0; k < src.length; k++) {
    const c = src[k];
    if (c === '\\') { k++; continue; }
    if (c === '`') {
      let r = k;
      while (src[r] === '`') r++;
      const end = findBackticks(src, r, r - k);
      k = end >= 0 ? end + (r - k) - 1 : r - 1;
      continue;
    }
    if (c === '[') open.push(k);
    else if (c === ']' && open.length) pairs.set(open.pop(), k);
  }
  return pairs;
}

// [text](dest "title") starting at src[i] === '['; null when it is not one.
function parseLink(src, i, pairs) {
  const k = pairs.get(i);
  if (k === undefined || k - i > MAX_LINK_TEXT || src[k + 1] !== '(') return null;
  const text = src.slice(i + 1, k);
  let j = k + 2;
  while (src[j] === ' ' || src[j] === '\t' || src[j] === '\n') j++;
  let dest = '';
  if (src[j] === '<') {
    const close = j + src.slice(j, j + MAX_URL).indexOf('>');
    if (close < j || src.slice(j, close).includes('\n')) return null;
    dest = src.slice(j + 1, close);
    j = close + 1;
  } else {
    let parens = 0;
    const start = j;
    const stop = Math.min(src.length, j + MAX_URL);
    for (; j < stop; j++) {
      const c = src.charCodeAt(j);
      if (c <= 32) break;  // space or control: the destination ends
      if (c === 92 && isPunct(src[j + 1])) { j++; continue; }  // backslash
      if (c === 40) parens++;  // (
      else if (c === 41) { if (parens === 0) break; parens--; }  // )
    }
    dest = src.slice(start, j).replace(/\\([!-/:-@[-`{-~])/g, '$1');
  }
  while (src[j] === ' ' || src[j] === '\t' || src[j] === '\n') j++;
  let title = '';
  const q = src[j];
  if (q === '"' || q === "'" || q === '(') {
    const closeQ = q === '(' ? ')' : q;
    const end = j + 1 + src.slice(j + 1, j + 1 + MAX_LINK_TEXT).indexOf(closeQ);
    if (end <= j) return null;
    title = src.slice(j + 1, end);
    j = end + 1;
    while (src[j] === ' ' || src[j] === '\t') j++;
  }
  if (src[j] !== ')') return null;
  return { text, dest, title, end: j + 1 };
}

// CommonMark's delimiter matching, simplified: each closer takes the nearest opener of its
// character; both give up 2 characters (strong, del) or 1 (em).
function matchEmphasis(delims) {
  for (let c = 0; c < delims.length; c++) {
    const closer = delims[c];
    if (!closer.canClose || closer.count === 0) continue;
    for (let o = c - 1, seen = 0; o >= 0 && seen < MAX_OPENER_SEARCH; o--, seen++) {
      const opener = delims[o];
      if (opener.ch !== closer.ch || !opener.canOpen || opener.count === 0) continue;
      // The "multiple of 3" rule: *a**b* is not <em>a</em><em>b</em>...
      if ((opener.canClose || closer.canOpen) && (opener.count + closer.count) % 3 === 0 &&
          (opener.count % 3 !== 0 || closer.count % 3 !== 0)) continue;
      const use = closer.ch === '~' ? 2 : opener.count >= 2 && closer.count >= 2 ? 2 : 1;
      const type = closer.ch === '~' ? 'del' : use === 2 ? 'strong' : 'em';
      // Move the nodes between the two into a new node placed between them.
      const first = opener.node.next;
      const last = closer.node.prev;
      const children = first === closer.node ? [] : toArray(first, last);
      const wrap = { type, children, prev: opener.node, next: closer.node };
      opener.node.next = wrap;
      closer.node.prev = wrap;
      opener.count -= use;
      closer.count -= use;
      opener.node.text = opener.node.text.slice(use);
      closer.node.text = closer.node.text.slice(use);
      delims.splice(o + 1, c - o - 1);  // delimiters inside are text now
      c = o + 1;
      if (closer.count > 0) c--;  // the same closer may close another opener
      break;
    }
  }
}

// The linked nodes from `first` to `last` (or the end) as an array, without their links; empty
// text nodes (delimiters used up) dropped and neighbouring text merged.
function toArray(first, last = null) {
  const out = [];
  for (let node = first; node; node = node.next) {
    const { prev, next, ...plain } = node;
    if (plain.type === 'text') {
      if (plain.text && out.length && out[out.length - 1].type === 'text') out[out.length - 1].text += plain.text;
      else if (plain.text) out.push(plain);
    } else {
      out.push(plain);
    }
    if (node === last) break;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// DOM

export function render(blocks, doc = document) {
  const frag = doc.createDocumentFragment();
  for (const b of blocks) frag.append(renderBlock(b, doc));
  return frag;
}

export function renderMarkdown(text, doc = document) {
  return render(parse(text), doc);
}

function renderBlock(b, doc) {
  const mk = (tag) => doc.createElement(tag);
  switch (b.type) {
    case 'paragraph': return fill(mk('p'), b.children, doc);
    case 'heading': {
      const h = fill(mk(`h${Math.min(6, b.level + 2)}`), b.children, doc);  // h3..h6: the page owns h1/h2
      h.className = `md-h${b.level}`;
      return h;
    }
    case 'hr': return mk('hr');
    case 'quote': {
      const q = mk('blockquote');
      q.append(render(b.children, doc));
      return q;
    }
    case 'list': {
      const l = mk(b.ordered ? 'ol' : 'ul');
      if (b.ordered && b.start !== 1) l.start = b.start;
      for (const item of b.items) {
        const li = mk('li');
        // A one-paragraph item shows its text without a paragraph's margins.
        if (item.length === 1 && item[0].type === 'paragraph') fill(li, item[0].children, doc);
        else li.append(render(item, doc));
        l.append(li);
      }
      return l;
    }
    case 'table': {
      const wrap = mk('div');
      wrap.className = 'table-wrap';
      const t = mk('table');
      const row = (cells, tag) => {
        const tr = mk('tr');
        cells.forEach((cell, c) => {
          const td = fill(mk(tag), cell, doc);
          if (b.align[c]) td.className = `align-${b.align[c]}`;
          tr.append(td);
        });
        return tr;
      };
      const thead = mk('thead');
      thead.append(row(b.head, 'th'));
      const tbody = mk('tbody');
      for (const r of b.rows) tbody.append(row(r, 'td'));
      t.append(thead, tbody);
      wrap.append(t);
      return wrap;
    }
    case 'code': return codeBlock(b, doc);
    default: return doc.createTextNode('');
  }
}

function codeBlock(b, doc) {
  const box = doc.createElement('div');
  box.className = 'codeblock';
  const bar = doc.createElement('div');
  bar.className = 'codebar';
  const lang = doc.createElement('span');
  lang.textContent = b.lang || 'text';
  const copy = doc.createElement('button');
  copy.type = 'button';
  copy.className = 'copy-code';
  copy.textContent = 'Copy';
  copy.setAttribute('aria-label', `Copy the ${b.lang || 'text'} code`);
  bar.append(lang, copy);
  const pre = doc.createElement('pre');
  const code = doc.createElement('code');
  for (const [cls, text] of highlight(b.text, b.lang)) {
    if (!cls) { code.append(doc.createTextNode(text)); continue; }
    const span = doc.createElement('span');
    span.className = `tok-${cls}`;
    span.textContent = text;
    code.append(span);
  }
  pre.append(code);
  box.append(bar, pre);
  return box;
}

// Emphasis nested deeper than this shows as its plain text (no deep recursion on hostile input).
const MAX_INLINE_DEPTH = 32;

function fill(parent, nodes, doc, depth = 0) {
  if (depth > MAX_INLINE_DEPTH) {
    parent.append(doc.createTextNode(plainText(nodes)));
    return parent;
  }
  for (const n of nodes) parent.append(renderInline(n, doc, depth + 1));
  return parent;
}

// The text of inline nodes, without recursion.
export function plainText(nodes) {
  let out = '';
  const stack = [...nodes].reverse();
  while (stack.length) {
    const n = stack.pop();
    if (n.type === 'text' || n.type === 'code') out += n.text;
    else if (n.type === 'br') out += '\n';
    else if (n.children) for (let k = n.children.length - 1; k >= 0; k--) stack.push(n.children[k]);
  }
  return out;
}

function renderInline(n, doc, depth) {
  switch (n.type) {
    case 'text': return doc.createTextNode(n.text);
    case 'br': return doc.createElement('br');
    case 'code': {
      const c = doc.createElement('code');
      c.textContent = n.text;
      return c;
    }
    case 'em': case 'strong': case 'del': return fill(doc.createElement(n.type), n.children, doc, depth);
    case 'link': {
      const a = doc.createElement('a');
      a.href = n.href;  // safeUrl's output: http(s) or mailto only
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      if (n.title) a.title = n.title;
      return fill(a, n.children, doc, depth);
    }
    default: return doc.createTextNode('');
  }
}
