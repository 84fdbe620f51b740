#include "data/stream/streaming_dataset.h"

#include <H5Cpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/runtime/random.h"
#include "data/dataset.h"

namespace kiln {
namespace {

// Rows per contiguous read at least: small HDF5 chunks are grouped so a read is not dominated
// by per-call overhead.
constexpr int64_t kMinBlockRows = 64;
constexpr uint64_t kWindowStream = 0x77696e646f77ULL;  // salt of the in-window shuffles

// Where the epoch is: which window, and which row of it comes next.
struct EpochPlan {
  std::vector<int64_t> blocks;  // block ids in reading order
  int64_t blocks_per_window = 1;
  int64_t next_block = 0;       // first block of the next window to read
  std::vector<int64_t> window;  // file rows of the current window, in visiting order
  int64_t window_cursor = 0;
  int64_t rows_left = 0;        // rows of the epoch not yet put into a batch
};

// A prefetched batch: its buffers, filled by the reader, handed out as views.
struct Slot {
  Tensor x, y;  // [batch,H,W,C], [batch,K]
  std::vector<int32_t> labels;
  std::vector<int64_t> indices;
};

}  // namespace

struct StreamingDataset::Impl {
  Impl(PcamReader r, const StreamOptions& options) : reader(std::move(r)), o(options) {}

  PcamReader reader;
  StreamOptions o;
  int64_t n = 0, row_bytes = 0, k = 0;
  bool labelled = false;
  int64_t block_rows = 0, window_rows = 0;
  std::vector<uint8_t> window_pixels;  // window_rows * row_bytes
  std::vector<int64_t> window_file_rows;   // file row at each window position: the block layout
  uint64_t fingerprint = 0;

  std::vector<Slot> slots;
  EpochPlan plan;
  int64_t epoch = 0;

  // Between the reader thread and the caller.
  std::mutex mutex;
  std::condition_variable changed;
  int64_t produced = 0, consumed = 0;  // batches of this epoch filled / released by the caller
  bool producer_done = false, cancel = false;
  std::exception_ptr error;
  std::thread producer;
  bool holding = false;  // the caller holds slot consumed % slots.size()
  Batch current;
  std::atomic<int64_t> windows_read{0};  // over the dataset's life

  int64_t blocks() const { return (n + block_rows - 1) / block_rows; }

  // Reads the next window of the plan into window_pixels and orders its rows.
  void read_window() {
    const int64_t first = plan.next_block;
    const int64_t last = std::min<int64_t>(first + plan.blocks_per_window, static_cast<int64_t>(plan.blocks.size()));
    std::vector<int64_t>& rows = window_file_rows;  // file row of each window position
    rows.clear();
    for (int64_t b = first; b < last; ++b) {
      const int64_t begin = plan.blocks[b] * block_rows;
      const int64_t end = std::min(n, begin + block_rows);
      reader.read(begin, end, window_pixels.data() + static_cast<int64_t>(rows.size()) * row_bytes, nullptr);
      for (int64_t r = begin; r < end; ++r) rows.push_back(r);
    }
    plan.next_block = last;
    windows_read.fetch_add(1, std::memory_order_relaxed);
    const int64_t m = static_cast<int64_t>(rows.size());
    if (o.shuffle) {
      // A stream per (seed, epoch, window).
      plan.window = shuffled_indices(m, mix64(o.seed ^ mix64(static_cast<uint64_t>(epoch) + 1) ^
                                              mix64(kWindowStream + static_cast<uint64_t>(first))));
    } else {
      plan.window.resize(static_cast<size_t>(m));
      for (int64_t i = 0; i < m; ++i) plan.window[i] = i;
    }
    plan.window_cursor = 0;
  }

  // Fills `slot` with the epoch's next batch; false when the epoch has no rows left.
  bool fill(Slot& slot) {
    if (plan.rows_left == 0) return false;
    const int64_t m = std::min(o.batch_size, plan.rows_left);
    slot.labels.clear();
    slot.indices.clear();
    float* x = slot.x.data();
    float* y = labelled ? slot.y.data() : nullptr;
    const std::vector<int32_t>& all_labels = reader.labels();
    for (int64_t i = 0; i < m; ++i) {
      if (plan.window_cursor == static_cast<int64_t>(plan.window.size())) read_window();
      const int64_t pos = plan.window[plan.window_cursor++];
      const int64_t row = window_file_rows[pos];
      scale_pixels(window_pixels.data() + pos * row_bytes, row_bytes, x + i * row_bytes);
      slot.indices.push_back(row);
      if (labelled) {
        const int32_t label = all_labels[row];
        std::fill(y + i * k, y + (i + 1) * k, 0.0f);
        y[i * k + label] = 1.0f;
        slot.labels.push_back(label);
      }
    }
    plan.rows_left -= m;
    return true;
  }

  void produce() {
    // HDF5 keeps its error-printing setting per thread: this one reports through FileError too.
    H5::Exception::dontPrint();
    try {
      for (;;) {
        Slot* slot = nullptr;
        {
          std::unique_lock lock(mutex);
          changed.wait(lock, [&] { return cancel || produced - consumed < static_cast<int64_t>(slots.size()); });
          if (cancel) return;
          slot = &slots[produced % static_cast<int64_t>(slots.size())];
        }
        const bool filled = fill(*slot);
        std::lock_guard lock(mutex);
        if (!filled) {
          producer_done = true;
          changed.notify_all();
          return;
        }
        ++produced;
        changed.notify_all();
      }
    } catch (...) {
      std::lock_guard lock(mutex);
      error = std::current_exception();
      producer_done = true;
      changed.notify_all();
    }
  }

  void stop_producer() {
    {
      std::lock_guard lock(mutex);
      cancel = true;
    }
    changed.notify_all();
    if (producer.joinable()) producer.join();
  }
};

StreamingDataset::StreamingDataset(const std::string& dir, const std::string& split, int64_t crop,
                                   const StreamOptions& options)
    : StreamingDataset(PcamReader(find_pcam_files(dir, split), crop, /*labels_required=*/false), options) {}

StreamingDataset::StreamingDataset(PcamReader reader, const StreamOptions& options)
    : impl_(std::make_unique<Impl>(std::move(reader), options)) {
  Impl& m = *impl_;
  const std::string& path = m.reader.files().x_path;
  check_arg(options.batch_size >= 1 && options.prefetch >= 2 && options.max_rows >= 0, "StreamingDataset",
            path + ": batch_size " + std::to_string(options.batch_size) + ", prefetch " +
                std::to_string(options.prefetch) + " and max_rows " + std::to_string(options.max_rows) +
                " must be >= 1, >= 2 and >= 0");
  m.n = options.max_rows > 0 ? std::min(options.max_rows, m.reader.count()) : m.reader.count();
  check_arg(m.n > 0, "StreamingDataset", path + " holds no images");
  m.row_bytes = m.reader.row_size();
  m.labelled = m.reader.has_labels();
  const std::vector<int32_t>& labels = m.reader.labels();
  const int32_t largest = labels.empty() ? 0 : *std::max_element(labels.begin(), labels.begin() + m.n);
  m.k = !m.labelled ? 0 : options.num_classes > 0 ? options.num_classes : largest + 1;
  check_arg(!m.labelled || largest < m.k, "StreamingDataset",
            path + ": label " + std::to_string(largest) + " is outside the " + std::to_string(m.k) + " classes");

  const int64_t chunk = m.reader.chunk_rows();
  m.block_rows = std::min(m.n, std::max<int64_t>(1, (kMinBlockRows + chunk - 1) / chunk) * chunk);
  const int64_t batch_rows = std::min(options.batch_size, m.n);
  const int64_t batch_bytes = batch_rows * (m.row_bytes + m.k) * static_cast<int64_t>(sizeof(float));
  const int64_t batches_bytes = options.prefetch * batch_bytes;
  const int64_t window_budget = options.memory_bytes - batches_bytes;
  const int64_t block_bytes = m.block_rows * m.row_bytes;
  if (window_budget < block_bytes)
    throw std::invalid_argument(
        "StreamingDataset: " + path + ": memory_bytes " + std::to_string(options.memory_bytes) +
        " cannot hold " + std::to_string(options.prefetch) + " batches of " + std::to_string(batch_rows) +
        " float rows (" + std::to_string(batches_bytes) + " bytes) and one block of " +
        std::to_string(m.block_rows) + " uint8 rows (" + std::to_string(block_bytes) + " bytes); it needs at least " +
        std::to_string(batches_bytes + block_bytes));
  m.window_rows = std::min(m.blocks(), window_budget / block_bytes) * m.block_rows;
  m.window_pixels.resize(static_cast<size_t>(m.window_rows * m.row_bytes));

  Shape xs = {batch_rows, m.reader.height(), m.reader.width(), m.reader.channels()};
  m.slots.resize(static_cast<size_t>(options.prefetch));
  for (Slot& slot : m.slots) {
    slot.x = Tensor::empty(xs);
    if (m.labelled) slot.y = Tensor::empty({batch_rows, m.k});
  }

  // Size, shape, labels and the first image's bytes.
  uint64_t h = mix64(static_cast<uint64_t>(m.n));
  for (const int64_t d : xs) h = mix64(h ^ static_cast<uint64_t>(d));
  for (int64_t i = 0; i < static_cast<int64_t>(labels.size()) && i < m.n; ++i)
    h = mix64(h ^ static_cast<uint64_t>(labels[i]));
  std::vector<uint8_t> first(static_cast<size_t>(m.row_bytes));
  m.reader.read(0, 1, first.data(), nullptr);
  for (const uint8_t v : first) h = mix64(h ^ v);
  m.fingerprint = h;
  start_epoch(0);
}

StreamingDataset::~StreamingDataset() { impl_->stop_producer(); }

int64_t StreamingDataset::rows() const { return impl_->n; }
int64_t StreamingDataset::batch_size() const { return impl_->o.batch_size; }
Shape StreamingDataset::example_shape() const {
  return {impl_->reader.height(), impl_->reader.width(), impl_->reader.channels()};
}
int64_t StreamingDataset::num_classes() const { return impl_->k; }
const Batch& StreamingDataset::batch() const { return impl_->current; }
uint64_t StreamingDataset::fingerprint() const { return impl_->fingerprint; }
const std::string& StreamingDataset::path() const { return impl_->reader.files().x_path; }
int64_t StreamingDataset::window_rows() const { return impl_->window_rows; }
int64_t StreamingDataset::block_rows() const { return impl_->block_rows; }
int64_t StreamingDataset::windows_read() const { return impl_->windows_read.load(std::memory_order_relaxed); }
const std::vector<int32_t>& StreamingDataset::labels() const { return impl_->reader.labels(); }
int64_t StreamingDataset::buffer_bytes() const {
  const Impl& m = *impl_;
  int64_t bytes = static_cast<int64_t>(m.window_pixels.size());
  for (const Slot& slot : m.slots) bytes += (slot.x.numel() + (slot.y.defined() ? slot.y.numel() : 0)) * 4;
  return bytes;
}

void StreamingDataset::start_epoch(int64_t epoch) {
  Impl& m = *impl_;
  {
    // The same epoch again before any of its batches was taken (the constructor starts epoch 0
    // and fit or evaluate start it once more): what the reader has read ahead is still right.
    // The plan is empty only in the constructor's own call, before anything was set up.
    std::lock_guard lock(m.mutex);
    if (!m.plan.blocks.empty() && epoch == m.epoch && m.consumed == 0 && !m.holding && !m.error) return;
  }
  m.stop_producer();
  m.epoch = epoch;
  m.plan = {};
  const int64_t blocks = m.blocks();
  if (m.o.shuffle) {
    m.plan.blocks = shuffled_indices(blocks, mix64(m.o.seed ^ mix64(static_cast<uint64_t>(epoch) + 1)));
  } else {
    m.plan.blocks.resize(static_cast<size_t>(blocks));
    for (int64_t b = 0; b < blocks; ++b) m.plan.blocks[b] = b;
  }
  m.plan.blocks_per_window = m.window_rows / m.block_rows;
  m.plan.rows_left = m.n;
  m.produced = m.consumed = 0;
  m.producer_done = m.cancel = false;
  m.error = nullptr;
  m.holding = false;
  m.current = {};
#ifdef H5_HAVE_THREADSAFE
  m.producer = std::thread([&m] { m.produce(); });
#endif
}

bool StreamingDataset::next() {
  Impl& m = *impl_;
  const int64_t q = static_cast<int64_t>(m.slots.size());
#ifdef H5_HAVE_THREADSAFE
  {
    std::unique_lock lock(m.mutex);
    if (m.holding) {
      ++m.consumed;
      m.holding = false;
      m.changed.notify_all();
    }
    m.changed.wait(lock, [&] { return m.produced > m.consumed || m.producer_done; });
    if (m.error) std::rethrow_exception(m.error);
    if (m.produced == m.consumed) return false;
  }
#else
  // A serial HDF5 library may not be entered from two threads: read on the caller's.
  if (m.holding) ++m.consumed;
  m.holding = false;
  if (!m.fill(m.slots[m.consumed % q])) return false;
  ++m.produced;
#endif
  m.holding = true;
  Slot& slot = m.slots[m.consumed % q];
  const int64_t rows = static_cast<int64_t>(slot.indices.size());
  const bool full = rows == slot.x.size(0);
  m.current.x = full ? slot.x : slot.x.slice(0, rows);
  m.current.y_onehot = !m.labelled ? Tensor() : full ? slot.y : slot.y.slice(0, rows);
  m.current.labels = slot.labels;
  m.current.indices = slot.indices;
  return true;
}

}  // namespace kiln
