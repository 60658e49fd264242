// A float dot product written so the compiler can vectorize it without -ffast-math: eight
// independent partial sums instead of one serial chain (a plain `s += a[i] * b[i]` loop is a
// reduction the compiler must keep in order, one element at a time).
#pragma once

namespace qnext {

inline float dot8(const float* a, const float* b, int n) {
  float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) part[j] += a[i + j] * b[i + j];
  float s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace qnext
