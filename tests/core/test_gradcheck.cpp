// One table-driven finite-difference check of every differentiable op in core/ops.h.
//
// Each entry names an op on given input shapes; the check builds the scalar
//   f(inputs) = sum(op(inputs) * r)
// with a fixed random r (dlib's trick: one scalar covers every output element at once), gets
// df/dinput from backward(), and compares it element by element with the central difference
//   (f(x + eps e_i) - f(x - eps e_i)) / (2 eps),
// two forward passes per perturbed element, for every float input of the op.
//
// Kinks: ReLU and max-pool are not differentiable everywhere, so their inputs are drawn away
// from the kinks (see Init) rather than loosening the tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops/ops.h"
#include "core/runtime/random.h"
#include "core/tensor.h"

namespace kiln {
namespace {

// How an input's numbers are drawn.
enum class Init {
  Normal,        // N(0, 1)
  Positive,      // U[0.5, 2): log's argument, div's denominator, batch-norm gamma
  AwayFromZero,  // |x| in [0.1, 1), random sign: ReLU's kink at 0 is further than eps away
  Distinct,      // a shuffled grid with spacing 0.01: every max-pool window has a unique
                 // winner by far more than eps, so a perturbation never changes the argmax
};

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradCase {
  std::string name;           // test name: [A-Za-z0-9_]
  std::vector<Shape> shapes;  // one per input; every input is checked
  OpFn fn;
  std::vector<Init> inits = {};  // per input; missing entries are Normal
  float eps = 1e-2f;
  // Pass when |numeric - analytic| <= atol + rtol * |analytic|, element by element.
  //
  // Why these numbers: the forward runs in float32, so each output carries a relative
  // rounding error near 6e-8. f sums up to ~1e3 such terms with |r| <= 1, so f+ - f- carries
  // an absolute error of order 1e-6..1e-5, which the division by 2*eps = 2e-2 turns into
  // ~1e-4..5e-4 in the numeric derivative: hence atol 1e-3. The truncation error of the
  // central difference is eps^2/6 * f''' ~ 2e-5 * f''' for eps = 1e-2, well under 2% of any
  // derivative that is not itself near zero: hence rtol 2e-2. A wrong gradient (a missing
  // term, a transposed kernel, a factor of 2) is off by far more than either.
  float rtol = 2e-2f;
  float atol = 1e-3f;
};

void PrintTo(const GradCase& c, std::ostream* os) { *os << c.name; }

uint64_t seed_of(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a: a fixed seed per case, stable across runs
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ULL;
  return h;
}

Tensor make_input(const Shape& shape, Init init, uint64_t seed) {
  switch (init) {
    case Init::Normal:
      return Tensor::normal(shape, 0.0f, 1.0f, seed);
    case Init::Positive:
      return Tensor::uniform(shape, 0.5f, 2.0f, seed);
    case Init::AwayFromZero: {
      Tensor t = Tensor::uniform(shape, 0.1f, 1.0f, seed);
      float* p = t.data();
      for (int64_t i = 0; i < t.numel(); ++i)
        if (uniform_at(seed ^ 0x5eed, static_cast<uint64_t>(i)) < 0.5f) p[i] = -p[i];
      return t;
    }
    case Init::Distinct: {
      Tensor t = Tensor::empty(shape);
      std::vector<int64_t> perm(static_cast<size_t>(t.numel()));
      std::iota(perm.begin(), perm.end(), 0);
      Generator gen(seed);
      for (int64_t i = static_cast<int64_t>(perm.size()) - 1; i > 0; --i)
        std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(gen.randint(i + 1))]);
      const double half = 0.5 * static_cast<double>(perm.size());
      float* p = t.data();
      for (size_t i = 0; i < perm.size(); ++i)
        p[i] = static_cast<float>(0.01 * (static_cast<double>(perm[i]) - half));
      return t;
    }
  }
  return Tensor();
}

// f = <out, r> accumulated in double, so the sum adds no rounding of its own.
double inner(const Tensor& out, const std::vector<float>& r) {
  const float* p = out.data();
  double f = 0.0;
  for (size_t i = 0; i < r.size(); ++i) f += static_cast<double>(p[i]) * r[i];
  return f;
}

class Ops : public ::testing::TestWithParam<GradCase> {};

TEST_P(Ops, Check) {
  const GradCase& c = GetParam();
  const uint64_t seed = seed_of(c.name);

  std::vector<Tensor> inputs;
  for (size_t k = 0; k < c.shapes.size(); ++k) {
    const Init init = k < c.inits.size() ? c.inits[k] : Init::Normal;
    inputs.push_back(make_input(c.shapes[k], init, seed + 101 * (k + 1)).set_requires_grad());
  }

  // Analytic: backward of sum(out * r).
  Tensor out = c.fn(inputs);
  ASSERT_TRUE(out.requires_grad()) << c.name << ": the result is not attached to the graph";
  const Tensor r_tensor = Tensor::uniform(out.shape(), -1.0f, 1.0f, seed ^ 0xabcdefULL);
  const std::vector<float> r = r_tensor.to_vector();
  sum(mul(out, r_tensor)).backward();

  // Numeric: central differences, one input element at a time, without a graph.
  NoGradGuard no_grad;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    const Tensor g = x.grad();
    ASSERT_TRUE(g.defined()) << c.name << ": no gradient reached input " << k << " "
                             << shape_str(x.shape());
    const std::vector<float> analytic = g.to_vector();
    float* px = x.data();

    int64_t bad = 0, worst = -1;
    double worst_excess = -1.0, worst_num = 0.0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float saved = px[i];
      px[i] = saved + c.eps;
      const double f_plus = inner(c.fn(inputs), r);
      px[i] = saved - c.eps;
      const double f_minus = inner(c.fn(inputs), r);
      px[i] = saved;
      // The step actually taken: saved +- eps rounded to float32.
      const double step = static_cast<double>(saved + c.eps) - static_cast<double>(saved - c.eps);
      const double numeric = (f_plus - f_minus) / step;
      const double ana = analytic[static_cast<size_t>(i)];
      const double excess = std::abs(numeric - ana) - (c.atol + c.rtol * std::abs(ana));
      if (excess > 0) ++bad;
      if (excess > worst_excess) {
        worst_excess = excess;
        worst = i;
        worst_num = numeric;
      }
    }
    if (bad > 0) {
      std::ostringstream msg;  // default precision: readable numbers
      msg << c.name << ": input " << k << " " << shape_str(x.shape()) << ": " << bad << " of "
          << x.numel() << " elements off; worst at flat index " << worst << ": numeric "
          << worst_num << ", analytic " << analytic[static_cast<size_t>(worst)] << " (eps "
          << c.eps << ", pass if |diff| <= " << c.atol << " + " << c.rtol << " * |analytic|)";
      ADD_FAILURE() << msg.str();
    }
  }
}

// --- the table -------------------------------------------------------------------------------

std::vector<GradCase> elementwise_cases() {
  std::vector<GradCase> cases;
  struct Binary {
    const char* name;
    Tensor (*fn)(const Tensor&, const Tensor&);
  };
  const Binary binaries[] = {{"add", add}, {"sub", sub}, {"mul", mul}, {"div", div}};
  struct Pattern {
    const char* name;
    Shape a, b;
  };
  const Pattern patterns[] = {
      {"same", {2, 3}, {2, 3}},
      {"bcast_NC_C", {4, 3}, {3}},
      {"bcast_N1_1C", {4, 1}, {1, 3}},
      {"bcast_rank3", {2, 3, 4}, {3, 1}},
      {"scalar_rhs", {2, 3}, {}},
      {"scalar_lhs", {}, {2, 3}},
  };
  for (const Binary& op : binaries) {
    for (const Pattern& p : patterns) {
      GradCase c{std::string(op.name) + "_" + p.name, {p.a, p.b},
                 [fn = op.fn](const std::vector<Tensor>& in) { return fn(in[0], in[1]); }};
      if (std::string(op.name) == "div") c.inits = {Init::Normal, Init::Positive};
      cases.push_back(c);
    }
  }
  cases.push_back({"add_float", {{3, 4}}, [](const auto& in) { return add(in[0], 2.5f); }});
  cases.push_back({"mul_float", {{3, 4}}, [](const auto& in) { return mul(in[0], -1.5f); }});
  cases.push_back({"operators", {{3, 4}, {4}},
                   [](const auto& in) { return (in[0] - 1.0f) * in[1] + 2.0f * -in[0]; }});
  cases.push_back({"neg", {{3, 4}}, [](const auto& in) { return neg(in[0]); }});
  cases.push_back({"square", {{3, 4}}, [](const auto& in) { return square(in[0]); }});
  cases.push_back({"relu", {{4, 5}}, [](const auto& in) { return relu(in[0]); },
                   {Init::AwayFromZero}});
  cases.push_back({"sigmoid", {{3, 4}}, [](const auto& in) { return sigmoid(in[0]); }});
  cases.push_back({"tanh", {{3, 4}}, [](const auto& in) { return tanh(in[0]); }});
  cases.push_back({"exp", {{3, 4}}, [](const auto& in) { return exp(in[0]); }});
  cases.push_back({"log", {{3, 4}}, [](const auto& in) { return log(in[0]); }, {Init::Positive}});
  return cases;
}

std::vector<GradCase> reduction_and_shape_cases() {
  std::vector<GradCase> cases;
  cases.push_back({"sum_axis1", {{2, 3, 4}}, [](const auto& in) { return sum(in[0], {1}); }});
  cases.push_back({"sum_axes_0_2", {{2, 3, 4}}, [](const auto& in) { return sum(in[0], {0, 2}); }});
  cases.push_back({"sum_neg_axis", {{2, 3, 4}}, [](const auto& in) { return sum(in[0], {-1}); }});
  cases.push_back({"sum_keepdim", {{2, 3, 4}}, [](const auto& in) { return sum(in[0], {1}, true); }});
  cases.push_back({"sum_all", {{2, 3, 4}}, [](const auto& in) { return sum(in[0]); }});
  cases.push_back({"mean_axis0", {{2, 3, 4}}, [](const auto& in) { return mean(in[0], {0}); }});
  cases.push_back({"mean_axes_1_2_keepdim", {{2, 3, 4}},
                   [](const auto& in) { return mean(in[0], {1, 2}, true); }});
  cases.push_back({"mean_neg_axes", {{2, 3, 4}}, [](const auto& in) { return mean(in[0], {-2, -1}); }});
  cases.push_back({"mean_all", {{2, 3, 4}}, [](const auto& in) { return mean(in[0]); }});

  cases.push_back({"reshape", {{2, 3, 4}}, [](const auto& in) { return reshape(in[0], {4, -1}); }});
  cases.push_back({"tensor_reshape", {{2, 6}}, [](const auto& in) { return in[0].reshape({3, 2, 2}); }});
  cases.push_back({"flatten", {{2, 3, 2, 2}}, [](const auto& in) { return flatten(in[0]); }});
  cases.push_back({"slice", {{5, 3}}, [](const auto& in) { return in[0].slice(1, 4); }});
  // A slice consumed by an op that reads its storage through the view's offset.
  cases.push_back({"slice_then_square", {{5, 2, 2}},
                   [](const auto& in) { return square(in[0].slice(2, 5)); }});
  cases.push_back({"clone", {{3, 4}}, [](const auto& in) { return in[0].clone(); }});
  return cases;
}

std::vector<GradCase> linear_cases() {
  std::vector<GradCase> cases;
  // [M,K] x [K,N] with M=3, K=4, N=5, each operand stored transposed or not.
  cases.push_back({"matmul_nn", {{3, 4}, {4, 5}},
                   [](const auto& in) { return matmul(in[0], in[1], false, false); }});
  cases.push_back({"matmul_tn", {{4, 3}, {4, 5}},
                   [](const auto& in) { return matmul(in[0], in[1], true, false); }});
  cases.push_back({"matmul_nt", {{3, 4}, {5, 4}},
                   [](const auto& in) { return matmul(in[0], in[1], false, true); }});
  cases.push_back({"matmul_tt", {{4, 3}, {5, 4}},
                   [](const auto& in) { return matmul(in[0], in[1], true, true); }});
  cases.push_back({"dense", {{3, 4}, {4, 5}, {5}},
                   [](const auto& in) { return dense(in[0], in[1], in[2]); }});
  cases.push_back({"dense_nobias", {{3, 4}, {4, 5}},
                   [](const auto& in) { return dense(in[0], in[1], Tensor()); }});
  // dense writes x's and w's gradient buffers when it finds them empty (beta 0) and adds into
  // them otherwise: x also feeds tanh, w also an L2 penalty (which writes or adds likewise), in
  // both arrival orders.
  cases.push_back({"dense_shared_input_and_kernel", {{3, 4}, {4, 5}, {5}}, [](const auto& in) {
                     return mean(dense(in[0], in[1], in[2])) + tanh(in[0]) + l2_penalty(in[1], 0.05f);
                   }});
  cases.push_back({"dense_shared_input_and_kernel_swapped", {{3, 4}, {4, 5}, {5}}, [](const auto& in) {
                     return l2_penalty(in[1], 0.05f) + tanh(in[0]) + mean(dense(in[0], in[1], in[2]));
                   }});

  cases.push_back({"softmax", {{3, 5}}, [](const auto& in) { return softmax(in[0]); }});
  cases.push_back({"softmax_rank3", {{2, 2, 4}}, [](const auto& in) { return softmax(in[0]); }});
  cases.push_back({"log_softmax", {{3, 5}}, [](const auto& in) { return log_softmax(in[0]); }});
  // One-hot targets held constant: only the logits get a gradient.
  cases.push_back({"softmax_cross_entropy_onehot", {{4, 5}}, [](const auto& in) {
                     std::vector<float> t(20, 0.0f);
                     for (int n = 0; n < 4; ++n) t[static_cast<size_t>(n * 5 + (3 * n + 1) % 5)] = 1.0f;
                     return softmax_cross_entropy(in[0], Tensor::from_vector({4, 5}, t));
                   }});
  // Targets as a second input (soft labels, distillation): positive weights that need not
  // sum to 1, so the gradient's "softmax * sum(t) - t" form is checked too.
  cases.push_back({"softmax_cross_entropy_soft", {{3, 4}, {3, 4}},
                   [](const auto& in) { return softmax_cross_entropy(in[0], in[1]); },
                   {Init::Normal, Init::Positive}});
  // Logits near 100: exp() alone would overflow float32; the log-sum-exp must not.
  cases.push_back({"softmax_cross_entropy_large", {{2, 3}}, [](const auto& in) {
                     const Tensor t = Tensor::from_vector({2, 3}, {0, 1, 0, 1, 0, 0});
                     return softmax_cross_entropy(add(in[0], 100.0f), t);
                   }});
  cases.push_back({"l2_penalty", {{3, 4}}, [](const auto& in) { return l2_penalty(in[0], 0.05f); }});
  return cases;
}

std::vector<GradCase> conv_cases() {
  std::vector<GradCase> cases;
  struct Conv {
    const char* name;
    Shape x, w;
    bool bias;
    int stride;
    Padding padding;
  };
  const Conv convs[] = {
      {"conv2d_3x3_same_s1", {2, 6, 6, 3}, {3, 3, 3, 4}, true, 1, Padding::Same},
      {"conv2d_3x3_valid_s1", {2, 6, 6, 3}, {3, 3, 3, 4}, true, 1, Padding::Valid},
      {"conv2d_3x3_same_s1_odd", {2, 5, 7, 2}, {3, 3, 2, 3}, true, 1, Padding::Same},
      {"conv2d_3x3_same_s2_odd", {2, 5, 7, 3}, {3, 3, 3, 4}, true, 2, Padding::Same},
      {"conv2d_3x3_valid_s2_odd", {2, 5, 7, 2}, {3, 3, 2, 3}, true, 2, Padding::Valid},
      {"conv2d_3x3_same_s2_even", {2, 6, 6, 2}, {3, 3, 2, 3}, true, 2, Padding::Same},
      {"conv2d_3x3_same_s1_batch1_nobias", {1, 5, 7, 2}, {3, 3, 2, 3}, false, 1, Padding::Same},
      {"conv2d_3x3_valid_s1_batch1_nobias", {1, 5, 7, 3}, {3, 3, 3, 2}, false, 1, Padding::Valid},
      {"conv2d_1x1_s1", {2, 4, 5, 3}, {1, 1, 3, 5}, true, 1, Padding::Same},
      {"conv2d_1x1_s2_odd_nobias", {2, 5, 7, 3}, {1, 1, 3, 2}, false, 2, Padding::Valid},
      // Even kernel with "same": the padding is asymmetric (the extra row/column at the end).
      {"conv2d_2x2_same_s1_odd", {2, 5, 7, 2}, {2, 2, 2, 3}, true, 1, Padding::Same},
      {"conv2d_3x5_same_s1_nonsquare", {1, 5, 7, 2}, {3, 5, 2, 2}, true, 1, Padding::Same},
  };
  for (const Conv& cv : convs) {
    GradCase c{cv.name, {cv.x, cv.w}, nullptr};
    if (cv.bias) c.shapes.push_back({cv.w[3]});
    c.fn = [stride = cv.stride, padding = cv.padding](const std::vector<Tensor>& in) {
      return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), stride, padding);
    };
    cases.push_back(c);
  }
  // x also feeds tanh: conv2d writes x's gradient buffer when it finds it empty, adds into it
  // otherwise; both arrival orders must add up.
  cases.push_back({"conv2d_shared_input", {{2, 4, 5, 2}, {3, 3, 2, 3}},
                   [](const std::vector<Tensor>& in) {
                     return mean(conv2d(in[0], in[1], Tensor(), 1, Padding::Same)) + tanh(in[0]);
                   }});
  cases.push_back({"conv2d_shared_input_swapped", {{2, 4, 5, 2}, {3, 3, 2, 3}},
                   [](const std::vector<Tensor>& in) {
                     return tanh(in[0]) + mean(conv2d(in[0], in[1], Tensor(), 1, Padding::Same));
                   }});
  // A frozen kernel (a constant, not an input): the bias gradient is taken without the kernel's.
  cases.push_back({"conv2d_3x3_frozen_kernel_bias", {{2, 5, 6, 3}, {4}},
                   [](const std::vector<Tensor>& in) {
                     const Tensor w = Tensor::uniform({3, 3, 3, 4}, -0.5f, 0.5f, 21);
                     return conv2d(in[0], w, in[1], 1, Padding::Same);
                   }});

  struct Pool {
    const char* name;
    Shape x;
    int kernel, stride;
    Padding padding;
  };
  const Pool pools[] = {
      {"max_pool2d_2x2_s2_valid", {2, 4, 6, 3}, 2, 2, Padding::Valid},
      {"max_pool2d_2x2_s2_valid_odd", {2, 5, 7, 2}, 2, 2, Padding::Valid},
      {"max_pool2d_2x2_s2_same_odd", {2, 5, 7, 2}, 2, 2, Padding::Same},
      {"max_pool2d_3x3_s2_same", {1, 6, 6, 2}, 3, 2, Padding::Same},
      {"max_pool2d_3x3_s2_same_odd", {2, 5, 7, 2}, 3, 2, Padding::Same},
      {"max_pool2d_3x3_s2_valid_odd", {2, 5, 7, 2}, 3, 2, Padding::Valid},
      // Overlapping windows: one input can win several outputs and must collect them all.
      {"max_pool2d_3x3_s1_same_overlap", {1, 5, 5, 2}, 3, 1, Padding::Same},
  };
  for (const Pool& pl : pools) {
    // Max-pool is piecewise linear, so the difference quotient is exact up to rounding and a
    // small eps suffices; the 0.01 spacing of Init::Distinct keeps every winner unique.
    GradCase c{pl.name, {pl.x},
               [k = pl.kernel, s = pl.stride, p = pl.padding](const std::vector<Tensor>& in) {
                 return max_pool2d(in[0], k, s, p);
               },
               {Init::Distinct}, 2e-3f};
    cases.push_back(c);
  }
  // x also feeds tanh: max_pool2d writes x's gradient buffer (zeros and its winners) when it
  // finds it empty, adds into it otherwise; both arrival orders must add up.
  cases.push_back({"max_pool2d_shared_input", {{2, 5, 7, 2}},
                   [](const std::vector<Tensor>& in) {
                     return mean(max_pool2d(in[0], 2, 2, Padding::Valid)) + tanh(in[0]);
                   },
                   {Init::Distinct}, 2e-3f});
  cases.push_back({"max_pool2d_shared_input_swapped", {{2, 5, 7, 2}},
                   [](const std::vector<Tensor>& in) {
                     return tanh(in[0]) + mean(max_pool2d(in[0], 2, 2, Padding::Valid));
                   },
                   {Init::Distinct}, 2e-3f});
  return cases;
}

std::vector<GradCase> norm_and_dropout_cases() {
  std::vector<GradCase> cases;
  // Training mode: gradients through the batch mean and variance, wrt x, gamma and beta.
  // Fresh running statistics per call, so every forward pass is the same function.
  auto bn_train = [](const std::vector<Tensor>& in) {
    const int64_t C = in[0].size(-1);
    Tensor rm = Tensor::zeros({C}), rv = Tensor::ones({C});
    return batch_norm(in[0], in[1], in[2], rm, rv, /*training=*/true);
  };
  cases.push_back({"batch_norm_train_nhwc", {{3, 4, 5, 3}, {3}, {3}}, bn_train,
                   {Init::Normal, Init::Positive, Init::Normal}});
  cases.push_back({"batch_norm_train_nc", {{6, 4}, {4}, {4}}, bn_train,
                   {Init::Normal, Init::Positive, Init::Normal}});
  // x also feeds another op, and the two gradients must add up whichever arrives first: the
  // batch norm writes x's gradient buffer when it finds it empty, adds into it otherwise. In
  // the first case tanh's gradient arrives first, in the second the batch norm's (forcing the
  // write in the batch norm fails the first).
  cases.push_back({"batch_norm_train_shared_input", {{2, 3, 4, 3}, {3}, {3}},
                   [bn_train](const std::vector<Tensor>& in) { return bn_train(in) + tanh(in[0]); },
                   {Init::Normal, Init::Positive, Init::Normal}});
  cases.push_back({"batch_norm_train_shared_input_bn_first", {{2, 3, 4, 3}, {3}, {3}},
                   [bn_train](const std::vector<Tensor>& in) { return tanh(in[0]) + bn_train(in); },
                   {Init::Normal, Init::Positive, Init::Normal}});
  // Few rows per channel: the batch statistics dominate the gradient.
  cases.push_back({"batch_norm_train_small_batch", {{3, 2}, {2}, {2}}, bn_train,
                   {Init::Normal, Init::Positive, Init::Normal}});
  // Inference mode: fixed, non-trivial running statistics; an affine map of x. The op is
  // batch_norm, or batch_norm_relu (the affine map, then the ReLU's mask). In training a step of
  // x moves the batch statistics and with them outputs near the kink across it, which a finite
  // difference cannot follow; test_layers holds the training-mode batch_norm_relu to batch_norm
  // then relu.
  const auto eval_with = [](auto op) {
    return [op](const std::vector<Tensor>& in) {
      const int64_t C = in[0].size(-1);
      Tensor rm = Tensor::uniform({C}, -0.5f, 0.5f, 11), rv = Tensor::uniform({C}, 0.5f, 2.0f, 12);
      return op(in[0], in[1], in[2], rm, rv, /*training=*/false, 0.99f, 1e-3f, BatchStatsReduce{});
    };
  };
  const auto bn_eval = eval_with(batch_norm);
  cases.push_back({"batch_norm_eval_nhwc", {{2, 3, 3, 3}, {3}, {3}}, bn_eval,
                   {Init::Normal, Init::Positive, Init::Normal}});
  cases.push_back({"batch_norm_eval_nc", {{5, 4}, {4}, {4}}, bn_eval,
                   {Init::Normal, Init::Positive, Init::Normal}});
  const auto bn_relu_eval = eval_with(batch_norm_relu);
  cases.push_back({"batch_norm_relu_eval_nhwc", {{2, 3, 3, 3}, {3}, {3}}, bn_relu_eval,
                   {Init::Normal, Init::Positive, Init::Normal}});

  // The mask depends only on (seed, index), so every forward pass drops the same elements.
  cases.push_back({"dropout_train", {{6, 7}},
                   [](const auto& in) { return dropout(in[0], 0.3f, true, 1234); }});
  cases.push_back({"dropout_eval", {{3, 4}},
                   [](const auto& in) { return dropout(in[0], 0.3f, false, 1234); }});
  // x also feeds tanh: dropout writes x's gradient buffer when it finds it empty, adds into it
  // otherwise; both arrival orders must add up.
  cases.push_back({"dropout_train_shared_input", {{6, 7}},
                   [](const auto& in) { return dropout(in[0], 0.3f, true, 1234) + tanh(in[0]); }});
  cases.push_back({"dropout_train_shared_input_swapped", {{6, 7}},
                   [](const auto& in) { return tanh(in[0]) + dropout(in[0], 0.3f, true, 1234); }});
  return cases;
}

// Ops chained the way a network uses them, so that gradients flowing between ops (views,
// broadcasting, reductions) are checked too, not only each op alone.
std::vector<GradCase> composite_cases() {
  std::vector<GradCase> cases;
  // Smooth ops only (tanh rather than relu/max-pool): a chain would carry kinks to places
  // Init cannot keep away from them.
  cases.push_back({"chain_conv_bn_tanh_flatten_dense", {{2, 4, 4, 2}, {3, 3, 2, 3}, {3}, {3}, {48, 4}, {4}},
                   [](const std::vector<Tensor>& in) {
                     Tensor rm = Tensor::zeros({3}), rv = Tensor::ones({3});
                     Tensor h = conv2d(in[0], in[1], Tensor(), 1, Padding::Same);
                     h = tanh(batch_norm(h, in[2], in[3], rm, rv, true));
                     return dense(flatten(h), in[4], in[5]);
                   },
                   {Init::Normal, Init::Normal, Init::Positive, Init::Normal}});
  cases.push_back({"chain_reused_input", {{3, 4}},
                   [](const std::vector<Tensor>& in) { return in[0] * in[0] + sigmoid(in[0]); }});
  return cases;
}

std::vector<GradCase> all_cases() {
  std::vector<GradCase> all;
  for (auto part : {elementwise_cases(), reduction_and_shape_cases(), linear_cases(), conv_cases(),
                    norm_and_dropout_cases(), composite_cases()})
    all.insert(all.end(), part.begin(), part.end());
  return all;
}

INSTANTIATE_TEST_SUITE_P(GradCheck, Ops, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<GradCase>& info) { return info.param.name; });

// --- average pooling and axis permutation (the Keras importer's ops) ---------------------------

std::vector<GradCase> avg_pool_and_permute_cases() {
  std::vector<GradCase> cases;
  struct Pool {
    const char* name;
    Shape x;
    int kernel, stride;
    Padding padding;
  };
  const Pool pools[] = {
      {"avg_pool2d_2x2_s2_valid", {2, 4, 6, 3}, 2, 2, Padding::Valid},
      {"avg_pool2d_2x2_s2_valid_odd", {2, 5, 7, 2}, 2, 2, Padding::Valid},
      // "same" with padding: border windows average fewer cells.
      {"avg_pool2d_3x3_s2_same_odd", {2, 5, 7, 2}, 3, 2, Padding::Same},
      // Overlapping windows: one input feeds several outputs and must collect every share.
      {"avg_pool2d_3x3_s1_same_overlap", {1, 5, 5, 2}, 3, 1, Padding::Same},
  };
  for (const Pool& pl : pools) {
    // Average pooling is linear, so the central difference is exact up to rounding.
    cases.push_back({pl.name, {pl.x}, [k = pl.kernel, s = pl.stride, p = pl.padding](const std::vector<Tensor>& in) {
                       return avg_pool2d(in[0], k, s, p);
                     }});
  }
  cases.push_back({"permute_nchw_to_nhwc", {{2, 3, 4, 5}},
                   [](const auto& in) { return permute(in[0], {0, 2, 3, 1}); }});
  cases.push_back({"permute_rank3_reverse", {{2, 3, 4}}, [](const auto& in) { return permute(in[0], {2, 1, 0}); }});
  // A permuted tensor used twice: both paths add into the same input gradient.
  cases.push_back({"permute_reused", {{2, 3, 4}},
                   [](const auto& in) { return permute(in[0], {0, 2, 1}) * permute(in[0], {0, 2, 1}); }});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(GradCheckPoolPermute, Ops, ::testing::ValuesIn(avg_pool_and_permute_cases()),
                         [](const ::testing::TestParamInfo<GradCase>& info) { return info.param.name; });

// --- joining, padding and global pooling (graph models' ops) ---------------------------------

std::vector<GradCase> graph_model_cases() {
  std::vector<GradCase> cases;
  cases.push_back({"concat_channels", {{2, 3, 4, 2}, {2, 3, 4, 3}},
                   [](const auto& in) { return concat({in[0], in[1]}, -1); }});
  cases.push_back({"concat_axis1_three", {{2, 1, 3}, {2, 2, 3}, {2, 4, 3}},
                   [](const auto& in) { return concat({in[0], in[1], in[2]}, 1); }});
  cases.push_back({"concat_axis0", {{1, 3}, {2, 3}}, [](const auto& in) { return concat({in[0], in[1]}, 0); }});
  // The same tensor joined to itself: both copies add into one gradient.
  cases.push_back({"concat_reused", {{2, 2, 2, 3}}, [](const auto& in) { return concat({in[0], in[0]}, 3); }});
  cases.push_back({"zero_pad2d_asymmetric", {{2, 3, 4, 2}},
                   [](const auto& in) { return zero_pad2d(in[0], 1, 2, 0, 3); }});
  cases.push_back({"zero_pad2d_then_conv", {{1, 4, 4, 2}, {3, 3, 2, 3}},
                   [](const auto& in) { return conv2d(zero_pad2d(in[0], 1, 1, 1, 1), in[1], Tensor(), 1, Padding::Valid); }});
  cases.push_back({"global_average_pool", {{2, 3, 5, 4}}, [](const auto& in) { return mean(in[0], {1, 2}); }});
  // A residual connection and a channel join in one graph: fan-out into two paths.
  cases.push_back({"residual_and_concat", {{1, 4, 4, 2}, {3, 3, 2, 2}},
                   [](const auto& in) {
                     Tensor y = tanh(conv2d(in[0], in[1], Tensor(), 1, Padding::Same)) + in[0];
                     return concat({y, in[0]}, -1);
                   }});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(GradCheckGraph, Ops, ::testing::ValuesIn(graph_model_cases()),
                         [](const ::testing::TestParamInfo<GradCase>& info) { return info.param.name; });

}  // namespace
}  // namespace kiln
