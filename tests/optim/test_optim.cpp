// Optimizers: single steps against the Keras 3 formulas evaluated here in double, several
// steps against PyTorch (tests/fixtures/optim.h5, made by make_optim_fixture.py, which maps
// Keras' conventions onto torch.optim), state save/restore, and the contract of step():
// parameters without a gradient stay put and the gradient buffer is never written.
//
// Tolerance: |kiln - reference| <= 1e-6 * |reference| per element. References are exact
// (double) and every parameter is at least 0.1 from zero; kiln's float32 arithmetic adds a
// few roundings of 6e-8 relative per step, so over five steps it stays near 3e-7, while a
// wrong convention (epsilon placement, decay order, momentum sign) is off by 1e-5 or more.
#include <gtest/gtest.h>

#include <H5Cpp.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "core/ops/ops.h"
#include "core/tensor.h"
#include "optim/adam.h"
#include "optim/optimizer.h"
#include "optim/sgd.h"

namespace kiln {
namespace {

constexpr double kRelTol = 1e-6;

Tensor param(const Shape& shape, const std::vector<float>& values) {
  Tensor t = Tensor::from_vector(shape, values);
  t.set_requires_grad();
  return t;
}

void set_grad(const Tensor& p, const std::vector<float>& g) {
  ASSERT_EQ(static_cast<int64_t>(g.size()), p.numel());
  std::copy(g.begin(), g.end(), p.grad_data());
}

void set_grad(const Tensor& p, const float* g) { std::copy(g, g + p.numel(), p.grad_data()); }

// Element-wise |got - want| <= kRelTol * |want|, reporting the worst element.
void expect_close(const std::string& what, const Tensor& got, const std::vector<double>& want) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size())) << what;
  const float* g = got.data();
  double worst = 0;
  size_t worst_i = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double rel = std::abs(g[i] - want[i]) / std::max(std::abs(want[i]), 1e-30);
    if (rel > worst) worst = rel, worst_i = i;
  }
  EXPECT_LE(worst, kRelTol) << what << ": element " << worst_i << " is " << g[worst_i]
                            << ", expected " << want[worst_i];
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// --- one step against the Keras formulas, evaluated in double ------------------------------

const std::vector<float> kW = {0.5f, -1.25f, 2.0f, -0.75f, 1.5f};
const std::vector<float> kG1 = {0.1f, -0.3f, 0.25f, 0.05f, -0.2f};
const std::vector<float> kG2 = {-0.2f, 0.15f, 0.3f, -0.1f, 0.05f};

TEST(SGD, PlainStepIsLrTimesGradient) {
  Tensor w = param({5}, kW);
  SGD opt({{"w", w}}, {.learning_rate = 0.1f});
  set_grad(w, kG1);
  opt.step();
  std::vector<double> want = to_double(kW);
  for (size_t i = 0; i < want.size(); ++i) want[i] -= double(0.1f) * kG1[i];
  expect_close("w", w, want);
  EXPECT_EQ(opt.iterations(), 1);
  EXPECT_EQ(opt.state().size(), 2u);  // no velocity without momentum, as in Keras
}

void sgd_momentum_two_steps(bool nesterov) {
  Tensor w = param({5}, kW);
  const float lr = 0.1f, mu = 0.9f;
  SGD opt({{"w", w}}, {.learning_rate = lr, .momentum = mu, .nesterov = nesterov});
  std::vector<double> want = to_double(kW), v(kW.size(), 0.0);
  for (const auto* g : {&kG1, &kG2}) {
    w.zero_grad();
    set_grad(w, *g);
    opt.step();
    for (size_t i = 0; i < want.size(); ++i) {
      v[i] = double(mu) * v[i] - double(lr) * (*g)[i];
      want[i] += nesterov ? double(mu) * v[i] - double(lr) * (*g)[i] : v[i];
    }
  }
  expect_close("w", w, want);
  for (const auto& [name, t] : opt.state())
    if (name == "w.velocity") expect_close("w.velocity", t, v);
}

TEST(SGD, MomentumTwoSteps) { sgd_momentum_two_steps(false); }
TEST(SGD, NesterovTwoSteps) { sgd_momentum_two_steps(true); }

// Keras Adam (and AdamW with wd > 0) on kW for the given gradients, in double.
std::vector<double> keras_adam(const std::vector<const std::vector<float>*>& grads, double lr,
                               double b1, double b2, double eps, double wd) {
  std::vector<double> w = to_double(kW), m(kW.size(), 0.0), v(kW.size(), 0.0);
  for (size_t s = 0; s < grads.size(); ++s) {
    const double t = static_cast<double>(s + 1);
    const double alpha = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    for (size_t i = 0; i < w.size(); ++i) {
      const double g = (*grads[s])[i];
      w[i] -= lr * wd * w[i];
      m[i] += (g - m[i]) * (1 - b1);
      v[i] += (g * g - v[i]) * (1 - b2);
      w[i] -= alpha * m[i] / (std::sqrt(v[i]) + eps);
    }
  }
  return w;
}

TEST(Adam, OneStepDefaults) {
  Tensor w = param({5}, kW);
  Adam opt({{"w", w}});
  set_grad(w, kG1);
  opt.step();
  expect_close("w", w, keras_adam({&kG1}, double(1e-3f), double(0.9f), double(0.999f),
                                  double(1e-7f), 0.0));
}

TEST(Adam, TwoStepsEpsilonOnUncorrectedSqrtV) {
  // epsilon comparable to sqrt(v): PyTorch's placement (on sqrt(v / (1 - b2^t))) would give
  // visibly different numbers, checked below so the test cannot pass by accident.
  const AdamOptions o{.learning_rate = 0.1f, .beta1 = 0.8f, .beta2 = 0.9f, .epsilon = 0.05f};
  Tensor w = param({5}, kW);
  Adam opt({{"w", w}}, o);
  for (const auto* g : {&kG1, &kG2}) {
    w.zero_grad();
    set_grad(w, *g);
    opt.step();
  }
  const auto want = keras_adam({&kG1, &kG2}, o.learning_rate, o.beta1, o.beta2, o.epsilon, 0.0);
  expect_close("w", w, want);
  // The same two steps with epsilon on the bias-corrected sqrt(v), PyTorch style.
  std::vector<double> torch_w = to_double(kW), m(5, 0.0), v(5, 0.0);
  for (int s = 0; s < 2; ++s) {
    const auto& g = s == 0 ? kG1 : kG2;
    const double t = s + 1;
    for (size_t i = 0; i < 5; ++i) {
      m[i] = o.beta1 * m[i] + (1 - double(o.beta1)) * g[i];
      v[i] = o.beta2 * v[i] + (1 - double(o.beta2)) * g[i] * g[i];
      torch_w[i] -= o.learning_rate / (1 - std::pow(double(o.beta1), t)) * m[i] /
                    (std::sqrt(v[i] / (1 - std::pow(double(o.beta2), t))) + o.epsilon);
    }
  }
  EXPECT_GT(std::abs(torch_w[0] - want[0]), 1e3 * kRelTol * std::abs(want[0]));
}

TEST(AdamW, OneStepDecaysThenUpdates) {
  const AdamWOptions o{.learning_rate = 0.01f, .weight_decay = 0.5f};
  Tensor w = param({5}, kW);
  AdamW opt({{"w", w}}, o);
  EXPECT_FLOAT_EQ(opt.weight_decay(), 0.5f);
  set_grad(w, kG1);
  opt.step();
  expect_close("w", w,
               keras_adam({&kG1}, o.learning_rate, o.beta1, o.beta2, o.epsilon, o.weight_decay));
}

TEST(AdamW, DefaultsAreKeras) {
  Tensor w = param({5}, kW);
  AdamW opt({{"w", w}});
  EXPECT_FLOAT_EQ(opt.learning_rate(), 1e-3f);
  EXPECT_FLOAT_EQ(opt.weight_decay(), 0.004f);
  EXPECT_FLOAT_EQ(opt.options().epsilon, 1e-7f);
  set_grad(w, kG1);
  opt.step();
  expect_close("w", w, keras_adam({&kG1}, double(1e-3f), double(0.9f), double(0.999f),
                                  double(1e-7f), double(0.004f)));
}

TEST(Optimizer, SetLearningRateTakesEffectAtNextStep) {
  Tensor w = param({5}, kW);
  SGD opt({{"w", w}}, {.learning_rate = 0.1f});
  opt.set_learning_rate(0.05f);
  EXPECT_FLOAT_EQ(opt.learning_rate(), 0.05f);
  set_grad(w, kG1);
  opt.step();
  std::vector<double> want = to_double(kW);
  for (size_t i = 0; i < want.size(); ++i) want[i] -= double(0.05f) * kG1[i];
  expect_close("w", w, want);
  EXPECT_THROW(opt.set_learning_rate(NAN), std::invalid_argument);
}

TEST(Adam, LargeParameterTakesTheParallelPathWithTheSameNumbers) {
  const int64_t n = 100003;  // above the OpenMP threshold, not a multiple of the vector width
  Tensor w = Tensor::uniform({n}, 0.5f, 1.5f, 7);
  w.set_requires_grad();
  const Tensor g = Tensor::normal({n}, 0.0f, 1.0f, 8);
  const std::vector<float> w0 = w.to_vector();
  AdamW opt({{"w", w}}, {.learning_rate = 0.01f, .weight_decay = 0.1f});
  set_grad(w, g.data());
  opt.step();
  const double lr = 0.01f, wd = 0.1f, b1 = 0.9f, b2 = 0.999f, eps = 1e-7f;
  const double alpha = lr * std::sqrt(1 - b2) / (1 - b1);
  std::vector<double> want(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double gi = g.data()[i];
    const double m = gi * (1 - b1), v = gi * gi * (1 - b2);
    want[i] = w0[i] - lr * wd * w0[i] - alpha * m / (std::sqrt(v) + eps);
  }
  expect_close("w", w, want);
}

// --- several steps against PyTorch ---------------------------------------------------------

const std::string kFixture = std::string(KILN_FIXTURE_DIR) + "/optim.h5";
constexpr int kFixtureVersion = 1;

Tensor read_dataset(const H5::Group& group, const std::string& name) {
  H5::DataSet ds = group.openDataSet(name);
  H5::DataSpace space = ds.getSpace();
  std::vector<hsize_t> dims(static_cast<size_t>(space.getSimpleExtentNdims()));
  if (!dims.empty()) space.getSimpleExtentDims(dims.data());
  Tensor t = Tensor::empty(Shape(dims.begin(), dims.end()));
  ds.read(t.data(), H5::PredType::NATIVE_FLOAT);
  return t;
}

template <class T>
T read_attr(const H5::Group& group, const char* name) {
  T value{};
  group.openAttribute(name).read(
      std::is_same_v<T, float> ? H5::PredType::NATIVE_FLOAT : H5::PredType::NATIVE_INT, &value);
  return value;
}

class TorchOptimFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(TorchOptimFixture, MatchesPyTorchEveryStep) {
  const std::string case_name = GetParam();
  H5::Exception::dontPrint();
  try {
    H5::H5File file(kFixture, H5F_ACC_RDONLY);
    int version = 0;
    file.openAttribute("version").read(H5::PredType::NATIVE_INT, &version);
    ASSERT_EQ(version, kFixtureVersion) << kFixture << ": fixture version " << version
                                        << ", this test reads version " << kFixtureVersion;
    const H5::Group g = file.openGroup(case_name);
    const float lr = read_attr<float>(g, "learning_rate");
    const int steps = read_attr<int>(g, "steps");

    NamedTensors params;
    std::vector<Tensor> grads, after;
    for (const char* name : {"w", "b"}) {
      Tensor p = read_dataset(g, std::string("initial/") + name);
      p.set_requires_grad();
      params.emplace_back(name, p);
      grads.push_back(read_dataset(g, std::string("grads/") + name));
      after.push_back(read_dataset(g, std::string("after/") + name));
    }

    std::unique_ptr<Optimizer> opt;
    if (case_name.starts_with("sgd")) {
      opt = std::make_unique<SGD>(
          params, SGDOptions{.learning_rate = lr,
                             .momentum = read_attr<float>(g, "momentum"),
                             .nesterov = read_attr<int>(g, "nesterov") != 0});
    } else if (case_name == "adamw") {
      opt = std::make_unique<AdamW>(
          params, AdamWOptions{.learning_rate = lr, .beta1 = read_attr<float>(g, "beta1"),
                               .beta2 = read_attr<float>(g, "beta2"),
                               .epsilon = read_attr<float>(g, "epsilon"),
                               .weight_decay = read_attr<float>(g, "weight_decay")});
    } else {
      opt = std::make_unique<Adam>(
          params, AdamOptions{.learning_rate = lr, .beta1 = read_attr<float>(g, "beta1"),
                              .beta2 = read_attr<float>(g, "beta2"),
                              .epsilon = read_attr<float>(g, "epsilon")});
    }

    for (int s = 0; s < steps; ++s) {
      opt->zero_grad();
      for (size_t p = 0; p < params.size(); ++p) {
        const Tensor& w = params[p].second;
        set_grad(w, grads[p].data() + s * w.numel());
      }
      opt->step();
      for (size_t p = 0; p < params.size(); ++p) {
        const Tensor& w = params[p].second;
        const float* ref = after[p].data() + s * w.numel();
        expect_close(case_name + " step " + std::to_string(s + 1) + " " + params[p].first, w,
                     std::vector<double>(ref, ref + w.numel()));
      }
    }
  } catch (const H5::Exception& e) {
    FAIL() << kFixture << ": cannot read case " << case_name << ": " << e.getDetailMsg()
           << " (regenerate with tests/fixtures/make_optim_fixture.py)";
  }
}

INSTANTIATE_TEST_SUITE_P(Optim, TorchOptimFixture,
                         ::testing::Values("sgd_momentum", "sgd_nesterov", "adam", "adam_eps",
                                           "adamw"),
                         [](const auto& info) { return std::string(info.param); });

// --- state() / load_state() ------------------------------------------------------------------

using Factory = std::function<std::unique_ptr<Optimizer>(NamedTensors)>;

NamedTensors fresh_params() {
  return {{"block.kernel", param({2, 3}, {0.5f, -0.25f, 1.0f, 0.75f, -1.5f, 0.3f})},
          {"block.bias", param({3}, {0.1f, -0.2f, 0.05f})}};
}

// Gradient for step s, varying per step and element.
void set_step_grads(const NamedTensors& params, int s) {
  for (size_t p = 0; p < params.size(); ++p) {
    Tensor t = params[p].second;  // a handle: zero_grad acts on the shared parameter
    t.zero_grad();
    float* g = t.grad_data();
    for (int64_t i = 0; i < t.numel(); ++i)
      g[i] = std::sin(1.3f * static_cast<float>(i + 1) + 0.7f * static_cast<float>(s) +
                      static_cast<float>(p));
  }
}

NamedTensors clone_params(const NamedTensors& params) {
  NamedTensors out;
  for (const auto& [name, t] : params) {
    Tensor c = t.detach().clone();
    c.set_requires_grad();
    out.emplace_back(name, c);
  }
  return out;
}

class OptimState : public ::testing::TestWithParam<std::pair<const char*, Factory>> {};

TEST_P(OptimState, SaveLoadResumesIdentically) {
  const Factory& make = GetParam().second;
  NamedTensors a = fresh_params();
  auto opt_a = make(a);
  for (int s = 0; s < 3; ++s) {
    set_step_grads(a, s);
    opt_a->step();
  }
  const NamedTensors saved = opt_a->state();
  ASSERT_EQ(saved.at(0).first, "iterations");
  EXPECT_EQ(saved.at(0).second.item(), 3.0f);

  NamedTensors b = clone_params(a);
  auto opt_b = make(b);
  opt_b->set_learning_rate(123.0f);  // restored by load_state
  opt_b->load_state(saved);
  EXPECT_EQ(opt_b->iterations(), 3);
  EXPECT_EQ(opt_b->learning_rate(), opt_a->learning_rate());

  for (int s = 3; s < 5; ++s) {
    set_step_grads(a, s);
    set_step_grads(b, s);
    opt_a->step();
    opt_b->step();
  }
  for (size_t p = 0; p < a.size(); ++p)
    EXPECT_EQ(a[p].second.to_vector(), b[p].second.to_vector()) << a[p].first;
  const NamedTensors sa = opt_a->state(), sb = opt_b->state();
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i].first, sb[i].first);
    EXPECT_EQ(sa[i].second.to_vector(), sb[i].second.to_vector()) << sa[i].first;
  }
  // The snapshot is a copy: two more steps did not change it.
  EXPECT_EQ(saved.at(0).second.item(), 3.0f);
}

TEST_P(OptimState, LoadStateRejectsBadEntriesNamingThemAndChangesNothing) {
  const Factory& make = GetParam().second;
  NamedTensors params = fresh_params();
  auto opt = make(params);
  set_step_grads(params, 0);
  opt->step();
  const NamedTensors good = opt->state();
  const auto expect_rejected = [&](const NamedTensors& bad, const std::string& entry) {
    try {
      opt->load_state(bad);
      ADD_FAILURE() << "load_state accepted a bad '" << entry << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("'" + entry + "'"), std::string::npos) << e.what();
    }
    EXPECT_EQ(opt->iterations(), 1);  // nothing was written
  };

  // Wrong shape for the last entry (a slot when there is one), so earlier ones would have
  // been written by a non-atomic load.
  NamedTensors bad = good;
  bad.back().second = Tensor::zeros({7});
  bad.front().second = Tensor::scalar(9.0f);
  expect_rejected(bad, good.back().first);

  bad = good;
  bad.erase(bad.begin() + static_cast<std::ptrdiff_t>(bad.size() - 1));
  expect_rejected(bad, good.back().first);

  bad = good;
  bad.emplace_back("block.other.m", Tensor::zeros({3}));
  expect_rejected(bad, "block.other.m");

  bad = good;
  bad.front().second = Tensor::scalar(2.5f);
  expect_rejected(bad, "iterations");
}

INSTANTIATE_TEST_SUITE_P(
    Optim, OptimState,
    ::testing::Values(
        std::pair<const char*, Factory>{"SGDMomentum",
                                        [](NamedTensors p) -> std::unique_ptr<Optimizer> {
                                          return std::make_unique<SGD>(
                                              std::move(p), SGDOptions{.learning_rate = 0.05f,
                                                                       .momentum = 0.9f});
                                        }},
        std::pair<const char*, Factory>{"SGDNesterov",
                                        [](NamedTensors p) -> std::unique_ptr<Optimizer> {
                                          return std::make_unique<SGD>(
                                              std::move(p), SGDOptions{.learning_rate = 0.05f,
                                                                       .momentum = 0.5f,
                                                                       .nesterov = true});
                                        }},
        std::pair<const char*, Factory>{"Adam",
                                        [](NamedTensors p) -> std::unique_ptr<Optimizer> {
                                          return std::make_unique<Adam>(
                                              std::move(p), AdamOptions{.learning_rate = 0.01f});
                                        }},
        std::pair<const char*, Factory>{"AdamW",
                                        [](NamedTensors p) -> std::unique_ptr<Optimizer> {
                                          return std::make_unique<AdamW>(
                                              std::move(p), AdamWOptions{.learning_rate = 0.01f});
                                        }}),
    [](const auto& info) { return std::string(info.param.first); });

TEST(Optimizer, StateNamesFollowTheParameters) {
  NamedTensors params = fresh_params();
  Adam adam(params);
  std::vector<std::string> names;
  for (const auto& [name, t] : adam.state()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"iterations", "learning_rate", "block.kernel.m",
                                             "block.bias.m", "block.kernel.v", "block.bias.v"}));
  SGD sgd(params, {.momentum = 0.9f});
  names.clear();
  for (const auto& [name, t] : sgd.state()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"iterations", "learning_rate",
                                             "block.kernel.velocity", "block.bias.velocity"}));
}

// --- the step() contract ----------------------------------------------------------------------

void check_skips_params_without_grad(Optimizer& opt, const Tensor& reached,
                                     const Tensor& unreached) {
  const std::vector<float> reached0 = reached.to_vector(), unreached0 = unreached.to_vector();
  set_grad(reached, {0.5f, -0.5f, 0.25f});
  const std::vector<float> grad_before = reached.grad().to_vector();
  ASSERT_TRUE(unreached.requires_grad());
  ASSERT_FALSE(unreached.grad().defined());

  opt.step();
  EXPECT_EQ(opt.iterations(), 1);
  EXPECT_NE(reached.to_vector(), reached0);
  EXPECT_EQ(unreached.to_vector(), unreached0);
  EXPECT_FALSE(unreached.grad().defined()) << "step() must not create a gradient";
  EXPECT_EQ(reached.grad().to_vector(), grad_before) << "step() must not touch the gradient";
  for (const auto& [name, t] : opt.state()) {
    if (!name.starts_with("unreached.")) continue;
    for (float x : t.to_vector()) EXPECT_EQ(x, 0.0f) << name;
  }
  EXPECT_TRUE(reached.is_leaf());
  EXPECT_EQ(reached.op(), nullptr);

  opt.zero_grad();
  EXPECT_FALSE(reached.grad().defined());
  EXPECT_FALSE(unreached.grad().defined());
}

TEST(Optimizer, SkipsParamsWithoutGradAndZeroGradDropsGrads) {
  for (int kind = 0; kind < 3; ++kind) {
    SCOPED_TRACE(kind);
    Tensor reached = param({3}, {1.0f, 2.0f, 3.0f});
    Tensor unreached = param({2}, {4.0f, 5.0f});
    NamedTensors params = {{"reached", reached}, {"unreached", unreached}};
    std::unique_ptr<Optimizer> opt;
    if (kind == 0) opt = std::make_unique<SGD>(params, SGDOptions{.momentum = 0.9f});
    if (kind == 1) opt = std::make_unique<Adam>(params);
    if (kind == 2) opt = std::make_unique<AdamW>(params);  // no decay without a gradient either
    check_skips_params_without_grad(*opt, reached, unreached);
  }
}

TEST(Optimizer, StepsAGraphLeafWithoutRecording) {
  // A real backward pass: loss = sum(w * w) gives grad 2w.
  Tensor w = param({3}, {1.0f, -2.0f, 0.5f});
  SGD opt({{"w", w}}, {.learning_rate = 0.25f});
  sum(mul(w, w)).backward();
  opt.step();
  expect_close("w", w, {0.5, -1.0, 0.25});
  EXPECT_TRUE(w.is_leaf());
  EXPECT_TRUE(w.requires_grad());
}

TEST(Optimizer, ConstructorRejectsBadArguments) {
  Tensor a = param({2}, {1.0f, 2.0f});
  Tensor b = param({2}, {3.0f, 4.0f});
  EXPECT_THROW(SGD({{"a", a}, {"a", b}}), std::invalid_argument);
  EXPECT_THROW(SGD({{"a", a}, {"b", a}}), std::invalid_argument);
  EXPECT_THROW(SGD({{"a", Tensor()}}), std::invalid_argument);
  EXPECT_THROW(SGD({{"", a}}), std::invalid_argument);
  EXPECT_THROW(SGD({{"a", a}}, {.momentum = 1.5f}), std::invalid_argument);
  EXPECT_THROW(Adam({{"a", a}}, {.beta1 = 1.0f}), std::invalid_argument);
  EXPECT_THROW(Adam({{"a", a}}, {.epsilon = -1.0f}), std::invalid_argument);
  try {
    AdamW({{"a", a}}, {.weight_decay = -0.1f});
    ADD_FAILURE() << "negative weight decay accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("AdamW"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(Adam({{"a", a}}, {.learning_rate = 3e-4f}));
}

}  // namespace
}  // namespace kiln
