#include "io/fp8.h"

namespace qnext {

Status parse_fp8_config(const nlohmann::json& q, const std::string& field, QuantConfig* out) {
  out->method = QuantMethod::Fp8;
  if (q.contains("fmt") && !(q["fmt"].is_string() && q["fmt"].get<std::string>() == "e4m3"))
    return err(field + ".fmt is " + q["fmt"].dump() + "; only \"e4m3\" is supported");
  if (q.contains("weight_block_size")) {
    const auto& b = q["weight_block_size"];
    if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || !b[1].is_number_integer() ||
        b[0].get<int64_t>() <= 0 || b[1].get<int64_t>() <= 0)
      return err(field + ".weight_block_size is " + b.dump() + "; expected two positive integers [rows, cols]");
    out->block_rows = b[0].get<int64_t>();
    out->block_cols = b[1].get<int64_t>();
  } else {
    return err(field + ".weight_block_size is missing (per-tensor FP8 is not supported; expected e.g. [128, 128])");
  }
  if (q.contains("modules_to_not_convert") && q["modules_to_not_convert"].is_array())
    for (const auto& m : q["modules_to_not_convert"])
      if (m.is_string()) out->unquantized.push_back(m.get<std::string>());
  return Ok{};
}

static std::string shape_str(const std::vector<int64_t>& s) {
  TensorView t;
  t.shape = s;
  return t.shape_str();
}

Result<ScaledMatrix> fp8_matrix(const Checkpoint& ck, const QuantConfig& qc, const TensorView& w,
                                const std::string& module, int64_t rows, int64_t cols) {
  const std::string where = *w.file + ": tensor '" + w.name + "'";
  if (qc.method != QuantMethod::Fp8)
    return err(where + " is F8_E4M3 but config.json's quantization_config does not say quant_method \"fp8\"");
  if (w.shape != std::vector<int64_t>{rows, cols})
    return err(where + " has shape " + w.shape_str() + ", expected " + shape_str({rows, cols}));
  const std::string sname = module + ".weight_scale_inv";
  const TensorView* s = ck.find(sname);
  if (!s) return err(where + " is F8_E4M3 but its scale tensor '" + sname + "' is missing");
  const std::string swhere = *s->file + ": tensor '" + sname + "'";
  if (s->dtype != DType::F32 && s->dtype != DType::BF16 && s->dtype != DType::F16)
    return err(swhere + " has dtype " + std::string(dtype_name(s->dtype)) + ", expected F32");
  const std::vector<int64_t> want = {(rows + qc.block_rows - 1) / qc.block_rows, (cols + qc.block_cols - 1) / qc.block_cols};
  if (s->shape != want)
    return err(swhere + " has shape " + s->shape_str() + ", expected " + shape_str(want) + " (weight " +
               shape_str({rows, cols}) + " in blocks of weight_block_size [" + std::to_string(qc.block_rows) + ", " +
               std::to_string(qc.block_cols) + "])");
  ScaledMatrix m;
  m.dtype = DType::F8_E4M3;
  m.codes = w.data;
  m.scales = s->data;
  m.scale_dtype = s->dtype;
  m.group = qc.block_cols;
  m.group_rows = qc.block_rows;
  return m;
}

}  // namespace qnext
