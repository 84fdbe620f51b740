// Hostile input, against the built apps: one case per way a file or a flag can be wrong. Every
// case must end with a normal exit (1 for a bad file, 2 for a bad command line), an error that
// names the file (or the flag) on one line, no hang, no huge allocation, and no output file
// written or overwritten: each app writes into an output directory that already holds a
// results.json from an earlier run, which must come through unchanged.
#include <gtest/gtest.h>
#include <H5Cpp.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "app_runner.h"
#include "core/io/h5_io.h"
#include "layers/activation.h"
#include "layers/add.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/flatten.h"
#include "layers/graph.h"
#include "layers/zoo/lab_models.h"
#include "layers/io/model_file.h"

namespace {

namespace fs = std::filesystem;
using kiln::testing_apps::read_file;
using kiln::testing_apps::Result;
using kiln::testing_apps::run_app;

const std::string kKeras = std::string(KILN_FIXTURE_DIR) + "/keras";
const std::string kOnnx = std::string(KILN_FIXTURE_DIR) + "/onnx";
const std::string kPrevious = "{\"from\": \"an earlier run\"}\n";

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// A valid MNIST-layout directory (20 test images, plain IDX), then variants of it.
void write_idx(const fs::path& dir, uint32_t image_magic = 0x803, uint32_t images = 20, uint32_t stored = 20,
               uint32_t labels = 20) {
  fs::create_directories(dir);
  std::string x = be32(image_magic) + be32(images) + be32(28) + be32(28);
  for (uint32_t i = 0; i < stored * 784; ++i) x += static_cast<char>((i * 37) % 256);
  write_bytes(dir / "t10k-images-idx3-ubyte", x);
  std::string y = be32(0x801) + be32(labels);
  for (uint32_t i = 0; i < labels; ++i) y += static_cast<char>(i % 10);
  write_bytes(dir / "t10k-labels-idx1-ubyte", y);
}

// One PCam split file of the course layout: x (N,H,W,C) uint8 and, unless images_only, y (N).
void write_pcam_file(const fs::path& path, hsize_t n, hsize_t c = 3, bool images_only = false,
                     H5::PredType x_type = H5::PredType::NATIVE_UINT8, hsize_t y_n = 0, hsize_t claimed_n = 0) {
  H5::H5File f(path.string(), H5F_ACC_TRUNC);
  const hsize_t dims[4] = {claimed_n ? claimed_n : n, 32, 32, c};
  if (claimed_n) {  // a header that claims far more images than the file holds
    H5::DSetCreatPropList chunked;
    const hsize_t chunk[4] = {1, 32, 32, c};
    chunked.setChunk(4, chunk);
    f.createDataSet("x", H5::PredType::NATIVE_UINT8, H5::DataSpace(4, dims), chunked);
  } else {
    std::vector<double> x(n * 32 * 32 * c);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>((i * 13) % 256);
    f.createDataSet("x", x_type, H5::DataSpace(4, dims)).write(x.data(), H5::PredType::NATIVE_DOUBLE);
  }
  if (images_only) return;
  const hsize_t yn = y_n ? y_n : n;
  std::vector<uint8_t> y(yn);
  for (size_t i = 0; i < yn; ++i) y[i] = static_cast<uint8_t>(i % 2);
  f.createDataSet("y", H5::PredType::NATIVE_UINT8, H5::DataSpace(1, &yn)).write(y.data(), H5::PredType::NATIVE_UINT8);
}

void write_pcam(const fs::path& dir) {
  fs::create_directories(dir);
  write_pcam_file(dir / "train.h5", 140);
  write_pcam_file(dir / "valid.h5", 40);
  write_pcam_file(dir / "test_x.h5", 10, 3, true);
}

struct Case {
  std::string name;
  std::string app;    // in build/apps
  std::string args;   // "{out}" stands for the case's output directory
  int status;         // 1: a bad file, 2: a bad command line
  std::string names;  // what the error must mention: the file or the flag
  std::string also{};  // when not empty: what the error's line must say besides
};

class HostileInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("kiln_hostile_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // Runs each case with an output directory that holds an earlier results.json.
  static void run_cases(const std::vector<Case>& cases) {
    for (const Case& c : cases) {
      SCOPED_TRACE(c.name);
      const fs::path out = dir_ / ("out_" + c.name);
      fs::create_directories(out);
      write_bytes(out / "results.json", kPrevious);
      std::string args = c.args;
      for (size_t at; (at = args.find("{out}")) != std::string::npos;) args.replace(at, 5, "'" + out.string() + "'");
      const Result r = run_app(c.app, args, dir_ / (c.name + ".log"), 120);
      EXPECT_EQ(r.status, c.status) << c.app << " " << args << "\n" << r.output;
      EXPECT_NE(r.output.find(c.names), std::string::npos) << "the error should name " << c.names << ":\n" << r.output;
      // The error is a line of its own that starts with the program's name: not a dump over
      // several lines, not a message from the C++ runtime.
      // A bad file: the last mention (progress lines may name the file before). A bad command
      // line: the first (the usage printed after the error lists every flag).
      const size_t at = c.status == 1 ? r.output.rfind(c.names) : r.output.find(c.names);
      if (at != std::string::npos) {
        const size_t line_start = r.output.rfind('\n', at) == std::string::npos ? 0 : r.output.rfind('\n', at) + 1;
        EXPECT_EQ(r.output.compare(line_start, c.app.size(), c.app), 0) << r.output;
        const std::string line = r.output.substr(line_start, r.output.find('\n', at) - line_start);
        EXPECT_NE(line.find(c.also), std::string::npos) << "the error should say " << c.also << ":\n" << r.output;
      }
      EXPECT_EQ(r.output.find("terminate called"), std::string::npos) << r.output;
      EXPECT_EQ(read_file(out / "results.json"), kPrevious) << "an earlier result was overwritten";
      size_t files = 0;
      for (const auto& e : fs::recursive_directory_iterator(out)) files += e.is_regular_file();
      EXPECT_EQ(files, 1u) << "the failed run left files in " << out;
    }
  }
  static fs::path dir_;
};
fs::path HostileInput::dir_;

TEST_F(HostileInput, MnistFiles) {
  const fs::path d = dir_ / "mnist";
  write_idx(d / "good");
  fs::create_directories(d / "missing");
  write_idx(d / "empty");
  write_bytes(d / "empty" / "t10k-images-idx3-ubyte", "");
  write_idx(d / "truncated", 0x803, 20, 7);
  write_idx(d / "huge", 0x803, 0xFFFFFFFFu, 20);  // 3.4e12 bytes claimed
  write_idx(d / "magic", 0x801);
  write_idx(d / "labels", 0x803, 20, 20, 12);
  write_idx(d / "gzip");
  fs::remove(d / "gzip" / "t10k-images-idx3-ubyte");
  write_bytes(d / "gzip" / "t10k-images-idx3-ubyte.gz", std::string("\x1f\x8b\x08\x00", 4) + std::string(100, 'x'));
  const std::string model = "'" + kKeras + "/keras3.1-convnet.h5' --json {out}/results.json --data-dir ";
  // The good directory evaluates, so the cases below fail for their file alone.
  const Result ok = run_app("kiln", "evaluate " + model.substr(0, model.find(" --json")) + " --data-dir '" +
                                        (d / "good").string() + "'", dir_ / "good.log");
  ASSERT_EQ(ok.status, 0) << ok.output;
  std::vector<Case> cases;
  for (const char* name : {"missing", "empty", "truncated", "huge", "magic", "labels", "gzip"})
    cases.push_back({std::string("idx_") + name, "kiln", "evaluate " + model + "'" + (d / name).string() + "'", 1,
                     (d / name).string() + (std::string(name) == "missing" ? ": no 't10k' images" : "/t10k-")});
  cases.push_back({"task1_no_training_files", "task1", "--data-dir '" + (d / "good").string() + "' --out {out}", 1,
                   "train-images-idx3-ubyte"});
  run_cases(cases);
}

TEST_F(HostileInput, PatchCamelyonFiles) {
  const fs::path d = dir_ / "pcam";
  auto variant = [&](const std::string& name, const std::function<void(const fs::path&)>& spoil) {
    write_pcam(d / name);
    spoil(d / name);
    return (d / name).string();
  };
  const std::string quick = "--quick --threads 1 --out {out} --data-dir ";
  std::vector<Case> cases = {
      {"pcam_missing_dir", "task3", quick + "'" + (d / "nowhere").string() + "'", 2, (d / "nowhere").string()},
      {"pcam_empty", "task3", quick + variant("empty", [](const fs::path& p) { write_bytes(p / "train.h5", ""); }), 1,
       "train.h5"},
      {"pcam_truncated", "task3",
       quick + variant("truncated", [](const fs::path& p) { fs::resize_file(p / "train.h5", fs::file_size(p / "train.h5") / 2); }),
       1, "train.h5"},
      {"pcam_text", "task3", quick + variant("text", [](const fs::path& p) { write_bytes(p / "valid.h5", "x,y\n1,2\n"); }), 1,
       "valid.h5"},
      {"pcam_float_pixels", "task3",
       quick + variant("float", [](const fs::path& p) { write_pcam_file(p / "train.h5", 140, 3, false, H5::PredType::NATIVE_DOUBLE); }),
       1, "train.h5"},
      {"pcam_label_count", "task3",
       quick + variant("labels", [](const fs::path& p) { write_pcam_file(p / "train.h5", 140, 3, false, H5::PredType::NATIVE_UINT8, 99); }),
       1, "train.h5"},
      {"pcam_huge_header", "task3",
       quick + variant("huge", [](const fs::path& p) {
         write_pcam_file(p / "train.h5", 140, 3, false, H5::PredType::NATIVE_UINT8, 140, 1000000000000ULL);
       }),
       1, "train.h5"},
      {"pcam_channels_differ", "task3",
       quick + variant("channels", [](const fs::path& p) { write_pcam_file(p / "valid.h5", 40, 2); }), 1, "valid.h5"},
      {"pcam_no_test_file", "task3", quick + variant("no_test", [](const fs::path& p) { fs::remove(p / "test_x.h5"); }), 1,
       "test"},
  };
  run_cases(cases);
}

TEST_F(HostileInput, ModelFiles) {
  const fs::path d = dir_ / "models";
  fs::create_directories(d);
  const std::string h5 = kKeras + "/keras3.1-convnet.h5", zip = kKeras + "/keras3.1-convnet.keras";
  const std::string h5_bytes = read_file(h5), zip_bytes = read_file(zip);
  write_bytes(d / "empty.h5", "");
  write_bytes(d / "text.h5", "this is not a model\n");
  write_bytes(d / "truncated.h5", h5_bytes.substr(0, h5_bytes.size() / 3));
  write_bytes(d / "truncated.keras", zip_bytes.substr(0, zip_bytes.size() / 2));
  std::string flipped = zip_bytes;  // damage inside the compressed entries: their CRCs catch it
  for (size_t i = 200; i < flipped.size(); i += 997) flipped[i] = static_cast<char>(~flipped[i]);
  write_bytes(d / "damaged.keras", flipped);
  // A config that asks for a layer of 10^12 units: refused before anything is allocated.
  fs::copy_file(h5, d / "huge_units.h5");
  {
    H5::H5File f((d / "huge_units.h5").string(), H5F_ACC_RDWR);
    std::string config = kiln::h5::read_string(f, "model_config", h5);
    const size_t at = config.find("\"units\": 10");
    ASSERT_NE(at, std::string::npos);
    config.replace(at, 11, "\"units\": 1000000000000");
    f.removeAttr("model_config");
    kiln::h5::write_string(f, "model_config", config);
  }
  // kiln's own model file of a version this kiln does not read.
  kiln::manual_seed(1);
  kiln::save_model((d / "v99.h5").string(), *kiln::task1_model(), {28, 28, 1});
  {
    H5::H5File f((d / "v99.h5").string(), H5F_ACC_RDWR);
    f.removeAttr("version");
    kiln::h5::write_int(f, "version", 99);
  }
  const std::string data = " --data-dir '" + std::string(KILN_TEST_DATA_DIR) + "/mnist' --json {out}/results.json";
  std::vector<Case> cases;
  for (const char* name : {"missing.h5", "empty.h5", "text.h5", "truncated.h5", "truncated.keras", "damaged.keras",
                           "huge_units.h5", "v99.h5"})
    cases.push_back({std::string("model_") + name, "kiln", "evaluate '" + (d / name).string() + "'" + data, 1,
                     (d / name).string()});
  cases.push_back({"convert_truncated", "kiln", "convert '" + (d / "truncated.h5").string() + "' {out}/converted.h5", 1,
                   (d / "truncated.h5").string()});
  run_cases(cases);
}

// ONNX files, each through every app that reads a model: summary, evaluate and convert.
TEST_F(HostileInput, OnnxFiles) {
  const fs::path d = dir_ / "onnx";
  fs::create_directories(d);
  const std::string fixture = kOnnx + "/small_cnn_opset13.onnx";
  const std::string bytes = read_file(fixture);
  ASSERT_GT(bytes.size(), 1000u);
  write_bytes(d / "truncated.onnx", bytes.substr(0, bytes.size() / 2));
  std::string noise(4096, '\0');  // the same bytes every run
  uint32_t state = 12345;
  for (char& c : noise) c = static_cast<char>((state = state * 1664525u + 1013904223u) >> 24);
  write_bytes(d / "random.onnx", noise);
  // Not ONNX, and no extension that says what it was meant to be: the error lists what kiln reads.
  write_bytes(d / "notes", "name,accuracy\ntask1,0.99\n");
  // Edits that keep the protobuf valid (a string replaced by one of the same length): an op
  // kiln does not import (names and references change alike), and an attribute it does not read.
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string b = bytes;
    size_t n = 0;
    for (size_t at = 0; (at = b.find(from, at)) != std::string::npos; at += to.size(), ++n) b.replace(at, from.size(), to);
    EXPECT_GT(n, 0u) << from << " is not in " << fixture;
    return b;
  };
  write_bytes(d / "unknown_op.onnx", replaced("Relu", "Relx"));
  write_bytes(d / "unknown_attribute.onnx", replaced("dilations", "dilatixns"));
  // The fixture itself goes through each app, so the cases below fail for their edit alone.
  const std::string data = " --data-dir '" + std::string(KILN_TEST_DATA_DIR) + "/mnist'";
  for (const std::string& args : {"summary '" + fixture + "'", "evaluate '" + fixture + "'" + data,
                                  "convert '" + fixture + "' '" + (d / "converted.h5").string() + "'"}) {
    const Result ok = run_app("kiln", args, dir_ / "onnx_good.log");
    ASSERT_EQ(ok.status, 0) << args << "\n" << ok.output;
  }
  const std::vector<std::pair<std::string, std::string>> files = {
      {"truncated.onnx", "not an ONNX model"},
      {"random.onnx", "not an ONNX model"},
      {"notes", "not a model file kiln reads"},
      {"unknown_op.onnx", "op Relx is not supported"},
      {"unknown_attribute.onnx", "attribute 'dilatixns' is not supported"},
  };
  std::vector<Case> cases;
  for (const auto& [name, says] : files) {
    const std::string path = (d / name).string();
    cases.push_back({"onnx_summary_" + name, "kiln", "summary '" + path + "'", 1, path, says});
    cases.push_back({"onnx_evaluate_" + name, "kiln", "evaluate '" + path + "' --json {out}/results.json" + data, 1, path, says});
    cases.push_back({"onnx_convert_" + name, "kiln", "convert '" + path + "' {out}/converted.h5", 1, path, says});
  }
  run_cases(cases);
}

// kiln model files of a Graph whose nodes do not form a graph kiln can run: a node that reads
// a later node (a cycle) and one that reads a node that does not exist. Each is refused on load,
// naming the node.
TEST_F(HostileInput, GraphModelFiles) {
  const fs::path d = dir_ / "graphs";
  fs::create_directories(d);
  // A small residual Graph (relu and conv2 meet in sum), saved with kiln's API.
  auto g = std::make_shared<kiln::Graph>();
  g->input("image");
  g->add("conv1", std::make_shared<kiln::Conv2D>(kiln::Conv2DOptions{.in_channels = 1, .filters = 2}), {"image"});
  g->add("relu", std::make_shared<kiln::ActivationLayer>(kiln::Activation::ReLU), {"conv1"});
  g->add("conv2", std::make_shared<kiln::Conv2D>(kiln::Conv2DOptions{.in_channels = 2, .filters = 2}), {"relu"});
  g->add("sum", std::make_shared<kiln::Add>(), {"relu", "conv2"});
  g->add("flatten", std::make_shared<kiln::Flatten>(), {"sum"});
  g->add("head", std::make_shared<kiln::Dense>(kiln::DenseOptions{.in_features = 28 * 28 * 2, .units = 10}), {"flatten"});
  kiln::manual_seed(1);
  const fs::path good = d / "graph.h5";
  kiln::save_model(good.string(), *g, {28, 28, 1}, "residual");
  const Result ok = run_app("kiln", "summary '" + good.string() + "'", dir_ / "graph_good.log");
  ASSERT_EQ(ok.status, 0) << ok.output;
  // Copies whose architecture attribute has relu's inputs (["conv1"]) rewritten.
  auto rewired = [&](const std::string& name, const std::string& inputs) {
    const fs::path path = d / name;
    fs::copy_file(good, path);
    H5::H5File f(path.string(), H5F_ACC_RDWR);
    std::string arch = kiln::h5::read_string(f, "architecture", path.string());
    const std::string from = "\"inputs\":[\"conv1\"]";
    const size_t at = arch.find(from);
    EXPECT_NE(at, std::string::npos) << arch;
    if (at != std::string::npos) arch.replace(at, from.size(), "\"inputs\":[" + inputs + "]");
    f.removeAttr("architecture");
    kiln::h5::write_string(f, "architecture", arch);
    return path.string();
  };
  const std::string cycle = rewired("cycle.h5", "\"sum\"");        // relu <- sum <- relu
  const std::string dangling = rewired("dangling.h5", "\"conv0\"");  // no node conv0
  const std::string data = " --data-dir '" + std::string(KILN_TEST_DATA_DIR) + "/mnist'";
  std::vector<Case> cases;
  for (const auto& [name, path, says] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"cycle", cycle, "node 'relu' takes 'sum'"}, {"dangling", dangling, "node 'relu' takes 'conv0'"}}) {
    cases.push_back({"graph_summary_" + name, "kiln", "summary '" + path + "'", 1, path, says});
    cases.push_back({"graph_evaluate_" + name, "kiln", "evaluate '" + path + "' --json {out}/results.json" + data, 1, path, says});
    cases.push_back({"graph_convert_" + name, "kiln", "convert '" + path + "' {out}/converted.h5 --to kiln", 1, path, says});
  }
  run_cases(cases);
}

// A file found by fuzz_hdf5 on which libhdf5 itself loops forever: the app's read deadline
// (shortened here through KILN_READ_DEADLINE_SECONDS) must end it with a clear error.
TEST_F(HostileInput, FileThatHangsTheHdf5Library) {
  const std::string hang = std::string(KILN_TEST_DATA_DIR) + "/hostile/hdf5-loops-forever.h5";
  ::setenv("KILN_READ_DEADLINE_SECONDS", "3", 1);
  run_cases({{"hdf5_hang", "kiln", "evaluate '" + hang + "' --json {out}/results.json", 1, hang + ": reading it has not finished"}});
  ::unsetenv("KILN_READ_DEADLINE_SECONDS");
}

TEST_F(HostileInput, CheckpointsAndResume) {
  const fs::path d = dir_ / "checkpoints";
  fs::create_directories(d / "no_args");
  fs::create_directories(d / "other_app");
  write_bytes(d / "other_app" / "args.json", "{\"app\": \"task3\", \"args\": []}");
  fs::create_directories(d / "bad_args");
  write_bytes(d / "bad_args" / "args.json", "{\"app\": \"task2\", \"ar");
  // A real run's checkpoint directory, then its checkpoint cut in half.
  const fs::path damaged = d / "damaged";
  const fs::path first_out = dir_ / "first_run";
  const Result first = run_app("task2",
                               "--quick --threads 1 --runs 1 --epochs 1 --valid-images 50 --test-images 50 --data-dir '" +
                                   std::string(KILN_TEST_DATA_DIR) + "/mnist' --out '" + first_out.string() +
                                   "' --checkpoint-dir '" + damaged.string() + "'",
                               dir_ / "first_run.log");
  ASSERT_EQ(first.status, 0) << first.output;
  const fs::path ckpt = damaged / "run1.ckpt.h5";
  ASSERT_TRUE(fs::exists(ckpt));
  fs::resize_file(ckpt, fs::file_size(ckpt) / 2);
  // The stored arguments name first_out as the output directory: give it an earlier result
  // that must survive the failed resume.
  write_bytes(first_out / "results.json", kPrevious);
  const Result resumed = run_app("task2", "--resume '" + damaged.string() + "'", dir_ / "resume_damaged.log");
  EXPECT_EQ(resumed.status, 1) << resumed.output;
  EXPECT_NE(resumed.output.find(ckpt.string()), std::string::npos) << resumed.output;
  EXPECT_EQ(read_file(first_out / "results.json"), kPrevious);

  std::vector<Case> cases = {
      {"resume_without_args", "task2", "--resume '" + (d / "no_args").string() + "'", 2, "args.json"},
      {"resume_other_app", "task2", "--resume '" + (d / "other_app").string() + "'", 2, "task3"},
      {"resume_bad_args", "task2", "--resume '" + (d / "bad_args").string() + "'", 2, "args.json"},
      {"resume_with_other_flags", "task2", "--resume '" + (d / "no_args").string() + "' --epochs 3 --out {out}", 2,
       "--resume"},
  };
  run_cases(cases);
}

TEST_F(HostileInput, CommandLines) {
  const std::string data = " --data-dir '" + std::string(KILN_TEST_DATA_DIR) + "/mnist' --out {out}";
  std::vector<Case> cases = {
      {"epochs_zero", "task1", "--epochs 0" + data, 2, "--epochs"},
      {"batch_overflow", "task2", "--batch-size 99999999999999999999999" + data, 2, "--batch-size"},
      {"threads_negative", "task1", "--threads -3" + data, 2, "--threads"},
      {"seed_text", "task2", "--seed abc" + data, 2, "--seed"},
      {"runs_text", "task3", "--runs many --out {out}", 2, "--runs"},
      {"unknown_flag", "task2", "--learning-rate 3" + data, 2, "--learning-rate"},
      {"missing_value", "task1", "--out {out} --epochs", 2, "--epochs"},
      {"every_without_dir", "task2", "--checkpoint-every 2" + data, 2, "--checkpoint-dir"},
      {"scale_text", "kiln", "evaluate '" + kKeras + "/keras3.1-convnet.h5' --scale half --json {out}/results.json", 2,
       "scale"},
      {"scale_nan", "kiln", "evaluate '" + kKeras + "/keras3.1-convnet.h5' --scale nan --json {out}/results.json", 2,
       "finite"},
      {"scale_inf", "kiln", "evaluate '" + kKeras + "/keras3.1-convnet.h5' --scale -inf --json {out}/results.json", 2,
       "finite"},
      {"shift_inf", "kiln", "evaluate '" + kKeras + "/keras3.1-convnet.h5' --shift inf --json {out}/results.json", 2,
       "--shift"},
      {"scale_overflow", "kiln", "evaluate '" + kKeras + "/keras3.1-convnet.h5' --scale 1e308/1e-308 --json {out}/results.json",
       2, "finite"},
      {"convert_to_unknown", "kiln", "convert '" + kKeras + "/keras3.1-convnet.h5' {out}/m.caffemodel --to caffe", 2, "--to"},
  };
  run_cases(cases);
}

}  // namespace
