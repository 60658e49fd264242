#include "io/quant_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/compressed_tensors.h"
#include "io/fp8.h"

namespace qnext {

static bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string QuantConfig::summary() const {
  switch (method) {
    case QuantMethod::None: return "none";
    case QuantMethod::Fp8:
      return "fp8 e4m3, blocks " + std::to_string(block_rows) + "x" + std::to_string(block_cols);
    case QuantMethod::CompressedTensors:
      return "compressed-tensors pack-quantized int" + std::to_string(bits) + ", " +
             (group > 0 ? "group " + std::to_string(group) : std::string("per channel")) +
             (symmetric ? ", symmetric" : ", asymmetric (zero points)");
  }
  return "?";
}

Result<QuantConfig> parse_quant_config(const nlohmann::json& config, const std::string& where) {
  QuantConfig qc;
  if (!config.is_object() || !config.contains("quantization_config")) return qc;
  const auto& q = config["quantization_config"];
  const std::string field = where + ": quantization_config";
  if (!q.is_object()) return err(field + " is not an object");
  if (!q.contains("quant_method") || !q["quant_method"].is_string())
    return err(field + ".quant_method is missing (expected \"fp8\" or \"compressed-tensors\")");
  const std::string method = q["quant_method"].get<std::string>();
  Status st = Ok{};
  if (method == "fp8") st = parse_fp8_config(q, field, &qc);
  else if (method == "compressed-tensors") st = parse_compressed_tensors_config(q, field, &qc);
  else
    return err(field + ".quant_method '" + method +
               "' is not supported (expected \"fp8\" or \"compressed-tensors\"; GPTQ, classic AutoAWQ and bitsandbytes "
               "checkpoints are not)");
  if (!st) return err(st.error());
  return qc;
}

Result<QuantConfig> parse_quant_config_text(std::string_view config_json, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(config_json);
  } catch (const nlohmann::json::exception& e) {
    return err(where + ": malformed JSON: " + e.what());
  }
  return parse_quant_config(j, where);
}

Result<QuantConfig> read_quant_config(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / "config.json").string();
  std::ifstream in(path, std::ios::binary);
  if (!in) return QuantConfig{};  // Config::load reports a missing config.json
  std::ostringstream text;
  text << in.rdbuf();
  return parse_quant_config_text(text.str(), path);
}

Result<std::optional<ScaledMatrix>> find_scaled_matrix(const Checkpoint& ck, const QuantConfig& qc,
                                                       const std::string& module, int64_t rows, int64_t cols) {
  if (const TensorView* packed = ck.find(module + ".weight_packed")) {
    auto m = int4_matrix(ck, qc, *packed, module, rows, cols);
    if (!m) return err(m.error());
    return std::optional<ScaledMatrix>(m.value());
  }
  const TensorView* w = ck.find(module + ".weight");
  if (!w || w->dtype != DType::F8_E4M3) return std::optional<ScaledMatrix>();
  auto m = fp8_matrix(ck, qc, *w, module, rows, cols);
  if (!m) return err(m.error());
  return std::optional<ScaledMatrix>(m.value());
}

bool is_scale_side_tensor(const std::string& name) {
  for (const char* s : {".weight_scale_inv", ".weight_scale", ".weight_shape", ".weight_zero_point"})
    if (ends_with(name, s)) return true;
  return false;
}

std::optional<std::string> scaled_codes_module(const TensorView& t) {
  if (ends_with(t.name, ".weight_packed")) return t.name.substr(0, t.name.size() - 14);
  if (t.dtype == DType::F8_E4M3 && ends_with(t.name, ".weight")) return t.name.substr(0, t.name.size() - 7);
  return std::nullopt;
}

}  // namespace qnext
