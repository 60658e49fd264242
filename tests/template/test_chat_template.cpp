// Chat template rendering: the golden renders from Python jinja2 (transformers' setup), plus
// focused checks of the Jinja features the templates rely on.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "template/chat_template.h"

using nlohmann::ordered_json;
using qnext::ChatTemplate;

namespace {

const std::string kData = QNEXT_TEST_DATA;
const std::string kAssets = kData + "/../../assets/tokenizer";

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Renders `src` with the given variables (as extra_vars) and no messages.
std::string render(const std::string& src, const ordered_json& vars = ordered_json::object()) {
  auto t = ChatTemplate::from_source(src);
  if (!t.ok()) return "PARSE ERROR: " + t.error();
  auto r = t->render(ordered_json::array(), nullptr, false, vars);
  if (!r.ok()) return "RENDER ERROR: " + r.error();
  return r.value();
}

std::string render_error(const std::string& src, const ordered_json& vars = ordered_json::object()) {
  auto t = ChatTemplate::from_source(src);
  if (!t.ok()) return t.error();
  auto r = t->render(ordered_json::array(), nullptr, false, vars);
  return r.ok() ? "" : r.error();
}

}  // namespace

TEST(ChatTemplate, GoldenRenders) {
  std::ifstream f(kData + "/tokenizer/golden_chat.jsonl");
  ASSERT_TRUE(f) << "missing golden_chat.jsonl";
  std::map<std::string, ChatTemplate> templates;
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    auto c = ordered_json::parse(line);
    std::string name = c["template"];
    auto it = templates.find(name);
    if (it == templates.end()) {
      auto t = ChatTemplate::from_source(read(kAssets + "/" + name + ".jinja"));
      ASSERT_TRUE(t.ok()) << name << ": " << t.error();
      it = templates.emplace(name, std::move(t.value())).first;
    }
    auto r = it->second.render(c["messages"], c["tools"], c["add_generation_prompt"].get<bool>(), c["kwargs"]);
    ASSERT_TRUE(r.ok()) << c["id"] << ": " << r.error();
    EXPECT_EQ(r.value(), c["rendered"].get<std::string>()) << "case " << c["id"];
    ++n;
  }
  EXPECT_EQ(n, 48);
}

TEST(ChatTemplate, LoadFromModelDir) {
  // assets/tokenizer has no chat_template.jinja: the template comes from tokenizer_config.json.
  auto t = ChatTemplate::load(kAssets);
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t->source(), read(kAssets + "/qwen3-next-instruct.jinja"));
  auto msgs = ordered_json::parse(R"([{"role":"user","content":"hi"}])");
  auto r = t->render(msgs, nullptr, true);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.value(), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render("{{ eos_token is defined }}"), "False");  // from_source knows no special tokens
}

TEST(ChatTemplate, LoadListFormAndChatTemplateFile) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("qnext_tpl_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer_config.json")
      << R"({"eos_token": {"content": "<E>"}, "bos_token": null, "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ eos_token }}{{ bos_token is defined }}"}]})";
  auto t = ChatTemplate::load(dir.string());
  ASSERT_TRUE(t.ok()) << t.error();
  auto r = t->render(ordered_json::array(), nullptr, false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), "D<E>False");
  std::ofstream(dir / "chat_template.jinja") << "F{{ messages | length }}\n";
  auto t2 = ChatTemplate::load(dir.string());
  ASSERT_TRUE(t2.ok()) << t2.error();
  EXPECT_EQ(t2->render(ordered_json::array({1, 2}), nullptr, false).value(), "F2");  // trailing newline dropped
  fs::remove_all(dir);
  EXPECT_FALSE(ChatTemplate::load(dir.string()).ok());
}

TEST(Jinja, WhitespaceControl) {
  EXPECT_EQ(render("a  {{- 'b' -}}  c"), "abc");
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(render("x\n  {% if true %}\n  y\n  {% endif %}\nz"), "x\n  y\nz");
  EXPECT_EQ(render("{{ 'x' }}  \n  {% if 1 %}\n  y\n{% endif %}\n"), "x  \n  y\n");
  EXPECT_EQ(render("a\n{# comment #}\nb"), "a\nb");
  EXPECT_EQ(render("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(render("{% if true +%}\nx{% endif %}"), "\nx");
  EXPECT_EQ(render("{% raw %}{{ x }}{% endraw %}\nz"), "{{ x }}z");
  EXPECT_EQ(render("a\r\nb\n"), "a\nb");
}

TEST(Jinja, SlicingAndIndexing) {
  auto v = ordered_json::parse(R"({"xs": [1, 2, 3, 4, 5], "s": "héllo"})");
  EXPECT_EQ(render("{{ xs[::-1] }}", v), "[5, 4, 3, 2, 1]");
  EXPECT_EQ(render("{{ xs[-1] }} {{ xs[1:3] }} {{ xs[:-2] }} {{ xs[::2] }}", v), "5 [2, 3] [1, 2, 3] [1, 3, 5]");
  EXPECT_EQ(render("{{ xs[-1:0:-1] }} {{ xs[10:] }} {{ xs[3:1:-1] }}", v), "[5, 4, 3, 2] [] [4, 3]");
  EXPECT_EQ(render("{{ s[::-1] }} {{ s[1:3] }} {{ s[1] }} {{ s|length }}", v), "olléh él é 5");
  EXPECT_EQ(render("{% for x in xs %}{{ xs[loop.index0 + 1] if not loop.last }}{% endfor %}", v), "2345");
  EXPECT_EQ(render("{{ xs[7] is defined }}", v), "False");
}

TEST(Jinja, NamespaceAndLoopScoping) {
  auto v = ordered_json::parse(R"({"xs": [1, 2, 3]})");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}", v),
            "6");
  // A plain `set` inside a loop stays in that iteration.
  EXPECT_EQ(render("{% set n = 0 %}{% for x in xs %}{% set n = n + x %}{{ n }},{% endfor %}{{ n }}", v),
            "1,2,3,0");
  EXPECT_EQ(render("{% for x in xs %}{% if x == 1 %}{% set y = 5 %}{% endif %}{{ y }},{% endfor %}", v), "5,,,");
  // Reassigning the loop variable in the body.
  EXPECT_EQ(render("{% for x in xs %}{% set x = x * 10 %}{{ x }} {% endfor %}", v), "10 20 30 ");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", v),
            "1TrueFalse3;2FalseFalse3;3FalseTrue3;");
  EXPECT_EQ(render("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}"
                   "{{ x }}{% endfor %}",
                   v),
            "1");
  EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"), "a=1;b=2;");
  EXPECT_EQ(render("{% for x in xs if x > 1 %}{{ x }}{{ loop.length }}{% endfor %}", v), "2232");
  // `if` does not open a scope.
  EXPECT_EQ(render("{% if true %}{% set z = 3 %}{% endif %}{{ z }}"), "3");
}

TEST(Jinja, StringMethods) {
  EXPECT_EQ(render("{{ '\\n\\nab\\n'.lstrip('\\n') }}|"), "ab\n|");
  EXPECT_EQ(render("[{{ '  \\n ab \\n'.lstrip('\\n') }}]"), "[  \n ab \n]");
  EXPECT_EQ(render("{{ 'xxabyy'.strip('xy') }} {{ ' a '.strip() }} {{ 'ab\\n\\n'.rstrip('\\n') }}"), "ab a ab");
  EXPECT_EQ(render("{{ 'a</think>b</think>c'.split('</think>')[-1] }} {{ 'a b  c'.split() }}"), "c ['a', 'b', 'c']");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith('bc') }} {{ 'abc'.startswith(('x', 'a')) }}"),
            "True True True");
  EXPECT_EQ(render("{{ 'aXbX'.replace('X', '-') }} {{ 'Hi'.upper() }} {{ 'Hi'.lower() }} {{ 'hello world'.title() }}"),
            "a-b- HI hi Hello World");
  EXPECT_EQ(render("{{ 'say \"hi\"\\tnow' }}"), "say \"hi\"\tnow");
  EXPECT_EQ(render("{{ '</think>' in 'a</think>' }} {{ 'x' not in 'abc' }}"), "True True");
}

TEST(Jinja, Filters) {
  auto v = ordered_json::parse(R"({"d": {"b": 1, "a": "é", "c": [true, null, 1.5]}, "xs": ["a", "b"]})");
  // tojson: input key order, ", " / ": " separators, non-ASCII kept, no HTML escaping.
  EXPECT_EQ(render("{{ d | tojson }}", v), R"({"b": 1, "a": "é", "c": [true, null, 1.5]})");
  EXPECT_EQ(render("{{ '<a&b>' | tojson }}"), R"("<a&b>")");
  EXPECT_EQ(render("{{ {'k': [1, {}]} | tojson(indent=2) }}"), "{\n  \"k\": [\n    1,\n    {}\n  ]\n}");
  EXPECT_EQ(render("{{ d | tojson(sort_keys=true) }}", v), R"({"a": "é", "b": 1, "c": [true, null, 1.5]})");
  EXPECT_EQ(render("{{ xs | join(', ') }} {{ xs | length }} {{ xs | first }} {{ xs | last }}", v), "a, b 2 a b");
  EXPECT_EQ(render("{{ '  x ' | trim }}|{{ 'Ab' | lower }}{{ 'Ab' | upper }}|{{ nope | default('dflt') }}"),
            "x|abAB|dflt");
  EXPECT_EQ(render("{% for k, v in d | items %}{{ k }}{% endfor %} {{ 42 | string }}{{ (3.0) | string }}", v),
            "bac 423.0");
  EXPECT_EQ(render("{{ [3, 1, 2] | sort }} {{ [1, 2] | map('string') | join }} {{ [1, 0, 2] | select | list }}"),
            "[1, 2, 3] 12 [1, 2]");
  EXPECT_EQ(render("{{ [{'n': 'a'}, {'n': 'b'}] | map(attribute='n') | join('+') }}"), "a+b");
}

TEST(Jinja, OperatorsTestsAndPrinting) {
  EXPECT_EQ(render("{{ none }} {{ true }} {{ [1, 'a', none, 1.5, {'k': \"it's\"}] }} {{ (1, 2) }}"),
            "None True [1, 'a', None, 1.5, {'k': \"it's\"}] (1, 2)");
  EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 3 / 2 }} {{ 2 ** 10 }} {{ 1 ~ 'a' }} {{ 'a' * 3 }}"),
            "3 -4 2 1.5 1024 1a aaa");
  EXPECT_EQ(render("{{ 1e20 }} {{ 0.1 + 0.2 }} {{ 1e-5 }} {{ 10 / 5 }}"), "1e+20 0.30000000000000004 1e-05 2.0");
  EXPECT_EQ(render("{{ 'a' if x else 'b' }} {{ 1 if true }}{{ 2 if false }}"), "b 1");
  EXPECT_EQ(render("{{ x is defined }} {{ none is none }} {{ 1 is not none }} {{ false is false }} {{ 'a' is string }}"),
            "False True True True True");
  EXPECT_EQ(render("{{ {} is mapping }} {{ [] is sequence }} {{ 1.5 is number }} {{ 3 is divisibleby 3 }}"),
            "True True True True");
  EXPECT_EQ(render("{{ 1 < 2 and 2 >= 2 and 1 != 2 and not 1 == 2 }} {{ [] or 'x' }} {{ 0 and 1 }}"), "True x 0");
  EXPECT_EQ(render("{{ '%s-%d' % ('a', 3) }} {{ 'x' + 'y' }} {{ [1] + [2] }}"), "a-3 xy [1, 2]");
  EXPECT_EQ(render("{% macro greet(name, punct='!') %}hi {{ name }}{{ punct }}{% endmacro %}{{ greet('bob') }}"
                   "{{ greet('al', punct='?') }}"),
            "hi bob!hi al?");
  EXPECT_EQ(render("{% set t %}in{{ 1 }}{% endset %}[{{ t }}] {% filter upper %}ab{% endfilter %}"), "[in1] AB");
  EXPECT_EQ(render("{{ {'items': 1}['items'] }} {{ {'a': 1}.get('b', 2) }} {{ {'a': 1}.a }}"), "1 2 1");
  EXPECT_EQ(render("{{ range(3) | list }} {{ dict(a=1) }}"), "[0, 1, 2] {'a': 1}");
}

TEST(Jinja, Errors) {
  std::string e = render_error("line1\n{{ raise_exception('bad role') }}");
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;
  EXPECT_NE(e.find("bad role"), std::string::npos) << e;

  e = render_error("a\nb\n{% if x %}\n{{ 1 + }}\n{% endif %}");
  EXPECT_NE(e.find("syntax error at line 4"), std::string::npos) << e;

  e = render_error("a\n{% for x in y %}\nno end");
  EXPECT_NE(e.find("endfor"), std::string::npos) << e;
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;

  e = render_error("\n\n{{ x | nosuchfilter }}");
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  EXPECT_NE(e.find("nosuchfilter"), std::string::npos) << e;

  EXPECT_NE(render_error("{{ x is nosuchtest }}").find("nosuchtest"), std::string::npos);
  EXPECT_NE(render_error("{{ 'a' + 1 }}").find("can only concatenate str"), std::string::npos);
  EXPECT_NE(render_error("{{ x.y }}").find("'x' is undefined"), std::string::npos);
  EXPECT_NE(render_error("{% set a = [] %}{{ a.append(1) }}").find("unsafe"), std::string::npos);
  EXPECT_NE(render_error("{% set ns = 1 %}{% set ns.a = 1 %}").find("namespace"), std::string::npos);
  EXPECT_NE(render_error("{% break %}").find("outside"), std::string::npos);
  EXPECT_NE(render_error("{% include 'x' %}").find("unsupported"), std::string::npos);
  EXPECT_NE(render_error("{{ 'abc").find("unterminated"), std::string::npos);
  EXPECT_NE(render_error("{{ 1 // 0 }}").find("zero"), std::string::npos);
}

TEST(Jinja, GuardsAgainstDeepNestingAndRecursion) {
  std::string deep(5000, '(');
  EXPECT_NE(render_error("{{ " + deep + "1" + std::string(5000, ')') + " }}").find("nested too deeply"),
            std::string::npos);
  std::string ifs;
  for (int i = 0; i < 1000; ++i) ifs += "{% if true %}";
  EXPECT_FALSE(render_error(ifs).empty());
  EXPECT_NE(render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("recursion"),
            std::string::npos);
  EXPECT_NE(render_error("{{ 'ab' * 1000000000000 }}").find("exceeded the limit of"), std::string::npos);
}
