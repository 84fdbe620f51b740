// The write-fault suite: the built apps under tests/apps/fault_shim.c (LD_PRELOAD), which
// makes the N-th call that puts data on disk (write, writev, fsync, fdatasync, rename) and
// every later one fail with ENOSPC or EIO, as a disk that fills up or fails. A run without
// faults first counts the calls and records which file each one wrote; then every N up to
// that count is injected. Each time the app must either succeed (only where the fault hit a
// call kiln deliberately ignores: the directory fsync after a rename, which loses nothing) or
// exit 1 with one error line naming the file it was writing; it must never crash, never leave
// a temporary file, and every file it left must read back whole. A task2 run that stopped
// on a fault then resumes from its checkpoint to exactly the result of a run that never
// failed. The test prints its table: for each file and fault, what happened.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app_runner.h"
#include "core/io/png_image.h"
#include "layers/io/model_file.h"
#include "optim/train/checkpoint.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using kiln::testing_apps::history_without_seconds;
using kiln::testing_apps::read_file;
using kiln::testing_apps::read_lines;
using kiln::testing_apps::Result;
using kiln::testing_apps::run_app;
const std::string kData = KILN_TEST_DATA_DIR;
const std::string kShim = KILN_FAULT_SHIM;

struct Call {
  long n = 0;
  std::string op;    // write, writev, fsync, fdatasync, rename
  std::string file;  // the destination the call served (a temporary file's final name)
  bool directory = false;
};

// ".name.tmp-<pid>-<k>" (core/io/write_atomically.cpp's temporary) -> "name", same folder.
fs::path destination_of(const fs::path& p) {
  const std::string name = p.filename().string();
  const size_t tmp = name.find(".tmp-");
  if (name.size() > 1 && name[0] == '.' && tmp != std::string::npos) return p.parent_path() / name.substr(1, tmp - 1);
  return p;
}

std::vector<Call> read_calls(const fs::path& log) {
  std::vector<Call> calls;
  for (const std::string& line : read_lines(log)) {
    std::istringstream in(line);
    Call c;
    in >> c.n >> c.op;
    std::string rest;
    std::getline(in, rest);
    rest = rest.substr(rest.find_first_not_of(' '));
    if (c.op == "rename") rest = rest.substr(rest.find(" -> ") + 4);
    c.directory = fs::is_directory(rest);
    c.file = destination_of(rest).string();
    calls.push_back(c);
  }
  return calls;
}

// What the file is, for the table.
std::string kind_of(const Call& c) {
  if (c.directory) return "(directory entry)";
  const std::string name = fs::path(c.file).filename().string();
  if (name.find(".ckpt.h5") != std::string::npos) return "checkpoint";
  return name;
}

std::string env_for(long at, int err, const fs::path& log) {
  // ASan (the sanitizer stage) wants its runtime first among the loaded libraries; the shim
  // comes first by design.
  const char* asan = std::getenv("ASAN_OPTIONS");
  return "LD_PRELOAD='" + kShim + "' KILN_FAULT_AT=" + std::to_string(at) + " KILN_FAULT_ERRNO=" +
         std::to_string(err) + (log.empty() ? "" : " KILN_FAULT_LOG='" + log.string() + "'") +
         " ASAN_OPTIONS='verify_asan_link_order=0:" + (asan ? asan : "") + "'";
}

std::vector<std::string> error_lines(const std::string& output) {
  std::vector<std::string> lines;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);)
    if (line.find("error") != std::string::npos) lines.push_back(line);
  return lines;
}

// Every file under dir reads back: no temporaries, JSON parses, checkpoints and model files
// load, PNGs decode.
void expect_whole(const fs::path& dir, const std::string& context) {
  if (!fs::exists(dir)) return;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    const std::string path = e.path().string();
    EXPECT_EQ(name.find(".tmp-"), std::string::npos) << context << ": temporary left: " << path;
    try {
      if (name.size() > 5 && name.substr(name.size() - 5) == ".json") {
        std::ifstream f(path);
        const json parsed = json::parse(f);
        EXPECT_FALSE(parsed.is_null()) << context << ": " << path;
      } else if (name.find(".ckpt.h5") != std::string::npos) {
        (void)kiln::read_checkpoint(path);
      } else if (name == "model.h5") {
        (void)kiln::load_model(path);
      } else if (name.size() > 4 && name.substr(name.size() - 4) == ".png") {
        (void)kiln::read_png(path);
      } else if (name.size() > 4 && name.substr(name.size() - 4) == ".csv") {
        const std::vector<std::string> lines = read_lines(path);
        EXPECT_FALSE(lines.empty()) << context << ": empty " << path;
        const std::string text = read_file(path);
        EXPECT_TRUE(!text.empty() && text.back() == '\n') << context << ": " << path << " does not end in a newline";
      }
    } catch (const std::exception& ex) {
      ADD_FAILURE() << context << ": " << path << " does not read back: " << ex.what();
    }
  }
}

// outcome table: kind -> fault -> outcomes seen
using Table = std::map<std::string, std::map<std::string, std::set<std::string>>>;

void print_table(const std::string& title, const Table& table) {
  std::cout << "\n" << title << "\n| file | fault | what happened |\n|---|---|---|\n";
  for (const auto& [kind, faults] : table)
    for (const auto& [fault, outcomes] : faults) {
      std::string text;
      for (const std::string& o : outcomes) text += (text.empty() ? "" : "; ") + o;
      std::cout << "| " << kind << " | " << fault << " | " << text << " |\n";
    }
}

class WriteFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_faults_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_TRUE(fs::exists(kShim)) << kShim;
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Runs `args` (writing under its work folder) once to count, then with a fault at every
  // call (or every call `select` picks) for each errno. `prepare` puts files in a work folder
  // first; `after` checks what a failed run left (and may resume it).
  void inject_every_call(const std::string& app, const std::function<std::string(const fs::path& work)>& args,
                         const std::vector<int>& errnos, const std::string& title,
                         const std::function<void(const fs::path& work, const std::string& context, int err)>& after = {},
                         const std::function<void(const fs::path& work)>& prepare = {},
                         const std::function<bool(const Call&)>& select = {}) {
    const fs::path counting = dir_ / "count";
    fs::create_directories(counting);
    if (prepare) prepare(counting);
    const fs::path log = dir_ / "count.calls";
    const Result clean = run_app(app, args(counting), dir_ / "count.log", 600, env_for(0, ENOSPC, log));
    ASSERT_EQ(clean.status, 0) << clean.output;
    const std::vector<Call> calls = read_calls(log);
    ASSERT_FALSE(calls.empty()) << "the shim saw no writes: is it loaded?";
    std::cout << app << ": " << calls.size() << " calls that write\n";
    Table table;
    for (int err : errnos) {
      for (const Call& call : calls) {
        if (select && !select(call)) continue;
        const fs::path work = dir_ / ("at" + std::to_string(call.n) + "_" + std::to_string(err));
        fs::create_directories(work);
        if (prepare) prepare(work);
        const std::string context = app + " with " + std::strerror(err) + " from call " + std::to_string(call.n) +
                                    " (" + call.op + " for " + call.file + ")";
        const Result r = run_app(app, args(work), work / "run.log", 600, env_for(call.n, err, ""));
        const std::vector<std::string> errors = error_lines(r.output);
        std::string outcome;
        if (r.status == 0) {
          // Only the directory's fsync may fail without a word: the file is in place by then.
          EXPECT_TRUE(call.op == "fsync" && call.directory) << context << " succeeded:\n" << r.output;
          outcome = "ignored: the file is in place, only the flush of its directory entry is unconfirmed";
        } else {
          EXPECT_EQ(r.status, 1) << context << ":\n" << r.output;
          EXPECT_EQ(errors.size(), 1u) << context << ":\n" << r.output;
          // The error names the file being written, as given on the command line or below it.
          const std::string expected = call.directory ? "" : fs::path(call.file).filename().string();
          if (!errors.empty() && !expected.empty())
            EXPECT_NE(errors[0].find(expected), std::string::npos) << context << ": " << errors[0];
          outcome = call.directory ? "ignored; the next call (they all fail from here) ends in exit 1 naming its file"
                                   : "exit 1, one line naming the file";
        }
        expect_whole(work, context);
        if (after && r.status != 0) after(work, context, err);
        const std::string fault = std::string(err == ENOSPC ? "ENOSPC" : "EIO") + " on " + call.op;
        table[kind_of(call)][fault].insert(outcome);
        if (!HasFailure()) fs::remove_all(work);
      }
    }
    print_table(title, table);
  }

  fs::path dir_;
};

TEST_F(WriteFaults, Task2CheckpointsModelResultsHistoryAndPlot) {
  const std::string common = "--quick --threads 1 --runs 1 --epochs 2 --validation-freq 1 --train-images 32 "
                             "--valid-images 64 --test-images 64 --checkpoint-every 1 --data-dir '" + kData + "/mnist'";
  auto args = [&](const fs::path& work) {
    return common + " --out '" + (work / "out").string() + "' --checkpoint-dir '" + (work / "ckpt").string() + "'";
  };
  const fs::path ref = dir_ / "ref";
  ASSERT_EQ(run_app("task2", args(ref), dir_ / "ref.log").status, 0);
  const json want = [&] {
    std::ifstream f(ref / "out" / "results.json");
    return json::parse(f);
  }();
  // A run a fault stopped resumes (no faults now) to the result of the run that never failed.
  // (After the ENOSPC faults; the errno makes no difference to what is on disk.)
  auto resume = [&](const fs::path& work, const std::string& context, int err) {
    if (err != ENOSPC || !fs::exists(work / "ckpt" / "args.json")) return;  // nothing resumable yet
    const Result r = run_app("task2", "--resume '" + (work / "ckpt").string() + "'", work / "resume.log");
    ASSERT_EQ(r.status, 0) << context << ", then --resume:\n" << r.output;
    std::ifstream f(work / "out" / "results.json");
    const json got = json::parse(f);
    EXPECT_EQ(got["runs"][0]["train"], want["runs"][0]["train"]) << context;
    EXPECT_EQ(got["runs"][0]["test"], want["runs"][0]["test"]) << context;
    EXPECT_EQ(history_without_seconds(work / "out" / "run1" / "history.csv"),
              history_without_seconds(ref / "out" / "run1" / "history.csv"))
        << context;
  };
  inject_every_call("task2", args, {ENOSPC, EIO}, "task2", resume);
}

TEST_F(WriteFaults, Task3Predictions) {
  auto args = [&](const fs::path& work) {
    return "--quick --threads 1 --runs 1 --epochs 1 --train-images 140 --valid-images 70 --data-dir '" + kData +
           "/pcam' --out '" + (work / "out").string() + "'";
  };
  // task2 covers the writers task3 shares with it; here the calls for predictions.csv.
  // (A run takes a while, and the directory-entry flush behaves as everywhere else.)
  auto predictions = [](const Call& c) { return !c.directory && fs::path(c.file).filename() == "predictions.csv"; };
  inject_every_call("task3", args, {ENOSPC}, "task3 (predictions.csv)", {}, {}, predictions);
}

TEST_F(WriteFaults, KilnConvertKeepsThePreviousFile) {
  const std::string keras = std::string(KILN_FIXTURE_DIR) + "/keras/keras3.1-convnet.h5";
  const std::string previous = "the previous file\n";
  auto prepare = [&](const fs::path& work) { std::ofstream(work / "m.h5", std::ios::binary) << previous; };
  for (const std::string to : {"kiln", "keras", "onnx"}) {
    auto args = [&](const fs::path& work) {
      return "convert '" + keras + "' '" + (work / "m.h5").string() + "' --to " + to;
    };
    auto unchanged = [&](const fs::path& work, const std::string& context, int) {
      EXPECT_EQ(read_file(work / "m.h5"), previous) << context << ": the previous file changed";
    };
    SCOPED_TRACE("--to " + to);
    inject_every_call("kiln", args, {ENOSPC, EIO}, "kiln convert --to " + to, unchanged, prepare);
    fs::remove_all(dir_ / "count");
  }
}

// `kiln data mnist` copying the real files from a local source (KILN_MNIST_SOURCE, or the
// data/mnist the main job fetches): every file is checked against its SHA-256, so this needs
// the real MNIST files, not the committed slice.
TEST_F(WriteFaults, KilnDataMnist) {
  std::string source = std::getenv("KILN_MNIST_SOURCE") ? std::getenv("KILN_MNIST_SOURCE") : "";
  if (source.empty()) source = (fs::path(kData).parent_path().parent_path() / "data" / "mnist").string();
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"})
    if (!fs::exists(fs::path(source) / f))
      GTEST_SKIP() << "no real MNIST files at " << source << " (set KILN_MNIST_SOURCE to a directory with them)";
  auto args = [&](const fs::path& work) { return "data mnist --dir '" + (work / "mnist").string() + "'"; };
  ::setenv("KILN_MNIST_SOURCE", source.c_str(), 1);  // the apps' runs inherit it
  inject_every_call("kiln", args, {ENOSPC}, "kiln data mnist");
}

}  // namespace
