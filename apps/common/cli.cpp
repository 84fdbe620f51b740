#include "apps/common/cli.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace kiln::cli {

Args::Args(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

Args& Args::flag(const std::string& name, const std::string& help) {
  specs_.push_back({name, "", help, "", true});
  return *this;
}

Args& Args::option(const std::string& name, const std::string& value_name, const std::string& help,
                   const std::string& default_value) {
  specs_.push_back({name, value_name, help, default_value, false});
  if (!default_value.empty()) values_[name] = default_value;
  return *this;
}

Args& Args::positional(const std::string& name, const std::string& help, bool required) {
  positionals_.push_back({name, "", help, "", false});
  if (required) ++required_positionals_;
  return *this;
}

std::string Args::usage() const {
  std::ostringstream os;
  os << "usage: " << program_;
  for (const Spec& p : positionals_) os << " " << p.name;
  if (!specs_.empty()) os << " [options]";
  os << "\n\n" << summary_ << "\n";
  if (!positionals_.empty()) {
    os << "\narguments:\n";
    for (const Spec& p : positionals_) os << "  " << p.name << "\n      " << p.help << "\n";
  }
  os << "\noptions:\n  --help\n      show this help and exit\n";
  for (const Spec& s : specs_) {
    os << "  --" << s.name << (s.is_switch ? "" : " " + s.value_name) << "\n      " << s.help;
    if (!s.default_value.empty()) os << " (default: " << s.default_value << ")";
    os << "\n";
  }
  return os.str();
}

void Args::fail(const std::string& message) const {
  std::cerr << program_ << ": " << message << "\n\n" << usage();
  std::exit(2);
}

void Args::parse(int argc, char** argv, int first) {
  size_t n_pos = 0;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << usage();
      std::exit(0);
    }
    if (a.rfind("--", 0) == 0) {
      std::string name = a.substr(2), value;
      const bool has_eq = name.find('=') != std::string::npos;
      if (has_eq) {
        value = name.substr(name.find('=') + 1);
        name = name.substr(0, name.find('='));
      }
      const Spec* spec = nullptr;
      for (const Spec& s : specs_)
        if (s.name == name) spec = &s;
      if (!spec) fail("unknown option --" + name);
      if (spec->is_switch) {
        if (has_eq) fail("--" + name + " takes no value");
        values_[name] = "1";
      } else {
        if (!has_eq) {
          if (i + 1 >= argc) fail("--" + name + " needs a value (" + spec->value_name + ")");
          value = argv[++i];
        }
        values_[name] = value;
      }
    } else {
      if (n_pos >= positionals_.size()) fail("unexpected argument '" + a + "'");
      values_[positionals_[n_pos++].name] = a;
    }
  }
  if (n_pos < required_positionals_) fail("missing argument " + positionals_[n_pos].name);
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

std::string Args::get(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::string() : it->second;
}

int64_t Args::get_int(const std::string& name) const {
  const std::string v = get(name);
  try {
    size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    fail("--" + name + " expects an integer, got '" + v + "'");
  }
}

double Args::get_double(const std::string& name) const {
  const std::string v = get(name);
  try {
    size_t used = 0;
    const double x = std::stod(v, &used);
    if (used != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    fail("--" + name + " expects a number, got '" + v + "'");
  }
}

namespace {

// While a Deadline is active, a crash (SIGSEGV, SIGBUS) can only come from reading the file it
// guards (libhdf5 crashes on some damaged files): say so in one line and exit 1 instead of
// dumping core. Only async-signal-safe calls in the handler; the message is prepared before.
std::atomic<const char*> g_crash_message{nullptr};
struct sigaction g_previous_segv {}, g_previous_bus {};

extern "C" void on_crash_while_reading(int sig) {
  const char* message = g_crash_message.load();
  if (message != nullptr) {
    const ssize_t ignored = ::write(2, message, std::strlen(message));
    (void)ignored;
    std::_Exit(1);
  }
  // Not reading: hand the signal to whoever handled it before (a sanitizer, or the default).
  sigaction(sig, sig == SIGSEGV ? &g_previous_segv : &g_previous_bus, nullptr);
  std::raise(sig);
}

void install_crash_handler() {
  static const bool installed = [] {
    struct sigaction action {};
    action.sa_handler = on_crash_while_reading;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &g_previous_segv);
    sigaction(SIGBUS, &action, &g_previous_bus);
    return true;
  }();
  (void)installed;
}

}  // namespace

struct Deadline::State {
  std::mutex mutex;
  std::condition_variable done;
  bool finished = false;
  std::string crash_message;
};

Deadline::Deadline(std::string program, std::string what, int seconds) : state_(std::make_shared<State>()) {
  state_->crash_message = program + ": error: " + what +
                          ": the HDF5 library crashed while reading it; the file is damaged\n";
  install_crash_handler();
  g_crash_message.store(state_->crash_message.c_str());
  if (const char* env = std::getenv("KILN_READ_DEADLINE_SECONDS"); env != nullptr && std::atoi(env) > 0)
    seconds = std::atoi(env);
  // The watcher holds the state, so it stays valid if the guarded work ends the process first.
  std::thread([state = state_, program = std::move(program), what = std::move(what), seconds] {
    std::unique_lock<std::mutex> lock(state->mutex);
    if (state->done.wait_for(lock, std::chrono::seconds(seconds), [&] { return state->finished; })) return;
    std::fprintf(stderr, "%s: error: %s: reading it has not finished after %d s; the file is probably damaged "
                         "(the HDF5 library loops on some damaged files)\n",
                 program.c_str(), what.c_str(), seconds);
    std::fflush(stderr);
    std::_Exit(1);
  }).detach();
}

Deadline::~Deadline() {
  g_crash_message.store(nullptr);
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->finished = true;
  }
  state_->done.notify_all();
}

std::string one_line(const std::string& message) {
  std::string out;
  for (const char ch : message) {
    const auto u = static_cast<unsigned char>(ch);
    if (ch == '\n' || ch == '\r' || ch == '\t') out += ' ';
    else if (u < 0x20 || u >= 0x7f) out += '?';  // kiln's own messages are ASCII
    else out += ch;
    if (out.size() >= 500) {
      out += "...";
      break;
    }
  }
  return out;
}

}  // namespace kiln::cli
