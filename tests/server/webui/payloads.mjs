// Text for the browser test: hostile payloads (each sets window.__pwned<i> if it ever runs), a
// hostile answer streamed by the fake server, and a harmless demo answer for the screenshots.
import { chunk, finish, usage } from './browser.mjs';

export const PAYLOADS = [
  '<script>window.__pwned0=1</script>',
  '<img src=x onerror="window.__pwned1=1">',
  '[click me](javascript:window.__pwned2=1)',
  '<a href="javascript:window.__pwned3=1">raw link</a>',
  '<svg onload="window.__pwned4=1"></svg>',
  '<iframe srcdoc="<script>parent.__pwned5=1</script>"></iframe>',
  '<details open ontoggle="window.__pwned6=1">x</details>',
  '[x](JaVaScRiPt:window.__pwned7=1) ![y]( javascript:window.__pwned7=1 )',
  '<input autofocus onfocus="window.__pwned8=1">',
  '<object data="javascript:window.__pwned9=1"></object><embed src="javascript:window.__pwned9=1">',
];

const answer = `# Heading ${PAYLOADS[0]}

Some **bold**, *em*, ~~gone~~ and \`inline <b>code</b>\` with [docs](https://example.com/docs) and ${PAYLOADS[2]}.
Mail [me](mailto:someone@example.com), see <https://example.org/auto>, raw ${PAYLOADS[3]}.

- item ${PAYLOADS[1]}
- item two
  1. nested ${PAYLOADS[4]}

> quoted ${PAYLOADS[5]}

| a | b |
|---|---|
| ${PAYLOADS[6]} | ${PAYLOADS[7]} |

1. one ${PAYLOADS[8]}
2. two ${PAYLOADS[9]}

---
\`\`\`python
def f(x):
    return "${PAYLOADS[0]}"
\`\`\`
`;

export const HOSTILE = {
  reasoning: `I think ${PAYLOADS[1]} and ${PAYLOADS[0]} are fine.`,
  code: `def f(x):\n    return "${PAYLOADS[0]}"`,
  toolName: PAYLOADS[1],
  toolArgs: { html: PAYLOADS[1], n: 1 },
  // What the rendered answer must show as text.
  visible: [PAYLOADS[0], PAYLOADS[1], PAYLOADS[3], PAYLOADS[4], PAYLOADS[5], PAYLOADS[6], PAYLOADS[8], PAYLOADS[9],
    'click me', 'inline <b>code</b>'],
};

// Splits text into pieces of n characters, as a model streams tokens.
const pieces = (text, n) => Array.from({ length: Math.ceil(text.length / n) }, (_, i) => text.slice(i * n, (i + 1) * n));

const hostile = [
  ...pieces(HOSTILE.reasoning, 9).map((r) => chunk({ role: 'assistant', reasoning_content: r })),
  'gate',
  ...pieces(answer, 13).map((c) => chunk({ content: c })),
  chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: HOSTILE.toolName, arguments: '' } }] }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: JSON.stringify(HOSTILE.toolArgs).slice(0, 20) } }] }),
  chunk({ tool_calls: [{ index: 0, function: { arguments: JSON.stringify(HOSTILE.toolArgs).slice(20) } }] }),
  chunk({ tool_calls: [{ index: 1, id: 'call_2', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } }] }),
  finish('tool_calls'),
  usage(30, 42),
  '[DONE]',
];

export const DEMO_QUESTION = 'How do quicksort and merge sort compare?';
const demoReasoning = 'The user wants a comparison. Cover time, worst case, memory and stability, then a short example.';
const demoAnswer = `## Quicksort vs. merge sort

Both sort in **O(n log n)** on average; they differ in *memory* and in the *worst case*.

| | Quicksort | Merge sort |
|---|:-:|:-:|
| Average time | O(n log n) | O(n log n) |
| Worst case | O(n²) | O(n log n) |
| Extra memory | O(log n) | O(n) |
| Stable | no | yes |

- Pick **quicksort** for arrays in memory: in place and cache-friendly.
- Pick **merge sort** for linked lists, external sorting, or when stability matters.

\`\`\`python
def merge_sort(xs):
    if len(xs) <= 1:
        return xs  # already sorted
    mid = len(xs) // 2
    return merge(merge_sort(xs[:mid]), merge_sort(xs[mid:]))
\`\`\`

> Most standard libraries use a hybrid: introsort for C++ \`std::sort\`, Timsort in Python.
`;
// Paced like a model writing, so the speed the page shows (and the screenshot) is plausible.
const demo = [
  ...pieces(demoReasoning, 12).map((r) => chunk({ role: 'assistant', reasoning_content: r })),
  ...pieces(demoAnswer, 16).flatMap((c) => [chunk({ content: c }), { pause: 12 }]),
  finish('stop'),
  usage(24, 187),
  '[DONE]',
];

export const CANNED = { hostile, demo };
