// Rotary position embedding on the first rot_dim dims of a head, NeoX half-split pairing:
// dims (i, i + rot_dim/2) rotate together by angle pos * inv_freq[i].
#pragma once

namespace qnext {

// x[head_dim] in place; cos_sin[rot_dim]: cos for i < rot_dim/2, then sin (already times the YaRN
// attention factor, which scales only the rotated dims).
void rope_apply(float* x, int rot_dim, const float* cos_sin);

}  // namespace qnext
