// make_pcam96: writes a PatchCamelyon directory in the original release's layout and size
// (camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5, uint8 96x96x3 patches, 262,144
// training rows by default: 7.2 GB) from a small original-layout slice, for proving that
// training streams a file of the real size in bounded memory (README "Scale") without the
// real release, which is not reachable here.
//
// Row i of a split is row (i mod S) of the source's S patches, turned by one of the eight
// rotations and mirrors of the square and brightened by -10..10 grey levels, both drawn from
// (seed, split, i); its label is the source row's. The content repeats, so the file measures
// I/O, memory and speed, not what a network can learn from PatchCamelyon.
//
// Files are written chunked (32 rows per chunk, gzip level --gzip) under a temporary name and
// renamed when complete, so an interrupted run leaves no file that looks finished.
#include <H5Cpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/runtime/random.h"
#include "data/formats/pcam.h"

namespace {

using namespace kiln;
namespace fs = std::filesystem;

constexpr int64_t kSide = 96, kChannels = 3, kRow = kSide * kSide * kChannels;
constexpr hsize_t kChunkRows = 32;
constexpr int64_t kWriteRows = 1024;

void usage(FILE* out) {
  std::fprintf(out,
               "usage: make_pcam96 --out DIR [--source DIR] [--train N] [--valid N] [--test N] [--gzip 0-9] [--seed S]\n"
               "  Writes a 96x96 PatchCamelyon directory in the original release's layout, made from the\n"
               "  original-layout 'valid' slice (camelyonpatch_level_2_split_valid_{x,y}.h5) in --source (default tests/testdata/pcam, 32 patches).\n"
               "  --train N   training rows (default 262144, the release's size: 7.2 GB of pixels)\n"
               "  --valid N   validation rows (default 1024); --test N: test rows (default 1024)\n"
               "  --gzip L    deflate level of the chunks, 0 = none (default 1)\n"
               "  --seed S    draws of the turns and brightness (default 1)\n");
}

// Dihedral transform d (0..7) of a square image: output (y, x) takes input at the mapped place.
void turn(const uint8_t* in, int d, int brightness, uint8_t* out) {
  for (int64_t y = 0; y < kSide; ++y)
    for (int64_t x = 0; x < kSide; ++x) {
      int64_t sy = y, sx = x;
      if (d & 1) std::swap(sy, sx);
      if (d & 2) sy = kSide - 1 - sy;
      if (d & 4) sx = kSide - 1 - sx;
      const uint8_t* p = in + (sy * kSide + sx) * kChannels;
      uint8_t* q = out + (y * kSide + x) * kChannels;
      for (int64_t c = 0; c < kChannels; ++c) q[c] = static_cast<uint8_t>(std::clamp(p[c] + brightness, 0, 255));
    }
}

void write_split(const std::string& dir, const std::string& split, int64_t n, const ImageSet& source, int gzip,
                 uint64_t seed) {
  const std::string x_path = dir + "/camelyonpatch_level_2_split_" + split + "_x.h5";
  const std::string y_path = dir + "/camelyonpatch_level_2_split_" + split + "_y.h5";
  const auto start = std::chrono::steady_clock::now();
  std::vector<uint8_t> labels(static_cast<size_t>(n));
  {
    H5::H5File file(x_path + ".partial", H5F_ACC_TRUNC);
    const hsize_t dims[4] = {hsize_t(n), kSide, kSide, kChannels};
    H5::DSetCreatPropList plist;
    const hsize_t chunk[4] = {std::min<hsize_t>(kChunkRows, hsize_t(n)), kSide, kSide, kChannels};
    plist.setChunk(4, chunk);
    if (gzip > 0) plist.setDeflate(gzip);
    H5::DataSet x = file.createDataSet("x", H5::PredType::STD_U8LE, H5::DataSpace(4, dims), plist);
    std::vector<uint8_t> block(static_cast<size_t>(kWriteRows * kRow));
    const uint64_t split_seed = mix64(seed ^ mix64(std::hash<std::string>{}(split)));
    for (int64_t begin = 0; begin < n; begin += kWriteRows) {
      const int64_t rows = std::min(kWriteRows, n - begin);
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t r = begin + i;
        const uint64_t draw = mix64(split_seed ^ static_cast<uint64_t>(r));
        const int64_t src = r % source.n;
        turn(source.pixels.data() + src * kRow, static_cast<int>(draw & 7), static_cast<int>((draw >> 8) % 21) - 10,
             block.data() + i * kRow);
        labels[r] = static_cast<uint8_t>(source.labels[src]);
      }
      const hsize_t offset[4] = {hsize_t(begin), 0, 0, 0};
      const hsize_t count[4] = {hsize_t(rows), kSide, kSide, kChannels};
      H5::DataSpace file_space = x.getSpace();
      file_space.selectHyperslab(H5S_SELECT_SET, count, offset);
      x.write(block.data(), H5::PredType::NATIVE_UINT8, H5::DataSpace(4, count), file_space);
      if ((begin / kWriteRows) % 16 == 15 || begin + rows == n) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("\r  %s: %lld / %lld rows, %.0f rows/s", split.c_str(), static_cast<long long>(begin + rows),
                    static_cast<long long>(n), static_cast<double>(begin + rows) / s);
        std::fflush(stdout);
      }
    }
  }
  {
    H5::H5File file(y_path + ".partial", H5F_ACC_TRUNC);
    const hsize_t dims[4] = {hsize_t(n), 1, 1, 1};
    H5::DataSet y = file.createDataSet("y", H5::PredType::STD_U8LE, H5::DataSpace(4, dims));
    y.write(labels.data(), H5::PredType::NATIVE_UINT8);
  }
  fs::rename(x_path + ".partial", x_path);
  fs::rename(y_path + ".partial", y_path);
  std::printf("\n  wrote %s (%.2f GB) and %s\n", x_path.c_str(), static_cast<double>(fs::file_size(x_path)) / 1e9,
              y_path.c_str());
}

int run(int argc, char** argv) {
  std::string out, source = KILN_SOURCE_DIR "/tests/testdata/pcam";
  int64_t train = 262144, valid = 1024, test = 1024;
  int gzip = 1;
  uint64_t seed = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "make_pcam96: %s needs a value\n", a.c_str());
      usage(stderr);
      return 2;
    }
    const std::string v = argv[++i];
    try {
      if (a == "--out") out = v;
      else if (a == "--source") source = v;
      else if (a == "--train") train = std::stoll(v);
      else if (a == "--valid") valid = std::stoll(v);
      else if (a == "--test") test = std::stoll(v);
      else if (a == "--gzip") gzip = std::stoi(v);
      else if (a == "--seed") seed = std::stoull(v);
      else {
        std::fprintf(stderr, "make_pcam96: unknown option %s\n", a.c_str());
        usage(stderr);
        return 2;
      }
    } catch (const std::logic_error&) {
      std::fprintf(stderr, "make_pcam96: %s '%s' is not a number\n", a.c_str(), v.c_str());
      return 2;
    }
  }
  if (out.empty() || train < 1 || valid < 1 || test < 1 || gzip < 0 || gzip > 9) {
    std::fprintf(stderr, "make_pcam96: needs --out DIR, row counts >= 1 and --gzip 0-9\n");
    usage(stderr);
    return 2;
  }
  const PcamReader reader(PcamFiles{.layout = PcamLayout::Original,
                                    .x_path = source + "/camelyonpatch_level_2_split_valid_x.h5",
                                    .y_path = source + "/camelyonpatch_level_2_split_valid_y.h5"});
  if (reader.stored_height() != kSide || reader.stored_width() != kSide || reader.channels() != kChannels) {
    std::fprintf(stderr, "make_pcam96: %s holds %lldx%lldx%lld patches, not 96x96x3 (the original layout's)\n",
                 reader.files().x_path.c_str(), static_cast<long long>(reader.stored_height()),
                 static_cast<long long>(reader.stored_width()), static_cast<long long>(reader.channels()));
    return 1;
  }
  ImageSet patches;
  patches.n = reader.count();
  patches.h = patches.w = kSide;
  patches.c = kChannels;
  patches.pixels.resize(static_cast<size_t>(patches.n * kRow));
  patches.labels.resize(static_cast<size_t>(patches.n));
  reader.read(0, patches.n, patches.pixels.data(), patches.labels.data());
  fs::create_directories(out);
  std::printf("make_pcam96: %lld source patches from %s -> %s (train %lld, valid %lld, test %lld rows, gzip %d)\n",
              static_cast<long long>(patches.n), reader.files().x_path.c_str(), out.c_str(),
              static_cast<long long>(train), static_cast<long long>(valid), static_cast<long long>(test), gzip);
  write_split(out, "train", train, patches, gzip, seed);
  write_split(out, "valid", valid, patches, gzip, seed);
  write_split(out, "test", test, patches, gzip, seed);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    H5::Exception::dontPrint();
    return run(argc, argv);
  } catch (const H5::Exception& e) {
    std::fprintf(stderr, "make_pcam96: HDF5 error in %s: %s\n", e.getFuncName().c_str(), e.getDetailMsg().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_pcam96: %s\n", e.what());
  }
  return 1;
}
