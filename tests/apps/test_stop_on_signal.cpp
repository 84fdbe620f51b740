// SIGTERM and SIGINT while an app trains (apps/common/stop_on_signal.h), against the built
// task2: the first signal stops after the current step with exit status 128 + signal and one
// line saying how to go on; with --checkpoint-dir the checkpoint of that moment (inside an
// epoch) resumes to exactly the result of a run that was never stopped; a second signal ends
// the process at once.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "app_runner.h"
#include "optim/train/checkpoint.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using kiln::testing_apps::history_without_seconds;
using kiln::testing_apps::read_file;
using kiln::testing_apps::Result;
using kiln::testing_apps::run_app;
const std::string kData = KILN_TEST_DATA_DIR;

// Long enough (30 epochs of 8 steps) that the signals land while it trains.
const std::string kArgs = "--quick --threads 1 --runs 1 --epochs 30 --validation-freq 5 --valid-images 200 "
                          "--test-images 300 --data-dir '" + kData + "/mnist'";

class StopOnSignal : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_signal_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Starts task2 with `args`, waits until its log shows epoch `epoch` finished, sends the
  // signals one right after the other and returns the exit status (128 + signal for a
  // process the signal killed, as a shell reports it) and the log.
  Result run_and_signal(const std::string& args, const std::vector<int>& signals, int epoch = 3) {
    const fs::path log = dir_ / "signal.log";
    Result r;
    const pid_t pid = kiln::testing_apps::start_app("task2", args, log);
    if (pid < 0) return r;
    // Only a guard against a hang, not a timing assertion: the epochs take well under a second.
    const std::string mark = "epoch " + std::to_string(epoch) + "/30 [";
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (read_file(log).find(mark) == std::string::npos && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (int sig : signals) ::kill(pid, sig);
    r.status = kiln::testing_apps::wait_status(pid);
    r.output = read_file(log);
    return r;
  }

  fs::path dir_;
};

json read_json(const fs::path& path) {
  std::ifstream f(path);
  return json::parse(f);
}

TEST_F(StopOnSignal, SigtermWritesACheckpointInsideTheEpochThatResumesToTheSameResult) {
  const fs::path ref = dir_ / "ref", out = dir_ / "out", ckpt = dir_ / "ckpt";
  const Result whole = run_app("task2", kArgs + " --out '" + ref.string() + "'", dir_ / "ref.log");
  ASSERT_EQ(whole.status, 0) << whole.output;

  const Result stopped = run_and_signal(kArgs + " --out '" + out.string() + "' --checkpoint-dir '" + ckpt.string() + "'",
                                        {SIGTERM});
  ASSERT_EQ(stopped.status, 143) << stopped.output;
  EXPECT_NE(stopped.output.find("task2: stopped by SIGTERM in run 1 at epoch "), std::string::npos) << stopped.output;
  EXPECT_NE(stopped.output.find("go on with: task2 --resume " + ckpt.string()), std::string::npos) << stopped.output;
  EXPECT_FALSE(fs::exists(out / "results.json")) << "a stopped run must not write final results";
  const kiln::Checkpoint c = kiln::read_checkpoint((ckpt / "run1.ckpt.h5").string());
  EXPECT_GE(c.epochs_done, 3);
  EXPECT_LT(c.epochs_done, 30);

  const Result resumed = run_app("task2", "--resume '" + ckpt.string() + "'", dir_ / "resume.log");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;
  const json a = read_json(ref / "results.json"), b = read_json(out / "results.json");
  EXPECT_EQ(a["runs"][0]["train"], b["runs"][0]["train"]);
  EXPECT_EQ(a["runs"][0]["test"], b["runs"][0]["test"]);
  EXPECT_EQ(history_without_seconds(ref / "run1" / "history.csv"), history_without_seconds(out / "run1" / "history.csv"));
}

TEST_F(StopOnSignal, SigintWithoutCheckpointsSaysNothingWasSaved) {
  const Result stopped = run_and_signal(kArgs + " --out '" + (dir_ / "out").string() + "'", {SIGINT}, 2);
  EXPECT_EQ(stopped.status, 130) << stopped.output;
  EXPECT_NE(stopped.output.find("task2: stopped by SIGINT"), std::string::npos) << stopped.output;
  EXPECT_NE(stopped.output.find("nothing was saved (start with --checkpoint-dir DIR"), std::string::npos)
      << stopped.output;
}

TEST_F(StopOnSignal, ASecondSignalStopsAtOnce) {
  // SIGINT, then SIGTERM before the first step can end: two kinds, so neither merges into the
  // other while pending. The second ends the process at once, with its own status.
  const fs::path ckpt = dir_ / "ckpt";
  const Result stopped = run_and_signal(kArgs + " --out '" + (dir_ / "out").string() + "' --checkpoint-dir '" +
                                            ckpt.string() + "'",
                                        {SIGINT, SIGTERM});
  EXPECT_EQ(stopped.status, 143) << stopped.output;
  EXPECT_NE(stopped.output.find("task2: second signal: stopped at once"), std::string::npos) << stopped.output;
  EXPECT_EQ(stopped.output.find("checkpoint written to"), std::string::npos) << stopped.output;
  // Whatever checkpoint is on disk (the run starts without one) is whole.
  if (fs::exists(ckpt / "run1.ckpt.h5")) EXPECT_NO_THROW(kiln::read_checkpoint((ckpt / "run1.ckpt.h5").string()));
}

}  // namespace
