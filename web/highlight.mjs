// Light syntax colouring for fenced code: comments, strings, numbers and keywords, found by one
// left-to-right scan. Returns [class, text] pairs ('' for plain text) that the renderer puts into
// spans with textContent; nothing here builds markup.

const KEYWORDS = {
  c: 'auto break case char const continue default do double else enum extern float for goto if inline int long ' +
     'register return short signed sizeof static struct switch typedef union unsigned void volatile while bool true false ' +
     'class namespace template typename public private protected virtual override nullptr new delete this using ' +
     'constexpr noexcept try catch throw operator friend explicit mutable final concept requires co_await co_return',
  js: 'async await break case catch class const continue debugger default delete do else export extends false finally ' +
      'for function if import in instanceof let new null of return static super switch this throw true try typeof ' +
      'undefined var void while yield interface type enum implements readonly as from',
  py: 'False None True and as assert async await break class continue def del elif else except finally for from global ' +
      'if import in is lambda nonlocal not or pass raise return try while with yield match case self print',
  rust: 'as async await break const continue crate dyn else enum extern false fn for if impl in let loop match mod move ' +
        'mut pub ref return self Self static struct super trait true type unsafe use where while Some None Ok Err',
  go: 'break case chan const continue default defer else fallthrough for func go goto if import interface map package ' +
      'range return select struct switch type var nil true false',
  java: 'abstract boolean break byte case catch char class const continue default do double else enum extends final ' +
        'finally float for if implements import instanceof int interface long native new null package private ' +
        'protected public return short static super switch synchronized this throw throws try void volatile while true false val var fun',
  sh: 'if then else elif fi for while until do done case esac function in return exit local export readonly set ' +
      'unset echo cd source true false',
  sql: 'select from where insert into values update set delete create table drop alter index join left right inner ' +
       'outer on group by order having limit offset as and or not null is in exists union all distinct primary key ' +
       'foreign references default case when then else end',
};
const ALIASES = {
  c: 'c', h: 'c', cpp: 'c', 'c++': 'c', cc: 'c', hpp: 'c', cxx: 'c', cs: 'c', csharp: 'c', cuda: 'c',
  js: 'js', javascript: 'js', mjs: 'js', ts: 'js', typescript: 'js', jsx: 'js', tsx: 'js', json: 'js',
  py: 'py', python: 'py', python3: 'py',
  rs: 'rust', rust: 'rust', go: 'go', golang: 'go',
  java: 'java', kotlin: 'java', kt: 'java', scala: 'java', swift: 'java',
  sh: 'sh', bash: 'sh', shell: 'sh', zsh: 'sh', console: 'sh', dockerfile: 'sh', make: 'sh', makefile: 'sh',
  yaml: 'sh', yml: 'sh', toml: 'sh', ini: 'sh',
  sql: 'sql', postgres: 'sql', mysql: 'sql', sqlite: 'sql',
};
const sets = {};
const keywordsOf = (family) => (sets[family] ??= new Set(KEYWORDS[family].split(' ')));

const HASH_COMMENTS = new Set(['py', 'sh']);
const MAX_HIGHLIGHT = 100_000;  // longer code is shown plain

export function highlight(code, lang) {
  const family = ALIASES[String(lang).toLowerCase()];
  if (!family || code.length > MAX_HIGHLIGHT) return [['', code]];
  const kw = keywordsOf(family);
  const caseless = family === 'sql';
  const out = [];
  let plain = '';
  const emit = (cls, text) => {
    if (plain) { out.push(['', plain]); plain = ''; }
    out.push([cls, text]);
  };
  const n = code.length;
  let i = 0;
  while (i < n) {
    const c = code[i];
    const rest2 = code.slice(i, i + 2);
    let end = -1;
    let cls = '';
    if ((rest2 === '//' && family !== 'py' && family !== 'sh' && family !== 'sql') ||
        (c === '#' && HASH_COMMENTS.has(family)) || (rest2 === '--' && family === 'sql')) {
      end = code.indexOf('\n', i);
      if (end < 0) end = n;
      cls = 'comment';
    } else if (rest2 === '/*' && family !== 'py' && family !== 'sh') {
      end = code.indexOf('*/', i + 2);
      end = end < 0 ? n : end + 2;
      cls = 'comment';
    } else if (c === '"' || c === "'" || (c === '`' && family === 'js')) {
      // To the matching quote on the same line (backtick strings may span lines); \ escapes.
      let k = i + 1;
      while (k < n && code[k] !== c && (c === '`' || code[k] !== '\n')) k += code[k] === '\\' ? 2 : 1;
      end = Math.min(n, k + 1);
      cls = 'string';
    } else if (/[0-9]/.test(c) && !/[A-Za-z0-9_$]/.test(code[i - 1] ?? '')) {
      const m = /^(0[xX][0-9a-fA-F_]+|0[bB][01_]+|[0-9][0-9_]*(\.[0-9_]+)?([eE][+-]?[0-9]+)?)[a-zA-Z]*/.exec(code.slice(i, i + 64));
      end = i + m[0].length;
      cls = 'number';
    } else if (/[A-Za-z_$]/.test(c) && !/[A-Za-z0-9_$]/.test(code[i - 1] ?? '')) {
      const m = /^[A-Za-z_$][A-Za-z0-9_$]*/.exec(code.slice(i, i + 128));
      const word = m[0];
      if (kw.has(caseless ? word.toLowerCase() : word)) { emit('keyword', word); i += word.length; continue; }
      plain += word;
      i += word.length;
      continue;
    }
    if (end > i) {
      emit(cls, code.slice(i, end));
      i = end;
    } else {
      plain += c;
      i++;
    }
  }
  if (plain) out.push(['', plain]);
  return out;
}
