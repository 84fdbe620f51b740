// PyTorch state_dicts -> kiln (layers/io/torch/torch_weights.h), on real files written by
// PyTorch 1.13 (tests/fixtures/make_torch_state_dict.py, tests/fixtures/torch/): the loaded
// model must reproduce PyTorch's logits, which only happens when conv weights are turned
// OIHW -> HWIO, linear weights transposed and their columns moved from C,H,W to H,W,C order.
// The hostile inputs are zips and pickles built here by hand, each next to its check, with a
// well-formed control built the same way so that each refusal is the one under test.
//
// Tolerance for the logits: max|kiln - torch| <= 1e-4 * max|torch| + 1e-6. The reference is
// PyTorch's float64 pass on the same float32 weights and inputs; kiln's float32 sums of at
// most 294 terms are off by ~1e-6 relative, while a wrong layout is off by 1e-1 or more.
#include <gtest/gtest.h>
#include <unistd.h>

#include <H5Cpp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/io/file_error.h"
#include "tests/layers/file_error_of.h"
#include "core/io/zip_archive.h"
#include "core/tensor.h"
#include "layers/activation.h"
#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/flatten.h"
#include "layers/io/torch/torch_weights.h"
#include "layers/max_pool2d.h"
#include "layers/sequential.h"

namespace kiln {
namespace {

using namespace std::string_literals;  // pickles hold NUL bytes

const std::string kDir = std::string(KILN_FIXTURE_DIR) + "/torch/";
const std::string kF32 = kDir + "small_cnn_state_dict.pt";
const TorchLoadOptions kFlatten{.flatten_chw = {{"classifier.1", {6, 7, 7}}}};

// The kiln twin of make_torch_state_dict.py's network (BatchNorm with PyTorch's eps 1e-5).
std::shared_ptr<Sequential> small_cnn(int64_t units = 10, bool with_bn = true) {
  auto m = std::make_shared<Sequential>();
  m->add(std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 1, .filters = 4, .use_bias = false}));
  if (with_bn) m->add(std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = 4, .momentum = 0.9f, .epsilon = 1e-5f}));
  m->add(ReLU());
  m->add(std::make_shared<MaxPool2D>());
  m->add(std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 4, .filters = 6, .activation = Activation::ReLU}));
  m->add(std::make_shared<MaxPool2D>());
  m->add(std::make_shared<Flatten>());
  m->add(std::make_shared<Dense>(DenseOptions{.in_features = 6 * 7 * 7, .units = units}));
  m->eval();
  return m;
}

Tensor read_h5(const std::string& name) {
  H5::Exception::dontPrint();
  H5::H5File f(kDir + "small_cnn_outputs.h5", H5F_ACC_RDONLY);
  int version = 0;
  f.openAttribute("version").read(H5::PredType::NATIVE_INT, &version);
  EXPECT_EQ(version, 1) << "small_cnn_outputs.h5: this test reads version 1";
  H5::DataSet ds = f.openDataSet(name);
  hsize_t dims[8];
  const int rank = ds.getSpace().getSimpleExtentDims(dims);
  Tensor t = Tensor::empty(Shape(dims, dims + rank));
  ds.read(t.data(), H5::PredType::NATIVE_FLOAT);
  return t;
}

// max|kiln - torch| / max|torch| over PyTorch's 8 reference images.
float logits_error(Module& model) {
  const Tensor x = read_h5("x");  // [8,1,28,28]; one channel, so NCHW and NHWC share the bytes
  const Tensor want = read_h5("logits");
  const Tensor got = model.forward(x.reshape({8, 28, 28, 1}));
  EXPECT_EQ(got.shape(), want.shape());
  float err = 0, scale = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    err = std::max(err, std::abs(got.data()[i] - want.data()[i]));
    scale = std::max(scale, std::abs(want.data()[i]));
  }
  EXPECT_GT(scale, 0.1f) << "reference logits are all near zero: the fixture checks nothing";
  return err / scale;
}

// ---- zips and pickles by hand -------------------------------------------------------------

using Members = std::vector<std::pair<std::string, std::string>>;

uint32_t crc32(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put(std::string& out, uint64_t v, int bytes) {
  for (int k = 0; k < bytes; ++k) out += static_cast<char>((v >> (8 * k)) & 0xFF);
}

// A stored (uncompressed) zip, as torch.save writes them.
std::string zip_bytes(const Members& members) {
  std::string out, central;
  for (const auto& [name, data] : members) {
    const uint64_t offset = out.size();
    const uint32_t crc = crc32(data);
    put(out, 0x04034b50, 4), put(out, 20, 2), put(out, 0, 2), put(out, 0, 2), put(out, 0, 4);
    put(out, crc, 4), put(out, data.size(), 4), put(out, data.size(), 4), put(out, name.size(), 2), put(out, 0, 2);
    out += name + data;
    put(central, 0x02014b50, 4), put(central, 20, 2), put(central, 20, 2), put(central, 0, 2), put(central, 0, 2);
    put(central, 0, 4), put(central, crc, 4), put(central, data.size(), 4), put(central, data.size(), 4);
    put(central, name.size(), 2), put(central, 0, 2), put(central, 0, 2), put(central, 0, 2), put(central, 0, 2);
    put(central, 0, 4), put(central, offset, 4);
    central += name;
  }
  const uint64_t cd_offset = out.size();
  out += central;
  put(out, 0x06054b50, 4), put(out, 0, 2), put(out, 0, 2), put(out, members.size(), 2), put(out, members.size(), 2);
  put(out, central.size(), 4), put(out, cd_offset, 4), put(out, 0, 2);
  return out;
}

// The hand-built files live in the temporary folder until the suite ends.
std::vector<std::string>& written() {
  static std::vector<std::string> paths;
  return paths;
}
struct RemoveWritten : ::testing::Environment {
  void TearDown() override {
    for (const std::string& p : written()) std::filesystem::remove(p);
  }
};
::testing::Environment* const kRemoveWritten = ::testing::AddGlobalTestEnvironment(new RemoveWritten);

// The path carries the process id: ctest runs each test case as its own process, two at a
// time, and two cases writing one name would read each other's bytes.
std::string write_file(const std::string& name, const std::string& bytes) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("kiln_torch_" + std::to_string(::getpid()) + "_" + name)).string();
  std::ofstream(path, std::ios::binary) << bytes;
  written().push_back(path);
  return path;
}

std::string write_zip(const std::string& name, const Members& members) { return write_file(name, zip_bytes(members)); }

// The fixture's members, for variants of a real file.
Members fixture_members() {
  const ZipArchive zip(kF32);
  Members m;
  for (const std::string& n : zip.names()) {
    const std::vector<char> b = zip.read(n);
    m.emplace_back(n, std::string(b.begin(), b.end()));
  }
  return m;
}

std::string& member(Members& m, const std::string& name) {
  for (auto& [n, b] : m)
    if (n == name) return b;
  throw std::logic_error("no member " + name);
}

std::string binint(int64_t v) {
  std::string s = "J";
  put(s, static_cast<uint64_t>(v), 4);
  return s;
}
std::string unicode(const std::string& s) {
  std::string out = "X";
  put(out, s.size(), 4);
  return out + s;
}

struct FakeTensor {
  std::string name{}, storage_type = "FloatStorage", key = "0";
  int64_t storage_numel = 6, offset = 0;
  Shape shape{2, 3}, stride{3, 1};
};

// The pickle torch.save writes for an OrderedDict of these tensors (opcodes as torch emits them).
std::string state_dict_pickle(const std::vector<FakeTensor>& ts) {
  std::string p = "\x80\x02" "ccollections\nOrderedDict\nq\x00)Rq\x01("s;
  for (const FakeTensor& t : ts) {
    p += unicode(t.name) + "ctorch._utils\n_rebuild_tensor_v2\n((" + unicode("storage") + "ctorch\n" +
         t.storage_type + "\n" + unicode(t.key) + unicode("cpu") + binint(t.storage_numel) + "tQ" + binint(t.offset) + "(";
    for (int64_t e : t.shape) p += binint(e);
    p += "t(";
    for (int64_t s : t.stride) p += binint(s);
    p += "t\x89h\x00)RtR"s;
  }
  return p + "u.";
}

std::string floats(int64_t n) {
  std::string s;
  for (int64_t i = 0; i < n; ++i) {
    const float f = static_cast<float>(i) + 0.5f;
    s.append(reinterpret_cast<const char*>(&f), 4);
  }
  return s;
}

std::string fake_file(const std::string& name, const std::string& pickle, const Members& extra = {{"a/data/0", floats(6)}}) {
  Members m{{"a/data.pkl", pickle}, {"a/version", "3\n"}};
  m.insert(m.end(), extra.begin(), extra.end());
  return write_zip(name, m);
}

std::string fake_error(const std::string& pickle) {
  const std::string path = fake_file("hostile.pt", pickle);
  return error_of([&] { read_torch_state_dict(path); });
}

// ---- real PyTorch files ----------------------------------------------------------------------

TEST(TorchWeights, ReadsTheStateDictInPyTorchsLayout) {
  const TorchTensors t = read_torch_state_dict(kF32);
  std::vector<std::string> names;
  for (const auto& [n, v] : t.tensors) names.push_back(n + " " + shape_str(v.shape()));
  EXPECT_EQ(names, (std::vector<std::string>{
                       "features.0.weight [4,1,3,3]", "features.1.weight [4]", "features.1.bias [4]",
                       "features.1.running_mean [4]", "features.1.running_var [4]", "features.4.weight [6,4,3,3]",
                       "features.4.bias [6]", "classifier.1.weight [10,294]", "classifier.1.bias [10]"}));
  EXPECT_EQ(t.skipped, std::vector<std::string>{"features.1.num_batches_tracked"});
  // The running statistics moved away from PyTorch's initial 0 / 1.
  EXPECT_GT(std::abs(t.tensors[3].second.at({0})), 1e-3f);
  EXPECT_GT(std::abs(t.tensors[4].second.at({0}) - 1.0f), 1e-3f);
}

TEST(TorchWeights, LoadedModelReproducesPyTorchsLogits) {
  auto model = small_cnn();
  load_torch_state_dict(kF32, *model, kFlatten);
  EXPECT_LE(logits_error(*model), 1e-4f);
  // The kernel really is HWIO: kiln [y,x,i,o] == torch [o,i,y,x].
  const TorchTensors t = read_torch_state_dict(kF32);
  const Tensor& w = t.tensors[5].second;  // features.4.weight [6,4,3,3]
  Tensor& k = dynamic_cast<Conv2D&>((*model)[4]).kernel();
  EXPECT_EQ(k.at({2, 1, 3, 5}), w.at({5, 3, 2, 1}));
}

TEST(TorchWeights, WithoutTheFlattenOrderTheLogitsAreWrong) {
  auto model = small_cnn();
  load_torch_state_dict(kF32, *model);
  EXPECT_GT(logits_error(*model), 1e-2f);
}

TEST(TorchWeights, NameMapLoadsTheSameWeightsAsOrder) {
  auto by_order = small_cnn(), by_name = small_cnn();
  load_torch_state_dict(kF32, *by_order, kFlatten);
  TorchLoadOptions o = kFlatten;
  o.name_map = {{"features.0", "conv2d"}, {"features.1", "batch_normalization"}, {"features.4", "conv2d_1"},
                {"classifier.1", "dense"}};
  load_torch_state_dict(kF32, *by_name, o);
  const NamedTensors a = by_order->named_parameters(), b = by_name->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].second.to_vector(), b[i].second.to_vector()) << a[i].first;
  EXPECT_LE(logits_error(*by_name), 1e-4f);
  // A prefix entry covers the modules below it; one left uncovered is named.
  o.name_map = {{"features", "nope"}};
  EXPECT_NE(error_of([&] { load_torch_state_dict(kF32, *by_name, o); }).find("'classifier.1' is covered by no name_map entry"),
            std::string::npos);
}

TEST(TorchWeights, Float64AndFloat16FilesConvert) {
  auto model = small_cnn();
  load_torch_state_dict(kDir + "small_cnn_state_dict_f64.pt", *model, kFlatten);
  EXPECT_LE(logits_error(*model), 1e-4f);  // float32 -> float64 -> float32 is exact

  const TorchTensors f32 = read_torch_state_dict(kF32);
  const TorchTensors f16 = read_torch_state_dict(kDir + "small_cnn_state_dict_f16.pt");
  ASSERT_EQ(f16.tensors.size(), f32.tensors.size());
  float worst = 0;
  for (size_t i = 0; i < f32.tensors.size(); ++i) {
    const Tensor& a = f32.tensors[i].second;
    const Tensor& b = f16.tensors[i].second;
    ASSERT_EQ(a.shape(), b.shape());
    for (int64_t k = 0; k < a.numel(); ++k)
      worst = std::max(worst, std::abs(a.data()[k] - b.data()[k]) / std::max(std::abs(a.data()[k]), 6.2e-5f));
  }
  EXPECT_LE(worst, 1.0f / 1024);  // half's rounding, nothing more
  EXPECT_GT(worst, 0.0f);         // and it was half
}

TEST(TorchWeights, LegacyTorchScriptAndWholeModelFilesSayWhatTheyAre) {
  const std::string legacy = error_of([] { read_torch_state_dict(kDir + "small_cnn_legacy.pt"); });
  EXPECT_NE(legacy.find("legacy torch.save format"), std::string::npos) << legacy;
  EXPECT_NE(legacy.find("torch.save(model.state_dict(), path)"), std::string::npos) << legacy;
  const std::string script = error_of([] { read_torch_state_dict(kDir + "small_cnn_torchscript.pt"); });
  EXPECT_NE(script.find("TorchScript"), std::string::npos) << script;
  EXPECT_NE(script.find("model.state_dict()"), std::string::npos) << script;
  const std::string whole = error_of([] { read_torch_state_dict(kDir + "small_cnn_whole_model.pt"); });
  EXPECT_NE(whole.find("imports 'torch.nn.modules.container.Sequential'"), std::string::npos) << whole;
  EXPECT_NE(whole.find("model.state_dict()"), std::string::npos) << whole;
  const std::string missing = error_of([] { read_torch_state_dict(kDir + "no_such_file.pt"); });
  EXPECT_NE(missing.find("no_such_file.pt"), std::string::npos) << missing;
}

// ---- the model must fit -------------------------------------------------------------------------

TEST(TorchWeights, ShapeMismatchNamesBothShapesAndChangesNothing) {
  auto model = small_cnn(12);
  const std::vector<float> before = dynamic_cast<Conv2D&>((*model)[0]).kernel().to_vector();
  const std::string e = error_of([&] { load_torch_state_dict(kF32, *model, kFlatten); });
  EXPECT_NE(e.find("small_cnn_state_dict.pt"), std::string::npos) << e;
  EXPECT_NE(e.find("'classifier.1.weight' [10,294] becomes [294,10]"), std::string::npos) << e;
  EXPECT_NE(e.find("'dense.kernel' is [294,12]"), std::string::npos) << e;
  EXPECT_EQ(dynamic_cast<Conv2D&>((*model)[0]).kernel().to_vector(), before);
}

TEST(TorchWeights, LeftoverAndMissingTensorsAreNamed) {
  auto no_bn = small_cnn(10, false);
  // In order, the counts differ.
  const std::string count = error_of([&] { load_torch_state_dict(kF32, *no_bn, kFlatten); });
  EXPECT_NE(count.find("4 modules with tensors"), std::string::npos) << count;
  EXPECT_NE(count.find("3 layers with weights"), std::string::npos) << count;
  // By name, BatchNorm's tensors are left over.
  TorchLoadOptions o = kFlatten;
  o.name_map = {{"features.0", "conv2d"}, {"features.1", "nothing"}, {"features.4", "conv2d_1"}, {"classifier.1", "dense"}};
  const std::string left = error_of([&] { load_torch_state_dict(kF32, *no_bn, o); });
  EXPECT_NE(left.find("torch tensors left over: features.1.weight (no kiln layer 'nothing')"), std::string::npos) << left;
  // A kiln layer nothing loads into is missing.
  auto model = small_cnn();
  o.name_map = {{"features.0", "conv2d"}, {"features.1", "batch_normalization"}, {"features.4", "conv2d"},
                {"classifier.1", "dense"}};
  const std::string miss = error_of([&] { load_torch_state_dict(kF32, *model, o); });
  EXPECT_NE(miss.find("conv2d_1.kernel [3,3,4,6]"), std::string::npos) << miss;
  EXPECT_NE(miss.find("conv2d_1.bias [6]"), std::string::npos) << miss;
  // Paired in order with a different kind of layer.
  auto swapped = std::make_shared<Sequential>();
  swapped->add(std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = 4}));
  swapped->add(std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 1, .filters = 4, .use_bias = false}));
  swapped->add(std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 4, .filters = 6}));
  swapped->add(std::make_shared<Dense>(DenseOptions{.in_features = 294, .units = 10}));
  const std::string kinds = error_of([&] { load_torch_state_dict(kF32, *swapped); });
  EXPECT_NE(kinds.find("'features.0' (convolution), pairs with kiln layer 'batch_normalization' (batch norm)"),
            std::string::npos) << kinds;
}

TEST(TorchWeights, BadFlattenShapeIsACallerError) {
  auto model = small_cnn();
  EXPECT_THROW(load_torch_state_dict(kF32, *model, {.flatten_chw = {{"classifier.1", {6, 7, 8}}}}), std::invalid_argument);
  EXPECT_THROW(load_torch_state_dict(kF32, *model, {.flatten_chw = {{"features.4", {6, 7, 7}}}}), std::invalid_argument);
}

// ---- hostile files -----------------------------------------------------------------------------

TEST(TorchWeights, HandBuiltControlReads) {
  // The builder below makes valid files: the refusals that follow are each about one change.
  const std::string path = fake_file("control.pt", state_dict_pickle({{.name = "x.weight"}}));
  const TorchTensors t = read_torch_state_dict(path);
  ASSERT_EQ(t.tensors.size(), 1u);
  EXPECT_EQ(t.tensors[0].first, "x.weight");
  EXPECT_EQ(t.tensors[0].second.to_vector(), (std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f}));
  // An offset view of a storage and an extent-1 axis with any stride are fine too.
  const std::string view = fake_file(
      "view.pt", state_dict_pickle({{.name = "v", .offset = 2, .shape = {1, 4}, .stride = {99, 1}}}));
  EXPECT_EQ(read_torch_state_dict(view).tensors[0].second.to_vector(), (std::vector<float>{2.5f, 3.5f, 4.5f, 5.5f}));
}

TEST(TorchWeights, TruncatedFilesAreRefused) {
  std::ifstream in(kF32, std::ios::binary);
  const std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t keep : {size_t{0}, size_t{100}, whole.size() / 2, whole.size() - 1}) {
    const std::string path = write_file("truncated.pt", whole.substr(0, keep));
    EXPECT_NE(error_of([&] { read_torch_state_dict(path); }).find("_truncated.pt"), std::string::npos) << keep;
  }
  const std::string pkl = state_dict_pickle({{.name = "x"}});
  for (size_t keep = 0; keep < pkl.size(); ++keep) {
    const std::string e = fake_error(pkl.substr(0, keep));
    EXPECT_NE(e.find("a/data.pkl at byte"), std::string::npos) << keep << ": " << e;
  }
}

TEST(TorchWeights, ForbiddenGlobalsAreRefused) {
  const std::string os_system = "\x80\x02" "cos\nsystem\n" + unicode("touch /tmp/kiln_pwned") + "\x85R.";
  const std::string e = fake_error(os_system);
  EXPECT_NE(e.find("imports 'os.system', which kiln refuses"), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists("/tmp/kiln_pwned"));
  // Allowed names in the wrong place: calling a storage type, or a storage type as a tensor.
  EXPECT_NE(fake_error("\x80\x02" "ctorch\nFloatStorage\n)R.").find("'torch FloatStorage' cannot be called"),
            std::string::npos);
  EXPECT_NE(fake_error("\x80\x02" "cbuiltins\neval\n.").find("'builtins.eval'"), std::string::npos);
  // The real file with its rebuild function swapped for another.
  Members m = fixture_members();
  std::string& pkl = member(m, "small_cnn_state_dict/data.pkl");
  const std::string from = "torch._utils\n_rebuild_tensor_v2\n", to = "subprocess\ncheck_output________\n";
  ASSERT_EQ(from.size(), to.size());
  pkl.replace(pkl.find(from), from.size(), to);
  const std::string path = write_zip("swapped_global.pt", m);
  const std::string s = error_of([&] { read_torch_state_dict(path); });
  EXPECT_NE(s.find("imports 'subprocess.check_output________'"), std::string::npos) << s;
}

TEST(TorchWeights, MalformedPicklesAreRefused) {
  const std::map<std::string, std::string> cases = {
      {"opcode 0x69", std::string("\x80\x02" "i", 3)},                 // INST: not in torch's subset
      {"opcode 0x94", std::string("\x80\x02\x94.", 4)},                 // MEMOIZE (protocol 4)
      {"memo entry 5 was never stored", std::string("\x80\x02h\x05.", 5)},
      {"stack underflow", std::string("\x80\x02s.", 4)},
      {"stack underflow", std::string("\x80\x02(Q.", 5)},               // nothing above the MARK
      {"no MARK to close", std::string("\x80\x02t.", 4)},
      {"truncated", std::string("\x80\x02X\xff\xff\xff\x7f", 7)},       // a 2 GiB string
      {"pickle protocol 9", std::string("\x80\x09}.", 4)},
      {"STOP with objects left", std::string("\x80\x02}}.", 5)},
      {"LONG1 of 9 bytes", std::string("\x80\x02\x8a\x09" "123456789.", 14)},
      // dict[key] = dict: a cycle
      {"changed after it was stored", std::string("\x80\x02}q\x00X\x01\x00\x00\x00" "ah\x00s.", 15)},
      {"SETITEM on a list", std::string("\x80\x02]KaKbs.", 8)},
      {"BUILD on an int", std::string("\x80\x02K\x01}b.", 7)},
      {"holds an int, not a state_dict", std::string("\x80\x02K\x01.", 5)},
      {"entry 'k' is a list, not a tensor", "\x80\x02}" + unicode("k") + "]s."},
      {"persistent id is not", std::string("\x80\x02K\x01Q.", 6)},
      {"GLOBAL name is not terminated", std::string("\x80\x02" "ccollections", 14)},
  };
  for (const auto& [want, pickle] : cases) {
    const std::string e = fake_error(pickle);
    EXPECT_NE(e.find(want), std::string::npos) << "want '" << want << "', got: " << e;
  }
  // Nested deeper than any state_dict: refused, not a deep recursion when freed.
  std::string deep = "\x80\x02]";
  for (int i = 0; i < 100000; ++i) deep += "\x85";
  EXPECT_NE(fake_error(deep + ".").find("nested more than 32 deep"), std::string::npos);
}

TEST(TorchWeights, DamagedPicklesFailCleanly) {
  // Seeded byte changes all over the real data.pkl: each read succeeds or throws FileError,
  // never anything else (run under the sanitizers, never a crash or a leak either).
  const Members real = fixture_members();
  uint64_t state = 20250301;
  const auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  int refused = 0;
  for (int round = 0; round < 300; ++round) {
    Members m = real;
    std::string& pkl = member(m, "small_cnn_state_dict/data.pkl");
    for (int k = 0, n = 1 + static_cast<int>(next() % 4); k < n; ++k)
      pkl[next() % pkl.size()] = static_cast<char>(next() & 0xFF);
    const std::string path = write_zip("damaged.pt", m);
    try {
      read_torch_state_dict(path);
    } catch (const FileError& e) {
      ++refused;
      EXPECT_NE(std::string(e.what()).find("_damaged.pt"), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(refused, 150);  // most changes break it: the loop really fed damaged files
}

TEST(TorchWeights, BadTensorsAreRefused) {
  const auto err = [](const FakeTensor& t, const Members& extra = {{"a/data/0", floats(6)}}) {
    const std::string path = fake_file("bad_tensor.pt", state_dict_pickle({t}), extra);
    return error_of([&] { read_torch_state_dict(path); });
  };
  EXPECT_NE(err({.name = "t", .stride = {1, 2}}).find("tensor 't' is not contiguous (size [2,3], stride [1,2])"),
            std::string::npos);
  EXPECT_NE(err({.name = "t", .offset = 1}).find("offset 1 + 6 elements runs past its storage of 6"), std::string::npos);
  EXPECT_NE(err({.name = "t", .offset = -1}).find("runs past its storage"), std::string::npos);
  EXPECT_NE(err({.name = "t", .shape = {-2, -3}}).find("impossible size"), std::string::npos);
  EXPECT_NE(err({.name = "t", .shape = {1 << 30, 1 << 30, 1 << 30}, .stride = {0, 0, 0}}).find("impossible size"),
            std::string::npos);
  EXPECT_NE(err({.name = "t", .stride = {3}}).find("has size [2,3] but stride [3]"), std::string::npos);
  EXPECT_NE(err({.name = "t", .storage_numel = 1 << 30}).find("has 24 bytes, its 1073741824 float32 elements need"),
            std::string::npos);
  EXPECT_NE(err({.name = "t", .key = "7"}).find("its storage a/data/7 is missing from the archive"), std::string::npos);
  EXPECT_NE(err({.name = "t", .storage_type = "LongStorage", .storage_numel = 3}).find("holds int64 numbers"),
            std::string::npos);
  EXPECT_NE(err({.name = "t", .storage_type = "Storage"}).find("imports 'torch.Storage'"), std::string::npos);
  // An integer num_batches_tracked is skipped, not refused.
  const std::string nbt = fake_file("nbt.pt", state_dict_pickle({{.name = "bn.num_batches_tracked",
                                                                   .storage_type = "LongStorage",
                                                                   .storage_numel = 1, .shape = {}, .stride = {}}}),
                                    {{"a/data/0", std::string(8, '\0')}});
  EXPECT_EQ(read_torch_state_dict(nbt).skipped, std::vector<std::string>{"bn.num_batches_tracked"});
  // Many tensors over one storage may not multiply it without bound.
  std::vector<FakeTensor> many;
  for (int i = 0; i < 1000; ++i) many.push_back({.name = "t" + std::to_string(i)});
  const std::string dup = fake_file("dup.pt", state_dict_pickle(many));
  EXPECT_NE(error_of([&] { read_torch_state_dict(dup); }).find("read the same storages over and over"), std::string::npos);
  const std::string twice = fake_file("twice.pt", state_dict_pickle({{.name = "t"}, {.name = "t"}}));
  EXPECT_NE(error_of([&] { read_torch_state_dict(twice); }).find("tensor 't' appears twice"), std::string::npos);
}

TEST(TorchWeights, BadArchivesAreRefused) {
  Members m = fixture_members();
  m.erase(std::remove_if(m.begin(), m.end(), [](const auto& x) { return x.first == "small_cnn_state_dict/data/3"; }),
          m.end());
  const std::string no_storage = write_zip("no_storage.pt", m);
  EXPECT_NE(error_of([&] { read_torch_state_dict(no_storage); }).find("small_cnn_state_dict/data/3 is missing"),
            std::string::npos);
  m = fixture_members();
  member(m, "small_cnn_state_dict/data/0").pop_back();
  const std::string short_storage = write_zip("short_storage.pt", m);
  EXPECT_NE(error_of([&] { read_torch_state_dict(short_storage); }).find("storage data/0 has 143 bytes"),
            std::string::npos);
  m = fixture_members();
  m.emplace_back("small_cnn_state_dict/byteorder", "big");
  const std::string big = write_zip("big.pt", m);
  EXPECT_NE(error_of([&] { read_torch_state_dict(big); }).find("big-endian"), std::string::npos);
  m = fixture_members();
  member(m, "small_cnn_state_dict/version") = "99\n";
  const std::string version = write_zip("version.pt", m);
  EXPECT_NE(error_of([&] { read_torch_state_dict(version); }).find("serialization version '99'"), std::string::npos);
  const std::string no_pkl = write_zip("no_pkl.pt", {{"a/version", "3\n"}});
  EXPECT_NE(error_of([&] { read_torch_state_dict(no_pkl); }).find("without <archive>/data.pkl"), std::string::npos);
  const std::string text = write_file("text.pt", "hello, not a zip");
  EXPECT_NE(error_of([&] { read_torch_state_dict(text); }).find("is not a zip archive"), std::string::npos);
}

}  // namespace
}  // namespace kiln
