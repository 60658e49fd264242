#include "io/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace qnext {

Status write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string dims;
  int64_t n = 1;
  for (int64_t d : shape) {
    dims += std::to_string(d) + ",";
    n *= d;
  }
  if (shape.size() > 1) dims.pop_back();  // (3,) for 1-D, (3,4) otherwise
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) return err(path + ": cannot create file");
  const char magic[] = "\x93NUMPY\x01\x00";
  out.write(magic, 8);
  const uint16_t len = uint16_t(header.size());
  out.write(reinterpret_cast<const char*>(&len), 2);
  out.write(header.data(), std::streamsize(header.size()));
  out.write(reinterpret_cast<const char*>(data), std::streamsize(n * 4));
  if (!out) return err(path + ": write failed");
  return Ok{};
}

Result<NpyArray> read_npy_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return err(path + ": cannot open");
  char magic[10];
  in.read(magic, 10);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0 || magic[6] != 1) return err(path + ": not a version-1 .npy file");
  uint16_t len;
  std::memcpy(&len, magic + 8, 2);
  std::string header(len, ' ');
  in.read(header.data(), len);
  if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos)
    return err(path + ": only little-endian float32 C-order arrays are supported");
  NpyArray a;
  const size_t open = header.find('('), close = header.find(')');
  std::stringstream dims(header.substr(open + 1, close - open - 1));
  std::string d;
  int64_t n = 1;
  while (std::getline(dims, d, ','))
    if (d.find_first_not_of(' ') != std::string::npos) {
      a.shape.push_back(std::stoll(d));
      n *= a.shape.back();
    }
  a.data.resize(size_t(n));
  in.read(reinterpret_cast<char*>(a.data.data()), std::streamsize(n * 4));
  if (!in) return err(path + ": truncated data");
  return a;
}

}  // namespace qnext
