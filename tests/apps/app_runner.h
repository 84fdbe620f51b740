// Running the built apps from a test: the command line through /bin/sh under `timeout` (a hang
// fails the test instead of stalling ctest), its exit status and its output.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace kiln::testing_apps {

const std::string kApps = KILN_APPS_DIR;

struct Result {
  // The app's exit status; a crash shows as 128 + the signal number (the shell's convention),
  // a hang past the time limit as 124, a failure to run at all as -1.
  int status = -1;
  std::string output;  // stdout and stderr together
};

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::vector<std::string> read_lines(const std::filesystem::path& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(line);
  return lines;
}

// Runs `app args` (app in the build's apps/ folder) with its output captured in `log`.
inline Result run_app(const std::string& app, const std::string& args, const std::filesystem::path& log,
                      int time_limit_s = 600) {
  const std::string cmd = "timeout " + std::to_string(time_limit_s) + " '" + kApps + "/" + app + "' " + args +
                          " > '" + log.string() + "' 2>&1";
  const int raw = std::system(cmd.c_str());
  Result r;
  if (raw != -1 && WIFEXITED(raw)) r.status = WEXITSTATUS(raw);
  r.output = read_file(log);
  return r;
}

}  // namespace kiln::testing_apps
