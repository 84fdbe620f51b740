// A small command-line parser for kiln's apps: declared flags with help text, `--help`,
// and a clear error (exit code 2) for unknown flags or bad values.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace kiln::cli {

class Args {
 public:
  Args(std::string program, std::string summary);

  // Declare flags before parse(). `value_name` empty means a boolean switch.
  Args& flag(const std::string& name, const std::string& help);
  Args& option(const std::string& name, const std::string& value_name, const std::string& help,
               const std::string& default_value = "");
  Args& positional(const std::string& name, const std::string& help, bool required = true);

  // Parses argv[first..]. On --help prints usage and exits 0; on error prints the problem
  // and usage to stderr and exits 2.
  void parse(int argc, char** argv, int first = 1);

  bool has(const std::string& name) const;  // switch given, or option given / defaulted
  std::string get(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  std::string usage() const;
  // Every flag given or defaulted, by name (a switch's value is empty).
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  struct Spec {
    std::string name, value_name, help, default_value;
    bool is_switch = false;
  };
  [[noreturn]] void fail(const std::string& message) const;

  std::string program_, summary_;
  std::vector<Spec> specs_;
  std::vector<Spec> positionals_;
  size_t required_positionals_ = 0;
  std::map<std::string, std::string> values_;
};

// Ends the process with a one-line error (exit status 1) when the work it guards has not
// finished within its time: libhdf5 can loop forever on some damaged files (found by
// fuzz_hdf5), and nothing can interrupt a call into it. The apps guard their reading of input
// files with it. KILN_READ_DEADLINE_SECONDS, when set, replaces every deadline (tests use a
// short one).
class Deadline {
 public:
  // program: the app's name for the message; what: the file being read.
  Deadline(std::string program, std::string what, int seconds);
  ~Deadline();  // the work finished: cancel
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// An error message made fit for one line of a terminal: line breaks become spaces, other
// control bytes and invalid text (a damaged file's bytes quoted by a parser) become '?', and
// anything past 500 characters is cut off with "...".
std::string one_line(const std::string& message);

}  // namespace kiln::cli
