#include "core/io/h5_io.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/io/write_atomically.h"

namespace kiln::h5 {

namespace fs = std::filesystem;

namespace {

// H5Cpp prints an error stack to stderr before throwing unless told not to; kiln reports
// errors itself.
void quiet() {
  static const bool once = [] {
    H5::Exception::dontPrint();
    return true;
  }();
  (void)once;
}

std::string detail(const H5::Exception& e) {
  const std::string d = e.getDetailMsg();
  return d.empty() ? "HDF5 error" : d;
}

int64_t element_count(const H5::DataSpace& space) {
  return space.getSimpleExtentType() == H5S_NULL ? 0 : static_cast<int64_t>(space.getSimpleExtentNpoints());
}

// One string attribute's values, whatever its string encoding.
std::vector<std::string> strings_of(const H5::Attribute& a, const std::string& label) {
  const H5::DataSpace space = a.getSpace();
  const int64_t n = element_count(space);
  const H5::DataType type = a.getDataType();
  if (type.getClass() != H5T_STRING) {
    if (n == 0) return {};  // Keras' empty list: a float64 array of length 0
    throw FileError(label, "is not a string attribute");
  }
  std::vector<std::string> out;
  if (n == 0) return out;
  const H5::StrType st = a.getStrType();
  if (st.isVariableStr()) {
    std::vector<char*> buf(static_cast<size_t>(n), nullptr);
    H5::StrType mem(H5::PredType::C_S1, H5T_VARIABLE);
    mem.setCset(st.getCset());
    if (H5Aread(a.getId(), mem.getId(), buf.data()) < 0) throw FileError(label, "cannot be read");
    for (char* s : buf) out.emplace_back(s ? s : "");
    H5Dvlen_reclaim(mem.getId(), space.getId(), H5P_DEFAULT, buf.data());
  } else {
    const size_t size = st.getSize();
    std::vector<char> buf(static_cast<size_t>(n) * size + 1, '\0');
    a.read(st, buf.data());
    for (int64_t i = 0; i < n; ++i) {
      std::string s(buf.data() + static_cast<size_t>(i) * size, size);
      s.erase(std::find(s.begin(), s.end(), '\0'), s.end());          // null-terminated/padded
      if (st.getStrpad() == H5T_STR_SPACEPAD) s.erase(s.find_last_not_of(' ') + 1);
      out.push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace

bool is_hdf5(const std::string& path) {
  quiet();
  if (!fs::is_regular_file(path)) return false;
  try {
    return H5::H5File::isHdf5(path);
  } catch (const H5::Exception&) {
    return false;
  }
}

H5::H5File open_file(const std::string& path, const std::string& expect) {
  quiet();
  const std::string expected = expect.empty() ? "" : "; expected " + expect;
  if (!fs::exists(path)) throw FileError(path, "file not found");
  if (!fs::is_regular_file(path)) throw FileError(path, "not a regular file");
  if (!is_hdf5(path)) {
    const bool gz = path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
    throw FileError(path, std::string("not an HDF5 file (no HDF5 signature)") +
                              (gz ? "; a .h5.gz download must be gunzipped first" : "") + expected);
  }
  try {
    return H5::H5File(path, H5F_ACC_RDONLY);
  } catch (const H5::Exception& e) {
    // The signature check passes for a file cut short; opening it is what fails.
    throw FileError(path, "HDF5 cannot open it (" + detail(e) +
                              "): the file looks truncated or damaged" + expected);
  }
}

H5::H5File open_image(const std::vector<char>& bytes, const std::string& label) {
  quiet();
  try {
    H5::FileAccPropList fapl;
    // The core (in-memory) driver, started from a copy of the bytes, never written back.
    if (H5Pset_fapl_core(fapl.getId(), 1 << 16, 0) < 0 ||
        H5Pset_file_image(fapl.getId(), const_cast<char*>(bytes.data()), bytes.size()) < 0)
      throw FileError(label, "cannot set up an in-memory HDF5 file");
    return H5::H5File(label, H5F_ACC_RDONLY, H5::FileCreatPropList::DEFAULT, fapl);
  } catch (const H5::Exception& e) {
    throw FileError(label, "HDF5 cannot open it (" + detail(e) +
                                    "): the file looks truncated or damaged");
  }
}

bool has_attr(const H5::H5Object& obj, const std::string& name) {
  quiet();
  try {
    return obj.attrExists(name);
  } catch (const H5::Exception&) {
    return false;
  }
}

std::string read_string(const H5::H5Object& obj, const std::string& name, const std::string& path) {
  try {
    if (!obj.attrExists(name)) throw FileError(path, "no attribute '" + name + "'");
    const std::vector<std::string> v = strings_of(obj.openAttribute(name), path + " attribute '" + name + "'");
    if (v.size() != 1)
      throw FileError(path, "attribute '" + name + "' holds " + std::to_string(v.size()) +
                                     " strings, expected one");
    return v[0];
  } catch (const H5::Exception& e) {
    throw FileError(path, "cannot read attribute '" + name + "': " + detail(e));
  }
}

std::vector<std::string> read_string_list(const H5::H5Object& obj, const std::string& name,
                                          const std::string& path) {
  try {
    if (obj.attrExists(name)) return strings_of(obj.openAttribute(name), path + " attribute '" + name + "'");
    std::vector<std::string> all;
    for (int chunk = 0; obj.attrExists(name + std::to_string(chunk)); ++chunk) {
      const std::string part = name + std::to_string(chunk);
      const std::vector<std::string> v = strings_of(obj.openAttribute(part), path + " attribute '" + part + "'");
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  } catch (const H5::Exception& e) {
    throw FileError(path, "cannot read attribute '" + name + "': " + detail(e));
  }
}

int64_t read_int(const H5::H5Object& obj, const std::string& name, const std::string& path) {
  try {
    if (!obj.attrExists(name)) throw FileError(path, "no attribute '" + name + "'");
    const H5::Attribute a = obj.openAttribute(name);
    if (a.getDataType().getClass() != H5T_INTEGER || element_count(a.getSpace()) != 1)
      throw FileError(path, "attribute '" + name + "' is not a single integer");
    int64_t v = 0;
    a.read(H5::PredType::NATIVE_INT64, &v);
    return v;
  } catch (const H5::Exception& e) {
    throw FileError(path, "cannot read attribute '" + name + "': " + detail(e));
  }
}

Shape dataset_shape(const H5::DataSet& ds) {
  const H5::DataSpace space = ds.getSpace();
  const int rank = space.getSimpleExtentNdims();
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
  if (rank > 0) space.getSimpleExtentDims(dims.data());
  return Shape(dims.begin(), dims.end());
}

Tensor read_tensor(const H5::DataSet& ds, const std::string& path, const std::string& what) {
  try {
    if (ds.getTypeClass() != H5T_FLOAT)
      throw FileError(path, what + " is not a floating-point dataset");
    const Shape shape = dataset_shape(ds);
    // A damaged header can claim any extents: refuse before allocating. 2^28 values (1 GiB) is
    // far above any single weight tensor kiln's models or real Keras models hold.
    constexpr int64_t kMaxValues = int64_t{1} << 28;
    int64_t values = 1;
    for (const int64_t d : shape) {
      if (d < 0 || (d > 0 && values > kMaxValues / d))
        throw FileError(path, what + " claims shape " + shape_str(shape) + ", more than kiln reads into one tensor");
      values *= d;
    }
    Tensor t = Tensor::empty(shape);
    if (t.numel() > 0) ds.read(t.data(), H5::PredType::NATIVE_FLOAT);
    return t;
  } catch (const H5::Exception& e) {
    throw FileError(path, "cannot read " + what + " (" + detail(e) +
                                   "): the file looks truncated or damaged");
  }
}

void write_string(H5::H5Object& obj, const std::string& name, const std::string& value) {
  H5::StrType type(H5::PredType::C_S1, std::max<size_t>(value.size(), 1));
  type.setCset(H5T_CSET_UTF8);
  type.setStrpad(H5T_STR_NULLPAD);
  H5::Attribute a = obj.createAttribute(name, type, H5::DataSpace(H5S_SCALAR));
  std::vector<char> buf(std::max<size_t>(value.size(), 1), '\0');
  std::memcpy(buf.data(), value.data(), value.size());
  a.write(type, buf.data());
}

void write_string_list(H5::H5Object& obj, const std::string& name,
                       const std::vector<std::string>& values) {
  const hsize_t n = values.size();
  if (n == 0) {
    H5::Attribute a = obj.createAttribute(name, H5::PredType::IEEE_F64LE, H5::DataSpace(1, &n));
    double none = 0;
    a.write(H5::PredType::NATIVE_DOUBLE, &none);
    return;
  }
  size_t size = 1;
  for (const std::string& v : values) size = std::max(size, v.size());
  H5::StrType type(H5::PredType::C_S1, size);
  type.setCset(H5T_CSET_UTF8);
  type.setStrpad(H5T_STR_NULLPAD);
  std::vector<char> buf(n * size, '\0');
  for (size_t i = 0; i < values.size(); ++i) std::memcpy(buf.data() + i * size, values[i].data(), values[i].size());
  H5::Attribute a = obj.createAttribute(name, type, H5::DataSpace(1, &n));
  a.write(type, buf.data());
}

void write_int(H5::H5Object& obj, const std::string& name, int64_t value) {
  H5::Attribute a = obj.createAttribute(name, H5::PredType::STD_I64LE, H5::DataSpace(H5S_SCALAR));
  a.write(H5::PredType::NATIVE_INT64, &value);
}

void write_tensor(H5::Group& group, const std::string& name, const Tensor& t) {
  std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
  const H5::DataSpace space = dims.empty() ? H5::DataSpace(H5S_SCALAR)
                                           : H5::DataSpace(static_cast<int>(dims.size()), dims.data());
  H5::LinkCreatPropList lcpl;
  H5Pset_create_intermediate_group(lcpl.getId(), 1);
  H5::DataSet ds = group.createDataSet(name, H5::PredType::IEEE_F32LE, space,
                                       H5::DSetCreatPropList::DEFAULT, H5::DSetAccPropList::DEFAULT, lcpl);
  if (t.numel() > 0) ds.write(t.data(), H5::PredType::NATIVE_FLOAT);
}

FileError damaged_file(const std::string& path, const H5::Exception& e) {
  return FileError(path, "HDF5 error while reading it (" + e.getDetailMsg() +
                                  "): the file looks truncated or damaged");
}

// The file is built in memory (HDF5's core driver, no backing store) and its finished image
// written out by kiln::write_atomically. So HDF5 never writes to disk itself: when the disk
// fills up, its close fails half-way and leaves an open file that crashes the library's own
// cleanup at exit. Model files and checkpoints are small enough to hold in memory twice.
void write_atomically(const std::string& path, const std::function<void(H5::H5File&)>& fill) {
  quiet();
  std::vector<char> image;
  try {
    H5::FileAccPropList fapl;
    if (H5Pset_fapl_core(fapl.getId(), 1 << 20, 0) < 0)
      throw FileError(path, "cannot set up an in-memory HDF5 file");
    H5::H5File f(path, H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, fapl);
    fill(f);
    f.flush(H5F_SCOPE_GLOBAL);
    const ssize_t size = H5Fget_file_image(f.getId(), nullptr, 0);
    if (size < 0) throw FileError(path, "HDF5 cannot produce the file's image");
    image.resize(static_cast<size_t>(size));
    if (H5Fget_file_image(f.getId(), image.data(), image.size()) != size)
      throw FileError(path, "HDF5 cannot produce the file's image");
    f.close();
  } catch (const H5::Exception& e) {
    throw FileError(path, "cannot write it: " + detail(e));
  }
  write_bytes_atomically(path, std::string_view(image.data(), image.size()));
}

}  // namespace kiln::h5
