// Writes the fuzz targets' seed corpora from the repository's test data, so no binary seeds are
// committed: make_seeds <repository root> <output dir> creates <output dir>/<target>/<seed> files.
//   safetensors            every tests/data safetensors file, cut down to its smallest tensors
//                          (+ a file with qnext's Q8_0 metadata)
//   safetensors_index      the model.safetensors.index.json files, cut to their first entries
//   gguf                   the tests/data GGUF files, cut to their first 64 KiB (headers, metadata)
//   config, quant_config   the tests/data config.json files (+ quantization_config alone)
//   tokenizer              golden_encode texts (mode byte 0) and their ids (mode byte 1)
//   tokenizer_json         the real tokenizer.json cut to the byte tokens and its first merges,
//                          with and without a tokenizer_config.json after a NUL byte
//   chat_output            model outputs built from golden_chat's assistant messages
//   openai_request         golden_chat conversations as chat bodies, golden texts as completions
//   jinja, chat_template   the chat templates; golden_chat's messages / tools / variables
//   grammar                small grammars of every construct, each followed by NUL and token picks
//   json_schema            schemas using every supported keyword, and some refused ones
// Deterministic: the same data gives the same files.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

fs::path g_out;

std::string read(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) {
    std::cerr << "make_seeds: cannot read " << p << "\n";
    std::exit(1);
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  const fs::path dir = g_out / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> out;
  std::istringstream in(read(p));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

std::string tag(const fs::path& p) {  // "tiny-b-fp8_model-00001-of-00002"
  return p.parent_path().filename().string() + "_" + p.stem().string();
}

// A safetensors file holding the smallest tensors of `path` (at most 16, 8 KiB of data), the
// header's __metadata__ kept.
void safetensors_seed(const fs::path& path) {
  const std::string bytes = read(path);
  uint64_t len;
  std::memcpy(&len, bytes.data(), 8);
  const json header = json::parse(bytes.substr(8, len));
  struct T {
    std::string name;
    json info;
    uint64_t begin, end;
  };
  std::vector<T> all;
  for (const auto& [name, info] : header.items())
    if (name != "__metadata__") all.push_back({name, info, info["data_offsets"][0], info["data_offsets"][1]});
  std::stable_sort(all.begin(), all.end(), [](const T& a, const T& b) { return a.end - a.begin < b.end - b.begin; });
  json out = json::object();
  if (header.contains("__metadata__")) out["__metadata__"] = header["__metadata__"];
  std::string data;
  for (const T& t : all) {
    const uint64_t n = t.end - t.begin;
    if (out.size() >= 16 || data.size() + n > 8192) break;
    json info = t.info;
    info["data_offsets"] = {data.size(), data.size() + n};
    data += bytes.substr(8 + len + t.begin, n);
    out[t.name] = info;
  }
  std::string h = out.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  const uint64_t hl = h.size();
  write("safetensors", tag(path), std::string(reinterpret_cast<const char*>(&hl), 8) + h + data);
}

void quant_metadata_seed() {  // qnext quantize's Q8_0 matrices: U8 [rows, row bytes] + __metadata__
  json h = {{"__metadata__", {{"qnext.quant.w", "Q8_0"}, {"format", "pt"}}},
            {"w", {{"dtype", "U8"}, {"shape", {2, 34}}, {"data_offsets", {0, 68}}}},
            {"b", {{"dtype", "F16"}, {"shape", {2}}, {"data_offsets", {68, 72}}}}};
  std::string s = h.dump();
  s.append((8 - s.size() % 8) % 8, ' ');
  const uint64_t hl = s.size();
  write("safetensors", "qnext_q8_0", std::string(reinterpret_cast<const char*>(&hl), 8) + s + std::string(72, '\x11'));
}

void index_seed(const fs::path& path) {
  const json index = json::parse(read(path));
  json out = json::object();
  if (index.contains("metadata")) out["metadata"] = index["metadata"];
  json map = json::object();
  for (const auto& [k, v] : index["weight_map"].items()) {
    if (map.size() >= 24) break;
    map[k] = v;
  }
  out["weight_map"] = map;
  write("safetensors_index", tag(path), out.dump(1));
}

void config_seeds(const fs::path& path) {
  const std::string text = read(path);
  write("config", tag(path), text);
  const json j = json::parse(text);
  if (j.contains("quantization_config")) {
    write("quant_config", tag(path), text);
    write("quant_config", tag(path) + "_alone", json{{"quantization_config", j["quantization_config"]}}.dump(1));
  }
}

void tokenizer_seeds(const fs::path& data) {
  const auto cases = read_jsonl(data / "tokenizer/golden_encode.jsonl");
  for (const auto& c : cases) {
    const std::string id = c["id"];
    write("tokenizer", id + "_encode", std::string(1, '\0') + c["text"].get<std::string>());
    if (std::stoi(id.substr(1)) % 4 == 0) {
      std::string ids(1, '\1');
      for (int32_t x : c["ids"].get<std::vector<int32_t>>()) ids.append(reinterpret_cast<const char*>(&x), 4);
      write("tokenizer", id + "_decode", ids);
    }
  }
  write("tokenizer", "bench_text", std::string(1, '\0') + read(data / "tokenizer/bench_text.txt").substr(0, 3000));
}

// The real tokenizer.json with only the 256 byte tokens, the first merges over them and the added
// tokens, renumbered densely: small enough to load thousands of times a second.
void tokenizer_json_seeds(const fs::path& assets) {
  const nlohmann::json full = nlohmann::json::parse(read(assets / "tokenizer/tokenizer.json"));
  std::map<std::string, int64_t> vocab;
  for (const auto& [tok, id] : full["model"]["vocab"].items()) vocab[tok] = id.get<int64_t>();
  std::set<std::string> keep;
  for (const auto& [s, id] : vocab) {
    // Byte-level spellings of single bytes are one code point: 1 to 2 UTF-8 bytes.
    if (s.size() == 1 || (s.size() == 2 && (uint8_t(s[0]) & 0xe0) == 0xc0)) keep.insert(s);
  }
  nlohmann::json merges = nlohmann::json::array(), merges_str = nlohmann::json::array();
  for (const auto& m : full["model"]["merges"]) {
    if (merges.size() >= 300) break;
    std::string l, r;
    if (m.is_array()) {
      l = m[0].get<std::string>();
      r = m[1].get<std::string>();
    } else {
      const std::string s = m.get<std::string>();
      l = s.substr(0, s.find(' ')), r = s.substr(s.find(' ') + 1);
    }
    if (!keep.count(l) || !keep.count(r) || !vocab.count(l + r)) continue;
    keep.insert(l + r);
    merges.push_back({l, r});
    merges_str.push_back(l + " " + r);
  }
  std::vector<std::pair<int64_t, std::string>> by_id;
  for (const auto& t : keep) by_id.push_back({vocab[t], t});
  std::sort(by_id.begin(), by_id.end());
  json new_vocab = json::object();  // in id order
  for (size_t i = 0; i < by_id.size(); ++i) new_vocab[by_id[i].second] = i;
  nlohmann::json added = nlohmann::json::array();
  int64_t next = int64_t(by_id.size());
  for (nlohmann::json a : full["added_tokens"]) {
    a["id"] = next++;
    added.push_back(a);
  }
  nlohmann::json slim = full;
  slim["model"]["vocab"] = nlohmann::json::object();
  slim["model"]["merges"] = nlohmann::json::array();
  json tok = json::parse(slim.dump());  // keys sorted (std::map): fine for a seed
  tok["added_tokens"] = json::parse(added.dump());
  tok["model"]["vocab"] = new_vocab;
  tok["model"]["merges"] = json::parse(merges.dump());
  const json cfg = {{"add_bos_token", false}, {"bos_token", nullptr}, {"eos_token", "<|im_end|>"},
                    {"pad_token", "<|endoftext|>"}, {"unk_token", nullptr}};
  write("tokenizer_json", "qwen_small_with_config", tok.dump() + std::string(1, '\0') + cfg.dump());
  write("tokenizer_json", "qwen_small", tok.dump());
  tok["model"]["merges"] = json::parse(merges_str.dump());
  json obj_cfg = cfg;
  obj_cfg["eos_token"] = {{"content", "<|im_end|>"}, {"special", true}};
  write("tokenizer_json", "qwen_small_string_merges", tok.dump(1) + std::string(1, '\0') + obj_cfg.dump());
}

std::string args_text(const json& fn) {
  const json& a = fn.contains("arguments") ? fn["arguments"] : json::object();
  return a.is_string() ? a.get<std::string>() : a.dump();
}

void chat_seeds(const fs::path& data, const fs::path& assets) {
  const auto cases = read_jsonl(data / "tokenizer/golden_chat.jsonl");
  for (const auto& c : cases) {
    const std::string id = c["id"];
    const std::string tpl = c["template"];
    // chat_template: {"messages", "tools", "add_generation_prompt", "vars"}; the target renders it
    // with the template named by its first byte (0 instruct, 1 thinking, 2 hybrid).
    const char which = tpl == "qwen3-next-instruct" ? 0 : tpl == "qwen3-next-thinking" ? 1 : 2;
    json doc = {{"messages", c["messages"]}, {"tools", c["tools"]},
                {"add_generation_prompt", c["add_generation_prompt"]}, {"vars", c["kwargs"]}};
    write("chat_template", id, std::string(1, which) + doc.dump());

    // openai_request: byte 0 = chat (+2: the Thinking template); OpenAI's tool-call arguments are
    // JSON text.
    json messages = c["messages"];
    for (auto& m : messages)
      if (m.contains("tool_calls"))
        for (auto& call : m["tool_calls"]) {
          if (!call.contains("function")) call = {{"type", "function"}, {"function", call}};  // the flat form
          call["function"]["arguments"] = args_text(call["function"]);
        }
    json body = {{"model", "qwen3-next"}, {"messages", messages}, {"max_tokens", 32}};
    if (!c["tools"].is_null()) body["tools"] = c["tools"];
    if (!c["kwargs"].empty()) body["chat_template_kwargs"] = c["kwargs"];
    if (id.back() % 3 == 0) body.update({{"temperature", 0.6}, {"top_p", 0.95}, {"top_k", 20}, {"seed", 7}});
    if (id.back() % 3 == 1) body.update({{"stream", true}, {"stream_options", {{"include_usage", true}}}, {"stop", {"\n\n"}}});
    if (id.back() % 3 == 2) body.update({{"logprobs", true}, {"top_logprobs", 3}, {"presence_penalty", 0.5}});
    if (tpl != "qwen3-hybrid") write("openai_request", id, std::string(1, which == 1 ? 2 : 0) + body.dump());

    // chat_output: what the model would have written for each assistant turn.
    for (size_t i = 0; i < c["messages"].size(); ++i) {
      const json& m = c["messages"][i];
      if (m["role"] != "assistant") continue;
      std::string out;
      if (m.contains("reasoning_content")) out += "<think>\n" + m["reasoning_content"].get<std::string>() + "\n</think>\n\n";
      if (m["content"].is_string()) out += m["content"].get<std::string>();
      if (m.contains("tool_calls"))
        for (const auto& call : m["tool_calls"]) {
          const json& fn = call.contains("function") ? call["function"] : call;
          out += "\n<tool_call>\n{\"name\": " + fn["name"].dump() + ", \"arguments\": " +
                 (fn.contains("arguments") ? fn["arguments"].dump() : "{}") + "}\n</tool_call>";
        }
      write("chat_output", id + "_" + std::to_string(i), std::string(1, which == 1 ? 1 : 0) + out);
    }
  }
  write("chat_output", "prefilled_think", std::string(1, 1) + "I should answer briefly.\n</think>\n\nParis.");
  write("chat_output", "broken_call", std::string(1, 0) + "Sure.<tool_call>\n{\"name\": 3}\n</tool_call><tool_call>{\"name\"");

  const auto texts = read_jsonl(data / "tokenizer/golden_encode.jsonl");
  for (size_t i = 0; i < texts.size(); i += 20) {
    json body = {{"model", "qwen3-next"}, {"prompt", texts[i]["text"]}, {"max_tokens", 16}};
    if (i % 40 == 0) body.update({{"echo", true}, {"logprobs", 2}, {"stop", {".", "!"}}});
    else body["prompt"] = texts[i]["ids"];
    write("openai_request", "completion_" + texts[i]["id"].get<std::string>(), std::string(1, 1) + body.dump());
  }

  for (const char* t : {"qwen3-next-instruct.jinja", "qwen3-next-thinking.jinja", "qwen3-hybrid.jinja"})
    write("jinja", t, read(assets / "tokenizer" / t));
}

void grammar_seeds() {
  const char* grammars[] = {
      "root ::= \"ab\" | \"c\"",
      "root ::= [a-c]+ \"!\"? [^x-z]* .",
      "root ::= \"x\"{2,4} (\"y\" | \"z\"){1,} [\\u00e9-\\u00ff]{3}",
      "root ::= \"(\" root \")\" | \"x\"  # nesting",
      ("root ::= ws value ws\nvalue ::= obj | arr | str | \"true\" | [0-9]+\nobj ::= \"{\" ws (str ws \":\" ws value)? \"}\"\n"
       "arr ::= \"[\" ws (value (ws \",\" ws value)*)? \"]\"\nstr ::= \"\\\"\" [^\"\\\\]* \"\\\"\"\nws ::= | \" \" | \"\\n\" [ \\t]{0,4}"),
      "root ::= \"<tool_call>\\n\" [a-z]{1,8} \"\\n</tool_call>\"",
      "root ::= \"日本\" [語-誠] | \"😀\"*",
      "root ::= a b\na ::= \"\" | \"a\"\nb ::= \"b\" a",
  };
  int i = 0;
  for (const char* g : grammars)  // the grammar, NUL, then the token picks
    write("grammar", "g" + std::to_string(i++), std::string(g) + std::string(1, '\0') + "\x01\x07\x03\x1f\x02\x05");
  const char* schemas[] = {
      R"({"type":"object","properties":{"a":{"type":"string","maxLength":5},"b":{"type":"integer","minimum":0}},"required":["a"],"additionalProperties":false})",
      R"({"type":"array","items":{"enum":["x",1,null,true]},"minItems":1,"maxItems":3})",
      R"({"anyOf":[{"type":"number"},{"type":"boolean"},{"const":{"k":[1,2]}}]})",
      R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"next":{"anyOf":[{"$ref":"#/$defs/node"},{"type":"null"}]}},"required":["v","next"],"additionalProperties":false}},"$ref":"#/$defs/node"})",
      R"({"type":"string","format":"date-time"})",
      R"({"type":"string","format":"uuid"})",
      R"({"type":["string","null"],"minLength":2})",
      R"({"type":"object"})",
      R"({"prefixItems":[{"type":"string"},{"type":"integer","maximum":9}],"items":false})",
      R"({"allOf":[{"type":"integer","exclusiveMinimum":-3,"exclusiveMaximum":40}]})",
      R"({"type":"string","pattern":"a+"})",
      R"({"type":"object","properties":{"a":{}}})",
  };
  i = 0;
  for (const char* sch : schemas) write("json_schema", "s" + std::to_string(i++), sch);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: make_seeds <repository root> <output dir>\n";
    return 2;
  }
  const fs::path root = argv[1], data = root / "tests/data", assets = root / "assets";
  g_out = argv[2];
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(data))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& p : files) {
    if (p.extension() == ".safetensors") safetensors_seed(p);
    else if (p.filename() == "model.safetensors.index.json") index_seed(p);
    else if (p.filename() == "config.json") config_seeds(p);
    else if (p.extension() == ".gguf") write("gguf", tag(p), read(p).substr(0, 65536));
  }
  quant_metadata_seed();
  tokenizer_seeds(data);
  tokenizer_json_seeds(assets);
  chat_seeds(data, assets);
  grammar_seeds();
  return 0;
}
