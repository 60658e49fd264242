// The template engine's limits (template/jinja_limits.h): inputs that used to crash, hang or
// exhaust memory now fail with an error naming the limit, or behave as Python's jinja2 does.
// Each test is named for its input and checks the exact error text.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "template/chat_template.h"
#include "template/jinja_eval.h"
#include "template/jinja_parser.h"

using nlohmann::ordered_json;
using qnext::ChatTemplate;
namespace jinja = qnext::jinja;

namespace {

const std::string kAssets = std::string(QNEXT_TEST_DATA) + "/../../assets/tokenizer";

std::string read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The rendered text, or "ERROR: " and the message a caller sees.
std::string run(const std::string& src, const jinja::RenderLimits& limits = {},
                const ordered_json& messages = ordered_json::array(), const ordered_json& tools = nullptr) {
  auto t = ChatTemplate::from_source(src);
  if (!t.ok()) return "ERROR: " + t.error();
  t->set_limits(limits);
  auto r = t->render(messages, tools, false);
  return r.ok() ? r.value() : "ERROR: " + r.error();
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// As run(), and what the render used (evaluation steps, bytes of created values), also when it
// fails: tests of laziness and early refusal check these counts, not the wall clock.
std::string run_counted(const std::string& src, jinja::RenderStats& stats) {
  auto body = jinja::parse_template(src);
  if (!body.ok()) return "ERROR: " + body.error();
  auto r = jinja::render(*body.value(), {}, {}, &stats);
  return r.ok() ? r.value() : "ERROR: " + r.error();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A JSON value nested `depth` lists deep, built without recursion (nlohmann frees it iteratively).
ordered_json nested_json(int depth) {
  ordered_json j = "leaf";
  for (int i = 0; i < depth; ++i) {
    ordered_json outer = ordered_json::array();
    outer.push_back(std::move(j));
    j = std::move(outer);
  }
  return j;
}

const char* kExprTooDeep =
    "ERROR: template syntax error at line 1: expression nested too deeply (more than 500 levels of filters, "
    "attributes, calls and operators)";

}  // namespace

// ---- parser depth ----------------------------------------------------------------------------

TEST(JinjaLimits, FilterChain30000) {
  EXPECT_EQ(run("{{ 'a'" + repeat("|lower", 30000) + " }}"), kExprTooDeep);
  EXPECT_EQ(run("{{ 'A'" + repeat("|lower", 300) + " }}"), "a");  // jinja2 renders 300 too
}

TEST(JinjaLimits, AttributeChain30000) {
  EXPECT_EQ(run("{{ x" + repeat(".a", 30000) + " }}"), kExprTooDeep);
  EXPECT_EQ(run("{{ x" + repeat("['a']", 30000) + " }}"), kExprTooDeep);
  EXPECT_EQ(run("{{ f" + repeat("()", 30000) + " }}"), kExprTooDeep);
}

TEST(JinjaLimits, PlusChain30000) {
  EXPECT_EQ(run("{{ 1" + repeat(" + 1", 30000) + " }}"), kExprTooDeep);
  EXPECT_EQ(run("{{ 1" + repeat(" + 1", 300) + " }}"), "301");
}

TEST(JinjaLimits, TildeChain30000) {
  // `~` is one flat node, as in jinja2: any length renders.
  EXPECT_EQ(run("{{ 'a'" + repeat(" ~ 'a'", 29999) + " }}"), std::string(30000, 'a'));
}

TEST(JinjaLimits, Parentheses5000) {
  EXPECT_EQ(run("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"),
            "ERROR: template syntax error at line 1: template nested too deeply (more than 200 levels of blocks, "
            "brackets and sub-expressions)");
  EXPECT_EQ(run("{{ " + repeat("not ", 5000) + "1 }}").substr(0, 70),
            "ERROR: template syntax error at line 1: template nested too deeply (mo");
}

TEST(JinjaLimits, NestedIfBlocks1000) {
  EXPECT_EQ(run(repeat("{% if true %}", 1000)).substr(0, 70),
            "ERROR: template syntax error at line 1: template nested too deeply (mo");
}

TEST(JinjaLimits, Elif30000) {
  // elif branches are a flat list (jinja2 takes any number too).
  EXPECT_EQ(run("{% if false %}" + repeat("{% elif false %}", 30000) + "{% elif true %}y{% else %}n{% endif %}"), "y");
}

// ---- deep values -------------------------------------------------------------------------------

TEST(JinjaLimits, MessagesJsonNested50000Deep) {
  ordered_json messages = ordered_json::array();
  messages.push_back(nested_json(50000));
  EXPECT_EQ(run("{{ messages }}", {}, messages),
            "ERROR: template input 'messages': value nested more than 512 levels deep");
  ordered_json tool = ordered_json::object();
  tool["type"] = "function";
  tool["function"] = nested_json(50000);
  ordered_json tools = ordered_json::array();
  tools.push_back(std::move(tool));
  EXPECT_EQ(run("{{ tools }}", {}, ordered_json::array(), tools),
            "ERROR: template input 'tools': value nested more than 512 levels deep");
  // 500 levels convert, print and serialize.
  messages = ordered_json::array({nested_json(500)});
  EXPECT_EQ(run("{{ (messages | tojson) | length }}", {}, messages), "1008");
}

TEST(JinjaLimits, ListNested100000DeepByALoop) {
  // A template can build a chain deeper than any JSON input; it is freed without recursion, and
  // printing it names the limit.
  const std::string build = "{% set ns = namespace(x=none) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}"
                            "{% endfor %}";
  EXPECT_EQ(run(build + "{{ ns.x | length }}"), "1");
  EXPECT_EQ(run(build + "{{ ns.x }}"), "ERROR: template error at line 1: value nested more than 512 levels deep");
  EXPECT_EQ(run(build + "{{ ns.x | tojson }}"), "ERROR: template error at line 1: value nested more than 512 levels deep");
  EXPECT_EQ(run(build + "{{ ns.x == ns.x }}"), "True");  // the same list: no walk
  // A chain through bound methods (each dict's `get` holds the previous dict).
  EXPECT_EQ(run("{% set ns = namespace(d={}) %}{% for i in range(100000) %}{% set ns.d = {'f': ns.d.get} %}"
                "{% endfor %}{{ ns.d | length }}"),
            "1");
}

TEST(JinjaLimits, NamespaceContainingItself) {
  EXPECT_EQ(run("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"),
            "ERROR: template error at line 1: value nested more than 512 levels deep");
}

TEST(JinjaLimits, MacroRecursion) {
  EXPECT_EQ(run("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
            "ERROR: template error at line 1: maximum macro recursion depth exceeded (more than 64 nested calls)");
}

// ---- step budget --------------------------------------------------------------------------------

TEST(JinjaLimits, NestedRange100000LoopsStopAtTheDefaultStepBudget) {
  jinja::RenderStats stats;
  EXPECT_EQ(run_counted("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", stats),
            "ERROR: template error at line 1: render exceeded the limit of 10,000,000 evaluation steps");
  EXPECT_LT(stats.steps, jinja::kMaxSteps + 1000);  // stopped at the budget, not after 10^10 iterations
  EXPECT_LT(stats.bytes, uint64_t{1} << 20);     // and the ranges were never built
}

TEST(JinjaLimits, StepBudgetOption) {
  jinja::RenderLimits small;
  small.max_steps = 1000;
  EXPECT_EQ(run("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", small),
            "ERROR: template error at line 1: render exceeded the limit of 1,000 evaluation steps");
  // Work inside filters counts too: sorting, joining and `in` over a long list.
  small.max_steps = 100'000;
  EXPECT_EQ(run("{{ range(200000) | list | length }}", small),
            "ERROR: template error at line 1: render exceeded the limit of 100,000 evaluation steps");
  EXPECT_EQ(run("{{ range(100) | list | length }}", small), "100");
}

// ---- ranges ----------------------------------------------------------------------------------------

TEST(JinjaLimits, Range1000000000) {
  // Lazy, as in Python: nothing is built to loop over it, index it or take its length.
  jinja::RenderStats stats;
  EXPECT_EQ(run_counted("{% for i in range(1000000000) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}",
                        stats),
            "012");
  EXPECT_LT(stats.steps, 100u);
  EXPECT_LT(stats.bytes, 4096u);
  EXPECT_EQ(run_counted("{{ range(1000000000) | length }} {{ range(1000000000)[-1] }} {{ 999999999 in "
                        "range(1000000000) }} {{ range(1000000000) | last }} {{ range(10**9)[5:10:2] }}",
                        stats),
            "1000000000 999999999 True 999999999 range(5, 10, 2)");
  EXPECT_LT(stats.steps, 100u);
  EXPECT_LT(stats.bytes, 4096u);
  // Building it is checked against the byte budget first: the refused list was never made.
  EXPECT_EQ(run_counted("{{ range(1000000000) | list }}", stats),
            "ERROR: template error at line 1: render exceeded the limit of 536,870,912 bytes (512 MiB) of created "
            "values");
  EXPECT_LT(stats.bytes, uint64_t{1} << 20);
  // Python's behaviour for the rest.
  EXPECT_EQ(run("{{ range(3) }} {{ range(0, 10, 3) | list }} {{ range(5, 0, -2) | list }} {{ range(3) == range(0, 3) }}"
                " {{ range(3) is sequence }} {{ range(2) | first }} {{ 1.0 in range(3) }} {{ 1.5 in range(3) }}"),
            "range(0, 3) [0, 3, 6, 9] [5, 3, 1] True True 0 True False");
  EXPECT_EQ(run("{{ range(10)[1:7:2] }} {{ range(10)[::-1] }} {{ range(5)[7] is defined }} {{ range(10)[-3:] }}"),
            "range(1, 7, 2) range(9, -1, -1) False range(7, 10)");
  EXPECT_EQ(run("{{ range(3) | tojson }}"),
            "ERROR: template error at line 1: tojson: Object of type range is not JSON serializable");
}

// ---- bytes ---------------------------------------------------------------------------------------

const char* kBytesExceeded =
    "ERROR: template error at line 1: render exceeded the limit of 536,870,912 bytes (512 MiB) of created values";

TEST(JinjaLimits, StringTimes4611686018427387904) {
  EXPECT_EQ(run("{{ 'abcd' * 4611686018427387904 }}"), kBytesExceeded);  // 2^64 bytes: used to wrap to 0
  EXPECT_EQ(run("{{ 4611686018427387904 * 'abcd' }}"), kBytesExceeded);
  EXPECT_EQ(run("{{ 'ab' * 3 }}|{{ 'ab' * -1 }}|{{ [1, 2] * 2 }}"), "ababab||[1, 2, 1, 2]");
}

TEST(JinjaLimits, ListTimes100000000) {
  jinja::RenderStats stats;
  EXPECT_EQ(run_counted("{{ ([1] * 100000000) | length }}", stats), kBytesExceeded);
  EXPECT_LT(stats.bytes, uint64_t{1} << 20);  // refused before the list was made
  EXPECT_EQ(run("{{ ([1] * 1000000) | length }}"), "1000000");
}

TEST(JinjaLimits, StringDoubled40Times) {
  // Used to reach 1.8 GB; now stops at the default 512 MiB of created values (~256 MiB live).
  jinja::RenderStats stats;
  EXPECT_EQ(run_counted("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
                        "{% endfor %}{{ ns.s | length }}",
                        stats),
            kBytesExceeded);
  EXPECT_LE(stats.bytes, jinja::kMaxCreatedBytes);  // the doubling that would pass the budget was not made
  // The same with `~` and with a list, under a 16 MiB budget.
  jinja::RenderLimits limits;
  limits.max_bytes = uint64_t{16} << 20;
  const std::string exceeded =
      "ERROR: template error at line 1: render exceeded the limit of 16,777,216 bytes (16 MiB) of created values";
  EXPECT_EQ(run("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
                "{{ ns.s | length }}", limits),
            exceeded);
  EXPECT_EQ(run("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
                limits),
            exceeded);
  EXPECT_EQ(run("{% set ns = namespace(s='ab') %}{% for i in range(10) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"
                "{{ ns.s | length }}", limits),
            "2048");
}

TEST(JinjaLimits, JoinOfAThousandCopiesOf64KiB) {
  // A string shared a thousand times is cheap; joining it would be 64 MiB: each builder stops once
  // its result would pass the byte budget (4 MiB here, to keep the test fast).
  jinja::RenderLimits limits;
  limits.max_bytes = uint64_t{4} << 20;
  const std::string exceeded =
      "ERROR: template error at line 1: render exceeded the limit of 4,194,304 bytes (4 MiB) of created values";
  const std::string big = "{% set s = 'x' * 65536 %}{% set l = [s] * 1000 %}";
  EXPECT_EQ(run(big + "{{ l | length }}", limits), "1000");
  EXPECT_EQ(run(big + "{{ l | join | length }}", limits), exceeded);
  EXPECT_EQ(run(big + "{{ ''.join(l) | length }}", limits), exceeded);
  EXPECT_EQ(run(big + "{{ l | tojson | length }}", limits), exceeded);
  EXPECT_EQ(run(big + "{{ l | string | length }}", limits), exceeded);
  EXPECT_EQ(run(big + "{{ l | map('upper') | list | length }}", limits), exceeded);
  EXPECT_EQ(run(big + "{{ s.replace('x', s) | length }}", limits), exceeded);
  EXPECT_EQ(run(big + "{{ ('a\\n' * 1000) | indent(s) | length }}", limits), exceeded);
  EXPECT_EQ(run(big + "{{ ('%s' * 1000) % ((s,) * 1000) }}", limits), exceeded);
  EXPECT_EQ(run(big + "{{ (s ~ s ~ s) | length }} {{ l[:3] | join | length }}", limits), "196608 196608");
}

TEST(JinjaLimits, ByteBudgetOption) {
  jinja::RenderLimits small;
  small.max_bytes = 1000;
  EXPECT_EQ(run("{{ 'x' * 2000 }}", small),
            "ERROR: template error at line 1: render exceeded the limit of 1,000 bytes of created values");
  EXPECT_EQ(run("{{ 'x' * 100 }}", small), std::string(100, 'x'));
}

TEST(JinjaLimits, OutputOf100MiB) {
  EXPECT_EQ(run("{% set s = 'x' * 1024 %}{% for i in range(102400) %}{{ s }}{% endfor %}"),
            "ERROR: template error at line 1: rendered output exceeded the limit of 67,108,864 bytes (64 MiB)");
  jinja::RenderLimits small;
  small.max_output = 10;
  EXPECT_EQ(run("0123456789{{ 'a' }}", small),
            "ERROR: template error at line 1: rendered output exceeded the limit of 10 bytes");
}

// ---- % formatting ------------------------------------------------------------------------------

TEST(JinjaLimits, PercentWidth600) {
  EXPECT_EQ(run("{{ '%600d' % 1 }}"), std::string(599, ' ') + "1");  // was cut at 511
  EXPECT_EQ(run("{{ '%-600d|' % 1 }}"), "1" + std::string(599, ' ') + "|");
  EXPECT_EQ(run("{{ ('%.600f' % 1.5) | length }}"), "602");
  EXPECT_EQ(run("{{ '%99999999999999999999d' % 1 }}"), kBytesExceeded);  // saturates instead of wrapping
  // As Python: %s takes width and precision (in characters) too.
  EXPECT_EQ(run("{{ '%.3s|%5s|%-4s|%5s|' % ('abcdef', 'ab', 'x', 'é') }}"), "abc|   ab|x   |    é|");
  EXPECT_EQ(run("{{ '%05d|%5.1e|%g|%G|%X|%o|%i|%+d|%5.2f' % (42, 12345.678, 0.0001, 1e20, 255, 8, 7, 5, 3.14159) }}"),
            "00042|1.2e+04|0.0001|1E+20|FF|10|7|+5| 3.14");
}

// ---- integers --------------------------------------------------------------------------------------

TEST(JinjaLimits, IntegerOverflow) {
  const char* overflow = "ERROR: template error at line 1: integer overflow (beyond 64-bit integers)";
  EXPECT_EQ(run("{{ 9223372036854775807 + 1 }}"), overflow);
  EXPECT_EQ(run("{{ 2 ** 64 }}"), overflow);
  EXPECT_EQ(run("{{ 4611686018427387904 * 4 }}"), overflow);
  EXPECT_EQ(run("{{ (-9223372036854775807 - 1) // -1 }}"), overflow);  // was SIGFPE
  EXPECT_EQ(run("{{ 2 ** 62 }} {{ (-1) ** 1000000000000 }} {{ 1 ** 99999999999 }} {{ 0 ** 5 }}"),
            "4611686018427387904 1 1 0");
}

// ---- real templates ---------------------------------------------------------------------------------

// A large conversation through the Qwen3-Next templates: 1,000 messages (users, assistants with
// reasoning and tool calls, tool results; ~2 KB each) and 100 tools. It must render within the
// default budgets with >= 100x headroom for steps (and >= 10x for bytes and output).
TEST(JinjaLimits, RealTemplatesStayFarBelowTheBudgets) {
  ordered_json tools = ordered_json::array();
  for (int i = 0; i < 100; ++i)
    tools.push_back({{"type", "function"},
                     {"function",
                      {{"name", "tool_" + std::to_string(i)},
                       {"description", std::string(200, 'd')},
                       {"parameters",
                        {{"type", "object"},
                         {"properties",
                          {{"query", {{"type", "string"}, {"description", "what to look up"}}},
                           {"limit", {{"type", "integer"}, {"minimum", 1}}}}},
                         {"required", {"query"}}}}}}});
  const std::string text(2000, 'w');
  ordered_json messages = ordered_json::array({{{"role", "system"}, {"content", "You are helpful."}}});
  for (int i = 0; messages.size() < 1000; ++i) {
    messages.push_back({{"role", "user"}, {"content", text}});
    messages.push_back({{"role", "assistant"},
                        {"content", "<think>\n" + text + "\n</think>\n\ncalling"},
                        {"tool_calls",
                         {{{"type", "function"},
                           {"function", {{"name", "tool_1"}, {"arguments", {{"query", text}, {"limit", i}}}}}}}}});
    messages.push_back({{"role", "tool"}, {"content", text}});
    messages.push_back({{"role", "assistant"}, {"content", text}});
  }
  for (const char* name : {"qwen3-next-instruct", "qwen3-next-thinking", "qwen3-hybrid"}) {
    auto body = jinja::parse_template(read(kAssets + "/" + name + ".jinja"));
    ASSERT_TRUE(body.ok()) << body.error();
    jinja::Vars vars = {{"messages", jinja::from_json(messages)},
                        {"tools", jinja::from_json(tools)},
                        {"add_generation_prompt", jinja::Value(true)}};
    jinja::RenderStats stats;
    auto t0 = std::chrono::steady_clock::now();
    auto out = jinja::render(*body.value(), vars, {}, &stats);
    double s = seconds_since(t0);
    ASSERT_TRUE(out.ok()) << name << ": " << out.error();
    std::printf("%s: %zu messages, %zu tools: %llu steps, %llu bytes created, %zu bytes of output, %.3f s\n", name,
                messages.size(), tools.size(), static_cast<unsigned long long>(stats.steps),
                static_cast<unsigned long long>(stats.bytes), out->size(), s);
    EXPECT_LE(stats.steps * 100, jinja::kMaxSteps) << name;
    EXPECT_LE(stats.bytes * 10, jinja::kMaxCreatedBytes) << name;
    EXPECT_LE(out->size() * 10, jinja::kMaxOutputBytes) << name;
  }
}
