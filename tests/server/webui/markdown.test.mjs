// The chat page's Markdown parser (web/markdown.mjs) and code colouring (web/highlight.mjs) under
// node, without a browser: the trees parse() builds for each construct, which URLs become links,
// that raw HTML stays text, and that hostile inputs (deep nesting, long delimiter runs) stay fast
// and bounded. webui.test.mjs checks the DOM the page builds from these trees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { highlight } from '../../../web/highlight.mjs';
import { parse, parseInline, plainText, safeUrl } from '../../../web/markdown.mjs';

const strip = (nodes) => JSON.parse(JSON.stringify(nodes));
const t = (text) => ({ type: 'text', text });

test('safeUrl keeps http, https and mailto only', () => {
  assert.equal(safeUrl('https://example.com/a?b=1'), 'https://example.com/a?b=1');
  assert.equal(safeUrl('http://127.0.0.1:8080/'), 'http://127.0.0.1:8080/');
  assert.equal(safeUrl(' mailto:someone@example.com '), 'mailto:someone@example.com');
  for (const bad of ['javascript:alert(1)', 'JAVASCRIPT:alert(1)', ' javascript:alert(1)', 'java\tscript:alert(1)',
    'java\nscript:alert(1)', 'javascript&#58;alert(1)', 'data:text/html,<script>alert(1)</script>', 'vbscript:x',
    'file:///etc/passwd', 'blob:http://x/1', '/relative', '#top', 'example.com', '', '//evil.example/x', 'ftp://x/'])
    assert.equal(safeUrl(bad), null, bad);
});

test('paragraphs, line breaks, headings, rules', () => {
  assert.deepEqual(strip(parse('one\ntwo\n\nthree')), [
    { type: 'paragraph', children: [t('one'), { type: 'br' }, t('two')] },
    { type: 'paragraph', children: [t('three')] },
  ]);
  assert.deepEqual(strip(parse('# One\n### Three ###\n####### seven')), [
    { type: 'heading', level: 1, children: [t('One')] },
    { type: 'heading', level: 3, children: [t('Three')] },
    { type: 'paragraph', children: [t('####### seven')] },
  ]);
  assert.deepEqual(strip(parse('Title\n=====\nSub\n---\n\n***')).map((b) => [b.type, b.level]),
    [['heading', 1], ['heading', 2], ['hr', undefined]]);
  // A single "-" under text is not an underline: mid-stream, it is a list item about to start.
  assert.deepEqual(strip(parse('Intro:\n-')).map((b) => b.type), ['paragraph']);
  assert.deepEqual(strip(parse('Intro:\n- item')).map((b) => b.type), ['paragraph', 'list']);
});

test('emphasis, strong, strike, code spans, escapes', () => {
  assert.deepEqual(strip(parseInline('a *b* __c__ ~~d~~ `e*f*` \\*g\\*')), [
    t('a '), { type: 'em', children: [t('b')] }, t(' '), { type: 'strong', children: [t('c')] }, t(' '),
    { type: 'del', children: [t('d')] }, t(' '), { type: 'code', text: 'e*f*' }, t(' *g*'),
  ]);
  assert.deepEqual(strip(parseInline('***both***')), [{ type: 'em', children: [{ type: 'strong', children: [t('both')] }] }]);
  assert.deepEqual(strip(parseInline('snake_case_name and 2*3*4')), [t('snake_case_name and 2'), { type: 'em', children: [t('3')] }, t('4')]);
  assert.deepEqual(strip(parseInline('a * b * c')), [t('a * b * c')], 'spaced asterisks are not emphasis');
  assert.deepEqual(strip(parseInline('``a ` b``')), [{ type: 'code', text: 'a ` b' }]);
  assert.deepEqual(strip(parseInline('`unclosed')), [t('`unclosed')]);
  assert.deepEqual(strip(parseInline('**unclosed')), [t('**unclosed')]);
});

test('links: Markdown, autolinks and bare URLs; unsafe ones keep only their text', () => {
  assert.deepEqual(strip(parseInline('[the *docs*](https://example.com/d "Title")')), [
    { type: 'link', href: 'https://example.com/d', title: 'Title', children: [t('the '), { type: 'em', children: [t('docs')] }] },
  ]);
  assert.deepEqual(strip(parseInline('see <https://a.example/x> or https://b.example/y.')), [
    t('see '), { type: 'link', href: 'https://a.example/x', title: '', children: [t('https://a.example/x')] }, t(' or '),
    { type: 'link', href: 'https://b.example/y', title: '', children: [t('https://b.example/y')] }, t('.'),
  ]);
  assert.deepEqual(strip(parseInline('(https://en.wikipedia.org/wiki/Foo_(bar))')), [
    t('('), { type: 'link', href: 'https://en.wikipedia.org/wiki/Foo_(bar)', title: '', children: [t('https://en.wikipedia.org/wiki/Foo_(bar)')] }, t(')'),
  ]);
  for (const src of ['[click](javascript:alert(1))', '[click](JavaScript:alert(1))', '[click]( javascript:alert(1) )',
    '[click](<javascript:alert(1)>)', '[click](data:text/html,x)', '[click](/relative)', '[click](java%73cript:x)'])
    assert.deepEqual(strip(parseInline(src)), [t('click')], src);
  assert.deepEqual(strip(parseInline('<javascript:alert(1)>')), [t('<javascript:alert(1)>')]);
  assert.deepEqual(strip(parseInline('![a cat](https://example.com/cat.png)')), [
    { type: 'link', href: 'https://example.com/cat.png', title: '', children: [t('a cat')] },
  ], 'images become links: nothing is loaded');
  assert.deepEqual(strip(parseInline('[a [b] c](https://x.example/)'))[0].children, [t('a [b] c')]);
  assert.deepEqual(strip(parseInline('[no link] (https://x.example/)'))[0], t('[no link] ('));
});

test('raw HTML is text', () => {
  const src = '<script>alert(1)</script> <img src=x onerror=alert(2)> <a href="javascript:x">y</a> &lt;b&gt;';
  assert.deepEqual(strip(parse(src)), [{ type: 'paragraph', children: [t(src)] }]);
});

test('fenced code: language, unclosed fences run to the end, longer fences', () => {
  assert.deepEqual(strip(parse('```py\nx = 1\n```\nafter')), [
    { type: 'code', lang: 'py', text: 'x = 1' }, { type: 'paragraph', children: [t('after')] },
  ]);
  assert.deepEqual(strip(parse('````\n```\ninner\n```\n````')), [{ type: 'code', lang: '', text: '```\ninner\n```' }]);
  assert.deepEqual(strip(parse('~~~\n<b>streaming')), [{ type: 'code', lang: '', text: '<b>streaming' }]);
});

test('lists: bullets, ordered with start, nesting, lazy lines, loose items', () => {
  const [l] = strip(parse('3. three\n4. four\n   - nested *a*\n   - nested b\n5. five\nlazy'));
  assert.equal(l.type, 'list');
  assert.equal(l.ordered, true);
  assert.equal(l.start, 3);
  assert.equal(l.items.length, 3);
  assert.deepEqual(l.items[1][1].type, 'list');
  assert.equal(l.items[1][1].items.length, 2);
  assert.deepEqual(l.items[2], [{ type: 'paragraph', children: [t('five'), { type: 'br' }, t('lazy')] }]);
  const [u, p] = strip(parse('- a\n\n- b\n\nnot in the list'));
  assert.equal(u.items.length, 2);
  assert.deepEqual(p, { type: 'paragraph', children: [t('not in the list')] });
  assert.deepEqual(strip(parse('- a\n* b')).map((b) => b.type), ['list', 'list'], 'another bullet starts another list');
  assert.deepEqual(strip(parse('-not a list\n2) not interrupting')).map((b) => b.type), ['paragraph']);
});

test('block quotes and tables', () => {
  const [q] = strip(parse('> quoted *text*\n> - item\n>\n> > deeper'));
  assert.equal(q.type, 'quote');
  assert.deepEqual(q.children.map((b) => b.type), ['paragraph', 'list', 'quote']);
  const [tb] = strip(parse('| a | b | c |\n|:--|:-:|--:|\n| 1 | `x|y` | **3** |\n| only one |'));
  assert.equal(tb.type, 'table');
  assert.deepEqual(tb.align, ['left', 'center', 'right']);
  assert.deepEqual(tb.head, [[t('a')], [t('b')], [t('c')]]);
  assert.deepEqual(tb.rows[0], [[t('1')], [{ type: 'code', text: 'x|y' }], [{ type: 'strong', children: [t('3')] }]]);
  assert.deepEqual(tb.rows[1], [[t('only one')], [], []]);
  assert.deepEqual(strip(parse('a | b\n--|--|--')).map((b) => b.type), ['paragraph'], 'column counts differ: not a table');
});

test('hostile shapes stay fast and bounded', () => {
  const time = (f) => { const t0 = performance.now(); f(); return performance.now() - t0; };
  // Many openers without closers, deep emphasis nesting, long bracket runs, deep quotes and lists.
  const cases = [
    '*a '.repeat(30000), '_a '.repeat(30000), '**a'.repeat(20000), '['.repeat(50000), '[a]('.repeat(20000),
    '`'.repeat(50000), '> '.repeat(5000) + 'x', Array.from({ length: 2000 }, (_, i) => `${' '.repeat(i * 2)}- x`).join('\n'),
    '*'.repeat(10000) + 'x' + '*'.repeat(10000), '<'.repeat(50000), 'https://a.example/' + '('.repeat(20000),
    '[a](<'.repeat(20000), '[a](x "'.repeat(20000), '[a](' + 'x'.repeat(50000), '![a]('.repeat(20000),
    'http://x'.repeat(20000), '` `` '.repeat(20000),
  ];
  for (const src of cases) {
    const ms = time(() => parse(src));
    assert.ok(ms < 2000, `${JSON.stringify(src.slice(0, 20))}... took ${ms.toFixed(0)} ms`);
  }
  // Text inside nested constructs is never lost.
  const deep = '*x '.repeat(100) + 'core' + ' x*'.repeat(100);
  assert.ok(plainText(parse(deep)[0].children).includes('core'));
});

test('highlight marks keywords, strings, numbers and comments, and keeps every character', () => {
  const code = 'def f(x):  # add\n    return x + 0x1F, "s\\"q", \'c\'';
  const parts = highlight(code, 'python');
  assert.equal(parts.map(([, s]) => s).join(''), code);
  const by = (cls) => parts.filter(([c]) => c === cls).map(([, s]) => s);
  assert.deepEqual(by('keyword'), ['def', 'return']);
  assert.deepEqual(by('comment'), ['# add']);
  assert.deepEqual(by('number'), ['0x1F']);
  assert.deepEqual(by('string'), ['"s\\"q"', "'c'"]);
  assert.deepEqual(highlight('<script>', 'unknown-lang'), [['', '<script>']]);
  const js = highlight('const a = `x\ny`; /* c */ // d', 'js');
  assert.deepEqual(js.filter(([c]) => c).map(([c]) => c), ['keyword', 'string', 'comment', 'comment']);
  assert.deepEqual(highlight('SELECT 1 -- x', 'sql').filter(([c]) => c).map(([c, s]) => `${c}:${s}`), ['keyword:SELECT', 'number:1', 'comment:-- x']);
});
