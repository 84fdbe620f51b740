// Internal: index mapping for NumPy-style broadcasting, shared by the elementwise ops and
// the reductions (a reduction is the adjoint of broadcasting its result back).
#pragma once

#include <algorithm>
#include <vector>

#include "core/tensor.h"

namespace kiln {

// Per output axis, the stride of each operand (0 where it is broadcast).
struct Broadcast {
  Shape out;
  std::vector<int64_t> stride_a, stride_b;
  bool same = false;  // identical shapes: index i maps to i in both
};

inline Broadcast broadcast(const char* op, const Shape& a, const Shape& b) {
  Broadcast r;
  r.same = (a == b);
  const size_t rank = std::max(a.size(), b.size());
  r.out.assign(rank, 1);
  r.stride_a.assign(rank, 0);
  r.stride_b.assign(rank, 0);
  int64_t sa = 1, sb = 1;
  for (size_t k = 0; k < rank; ++k) {
    const size_t axis = rank - 1 - k;
    const int64_t da = k < a.size() ? a[a.size() - 1 - k] : 1;
    const int64_t db = k < b.size() ? b[b.size() - 1 - k] : 1;
    check_arg(da == db || da == 1 || db == 1, op,
              "shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    r.out[axis] = da == 1 ? db : da;
    r.stride_a[axis] = da == 1 ? 0 : sa;
    r.stride_b[axis] = db == 1 ? 0 : sb;
    sa *= da;
    sb *= db;
  }
  return r;
}

// Calls f(i, ia, ib) for every output element i, in order.
template <class F>
void for_each_broadcast(const Broadcast& br, F&& f) {
  const int64_t n = shape_numel(br.out);
  if (br.same) {
    for (int64_t i = 0; i < n; ++i) f(i, i, i);
    return;
  }
  const size_t rank = br.out.size();
  std::vector<int64_t> idx(rank, 0);
  int64_t ia = 0, ib = 0;
  for (int64_t i = 0; i < n; ++i) {
    f(i, ia, ib);
    for (size_t k = rank; k-- > 0;) {  // odometer increment from the last axis
      ia += br.stride_a[k];
      ib += br.stride_b[k];
      if (++idx[k] < br.out[k]) break;
      ia -= br.stride_a[k] * br.out[k];
      ib -= br.stride_b[k] * br.out[k];
      idx[k] = 0;
    }
  }
}

}  // namespace kiln
