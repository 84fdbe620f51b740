// The independent forward path of task1 (apps/reference_cnn.h) against kiln's ops and layers on
// random weights and inputs, and its weights-file reader against kiln's writer
// (apps/common/app_common.h). Each side computes in its own way (direct double-accumulated loops vs
// im2col + sgemm in float), so they agree to float rounding, not bit for bit.
#include "apps/reference_cnn.h"

#include <gtest/gtest.h>
#include <H5Cpp.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "apps/common/app_common.h"
#include "core/autograd.h"
#include "core/ops/ops.h"
#include "layers/io/model_file.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/zoo/lab_models.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

// max |a - b| / (1 + max |b|): a relative bound that stays meaningful near zero.
double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / (1.0 + scale);
}

struct ConvCase {
  int h, w, c, k, f;
};
// Test names like "h7_w6_c3_k3_f5" instead of the bytes of the struct.
std::string case_name(const ::testing::TestParamInfo<ConvCase>& info) {
  const ConvCase& p = info.param;
  return "h" + std::to_string(p.h) + "_w" + std::to_string(p.w) + "_c" + std::to_string(p.c) + "_k" +
         std::to_string(p.k) + "_f" + std::to_string(p.f);
}

class ReferenceConv : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ReferenceConv, MatchesKilnConv2dSame) {
  const ConvCase p = GetParam();
  NoGradGuard no_grad;
  const Tensor x = Tensor::normal({1, p.h, p.w, p.c}, 0.0f, 1.0f, 11);
  const Tensor w = Tensor::normal({p.k, p.k, p.c, p.f}, 0.0f, 0.5f, 12);
  const Tensor b = Tensor::normal({p.f}, 0.0f, 1.0f, 13);
  const Tensor y = conv2d(x, w, b, 1, Padding::Same);
  const std::vector<float> ref = reference::conv2d_same(x.to_vector(), p.h, p.w, p.c, w.to_vector(),
                                                        p.k, p.k, p.f, b.to_vector(),
                                                        reference::Act::Linear);
  EXPECT_LT(max_rel_diff(y.to_vector(), ref), 1e-6);
  const std::vector<float> ref_relu = reference::conv2d_same(
      x.to_vector(), p.h, p.w, p.c, w.to_vector(), p.k, p.k, p.f, b.to_vector(), reference::Act::Relu);
  EXPECT_LT(max_rel_diff(relu(y).to_vector(), ref_relu), 1e-6);
}

// Odd and even kernels (an even one pads one more at the bottom/right, TensorFlow's rule),
// odd image sizes, several channels.
INSTANTIATE_TEST_SUITE_P(Shapes, ReferenceConv,
                         ::testing::Values(ConvCase{28, 28, 1, 3, 4}, ConvCase{7, 6, 3, 3, 5},
                                           ConvCase{5, 9, 2, 2, 3}, ConvCase{6, 6, 4, 5, 2},
                                           ConvCase{1, 1, 3, 3, 2}),
                         case_name);

TEST(Reference, MaxPoolMatchesKilnIncludingOddSizes) {
  NoGradGuard no_grad;
  for (const auto& [h, w] : {std::pair{8, 8}, std::pair{7, 5}}) {
    const Tensor x = Tensor::normal({1, h, w, 3}, 0.0f, 1.0f, 21);
    const std::vector<float> ref = reference::max_pool_2x2(x.to_vector(), h, w, 3);
    EXPECT_EQ(max_pool2d(x, 2, 2).to_vector(), ref) << h << "x" << w;  // a maximum is exact
  }
}

TEST(Reference, FlattenKeepsKilnsNhwcOrder) {
  const Tensor x = Tensor::normal({1, 3, 4, 5}, 0.0f, 1.0f, 31);
  EXPECT_EQ(flatten(x).to_vector(), reference::flatten(x.to_vector()));
}

TEST(Reference, DenseAndSoftmaxMatchKiln) {
  NoGradGuard no_grad;
  const Tensor x = Tensor::normal({1, 37}, 0.0f, 1.0f, 41);
  const Tensor w = Tensor::normal({37, 10}, 0.0f, 0.3f, 42);
  const Tensor b = Tensor::normal({10}, 0.0f, 1.0f, 43);
  const std::vector<float> z = reference::dense(x.to_vector(), w.to_vector(), 37, 10, b.to_vector(),
                                                reference::Act::Linear);
  EXPECT_LT(max_rel_diff(dense(x, w, b).to_vector(), z), 1e-6);
  const std::vector<float> p = reference::dense(x.to_vector(), w.to_vector(), 37, 10, b.to_vector(),
                                                reference::Act::Softmax);
  EXPECT_LT(max_rel_diff(softmax(dense(x, w, b)).to_vector(), p), 1e-6);
  double total = 0;
  for (float v : p) total += v;
  EXPECT_NEAR(total, 1.0, 1e-6);
}

TEST(Reference, SoftmaxIsStableForLargeInputs) {
  std::vector<float> v = {1000.0f, 999.0f, -1000.0f};
  reference::activate(v, reference::Act::Softmax);
  EXPECT_NEAR(v[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_FLOAT_EQ(v[2], 0.0f);
}

class ReferenceFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_refcnn_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// The whole Task 1 network: kiln's model written by the apps' writer, read back by the
// reference's own reader, must give the same probabilities and figures on random images.
TEST_F(ReferenceFile, Task1NetworkAgreesWithKilnThroughTheModelFile) {
  manual_seed(7);
  auto model = task1_model();
  {
    NoGradGuard no_grad;  // non-zero biases, so a bias mix-up cannot hide
    uint64_t seed = 100;
    for (auto& [name, t] : model->named_parameters())
      if (name.find("bias") != std::string::npos) t.copy_(Tensor::normal(t.shape(), 0.0f, 0.5f, ++seed));
  }
  const std::string path = file("model.h5");
  save_model(path, *model, {28, 28, 1}, "task1");
  const reference::Task1Cnn ref = reference::Task1Cnn::load(path);
  EXPECT_EQ(ref.classes, 10);
  EXPECT_EQ(ref.channels, 1);

  const int64_t n = 64;
  const Tensor x = Tensor::uniform({n, 28, 28, 1}, -1.0f, 1.0f, 5);
  std::vector<int32_t> labels(n);
  for (int64_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>(i % 10);
  std::vector<float> probs;
  const reference::Figures fig = reference::evaluate(ref, x.data(), n, labels, &probs);
  const Tensor kiln_probs = predict(*model, x);
  EXPECT_LT(max_rel_diff(kiln_probs.to_vector(), probs), 1e-5);

  Dataset data;
  data.x = x;
  data.labels = labels;
  data.num_classes = 10;
  data.y_onehot = one_hot(labels, 10);
  const Evaluation e = evaluate(*model, data);
  EXPECT_NEAR(fig.loss, e.loss, 1e-5);
  EXPECT_DOUBLE_EQ(fig.accuracy, e.accuracy);
}

TEST_F(ReferenceFile, ErrorsNameTheFileAndWhatIsWrong) {
  try {
    reference::Task1Cnn::load(file("missing.h5"));
    FAIL() << "no error for a missing file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.h5"), std::string::npos) << e.what();
  }

  const std::string bad_version = file("v2.h5");
  {
    H5::H5File f(bad_version, H5F_ACC_TRUNC);
    const H5::StrType str(H5::PredType::C_S1, 10);
    f.createAttribute("kiln_format", str, H5::DataSpace(H5S_SCALAR)).write(str, std::string("kiln-model"));
    const int version = 2;
    f.createAttribute("version", H5::PredType::NATIVE_INT, H5::DataSpace(H5S_SCALAR))
        .write(H5::PredType::NATIVE_INT, &version);
  }
  try {
    reference::Task1Cnn::load(bad_version);
    FAIL() << "no error for version 2";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("version 2"), std::string::npos) << e.what();
  }

  // A kiln model file of another model: the datasets the reference needs are missing.
  manual_seed(1);
  Conv2D conv({.in_channels = 1, .filters = 2});
  const std::string other = file("other.h5");
  save_model(other, conv, {8, 8, 1}, "conv");
  try {
    reference::Task1Cnn::load(other);
    FAIL() << "no error for a file without the Task 1 datasets";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("conv2d.kernel"), std::string::npos) << e.what();
  }
}

TEST_F(ReferenceFile, ModelFileHoldsEveryParameterByDottedNameAndLoadsBack) {
  manual_seed(3);
  auto model = task2_model();
  const std::string path = file("task2.h5");
  save_model(path, *model, {28, 28, 1}, "task2");
  std::vector<std::string> names;
  for (const auto& [name, t] : model->named_parameters()) names.push_back(name);
  const auto arrays = reference::read_weights(path, names);
  for (const auto& [name, t] : model->named_parameters()) {
    ASSERT_TRUE(arrays.count(name)) << name;
    EXPECT_EQ(arrays.at(name).data, t.to_vector()) << name;
    EXPECT_EQ(arrays.at(name).shape, t.shape()) << name;
  }
  // The moving statistics are the model file's buffers, and the whole file loads back.
  const LoadedModel back = load_model(path);
  EXPECT_EQ(back.name, "task2");
  EXPECT_EQ(back.model->named_buffers().size(), model->named_buffers().size());
  // No temporary left beside it.
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1);
}

}  // namespace
}  // namespace kiln
