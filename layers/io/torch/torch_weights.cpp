// torch.save's zip layout: <archive>/data.pkl (a protocol-2 pickle of the state_dict whose
// tensors point, through persistent ids, at storages), <archive>/data/<key> (each storage's raw
// little-endian bytes), <archive>/version, sometimes <archive>/byteorder.
//
// The pickle is untrusted input, so it is not run the way Python would: this unpickler knows
// the opcodes torch writes for a state_dict and the handful of callables it names, and refuses
// anything else. Its memory is bounded by the pickle's length (each opcode makes at most one
// object), nesting is capped (so freeing never recurses deeply), and a container is frozen once
// it is placed in another, so no cycle can be built.
#include "layers/io/torch/torch_weights.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "core/io/file_error.h"
#include "core/io/zip_archive.h"

namespace kiln {
namespace {

static_assert(std::endian::native == std::endian::little, "torch storages are read as little-endian");

constexpr int kMaxDepth = 32;          // a state_dict nests 3 deep (dict, metadata, per-module dict)
constexpr size_t kMaxRank = 8;
constexpr int64_t kMaxNumel = int64_t{1} << 40;

const char* const kResave =
    "re-save it in a current PyTorch with torch.save(model.state_dict(), path) and read that";

// ---- storages ---------------------------------------------------------------------------------

enum class Numbers { F32, F64, F16, BF16, Integer };
struct StorageType {
  const char* name;  // torch.<name>
  const char* dtype;
  int bytes;
  Numbers numbers;
};
constexpr StorageType kStorageTypes[] = {
    {"FloatStorage", "float32", 4, Numbers::F32},   {"DoubleStorage", "float64", 8, Numbers::F64},
    {"HalfStorage", "float16", 2, Numbers::F16},    {"BFloat16Storage", "bfloat16", 2, Numbers::BF16},
    {"LongStorage", "int64", 8, Numbers::Integer},  {"IntStorage", "int32", 4, Numbers::Integer},
    {"ShortStorage", "int16", 2, Numbers::Integer}, {"CharStorage", "int8", 1, Numbers::Integer},
    {"ByteStorage", "uint8", 1, Numbers::Integer},  {"BoolStorage", "bool", 1, Numbers::Integer},
};

const StorageType* storage_type(const std::string& module_and_name) {
  for (const StorageType& t : kStorageTypes)
    if (module_and_name == std::string("torch ") + t.name) return &t;
  return nullptr;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
  if (exp == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));  // inf, nan
  if (exp != 0) return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
  const float sub = static_cast<float>(mant) * 5.9604644775390625e-8f;  // mant * 2^-24
  return sign ? -sub : sub;
}

// ---- pickled objects --------------------------------------------------------------------------

enum class Kind { None, Bool, Int, Str, Tuple, List, Dict, Global, Storage, Tensor };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "a bool";
    case Kind::Int: return "an int";
    case Kind::Str: return "a string";
    case Kind::Tuple: return "a tuple";
    case Kind::List: return "a list";
    case Kind::Dict: return "a dict";
    case Kind::Global: return "a class or function";
    case Kind::Storage: return "a storage";
    case Kind::Tensor: return "a tensor";
  }
  return "?";
}

struct Obj;
using Ref = std::shared_ptr<Obj>;

struct Obj {
  Kind kind = Kind::None;
  int64_t i = 0;            // Int, Bool; Storage: numel; Tensor: storage offset
  std::string s;            // Str; Global: "module name"; Storage: key
  const StorageType* type = nullptr;  // Storage
  std::vector<Ref> items;   // Tuple, List; Dict: key, value, key, value, ...; Tensor: its storage
  Shape shape, stride;      // Tensor
  int depth = 1;
  bool frozen = false;      // placed inside another object: never changed again
};

class Unpickler {
 public:
  Unpickler(const std::string& path, const std::string& member, const std::vector<char>& bytes)
      : path_(path), member_(member), b_(bytes) {}

  Ref run() {
    while (true) {
      op_at_ = at_;
      const uint8_t op = u8();
      switch (op) {
        case 0x80: {  // PROTO
          const uint8_t v = u8();
          if (v < 2 || v > 5) fail("pickle protocol " + std::to_string(v) + " (torch.save writes 2)");
          break;
        }
        case 0x95: take(8); break;  // FRAME: the length is only a read-ahead hint
        case '}': push(make(Kind::Dict)); break;
        case ']': push(make(Kind::List)); break;
        case ')': push(make(Kind::Tuple)); break;
        case '(': marks_.push_back(stack_.size()); break;
        case 'q': memo_put(u8()); break;
        case 'r': memo_put(u32()); break;
        case 'h': push(memo_get(u8())); break;
        case 'j': push(memo_get(u32())); break;
        case 'X': push(str(u32())); break;
        case 0x8c: push(str(u8())); break;  // SHORT_BINUNICODE
        case 'J': push(integer(static_cast<int32_t>(u32()))); break;
        case 'K': push(integer(u8())); break;
        case 'M': push(integer(u16())); break;
        case 0x8a: push(integer(long1())); break;
        case 0x88: case 0x89: {  // NEWTRUE, NEWFALSE
          Ref r = make(Kind::Bool);
          r->i = op == 0x88;
          push(r);
          break;
        }
        case 'N': push(make(Kind::None)); break;
        case 't': push(tuple(pop_mark())); break;
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          const size_t n = op - 0x84u;
          need(n);
          std::vector<Ref> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
          stack_.resize(stack_.size() - n);
          push(tuple(std::move(items)));
          break;
        }
        case 'c': push(global()); break;
        case 'Q': {  // BINPERSID
          need(1);
          Ref pid = pop();
          push(persistent(pid));
          break;
        }
        case 'R': {
          need(2);
          Ref args = pop();
          Ref fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 'b': {  // BUILD: only an OrderedDict's __dict__ (state_dict._metadata), ignored
          need(2);
          pop();
          if (stack_.back()->kind != Kind::Dict)
            fail("BUILD on " + std::string(kind_name(stack_.back()->kind)) + " (a state_dict only sets its metadata)");
          break;
        }
        case 's': {
          need(3);
          Ref v = pop(), k = pop();
          set_item(stack_.back(), k, v);
          break;
        }
        case 'u': {
          std::vector<Ref> kv = pop_mark();
          if (kv.size() % 2) fail("SETITEMS with an odd number of items");
          need(1);
          for (size_t i = 0; i < kv.size(); i += 2) set_item(stack_.back(), kv[i], kv[i + 1]);
          break;
        }
        case 'e': case 'a': {  // APPENDS, APPEND
          std::vector<Ref> vs;
          if (op == 'e') {
            vs = pop_mark();
          } else {
            need(2);
            vs.push_back(pop());
          }
          need(1);
          Ref& list = stack_.back();
          if (list->kind != Kind::List) fail("APPEND to " + std::string(kind_name(list->kind)));
          for (Ref& v : vs) insert(list, v);
          break;
        }
        case '.': {
          need(1);
          Ref result = pop();
          if (!stack_.empty() || !marks_.empty()) fail("STOP with objects left on the stack");
          return result;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(std::string("opcode ") + hex + " ('" + (op >= 0x20 && op < 0x7f ? std::string(1, char(op)) : "?") +
               "'), which a state_dict pickle never holds");
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw FileError(path_, member_ + " at byte " + std::to_string(op_at_) + ": " + what);
  }

  const char* take(size_t n) {
    if (n > b_.size() - at_) fail("the pickle ends in the middle of an opcode (truncated)");
    const char* p = b_.data() + at_;
    at_ += n;
    return p;
  }
  uint8_t u8() { return static_cast<uint8_t>(*take(1)); }
  uint16_t u16() {
    const auto* p = reinterpret_cast<const unsigned char*>(take(2));
    return static_cast<uint16_t>(p[0] | p[1] << 8);
  }
  uint32_t u32() {
    const auto* p = reinterpret_cast<const unsigned char*>(take(4));
    return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
  }
  int64_t long1() {
    const uint8_t n = u8();
    if (n > 8) fail("LONG1 of " + std::to_string(n) + " bytes (kiln reads integers up to 8 bytes)");
    const auto* p = reinterpret_cast<const unsigned char*>(take(n));
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = v << 8 | p[k];
    if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<int64_t>(v);
  }

  Ref make(Kind k) {
    auto r = std::make_shared<Obj>();
    r->kind = k;
    return r;
  }
  Ref integer(int64_t v) {
    Ref r = make(Kind::Int);
    r->i = v;
    return r;
  }
  Ref str(uint32_t n) {
    Ref r = make(Kind::Str);
    const char* p = take(n);
    r->s.assign(p, n);
    return r;
  }
  void push(Ref r) { stack_.push_back(std::move(r)); }
  void need(size_t n) {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + n) fail("stack underflow");
  }
  Ref pop() {
    Ref r = std::move(stack_.back());
    stack_.pop_back();
    return r;
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) fail("no MARK to close");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void memo_put(uint32_t k) {
    need(1);
    memo_[k] = stack_.back();
  }
  Ref memo_get(uint32_t k) {
    auto it = memo_.find(k);
    if (it == memo_.end()) fail("memo entry " + std::to_string(k) + " was never stored");
    return it->second;
  }

  // Puts child into parent: the child is frozen first, so a container can never hold itself.
  void insert(const Ref& parent, const Ref& child) {
    child->frozen = true;
    if (parent->frozen) fail("a " + std::string(kind_name(parent->kind)) + " is changed after it was stored in another object");
    parent->depth = std::max(parent->depth, child->depth + 1);
    if (parent->depth > kMaxDepth) fail("objects nested more than " + std::to_string(kMaxDepth) + " deep");
    parent->items.push_back(child);
  }
  void set_item(const Ref& dict, const Ref& k, const Ref& v) {
    if (dict->kind != Kind::Dict) fail("SETITEM on " + std::string(kind_name(dict->kind)));
    insert(dict, k);
    insert(dict, v);
  }
  Ref tuple(std::vector<Ref> items) {
    Ref t = make(Kind::Tuple);
    for (Ref& r : items) insert(t, r);
    return t;
  }

  Ref global() {
    std::string names[2];
    for (std::string& n : names) {
      const size_t start = at_;
      size_t end = start;
      while (end < b_.size() && b_[end] != '\n' && end - start < 256) ++end;
      if (end >= b_.size() || b_[end] != '\n') fail("GLOBAL name is not terminated within 256 bytes");
      n.assign(b_.data() + start, end - start);
      at_ = end + 1;
    }
    const std::string full = names[0] + " " + names[1];
    if (full != "collections OrderedDict" && full != "torch._utils _rebuild_tensor_v2" &&
        full != "torch._utils _rebuild_parameter" && !storage_type(full)) {
      fail("the pickle imports '" + names[0] + "." + names[1] +
           "', which kiln refuses: a state_dict needs only collections.OrderedDict, "
           "torch._utils._rebuild_tensor_v2 and torch storage types (a whole model saved with torch.save(model, path) "
           "pickles its classes: save model.state_dict() instead)");
    }
    Ref g = make(Kind::Global);
    g->s = full;
    return g;
  }

  const Ref& item(const Ref& tuple, size_t k, Kind kind, const char* what) {
    const Ref& r = tuple->items[k];
    if (r->kind != kind)
      fail(std::string(what) + " is " + kind_name(r->kind) + ", expected " + kind_name(kind));
    return r;
  }

  // ('storage', torch.<T>Storage, key, location, numel)
  Ref persistent(const Ref& pid) {
    if (pid->kind != Kind::Tuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::Str ||
        pid->items[0]->s != "storage")
      fail("persistent id is not ('storage', type, key, location, numel)");
    const Ref& type = item(pid, 1, Kind::Global, "the storage type");
    Ref s = make(Kind::Storage);
    s->type = storage_type(type->s);
    if (!s->type) fail("'" + type->s + "' is not a storage type");
    s->s = item(pid, 2, Kind::Str, "the storage key")->s;
    item(pid, 3, Kind::Str, "the storage location");
    s->i = item(pid, 4, Kind::Int, "the storage size")->i;
    if (s->i < 0 || s->i > kMaxNumel) fail("storage '" + s->s + "' claims " + std::to_string(s->i) + " elements");
    return s;
  }

  Shape ints(const Ref& tuple, const char* what) {
    if (tuple->kind != Kind::Tuple) fail(std::string(what) + " is " + kind_name(tuple->kind) + ", expected a tuple");
    if (tuple->items.size() > kMaxRank)
      fail(std::string(what) + " has " + std::to_string(tuple->items.size()) + " dimensions (at most " +
           std::to_string(kMaxRank) + ")");
    Shape s;
    for (const Ref& r : tuple->items) {
      if (r->kind != Kind::Int) fail(std::string(what) + " holds " + kind_name(r->kind));
      s.push_back(r->i);
    }
    return s;
  }

  Ref reduce(const Ref& fn, const Ref& args) {
    if (fn->kind != Kind::Global) fail("REDUCE calls " + std::string(kind_name(fn->kind)));
    if (args->kind != Kind::Tuple) fail("REDUCE arguments are " + std::string(kind_name(args->kind)));
    const size_t n = args->items.size();
    if (fn->s == "collections OrderedDict") {
      if (n != 0) fail("OrderedDict is called with arguments");
      return make(Kind::Dict);
    }
    if (fn->s == "torch._utils _rebuild_tensor_v2") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (n != 6 && n != 7) fail("_rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(n));
      Ref t = make(Kind::Tensor);
      t->items.push_back(item(args, 0, Kind::Storage, "the tensor's storage"));
      t->i = item(args, 1, Kind::Int, "the tensor's storage offset")->i;
      t->shape = ints(args->items[2], "the tensor's size");
      t->stride = ints(args->items[3], "the tensor's stride");
      item(args, 4, Kind::Bool, "requires_grad");
      return t;
    }
    if (fn->s == "torch._utils _rebuild_parameter") {
      // (data, requires_grad, backward_hooks): the tensor itself is all kiln needs
      if (n != 3) fail("_rebuild_parameter takes 3 arguments, got " + std::to_string(n));
      return item(args, 0, Kind::Tensor, "the parameter's data");
    }
    fail("'" + fn->s + "' cannot be called");
  }

  std::string path_, member_;
  const std::vector<char>& b_;
  size_t at_ = 0, op_at_ = 0;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Ref> memo_;
};

// ---- the archive ------------------------------------------------------------------------------

std::string archive_prefix(const ZipArchive& zip) {
  std::string prefix;
  bool torchscript = false;
  for (const std::string& name : zip.names()) {
    const size_t slash = name.find('/');
    if (slash == std::string::npos) continue;
    const std::string rest = name.substr(slash + 1);
    if (rest == "constants.pkl" || rest.rfind("code/", 0) == 0) torchscript = true;
    if (rest == "data.pkl") {
      if (!prefix.empty()) throw FileError(zip.path(), "holds more than one data.pkl");
      prefix = name.substr(0, slash);
    }
  }
  if (torchscript)
    throw FileError(zip.path(), std::string("is a TorchScript archive (torch.jit.save: it holds code/ and constants.pkl), "
                                            "not a state_dict; in Python, load it with torch.jit.load and ") +
                                    "save model.state_dict() with torch.save(model.state_dict(), path)");
  if (prefix.empty())
    throw FileError(zip.path(), "is a zip archive without <archive>/data.pkl, so not a file written by torch.save");
  return prefix;
}

Tensor to_float(const std::string& path, const std::string& name, const Obj& t, const Obj& storage,
                const std::vector<char>& bytes) {
  const StorageType& type = *storage.type;
  const std::string what = "tensor '" + name + "'";
  if (bytes.size() != static_cast<uint64_t>(storage.i) * static_cast<uint64_t>(type.bytes))
    throw FileError(path, what + ": storage data/" + storage.s + " has " + std::to_string(bytes.size()) +
                              " bytes, its " + std::to_string(storage.i) + " " + type.dtype + " elements need " +
                              std::to_string(storage.i * type.bytes));
  int64_t numel = 1;
  for (int64_t e : t.shape) {
    if (e < 0 || e > kMaxNumel || (e > 0 && numel > kMaxNumel / e))
      throw FileError(path, what + " has impossible size " + shape_str(t.shape));
    numel *= e;
  }
  if (t.stride.size() != t.shape.size())
    throw FileError(path, what + " has size " + shape_str(t.shape) + " but stride " + shape_str(t.stride));
  // Contiguous (row-major): a state_dict's tensors are; an extent-1 axis may have any stride.
  int64_t expect = 1;
  for (size_t k = t.shape.size(); k-- > 0;) {
    if (numel > 0 && t.shape[k] != 1 && t.stride[k] != expect)
      throw FileError(path, what + " is not contiguous (size " + shape_str(t.shape) + ", stride " +
                                shape_str(t.stride) + "); kiln reads contiguous tensors only");
    expect *= t.shape[k];
  }
  if (t.i < 0 || t.i > storage.i || numel > storage.i - t.i)
    throw FileError(path, what + ": offset " + std::to_string(t.i) + " + " + std::to_string(numel) +
                              " elements runs past its storage of " + std::to_string(storage.i));
  Tensor out = Tensor::empty(t.shape);
  float* dst = out.data();
  const char* src = bytes.data() + t.i * type.bytes;
  for (int64_t k = 0; k < numel; ++k, src += type.bytes) {
    switch (type.numbers) {
      case Numbers::F32: std::memcpy(dst + k, src, 4); break;
      case Numbers::F64: {
        double d;
        std::memcpy(&d, src, 8);
        dst[k] = static_cast<float>(d);
        break;
      }
      case Numbers::F16: {
        uint16_t h;
        std::memcpy(&h, src, 2);
        dst[k] = half_to_float(h);
        break;
      }
      case Numbers::BF16: {
        uint16_t h;
        std::memcpy(&h, src, 2);
        dst[k] = std::bit_cast<float>(uint32_t{h} << 16);
        break;
      }
      case Numbers::Integer: break;  // refused by the caller
    }
  }
  return out;
}

bool ends_with(const std::string& s, const std::string& end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

}  // namespace

TorchTensors read_torch_state_dict(const std::string& path) {
  if (!ZipArchive::looks_like_zip(path)) {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw FileError(path, "file not found or not readable");
    char head[2] = {0, 0};
    probe.read(head, 2);
    if (static_cast<unsigned char>(head[0]) == 0x80)
      throw FileError(path, std::string("is in PyTorch's legacy torch.save format (PyTorch < 1.6, or "
                                        "_use_new_zipfile_serialization=False), which kiln does not read; ") +
                                kResave);
    throw FileError(path, "is not a zip archive, so not a state_dict written by torch.save (PyTorch >= 1.6)");
  }
  const ZipArchive zip(path);
  const std::string prefix = archive_prefix(zip);
  if (zip.contains(prefix + "/byteorder")) {
    const std::vector<char> order = zip.read(prefix + "/byteorder");
    if (std::string(order.begin(), order.end()) != "little")
      throw FileError(path, "stores its tensors big-endian (byteorder '" + std::string(order.begin(), order.end()) +
                                "'); kiln reads little-endian files only");
  }
  if (zip.contains(prefix + "/version")) {
    std::vector<char> v = zip.read(prefix + "/version");
    std::string text(v.begin(), v.end());
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.empty() || text.size() > 3 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(text) < 1 || std::stoi(text) > 10)
      throw FileError(path, "serialization version '" + text.substr(0, 16) + "' is not one kiln knows (1 to 10)");
  }

  const std::string pkl = prefix + "/data.pkl";
  const std::vector<char> bytes = zip.read(pkl);
  Ref root = Unpickler(path, pkl, bytes).run();
  if (root->kind != Kind::Dict)
    throw FileError(path, "holds " + std::string(kind_name(root->kind)) + ", not a state_dict (a dict of tensors)");

  TorchTensors out;
  std::map<std::string, std::vector<char>> storages;  // each storage read once
  uint64_t storage_elements = 0, produced = 0;
  std::set<std::string> names;
  for (size_t k = 0; k < root->items.size(); k += 2) {
    const Obj& key = *root->items[k];
    const Obj& value = *root->items[k + 1];
    if (key.kind != Kind::Str) throw FileError(path, "a state_dict key is " + std::string(kind_name(key.kind)));
    if (value.kind != Kind::Tensor)
      throw FileError(path, "entry '" + key.s + "' is " + kind_name(value.kind) +
                                ", not a tensor (a checkpoint dict? save and read its state_dict alone)");
    if (!names.insert(key.s).second) throw FileError(path, "tensor '" + key.s + "' appears twice");
    const Obj& storage = *value.items[0];
    if (storage.type->numbers == Numbers::Integer) {
      if (ends_with(key.s, "num_batches_tracked")) {
        out.skipped.push_back(key.s);
        continue;
      }
      throw FileError(path, "tensor '" + key.s + "' holds " + storage.type->dtype +
                                " numbers; kiln loads floating-point weights only");
    }
    auto it = storages.find(storage.s);
    if (it == storages.end()) {
      const std::string member = prefix + "/data/" + storage.s;
      if (!zip.contains(member))
        throw FileError(path, "tensor '" + key.s + "': its storage " + member + " is missing from the archive");
      it = storages.emplace(storage.s, zip.read(member)).first;
      storage_elements += static_cast<uint64_t>(storage.i);
    }
    Tensor t = to_float(path, key.s, value, storage, it->second);
    // Tensors may share a storage (tied weights), but not so often that a small file fills memory.
    produced += static_cast<uint64_t>(t.numel());
    if (produced > 4 * storage_elements + 1024)
      throw FileError(path, "its tensors read the same storages over and over (" + std::to_string(produced) +
                                " elements from " + std::to_string(storage_elements) + " stored)");
    out.tensors.emplace_back(key.s, std::move(t));
  }
  return out;
}

// ---- loading into a model ---------------------------------------------------------------------

namespace {

enum class LayerKind { Conv, Linear, BatchNorm, Unknown };

const char* layer_kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::Conv: return "convolution";
    case LayerKind::Linear: return "linear/dense";
    case LayerKind::BatchNorm: return "batch norm";
    case LayerKind::Unknown: return "unknown";
  }
  return "?";
}

// One module's tensors by leaf name ("weight", "kernel"), in order.
struct Group {
  std::string prefix;
  std::vector<std::pair<std::string, Tensor>> leaves;
  const Tensor* find(const std::string& leaf) const {
    for (const auto& [n, t] : leaves)
      if (n == leaf) return &t;
    return nullptr;
  }
};

void add_to_groups(std::vector<Group>& groups, const std::string& name, const Tensor& t) {
  const size_t dot = name.rfind('.');
  const std::string prefix = dot == std::string::npos ? "" : name.substr(0, dot);
  const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
  for (Group& g : groups)
    if (g.prefix == prefix) {
      g.leaves.emplace_back(leaf, t);
      return;
    }
  groups.push_back({prefix, {{leaf, t}}});
}

LayerKind torch_kind(const Group& g) {
  if (g.find("running_mean") || g.find("running_var")) return LayerKind::BatchNorm;
  const Tensor* w = g.find("weight");
  if (w && w->dim() == 4) return LayerKind::Conv;
  if (w && w->dim() == 2) return LayerKind::Linear;
  return LayerKind::Unknown;
}

LayerKind kiln_kind(const Group& g) {
  if (g.find("gamma") || g.find("moving_mean")) return LayerKind::BatchNorm;
  const Tensor* k = g.find("kernel");
  if (k && k->dim() == 4) return LayerKind::Conv;
  if (k && k->dim() == 2) return LayerKind::Linear;
  return LayerKind::Unknown;
}

std::string dotted(const std::string& prefix, const std::string& leaf) {
  return prefix.empty() ? leaf : prefix + "." + leaf;
}

// The kiln leaf a torch leaf loads into, for a layer of this kind; empty when there is none.
std::string kiln_leaf(LayerKind kind, const std::string& torch_leaf) {
  if (kind == LayerKind::BatchNorm) {
    if (torch_leaf == "weight") return "gamma";
    if (torch_leaf == "bias") return "beta";
    if (torch_leaf == "running_mean") return "moving_mean";
    if (torch_leaf == "running_var") return "moving_variance";
    return "";
  }
  if (kind == LayerKind::Conv || kind == LayerKind::Linear) {
    if (torch_leaf == "weight") return "kernel";
    if (torch_leaf == "bias") return "bias";
  }
  return "";
}

// [O,I,kh,kw] -> [kh,kw,I,O]
Tensor oihw_to_hwio(const Tensor& w) {
  const int64_t O = w.size(0), I = w.size(1), kh = w.size(2), kw = w.size(3);
  Tensor out = Tensor::empty({kh, kw, I, O});
  const float* src = w.data();
  float* dst = out.data();
  for (int64_t o = 0; o < O; ++o)
    for (int64_t i = 0; i < I; ++i)
      for (int64_t y = 0; y < kh; ++y)
        for (int64_t x = 0; x < kw; ++x) dst[((y * kw + x) * I + i) * O + o] = src[((o * I + i) * kh + y) * kw + x];
  return out;
}

// [out,in] -> [in,out]; with chw, input column c*H*W + h*W + w becomes kiln row (h*W + w)*C + c.
Tensor linear_to_dense(const Tensor& w, const std::array<int64_t, 3>* chw) {
  const int64_t out_f = w.size(0), in_f = w.size(1);
  Tensor out = Tensor::empty({in_f, out_f});
  const float* src = w.data();
  float* dst = out.data();
  for (int64_t col = 0; col < in_f; ++col) {
    int64_t row = col;
    if (chw) {
      const auto [C, H, W] = *chw;
      const int64_t c = col / (H * W), h = col / W % H, x = col % W;
      row = (h * W + x) * C + c;
    }
    for (int64_t o = 0; o < out_f; ++o) dst[row * out_f + o] = src[o * in_f + col];
  }
  return out;
}

std::string list(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s;
}

}  // namespace

void load_torch_state_dict(const std::string& path, Module& model, const TorchLoadOptions& options) {
  const TorchTensors file = read_torch_state_dict(path);
  std::vector<Group> torch_groups, kiln_groups;
  for (const auto& [name, t] : file.tensors) add_to_groups(torch_groups, name, t);
  for (const auto& [name, t] : model.named_parameters()) add_to_groups(kiln_groups, name, t);
  for (const auto& [name, t] : model.named_buffers()) add_to_groups(kiln_groups, name, t);

  for (const auto& entry : options.flatten_chw) {
    // Named locals, not a structured binding: clang 14 cannot capture a binding in a lambda.
    const std::string& prefix = entry.first;
    const std::array<int64_t, 3>& chw = entry.second;
    const auto g = std::find_if(torch_groups.begin(), torch_groups.end(), [&](const Group& x) { return x.prefix == prefix; });
    if (g == torch_groups.end() || torch_kind(*g) != LayerKind::Linear)
      throw std::invalid_argument("load_torch_state_dict: flatten_chw names '" + prefix + "', which is no Linear in " + path);
    const int64_t in_f = g->find("weight")->size(1);
    if (chw[0] <= 0 || chw[1] <= 0 || chw[2] <= 0 || chw[0] * chw[1] * chw[2] != in_f)
      throw std::invalid_argument("load_torch_state_dict: flatten_chw for '" + prefix + "' is (" +
                                  std::to_string(chw[0]) + "," + std::to_string(chw[1]) + "," + std::to_string(chw[2]) +
                                  "), but the Linear takes " + std::to_string(in_f) + " inputs");
  }

  // Pair each torch module with a kiln layer prefix.
  std::vector<std::string> target(torch_groups.size());
  if (options.name_map.empty()) {
    if (torch_groups.size() != kiln_groups.size()) {
      std::vector<std::string> t, k;
      for (const Group& g : torch_groups) t.push_back(g.prefix);
      for (const Group& g : kiln_groups) k.push_back(g.prefix);
      throw FileError(path, "has " + std::to_string(torch_groups.size()) + " modules with tensors (" + list(t) +
                                "), the kiln model " + std::to_string(kiln_groups.size()) + " layers with weights (" +
                                list(k) + "); pairing them in order needs equal counts (or pass name_map)");
    }
    for (size_t i = 0; i < torch_groups.size(); ++i) {
      const LayerKind a = torch_kind(torch_groups[i]), b = kiln_kind(kiln_groups[i]);
      if (a != b || a == LayerKind::Unknown)
        throw FileError(path, "module " + std::to_string(i + 1) + " in order, '" + torch_groups[i].prefix + "' (" +
                                  layer_kind_name(a) + "), pairs with kiln layer '" + kiln_groups[i].prefix + "' (" +
                                  layer_kind_name(b) + "); the architectures differ (or pass name_map)");
      target[i] = kiln_groups[i].prefix;
    }
  } else {
    for (size_t i = 0; i < torch_groups.size(); ++i) {
      const std::string& p = torch_groups[i].prefix;
      const std::pair<std::string, std::string>* best = nullptr;
      for (const auto& e : options.name_map)
        if ((p == e.first || (p.size() > e.first.size() && p.compare(0, e.first.size(), e.first) == 0 &&
                              p[e.first.size()] == '.')) &&
            (!best || e.first.size() > best->first.size()))
          best = &e;
      if (!best) throw FileError(path, "module '" + p + "' is covered by no name_map entry");
      target[i] = best->second + p.substr(best->first.size());
    }
  }

  // Check everything before changing anything: a failed load leaves the model as it was.
  std::map<std::string, Tensor> kiln_by_name;
  for (const Group& g : kiln_groups)
    for (const auto& [leaf, t] : g.leaves) kiln_by_name.emplace(dotted(g.prefix, leaf), t);
  std::vector<std::pair<Tensor, Tensor>> copies;  // kiln target, value
  std::set<std::string> filled;
  std::vector<std::string> leftover, twice;
  for (size_t i = 0; i < torch_groups.size(); ++i) {
    const Group& tg = torch_groups[i];
    const auto kg = std::find_if(kiln_groups.begin(), kiln_groups.end(), [&](const Group& g) { return g.prefix == target[i]; });
    const LayerKind kind = torch_kind(tg);
    for (const auto& [leaf, value] : tg.leaves) {
      const std::string torch_name = dotted(tg.prefix, leaf);
      const std::string k_leaf = kiln_leaf(kind, leaf);
      const std::string kiln_name = dotted(target[i], k_leaf);
      auto it = kiln_by_name.find(kiln_name);
      if (kg == kiln_groups.end() || k_leaf.empty() || it == kiln_by_name.end()) {
        leftover.push_back(torch_name + (kg == kiln_groups.end() ? " (no kiln layer '" + target[i] + "')"
                                                                 : k_leaf.empty() ? "" : " (-> " + kiln_name + ")"));
        continue;
      }
      if (!filled.insert(kiln_name).second) {
        twice.push_back(kiln_name);
        continue;
      }
      Tensor v = value;
      if (kind == LayerKind::Conv && k_leaf == "kernel") v = oihw_to_hwio(value);
      if (kind == LayerKind::Linear && k_leaf == "kernel") {
        const std::array<int64_t, 3>* chw = nullptr;
        for (const auto& [p, s] : options.flatten_chw)
          if (p == tg.prefix) chw = &s;
        v = linear_to_dense(value, chw);
      }
      if (v.shape() != it->second.shape())
        throw FileError(path, "tensor '" + torch_name + "' " + shape_str(value.shape()) + " becomes " +
                                  shape_str(v.shape()) + " in kiln's layout, but kiln's '" + kiln_name + "' is " +
                                  shape_str(it->second.shape()));
      copies.emplace_back(it->second, v);
    }
  }
  std::vector<std::string> missing;
  for (const auto& [name, t] : kiln_by_name)
    if (!filled.count(name)) missing.push_back(name + " " + shape_str(t.shape()));
  if (!leftover.empty() || !missing.empty() || !twice.empty()) {
    std::string msg = "does not fit the kiln model:";
    if (!leftover.empty()) msg += " torch tensors left over: " + list(leftover) + ";";
    if (!missing.empty()) msg += " kiln tensors not filled: " + list(missing) + ";";
    if (!twice.empty()) msg += " kiln tensors filled twice: " + list(twice) + ";";
    msg.pop_back();
    throw FileError(path, msg);
  }
  for (auto& [dst, v] : copies) dst.copy_(v);
}

}  // namespace kiln
