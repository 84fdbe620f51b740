// Running the built apps from a test: the command line through /bin/sh under `timeout` (a hang
// fails the test instead of stalling ctest), its exit status and its output.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

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

// Runs `app args` (app in the build's apps/ folder) with its output captured in `log`;
// `env` ("NAME=value NAME2=value2", shell-quoted as needed) is set for it.
inline Result run_app(const std::string& app, const std::string& args, const std::filesystem::path& log,
                      int time_limit_s = 600, const std::string& env = "") {
  const std::string cmd = (env.empty() ? "" : "env " + env + " ") + "timeout " + std::to_string(time_limit_s) +
                          " '" + kApps + "/" + app + "' " + args + " > '" + log.string() + "' 2>&1";
  const int raw = std::system(cmd.c_str());
  Result r;
  if (raw != -1 && WIFEXITED(raw)) r.status = WEXITSTATUS(raw);
  r.output = read_file(log);
  return r;
}

// Starts `app args` in the background (through /bin/sh, which execs it, so the pid is the
// app's) with its output in `log`; -1 when fork fails.
inline pid_t start_app(const std::string& app, const std::string& args, const std::filesystem::path& log) {
  const std::string cmd = "exec '" + kApps + "/" + app + "' " + args + " > '" + log.string() + "' 2>&1";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Waits for a process start_app started: its exit status, 128 + the signal that killed it
// (the shell's convention), or -1.
inline int wait_status(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

// history.csv without its last column (seconds: wall time, which no resume can repeat).
inline std::vector<std::string> history_without_seconds(const std::filesystem::path& path) {
  std::vector<std::string> rows = read_lines(path);
  for (std::string& row : rows) row = row.substr(0, row.rfind(','));
  return rows;
}

}  // namespace kiln::testing_apps
