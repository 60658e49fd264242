#include "io/compressed_tensors.h"

namespace qnext {

static std::string shape_str(const std::vector<int64_t>& s) {
  TensorView t;
  t.shape = s;
  return t.shape_str();
}

Status parse_compressed_tensors_config(const nlohmann::json& q, const std::string& field, QuantConfig* out) {
  out->method = QuantMethod::CompressedTensors;
  const std::string format = q.contains("format") && q["format"].is_string() ? q["format"].get<std::string>() : "";
  if (format != "pack-quantized")
    return err(field + ".format is " + (q.contains("format") ? q["format"].dump() : std::string("missing")) +
               "; only \"pack-quantized\" is supported");
  if (q.contains("quantization_status") && q["quantization_status"] != "compressed")
    return err(field + ".quantization_status is " + q["quantization_status"].dump() + "; expected \"compressed\"");
  if (!q.contains("config_groups") || !q["config_groups"].is_object() || q["config_groups"].empty())
    return err(field + ".config_groups is missing or empty");
  bool first = true;
  for (auto it = q["config_groups"].begin(); it != q["config_groups"].end(); ++it) {
    const std::string g = field + ".config_groups." + it.key();
    const auto& grp = it.value();
    if (grp.contains("format") && grp["format"].is_string() && grp["format"] != "pack-quantized")
      return err(g + ".format is " + grp["format"].dump() + "; only \"pack-quantized\" is supported");
    if (!grp.contains("weights") || !grp["weights"].is_object()) return err(g + ".weights is missing");
    const auto& w = grp["weights"];
    const std::string wf = g + ".weights";
    if (!w.contains("num_bits") || !w["num_bits"].is_number_integer())
      return err(wf + ".num_bits is missing");
    const int bits = w["num_bits"].get<int>();
    if (bits == 8) return err(wf + ".num_bits is 8: 8-bit pack-quantized weights are not supported yet (4 only)");
    if (bits != 4) return err(wf + ".num_bits is " + std::to_string(bits) + "; expected 4 (or 8)");
    if (w.contains("type") && w["type"] != "int")
      return err(wf + ".type is " + w["type"].dump() + "; only \"int\" is supported");
    const std::string strategy = w.contains("strategy") && w["strategy"].is_string() ? w["strategy"].get<std::string>() : "";
    int64_t group = 0;
    if (strategy == "group") {
      if (!w.contains("group_size") || !w["group_size"].is_number_integer() || w["group_size"].get<int64_t>() <= 0)
        return err(wf + ".group_size is " + (w.contains("group_size") ? w["group_size"].dump() : std::string("missing")) +
                   "; expected a positive integer with strategy \"group\"");
      group = w["group_size"].get<int64_t>();
    } else if (strategy != "channel") {
      return err(wf + ".strategy is " + (w.contains("strategy") ? w["strategy"].dump() : std::string("missing")) +
                 "; expected \"group\" or \"channel\"");
    }
    if (w.contains("actorder") && !w["actorder"].is_null() && w["actorder"] != "static" && w["actorder"] != "weight" &&
        w["actorder"] != false)
      return err(wf + ".actorder is " + w["actorder"].dump() + " (a g_idx permutation): not supported");
    if (w.contains("symmetric") && !w["symmetric"].is_boolean() && !w["symmetric"].is_null())  // get<bool> threw
      return err(wf + ".symmetric is " + w["symmetric"].dump() + "; expected true or false");
    const bool symmetric = !w.contains("symmetric") || w["symmetric"].is_null() || w["symmetric"].get<bool>();
    if (!first && (bits != out->bits || group != out->group || symmetric != out->symmetric))
      return err(g + ": config groups with different weight schemes are not supported");
    out->bits = bits;
    out->group = group;
    out->symmetric = symmetric;
    first = false;
  }
  if (q.contains("ignore") && q["ignore"].is_array())
    for (const auto& m : q["ignore"])
      if (m.is_string()) out->unquantized.push_back(m.get<std::string>());
  return Ok{};
}

Result<ScaledMatrix> int4_matrix(const Checkpoint& ck, const QuantConfig& qc, const TensorView& p,
                                 const std::string& module, int64_t rows, int64_t cols) {
  const std::string where = *p.file + ": tensor '" + p.name + "'";
  if (qc.method != QuantMethod::CompressedTensors)
    return err(where + " is pack-quantized but config.json's quantization_config does not say quant_method "
               "\"compressed-tensors\"");
  const int64_t group = qc.group > 0 ? qc.group : cols, groups = (cols + group - 1) / group;
  if (p.dtype != DType::I32) return err(where + " has dtype " + std::string(dtype_name(p.dtype)) + ", expected I32");
  if (p.shape != std::vector<int64_t>{rows, (cols + 7) / 8})
    return err(where + " has shape " + p.shape_str() + ", expected " + shape_str({rows, (cols + 7) / 8}) + " (weight " +
               shape_str({rows, cols}) + ", 8 int4 per int32 along the input dim)");
  if (const TensorView* sh = ck.find(module + ".weight_shape")) {
    const std::string swhere = *sh->file + ": tensor '" + sh->name + "'";
    if ((sh->dtype != DType::I64 && sh->dtype != DType::I32) || sh->numel() != 2)
      return err(swhere + " must be 2 integers [out, in], found " + std::string(dtype_name(sh->dtype)) + " " + sh->shape_str());
    int64_t v[2];
    for (int i = 0; i < 2; ++i)
      v[i] = sh->dtype == DType::I64 ? reinterpret_cast<const int64_t*>(sh->data)[i] : reinterpret_cast<const int32_t*>(sh->data)[i];
    if (v[0] != rows || v[1] != cols)
      return err(swhere + " is " + shape_str({v[0], v[1]}) + ", expected " + shape_str({rows, cols}) + " from config.json");
  }
  const std::string sname = module + ".weight_scale";
  const TensorView* s = ck.find(sname);
  if (!s) return err(where + " is pack-quantized but its scale tensor '" + sname + "' is missing");
  const std::string swhere = *s->file + ": tensor '" + sname + "'";
  if (s->dtype != DType::BF16 && s->dtype != DType::F16 && s->dtype != DType::F32)
    return err(swhere + " has dtype " + std::string(dtype_name(s->dtype)) + ", expected BF16, F16 or F32");
  if (s->shape != std::vector<int64_t>{rows, groups})
    return err(swhere + " has shape " + s->shape_str() + ", expected " + shape_str({rows, groups}) + " (weight " +
               shape_str({rows, cols}) + " in groups of " + std::to_string(group) + " from group_size)");
  ScaledMatrix m;
  m.dtype = DType::I4;
  m.codes = p.data;
  m.scales = s->data;
  m.scale_dtype = s->dtype;
  m.group = group;
  m.group_rows = 1;
  const std::string zname = module + ".weight_zero_point";
  const TensorView* z = ck.find(zname);
  if (qc.symmetric && z)
    return err(*z->file + ": tensor '" + zname + "' is present but quantization_config says symmetric: true");
  if (!qc.symmetric) {
    if (!z) return err(where + ": quantization_config says symmetric: false but '" + zname + "' is missing");
    const std::string zwhere = *z->file + ": tensor '" + zname + "'";
    if (z->dtype != DType::I32) return err(zwhere + " has dtype " + std::string(dtype_name(z->dtype)) + ", expected I32");
    if (z->shape != std::vector<int64_t>{(rows + 7) / 8, groups})
      return err(zwhere + " has shape " + z->shape_str() + ", expected " + shape_str({(rows + 7) / 8, groups}) +
                 " (8 int4 zero points per int32 along the output dim)");
    m.zeros = reinterpret_cast<const int32_t*>(z->data);
  }
  return m;
}

}  // namespace qnext
