// JSON Schema -> grammar: a table of schemas with documents the grammar must accept and ones it
// must reject (every supported keyword, whitespace, escapes, UTF-8, nesting, recursion), every
// subset of optional properties, integer ranges checked number by number, and the exact error
// for each refused keyword.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "runtime/grammar.h"
#include "runtime/json_schema.h"

namespace qnext {
namespace {

using json = nlohmann::ordered_json;

std::shared_ptr<const grammar::Grammar> compile(const json& schema) {
  auto text = json_schema_to_grammar(schema);
  if (!text) {
    ADD_FAILURE() << text.error();
    return nullptr;
  }
  auto g = grammar::Grammar::parse(*text);
  if (!g) {
    ADD_FAILURE() << g.error() << "\n" << *text;
    return nullptr;
  }
  return g.value();
}

std::string error_of(const json& schema) {
  auto r = json_schema_to_grammar(schema);
  return r ? std::string("(no error)") : r.error();
}

struct Case {
  const char* name;
  const char* schema;
  std::vector<std::string> valid, invalid;
};

const Case kCases[] = {
    {"StringEscapesAndUtf8", R"({"type": "string"})",
     {R"("")", R"("abc")", R"("a\"b")", R"("\\ \/ \b\f\n\r\t")", R"("\u00e9\uD83D\uDE00")",
      "\"h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80\"", " \"x\" ", "\n  \"x\"\n", "\n\t\t\"x\""},
     {"abc", R"("a)", R"("a"b")", R"("\x")", R"("\u12")", "\"a\nb\"", "\"a\tb\"", R"("\uD800")",
      R"("\uDC00x")", "1", "  \"a\"", "\"a\"\n\n", "\"a\"  "}},
    {"StringLengthCountsCodePoints", R"({"type": "string", "minLength": 2, "maxLength": 3})",
     {R"("ab")", R"("abc")", "\"\xC3\xA9\xF0\x9F\x98\x80\"", R"("\uD83D\uDE00x")", R"("\n\t")"},
     {R"("a")", R"("abcd")", R"("")", "\"\xF0\x9F\x98\x80\"", R"("\uD83D\uDE00")", R"("a\n\t\r")"}},
    {"StringMaxLengthZero", R"({"type": "string", "maxLength": 0})", {R"("")"}, {R"("a")", R"("\n")"}},
    {"FormatDateKnowsMonthsAndLeapYears", R"({"type": "string", "format": "date"})",
     {R"("2024-02-29")", R"("2000-02-29")", R"("1999-12-31")", R"("2023-04-30")", R"("2023-01-31")"},
     {R"("2023-02-29")", R"("1900-02-29")", R"("2023-04-31")", R"("2023-13-01")", R"("2023-00-10")",
      R"("2023-1-01")", R"("20230101")", R"("2023-02-30")", "2023-01-01"}},
    {"FormatDateTime", R"({"type": "string", "format": "date-time"})",
     {R"("2024-01-15T10:20:30Z")", R"("2024-01-15t10:20:30.123+05:30")", R"("2024-01-15T23:59:59-00:00")"},
     {R"("2024-01-15 10:20:30Z")", R"("2024-01-15T24:00:00Z")", R"("2024-01-15T10:20:30")",
      R"("2024-01-15T10:60:00Z")", R"("2024-01-15T10:20:30.Z")", R"("2024-02-30T10:20:30Z")"}},
    {"FormatTime", R"({"type": "string", "format": "time"})",
     {R"("10:20:30Z")", R"("00:00:00.5+23:59")"},
     {R"("10:20Z")", R"("10:20:30+24:00")", R"("9:20:30Z")"}},
    {"FormatUuid", R"({"type": "string", "format": "uuid"})",
     {R"("123e4567-e89b-12d3-a456-426614174000")", R"("123E4567-E89B-12D3-A456-426614174000")"},
     {R"("123e4567e89b-12d3-a456-426614174000")", R"("123e4567-e89b-12d3-a456-42661417400g")",
      R"("123e4567-e89b-12d3-a456-4266141740000")"}},
    {"NumberRfc8259", R"({"type": "number"})",
     {"0", "-0", "1.5", "-12.25e10", "1E+2", "3e-5", "1234567890123456", "0.0001", "-9.5e99"},
     {"01", "1.", ".5", "+1", "1e", R"("1")", "NaN", "12345678901234567", "1.5.5", "-", "1e1234", "1e999", "-1E+308"}},
    {"IntegerNoFractionNoExponent", R"({"type": "integer"})",
     {"0", "-7", "42", "-9999999999999999"},
     {"1.5", "1e2", "01", "-", "", "true", "10000000000000000"}},
    {"IntegerMinimumZeroHasNoSign", R"({"type": "integer", "minimum": 0})",
     {"0", "123", "9999999999999999"}, {"-1", "-0", "1.0"}},
    {"IntegerRange", R"({"type": "integer", "minimum": -15, "maximum": 230})",
     {"-15", "-1", "0", "9", "10", "99", "100", "229", "230"}, {"-16", "231", "1000", "-100", "2300"}},
    {"NumberMinimumZero", R"({"type": "number", "minimum": 0})",
     {"0", "0.5", "3e10", "12.5E-3"}, {"-1", "-0.5", "-0"}},
    {"NumberExclusiveMinimumZero", R"({"type": "number", "exclusiveMinimum": 0})",
     {"0.001", "1", "2e-3", "10.0", "0.5e1"}, {"0", "0.0", "0e5", "-1", "0.000"}},
    {"BooleanAndNull", R"({"type": ["boolean", "null"]})", {"true", "false", "null"}, {"1", R"("true")", "nul"}},
    {"TypeListAppliesEachTypesKeywords", R"({"type": ["string", "integer"], "minLength": 2, "minimum": 10})",
     {R"("ab")", "10", "123"}, {R"("a")", "9", "-10", "null"}},
    {"NoTypeMeansEveryType", R"({"minLength": 2})",
     {R"("ab")", "5", "null", "[]", R"({"k": 1})", "true"}, {R"("a")"}},
    {"NestedObjectsAndArrays",
     R"({"type": "object", "additionalProperties": false, "required": ["user"], "properties": {
         "user": {"type": "object", "additionalProperties": false, "required": ["name", "tags"],
                  "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}}})",
     {R"({"user":{"name":"a","tags":[]}})", "{\n  \"user\": {\n    \"name\": \"a\",\n    \"tags\": [\"x\", \"y\"]\n  }\n}",
      R"({ "user" : { "name" : "b" , "tags" : [ "z" ] } })"},
     {R"({"user":{"name":"a"}})", R"({"user":{"tags":[],"name":"a"}})", R"({"user":{"name":"a","tags":[1]}})",
      R"({"user":{"name":"a","tags":[]},"x":1})", R"({})", R"({"user":{"name":"a","tags":[]},})",
      R"({  "user":{"name":"a","tags":[]}})", "{\"user\":{\"name\":\"a\",\"tags\":[]}\n\n}"}},
    {"ArrayMinMaxItems", R"({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3})",
     {"[1,2]", "[1, 2, 3]", "[\n  1,\n  2\n]", "[ 1 , 2 ]"},
     {"[]", "[1]", "[1,2,3,4]", "[1,,2]", "[1,2,]", R"(["a",1])", "[,1,2]"}},
    {"PrefixItemsWithoutMore", R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false})",
     {"[]", R"(["a"])", R"(["a", 1])"}, {R"(["a",1,2])", "[1]", R"(["a","b"])", R"(["a",])"}},
    {"PrefixItemsThenItems",
     R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": {"type": "boolean"}, "minItems": 1})",
     {R"(["a"])", R"(["a",1,true,false])", R"(["a",1])"}, {"[]", R"(["a",1,2])", R"(["a",true])"}},
    {"EnumOfMixedTypes", R"({"enum": ["red", 1, 2.5, true, null, {"a": [1]}, [1, "x"], "caf\u00e9"]})",
     {R"("red")", "1", "2.5", "true", "null", R"({"a":[1]})", R"([1,"x"])", " \"red\" ", "\"caf\xC3\xA9\""},
     {R"("blue")", "3", "false", R"("Red")", R"([1])", R"("red1")"}},
    {"EnumFilteredByType", R"({"type": "string", "enum": ["a", 1, "b"]})", {R"("a")", R"("b")"}, {"1"}},
    {"ConstObject", R"({"const": {"k": "v", "n": [1, 2]}})", {R"({"k":"v","n":[1,2]})"}, {R"({"k":"v"})", R"({"k":"v","n":[1,2,3]})"}},
    {"AnyOf", R"({"anyOf": [{"type": "string", "maxLength": 2}, {"type": "integer", "minimum": 0}]})",
     {R"("ab")", "5", "0"}, {R"("abc")", "-1", "null"}},
    {"OneOfDisjointBranches", R"({"oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "null"}}]})",
     {"null", "[null,null]", "[]"}, {"[1]", "false"}},
    {"RecursiveRefTree",
     R"({"$defs": {"node": {"type": "object", "additionalProperties": false, "required": ["value"],
         "properties": {"value": {"type": "integer"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node"})",
     {R"({"value":1})", R"({"value":1,"children":[{"value":2,"children":[{"value":3}]},{"value":4,"children":[]}]})"},
     {R"({"value":1,"children":[{"children":[]}]})", R"({"children":[]})", R"({"value":1,"children":[{"value":"x"}]})"}},
    {"RefToRootNestsArrays", R"({"type": "array", "items": {"anyOf": [{"type": "integer"}, {"$ref": "#"}]}})",
     {"[]", "[1,[2,[3]],[]]", "[[[[]]]]"}, {R"([1,["a"]])", "[[1]", "1"}},
    {"RefChainToRecursiveObject",
     R"({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"type": "object", "additionalProperties": {"$ref": "#/$defs/a"}}},
        "$ref": "#/$defs/a"})",
     {"{}", R"({"x":{"y":{}},"z":{}})"}, {R"({"x":1})", R"({"x":{"y":[]}})"}},
    {"AllOfSingleRefToDefinitions",
     R"({"allOf": [{"$ref": "#/definitions/pos"}], "definitions": {"pos": {"type": "integer", "minimum": 1}}, "description": "d"})",
     {"1", "77"}, {"0", "-3"}},
    {"EmptySchemaIsAnyValue", R"({})",
     {R"({"a":[1,{"b":null}],"c":"x"})", R"("x")", "1.5", "[]", "{}", "false", "[\n  {\n    \"k\": [true]\n  }\n]"},
     {"{a:1}", "[1,]", "", "{\"a\"}", "[1 2]"}},
    {"AdditionalPropertiesSchema", R"({"type": "object", "additionalProperties": {"type": "integer"}})",
     {"{}", R"({"a":1,"b":2})", R"({"":3})"}, {R"({"a":"x"})", R"({"a":1,})", R"({a:1})"}},
    {"AdditionalPropertiesFalseOnly", R"({"type": "object", "additionalProperties": false})", {"{}", "{ }"}, {R"({"a":1})"}},
    {"AnnotationsIgnored",
     R"({"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "x", "title": "t", "description": "d",
         "default": 1, "examples": [1], "type": "boolean"})",
     {"true"}, {"1"}},
    {"PropertyNamesWithEscapesAndUtf8",
     R"({"type": "object", "additionalProperties": false, "required": ["quote\"key", "\u043a\u043b\u044e\u0447", "tab\tkey"],
         "properties": {"quote\"key": {"type": "integer"}, "\u043a\u043b\u044e\u0447": {"type": "integer"}, "tab\tkey": {"type": "null"}}})",
     {"{\"quote\\\"key\":1,\"\xD0\xBA\xD0\xBB\xD1\x8E\xD1\x87\":2,\"tab\\tkey\":null}"},
     {"{\"quote\\\"key\":1,\"\xD0\xBA\xD0\xBB\xD1\x8E\":2,\"tab\\tkey\":null}", "{\"quote\\\"key\":1,\"\xD0\xBA\xD0\xBB\xD1\x8E\xD1\x87\":2,\"tab\tkey\":null}"}},
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class SchemaCase : public testing::TestWithParam<Case> {};

TEST_P(SchemaCase, AcceptsValidAndRejectsInvalidDocuments) {
  const Case& c = GetParam();
  auto g = compile(json::parse(c.schema));
  ASSERT_TRUE(g);
  for (const auto& doc : c.valid) EXPECT_TRUE(grammar::accepts(g, doc)) << "should accept: " << doc;
  for (const auto& doc : c.invalid) EXPECT_FALSE(grammar::accepts(g, doc)) << "should reject: " << doc;
}

INSTANTIATE_TEST_SUITE_P(Table, SchemaCase, testing::ValuesIn(kCases),
                         [](const testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

// Every combination of required / optional over three properties, against every subset of
// them written: accepted exactly when the subset holds the required ones (commas included).
TEST(JsonSchema, OptionalPropertiesEverySubsetAndRequiredPattern) {
  const char* keys[] = {"a", "b", "c"};
  for (int required = 0; required < 8; ++required) {
    json schema = {{"type", "object"}, {"additionalProperties", false}};
    schema["properties"] = {{"a", {{"type", "integer"}}}, {"b", {{"type", "string"}}}, {"c", {{"type", "boolean"}}}};
    schema["required"] = json::array();
    for (int i = 0; i < 3; ++i)
      if (required & (1 << i)) schema["required"].push_back(keys[i]);
    auto g = compile(schema);
    ASSERT_TRUE(g);
    for (int subset = 0; subset < 8; ++subset) {
      const char* values[] = {"1", "\"s\"", "true"};
      std::string compact = "{", spaced = "{\n  ";
      for (int i = 0, n = 0; i < 3; ++i) {
        if (!(subset & (1 << i))) continue;
        compact += std::string(n ? "," : "") + "\"" + keys[i] + "\":" + values[i];
        spaced += std::string(n ? " ,\n  " : "") + "\"" + keys[i] + "\" : " + values[i];
        ++n;
      }
      compact += "}";
      spaced = subset ? spaced + "\n}" : "{ }";
      bool ok = (subset & required) == required;
      EXPECT_EQ(grammar::accepts(g, compact), ok) << compact << " required mask " << required;
      EXPECT_EQ(grammar::accepts(g, spaced), ok) << spaced << " required mask " << required;
      // The same members with a stray comma, first or last, never match.
      if (subset) {
        EXPECT_FALSE(grammar::accepts(g, "{," + compact.substr(1))) << compact;
        EXPECT_FALSE(grammar::accepts(g, compact.substr(0, compact.size() - 1) + ",}")) << compact;
      }
    }
    EXPECT_FALSE(grammar::accepts(g, R"({"b":"s","a":1})")) << "out of schema order";
    EXPECT_FALSE(grammar::accepts(g, R"({"a":1,"a":1})")) << "duplicate";
    EXPECT_FALSE(grammar::accepts(g, R"({"a":1,"d":1})")) << "extra key";
  }
}

// Integer bounds compile to digit-range grammars: every integer near the bounds is checked.
TEST(JsonSchema, IntegerRangesAreExactNumberByNumber) {
  struct Range {
    json schema;
    long lo, hi;
  };
  const Range ranges[] = {
      {{{"minimum", 0}, {"maximum", 0}}, 0, 0},
      {{{"minimum", -5}, {"maximum", 5}}, -5, 5},
      {{{"minimum", 7}, {"maximum", 123}}, 7, 123},
      {{{"minimum", -1000}, {"maximum", -37}}, -1000, -37},
      {{{"minimum", 99}, {"maximum", 1001}}, 99, 1001},
      {{{"minimum", 1}, {"maximum", 9999}}, 1, 9999},
      {{{"exclusiveMinimum", 2.5}, {"exclusiveMaximum", 20}}, 3, 19},
      {{{"minimum", 2.5}, {"maximum", 19.9}}, 3, 19},
      {{{"minimum", 10}, {"exclusiveMinimum", true}, {"maximum", 300}}, 11, 300},  // draft 4
      {{{"minimum", 190}, {"maximum", 2050}}, 190, 2050},
  };
  for (const auto& r : ranges) {
    json schema = r.schema;
    schema["type"] = "integer";
    auto g = compile(schema);
    ASSERT_TRUE(g) << schema.dump();
    for (long v = r.lo - 150; v <= r.hi + 150; ++v)
      EXPECT_EQ(grammar::accepts(g, std::to_string(v)), v >= r.lo && v <= r.hi) << v << " for " << schema.dump();
    EXPECT_FALSE(grammar::accepts(g, "0" + std::to_string(std::max(r.lo, 1L)))) << "leading zero";
  }
}

TEST(JsonSchema, IntegerMaximumOnlyStillBoundsNegatives) {
  auto g = compile({{"type", "integer"}, {"maximum", -20}});
  ASSERT_TRUE(g);
  EXPECT_TRUE(grammar::accepts(g, "-20"));
  EXPECT_TRUE(grammar::accepts(g, "-9999999999999999"));
  EXPECT_FALSE(grammar::accepts(g, "-19"));
  EXPECT_FALSE(grammar::accepts(g, "5"));
}

// Counts over 64 are written as blocks plus a remainder: every length around the bounds and the
// block edges is checked.
TEST(JsonSchema, LongStringAndArrayCountsAreExact) {
  auto str = compile({{"type", "string"}, {"minLength", 130}, {"maxLength", 300}});
  auto arr = compile({{"type", "array"}, {"items", {{"type", "integer"}}}, {"minItems", 70}, {"maxItems", 200}});
  auto open = compile({{"type", "string"}, {"minLength", 150}});
  ASSERT_TRUE(str && arr && open);
  for (int n = 0; n <= 340; ++n) {
    std::string text = "\"";
    for (int i = 0; i < n; ++i) text += i % 3 ? "a" : "\xC3\xA9";
    text += "\"";
    EXPECT_EQ(grammar::accepts(str, text), n >= 130 && n <= 300) << "length " << n;
    EXPECT_EQ(grammar::accepts(open, text), n >= 150) << "length " << n;
    std::string list = "[";
    for (int i = 0; i < n; ++i) list += (i ? "," : "") + std::to_string(i);
    EXPECT_EQ(grammar::accepts(arr, list + "]"), n >= 70 && n <= 200) << "items " << n;
  }
}

// 120 strings of up to 10000 characters: without the block form the grammar would expand past
// its element limit.
TEST(JsonSchema, ManyLongCountsStayWithinTheGrammarLimits) {
  json props = json::object();
  for (int i = 0; i < 120; ++i) props["p" + std::to_string(i)] = {{"type", "string"}, {"maxLength", 10000}};
  props["list"] = {{"type", "array"}, {"maxItems", 10000}, {"items", {{"enum", {std::string(100, 'x'), 1}}}}};
  auto g = compile({{"type", "object"}, {"properties", props}, {"additionalProperties", false}});
  ASSERT_TRUE(g);
  EXPECT_TRUE(grammar::accepts(g, "{\"p7\":\"" + std::string(10000, 'z') + "\"}"));
  EXPECT_FALSE(grammar::accepts(g, "{\"p7\":\"" + std::string(10001, 'z') + "\"}"));
}

TEST(JsonSchema, FiftyMixedPropertiesCompile) {
  json schema = {{"type", "object"}, {"additionalProperties", false}};
  json props = json::object(), required = json::array();
  std::string doc = "{";
  const json types[] = {{{"type", "string"}}, {{"type", "integer"}}, {{"type", "number"}}, {{"type", "boolean"}},
                        {{"type", "array"}, {"items", {{"type", "integer"}}}}, {{"enum", {"x", 2}}}};
  const char* values[] = {"\"v\"", "3", "1.5", "false", "[1,2]", "2"};
  for (int i = 0; i < 50; ++i) {
    std::string key = "p" + std::to_string(i);
    props[key] = types[i % 6];
    if (i % 2 == 0) {
      required.push_back(key);
      doc += std::string(doc.size() > 1 ? "," : "") + "\"" + key + "\":" + values[i % 6];
    }
  }
  schema["properties"] = props;
  schema["required"] = required;
  auto g = compile(schema);
  ASSERT_TRUE(g);
  EXPECT_TRUE(grammar::accepts(g, doc + "}"));
  EXPECT_FALSE(grammar::accepts(g, doc.substr(0, doc.rfind(',')) + "}")) << "the last required one left out";
}

TEST(JsonSchema, JsonObjectGrammarAcceptsAnyObjectOnly) {
  auto g = grammar::Grammar::parse(json_object_grammar());
  ASSERT_TRUE(g) << g.error();
  EXPECT_TRUE(grammar::accepts(*g, "{}"));
  EXPECT_TRUE(grammar::accepts(*g, R"({"a": [1, {"b": null}], "c": "\u00e9"})"));
  EXPECT_FALSE(grammar::accepts(*g, "[]"));
  EXPECT_FALSE(grammar::accepts(*g, R"("x")"));
  EXPECT_FALSE(grammar::accepts(*g, R"({"a":1)"));
}

TEST(JsonSchema, TrueSchemaIsAnyValue) {
  auto g = compile(json(true));
  ASSERT_TRUE(g);
  EXPECT_TRUE(grammar::accepts(g, "[1,\"a\"]"));
  EXPECT_FALSE(grammar::accepts(g, "[1,\"a\""));
}

// Random schemas built from the supported keywords (and some refused ones): each either gives an
// error in the documented form or a grammar that Grammar::parse takes.
json random_schema(std::mt19937& rng, int depth) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  if (depth > 4) return json{{"type", "integer"}};
  switch (pick(14)) {
    case 0: return json{{"type", "string"}, {"minLength", pick(3)}, {"maxLength", 2 + pick(10000)}};
    case 1: return json{{"type", "integer"}, {"minimum", pick(2000) - 1000}, {"maximum", pick(100000)}};
    case 2: return json{{"enum", {"a", pick(5), nullptr, json{{"k", {1, 2}}}}}};
    case 3: return json{{"type", {"null", "number"}}, {"minimum", 0}};
    case 4: return json{{"type", "array"}, {"items", random_schema(rng, depth + 1)}, {"maxItems", pick(10001)}};
    case 5: {
      json props = json::object(), required = json::array();
      int n = pick(6);
      for (int i = 0; i < n; ++i) {
        props["p" + std::to_string(i)] = random_schema(rng, depth + 1);
        if (pick(2)) required.push_back("p" + std::to_string(i));
      }
      return json{{"type", "object"}, {"properties", props}, {"required", required}, {"additionalProperties", pick(8) != 0 ? json(false) : json(true)}};
    }
    case 6: return json{{"anyOf", {random_schema(rng, depth + 1), random_schema(rng, depth + 1), false}}};
    case 7: return json{{"$ref", pick(2) ? "#" : "#/$defs/d"}};
    case 8: return json{{"allOf", {random_schema(rng, depth + 1)}}};
    case 9: return json{{"type", "array"}, {"prefixItems", {random_schema(rng, depth + 1), false}}, {"minItems", pick(3)}};
    case 10: return json{{"type", "string"}, {"format", pick(2) ? "date-time" : "uuid"}};
    case 11: return json{{"type", "object"}, {"additionalProperties", random_schema(rng, depth + 1)}};
    case 12: return json{{"const", pick(2) ? json("x") : json::array({1, "y"})}, {"type", pick(2) ? "string" : "array"}};
    default: return json(pick(3) != 0);
  }
}

TEST(JsonSchema, RandomSchemasGiveParsableGrammarsOrErrors) {
  std::mt19937 rng(1234);
  int compiled = 0;
  for (int i = 0; i < 300; ++i) {
    json schema = random_schema(rng, 0);
    if (schema.is_object() && !schema.contains("$defs")) schema["$defs"] = {{"d", random_schema(rng, 3)}};
    auto text = json_schema_to_grammar(schema);
    if (!text) {
      EXPECT_EQ(text.error().rfind("json schema: ", 0), 0u) << text.error();
      continue;
    }
    auto g = grammar::Grammar::parse(*text);
    EXPECT_TRUE(g.ok()) << (g ? "" : g.error()) << "\n" << schema.dump() << "\n" << *text;
    compiled += g.ok();
  }
  EXPECT_GT(compiled, 150);
}

// --- refusals: each names the keyword and where it is ------------------------------------------

TEST(JsonSchemaRefuses, PatternPropertiesNamesItsPath) {
  EXPECT_EQ(error_of(json::parse(R"({"type": "object", "additionalProperties": false,
                                     "properties": {"a": {"type": "object", "patternProperties": {}}}})")),
            "json schema: unsupported keyword 'patternProperties' at /properties/a");
}

TEST(JsonSchemaRefuses, PatternAtTheRoot) {
  EXPECT_EQ(error_of({{"type", "string"}, {"pattern", "^a$"}}), "json schema: unsupported keyword 'pattern' at /");
}

TEST(JsonSchemaRefuses, PointerEscapesSlashAndTilde) {
  EXPECT_EQ(error_of(json::parse(R"({"type": "object", "additionalProperties": false,
                                     "properties": {"a/b~c": {"uniqueItems": true}}})")),
            "json schema: unsupported keyword 'uniqueItems' at /properties/a~1b~0c");
}

TEST(JsonSchema, ExtraKeysAllowedAreNeverGenerated) {
  // Absent, true or a schema: only the listed properties are written (documents that conform).
  for (const char* ap : {"", R"(, "additionalProperties": true)", R"(, "additionalProperties": {"type": "string"})"}) {
    SCOPED_TRACE(ap);
    auto g = compile(json::parse(std::string(R"({"type": "object", "properties": {"a": {"type": "integer"}},
                                                 "required": ["a"])") + ap + "}"));
    EXPECT_TRUE(grammar::accepts(g, R"({"a": 1})"));
    EXPECT_FALSE(grammar::accepts(g, R"({"a": 1, "b": "x"})"));
    EXPECT_FALSE(grammar::accepts(g, R"({})"));
  }
}

TEST(JsonSchema, OneOfOfTaggedObjects) {
  // A tagged union through $defs, as pydantic writes one: the tag tells the branches apart.
  auto g = compile(json::parse(R"({"$defs": {
      "cat": {"type": "object", "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}},
              "required": ["kind", "lives"], "additionalProperties": false},
      "dog": {"type": "object", "properties": {"kind": {"enum": ["dog", "wolf"]}, "good": {"type": "boolean"}},
              "required": ["kind"], "additionalProperties": false}},
    "oneOf": [{"$ref": "#/$defs/cat"}, {"$ref": "#/$defs/dog"}]})"));
  EXPECT_TRUE(grammar::accepts(g, R"({"kind": "cat", "lives": 9})"));
  EXPECT_TRUE(grammar::accepts(g, R"({"kind": "wolf"})"));
  EXPECT_FALSE(grammar::accepts(g, R"({"kind": "cat"})"));
}

TEST(JsonSchemaRefuses, OneOfWithBranchesThatMayOverlap) {
  const char* msg =
      "json schema: unsupported keyword 'oneOf' at / (branches that may overlap; oneOf is supported for branches of "
      "different types or objects with a required property whose const / enum values differ)";
  EXPECT_EQ(error_of(json::parse(R"({"oneOf": [{"type": "number"}, {"type": "integer"}]})")), msg);
  EXPECT_EQ(error_of(json::parse(R"({"oneOf": [{"type": "string"}, {"maxLength": 3}]})")), msg);
  EXPECT_EQ(error_of(json::parse(R"({"oneOf": [
      {"type": "object", "properties": {"k": {"enum": ["a", "b"]}}, "required": ["k"], "additionalProperties": false},
      {"type": "object", "properties": {"k": {"const": "b"}}, "required": ["k"], "additionalProperties": false}]})")),
            msg);
}

TEST(JsonSchemaRefuses, RequiredWithoutProperties) {
  const char* msg =
      "json schema: unsupported keyword 'required' at / (required property 'a' has no schema in 'properties'; extra "
      "keys are not generated)";
  EXPECT_EQ(error_of(json::parse(R"({"type": "object", "required": ["a"]})")), msg);
  EXPECT_EQ(error_of(json::parse(R"({"type": "object", "properties": {"b": {}}, "required": ["a"]})")), msg);
}

TEST(JsonSchemaRefuses, AllOfWithTwoMembers) {
  EXPECT_EQ(error_of(json::parse(R"({"allOf": [{"type": "integer"}, {"minimum": 1}]})")),
            "json schema: unsupported keyword 'allOf' at / (with more than one member)");
}

TEST(JsonSchemaRefuses, RefWithAConstrainingSibling) {
  EXPECT_EQ(error_of(json::parse(R"({"$defs": {"a": {}}, "$ref": "#/$defs/a", "type": "object", "title": "t"})")),
            "json schema: unsupported keyword 'type' at / (alongside '$ref')");
}

TEST(JsonSchemaRefuses, RemoteRef) {
  EXPECT_EQ(error_of(json::parse(R"({"$ref": "https://example.com/s.json"})")),
            "json schema: unsupported keyword '$ref' at / (only '#', '#/$defs/NAME' and '#/definitions/NAME' are "
            "supported)");
}

TEST(JsonSchemaRefuses, MissingRefTarget) {
  EXPECT_EQ(error_of(json::parse(R"({"type": "array", "items": {"$ref": "#/$defs/nope"}})")),
            "json schema: '$ref' target '#/$defs/nope' not found at /items");
}

TEST(JsonSchemaRefuses, RefLoopWithoutText) {
  EXPECT_EQ(error_of(json::parse(R"({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}},
                                     "$ref": "#/$defs/a"})")),
            "json schema: '$ref' loop through '#/$defs/a': the schema refers to itself before any JSON text");
}

TEST(JsonSchemaRefuses, UnknownFormat) {
  EXPECT_EQ(error_of({{"type", "string"}, {"format", "email"}}),
            "json schema: unsupported keyword 'format' at / ('email'; supported: date, time, date-time, uuid)");
}

TEST(JsonSchemaRefuses, LengthAlongsideFormat) {
  EXPECT_EQ(error_of({{"type", "string"}, {"format", "date"}, {"maxLength", 12}}),
            "json schema: unsupported keyword 'maxLength' at / (alongside 'format')");
}

TEST(JsonSchemaRefuses, NumberMaximum) {
  EXPECT_EQ(error_of({{"type", "number"}, {"maximum", 5}}),
            "json schema: unsupported keyword 'maximum' at / (on a number; only integer ranges and a lower bound of 0 "
            "are enforced)");
}

TEST(JsonSchemaRefuses, ItemsAsAnArray) {
  EXPECT_EQ(error_of(json::parse(R"({"type": "array", "items": [{"type": "string"}]})")),
            "json schema: unsupported keyword 'items' at / (an array (draft 4 tuples); use prefixItems)");
}

TEST(JsonSchemaRefuses, MaxItemsOverTheRepeatLimit) {
  EXPECT_EQ(error_of({{"type", "array"}, {"maxItems", 10001}}),
            "json schema: unsupported keyword 'maxItems' at / (over 10000)");
}

TEST(JsonSchemaRefuses, EnumAlongsideOtherKeywords) {
  EXPECT_EQ(error_of({{"enum", {"a", "bb"}}, {"maxLength", 1}}),
            "json schema: unsupported keyword 'maxLength' at / (alongside 'enum')");
}

TEST(JsonSchemaRefuses, FalseSchema) {
  EXPECT_EQ(error_of(json(false)), "json schema: the schema at / matches nothing (false)");
}

TEST(JsonSchemaRefuses, ConstNotInEnum) {
  EXPECT_EQ(error_of({{"enum", {1, 2}}, {"const", 3}}),
            "json schema: the schema at / matches nothing ('const' is not in 'enum')");
}

TEST(JsonSchemaRefuses, EmptyIntegerRange) {
  EXPECT_EQ(error_of({{"type", "integer"}, {"minimum", 5}, {"exclusiveMaximum", 5}}),
            "json schema: the schema at / matches nothing (no integer of at most 16 digits is within the bounds)");
}

// Embedded in a larger grammar under another start rule: no "root" of its own, and the outer
// grammar's text around the document is enforced.
TEST(JsonSchema, StartRuleNamedByTheCaller) {
  auto text = json_schema_to_grammar(json{{"type", "integer"}}, "inner-json");
  ASSERT_TRUE(text.ok()) << text.error();
  EXPECT_EQ(text->find("root ::="), std::string::npos) << *text;
  auto g = grammar::Grammar::parse("root ::= \"<\" inner-json \">\"\n" + *text);
  ASSERT_TRUE(g.ok()) << g.error() << "\n" << *text;
  EXPECT_TRUE(grammar::accepts(g.value(), "<42>"));
  EXPECT_TRUE(grammar::accepts(g.value(), "< -7 >"));
  EXPECT_FALSE(grammar::accepts(g.value(), "42"));
  EXPECT_FALSE(grammar::accepts(g.value(), "<4.5>"));
}

TEST(JsonSchemaRefuses, NestingDeeperThan64) {
  json schema = {{"type", "integer"}};
  for (int i = 0; i < 70; ++i) schema = {{"type", "array"}, {"items", schema}};
  std::string msg = error_of(schema);
  EXPECT_EQ(msg.rfind("json schema: nesting deeper than 64 schemas at /items/items/", 0), 0u) << msg;
  // 64 levels are fine.
  schema = {{"type", "integer"}};
  for (int i = 0; i < 63; ++i) schema = {{"type", "array"}, {"items", schema}};
  EXPECT_TRUE(json_schema_to_grammar(schema).ok());
}

TEST(JsonSchemaRefuses, GrammarOverOneMiB) {
  json values = json::array();
  for (int i = 0; i < 4000; ++i) values.push_back(std::to_string(i) + std::string(300, 'x'));
  std::string msg = error_of({{"enum", values}});
  EXPECT_EQ(msg.rfind("json schema: the grammar would be", 0), 0u) << msg;
}

TEST(JsonSchemaRefuses, TooManyEnumValues) {
  json values = json::array();
  for (int i = 0; i < 5000; ++i) values.push_back(i);
  EXPECT_EQ(error_of({{"enum", values}}), "json schema: unsupported keyword 'enum' at / (more than 4096 values)");
}

TEST(JsonSchemaRefuses, InvalidKeywordValues) {
  EXPECT_EQ(error_of({{"type", "array"}, {"minItems", -1}}), "json schema: 'minItems' at / must be a non-negative integer");
  EXPECT_EQ(error_of({{"type", "strin"}}),
            "json schema: 'type' at / must be a type name (null, boolean, object, array, string, number, integer) or a "
            "non-empty list of them");
}

}  // namespace
}  // namespace qnext
