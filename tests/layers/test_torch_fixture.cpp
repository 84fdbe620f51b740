// Integration test against PyTorch: the small CNN of tests/fixtures/make_small_cnn.py, built
// from kiln ops, must reproduce PyTorch's logits, loss, batch-norm statistics and every
// gradient stored in tests/fixtures/small_cnn.h5 (see tests/fixtures/README.md).
//
// Tolerance: max|kiln - torch| <= 1e-4 * max|torch| + 1e-6 per tensor. The reference was
// computed in float64 on the same float32 inputs, so the difference is kiln's float32
// rounding alone: sums of at most a few hundred terms (36-term conv dot products, 256-row
// batch-norm reductions) give relative errors near sqrt(256) * 6e-8 ~ 1e-6, a hundred times
// under the bound, while a wrong padding offset, layout or missing gradient term is off by
// 1e-2 or more. The 1e-6 absolute term only matters for tensors whose reference is near zero.
#include <gtest/gtest.h>

#include <H5Cpp.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ops/ops.h"
#include "core/tensor.h"

namespace kiln {
namespace {

const std::string kFixture = std::string(KILN_FIXTURE_DIR) + "/small_cnn.h5";
constexpr int kFixtureVersion = 1;

Tensor read_dataset(const H5::H5File& file, const std::string& name) {
  H5::DataSet ds = file.openDataSet(name);
  H5::DataSpace space = ds.getSpace();
  const int rank = space.getSimpleExtentNdims();
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) space.getSimpleExtentDims(dims.data());
  Shape shape(dims.begin(), dims.end());
  Tensor t = Tensor::empty(shape);
  ds.read(t.data(), H5::PredType::NATIVE_FLOAT);
  return t;
}

class TorchFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    H5::Exception::dontPrint();  // failures are reported by the test, not on stderr
    try {
      H5::H5File file(kFixture, H5F_ACC_RDONLY);
      int version = 0;
      file.openAttribute("version").read(H5::PredType::NATIVE_INT, &version);
      ASSERT_EQ(version, kFixtureVersion) << kFixture << ": fixture version " << version
                                          << ", this test reads version " << kFixtureVersion;
      for (const char* group : {"inputs", "params", "bn", "activations", "outputs", "grads"}) {
        H5::Group g = file.openGroup(group);
        for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
          const std::string name = std::string(group) + "/" + g.getObjnameByIdx(i);
          data_[name] = read_dataset(file, name);
        }
      }
    } catch (const H5::Exception& e) {
      FAIL() << kFixture << ": cannot read the fixture: " << e.getDetailMsg()
             << " (regenerate with tests/fixtures/make_small_cnn.py)";
    }
  }

  const Tensor& get(const std::string& name) const {
    const auto it = data_.find(name);
    if (it == data_.end()) throw std::runtime_error(kFixture + ": no dataset " + name);
    return it->second;
  }

  // Compares shapes and max|got - want| <= 1e-4 * scale + 1e-6, scale = max|want| unless given.
  void expect_close(const std::string& what, const Tensor& got, const Tensor& want,
                    float scale = -1.0f) const {
    ASSERT_TRUE(got.defined()) << what << ": kiln produced nothing";
    ASSERT_EQ(got.shape(), want.shape()) << what;
    const float* g = got.data();
    const float* w = want.data();
    float max_ref = 0, max_diff = 0;
    int64_t worst = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      max_ref = std::max(max_ref, std::abs(w[i]));
      const float d = std::abs(g[i] - w[i]);
      if (d > max_diff) max_diff = d, worst = i;
    }
    if (scale < 0) scale = max_ref;
    const float bound = 1e-4f * scale + 1e-6f;
    EXPECT_LE(max_diff, bound) << what << " " << shape_str(want.shape()) << ": worst at flat index "
                               << worst << ": kiln " << g[worst] << ", torch " << w[worst]
                               << " (max|torch| " << max_ref << ")";
  }

  std::map<std::string, Tensor> data_;
};

TEST_F(TorchFixture, ForwardAndBackwardMatchPyTorch) {
  // Leaves that need gradients: copies, so the fixture's own tensors stay untouched.
  std::map<std::string, Tensor> p;
  for (const char* name : {"conv1.kernel", "conv1.bias", "bn.gamma", "bn.beta", "conv2.kernel",
                           "conv2.bias", "dense.kernel", "dense.bias"})
    p[name] = get(std::string("params/") + name).detach().clone().set_requires_grad();
  Tensor x = get("inputs/x").detach().clone().set_requires_grad();
  const Tensor targets = get("inputs/targets");
  Tensor running_mean = get("bn/running_mean_in").clone();
  Tensor running_var = get("bn/running_var_in").clone();

  const Tensor conv1 = conv2d(x, p["conv1.kernel"], p["conv1.bias"], 1, Padding::Same);
  const Tensor bn = batch_norm(conv1, p["bn.gamma"], p["bn.beta"], running_mean, running_var,
                               /*training=*/true, /*momentum=*/0.99f, /*eps=*/1e-3f);
  const Tensor pool = max_pool2d(relu(bn), 2, 2, Padding::Valid);
  const Tensor conv2 = conv2d(pool, p["conv2.kernel"], p["conv2.bias"], 2, Padding::Same);
  const Tensor logits = dense(flatten(conv2), p["dense.kernel"], p["dense.bias"]);
  const Tensor loss = softmax_cross_entropy(logits, targets);

  // Forward, in graph order, so the first mismatch points at the op that caused it.
  expect_close("activations/conv1", conv1, get("activations/conv1"));
  expect_close("activations/bn", bn, get("activations/bn"));
  expect_close("activations/pool", pool, get("activations/pool"));
  expect_close("activations/conv2", conv2, get("activations/conv2"));
  expect_close("outputs/logits", logits, get("outputs/logits"));
  expect_close("outputs/loss", loss, get("outputs/loss"));
  expect_close("bn/running_mean_out", running_mean, get("bn/running_mean_out"));
  expect_close("bn/running_var_out", running_var, get("bn/running_var_out"));

  loss.backward();

  // conv1's bias feeds batch norm, which subtracts the batch mean, so its true gradient is
  // zero (the fixture holds ~1e-16) and max|torch| is no scale. Kiln's rounding residue is
  // measured against conv1's kernel gradient instead: both sum the same 256 per-position
  // gradients of conv1's output.
  float conv1_scale = 0;
  for (float v : get("grads/conv1.kernel").to_vector()) conv1_scale = std::max(conv1_scale, std::abs(v));
  for (const auto& [name, param] : p)
    expect_close("grads/" + name, param.grad(), get("grads/" + name),
                 name == "conv1.bias" ? conv1_scale : -1.0f);
  expect_close("grads/x", x.grad(), get("grads/x"));
}

}  // namespace
}  // namespace kiln
