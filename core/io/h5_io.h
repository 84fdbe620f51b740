// HDF5 helpers shared by kiln's model files and the Keras importer/exporter: opening a file
// (or an in-memory image) with errors that name the file, reading string attributes in every
// encoding Keras and h5py write, float datasets into tensors, and writing a file atomically.
//
// Every function here throws FileError (never H5::Exception) with the file's path.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <H5Cpp.h>

#include "core/tensor.h"
#include "core/io/file_error.h"  // FileError

namespace kiln::h5 {

// True when path starts with the HDF5 signature.
bool is_hdf5(const std::string& path);
// Opens path read-only. Missing file, a file that is not HDF5, or one HDF5 cannot open
// (truncated, damaged) -> FileError saying which, and what the file should hold (`expect`,
// e.g. "dataset 'x' uint8 (N,H,W,C)") where the caller says.
H5::H5File open_file(const std::string& path, const std::string& expect = "");
// Opens an HDF5 file held in memory (e.g. model.weights.h5 inside a .keras zip); `label`
// names it in errors ("m.keras:model.weights.h5").
H5::H5File open_image(const std::vector<char>& bytes, const std::string& label);

bool has_attr(const H5::H5Object& obj, const std::string& name);
// A string attribute (fixed or variable length, scalar or one-element array).
std::string read_string(const H5::H5Object& obj, const std::string& name, const std::string& path);
// A list of strings: a string array, or an empty array of any type (Keras writes an empty
// float64 array for a layer without weights), or Keras' split form name0, name1, ... used when
// the list is longer than an object header allows. Missing -> empty.
std::vector<std::string> read_string_list(const H5::H5Object& obj, const std::string& name,
                                          const std::string& path);
// An integer attribute, scalar.
int64_t read_int(const H5::H5Object& obj, const std::string& name, const std::string& path);

// The extents of a dataset ([] for a scalar).
Shape dataset_shape(const H5::DataSet& ds);
// Reads a float dataset (float16/32/64, converted to float32) into a new tensor.
// `what` names it in errors ("layer 'conv2d' weight 'kernel'").
Tensor read_tensor(const H5::DataSet& ds, const std::string& path, const std::string& what);

// The error for an HDF5 failure while reading an opened file: names the file, quotes HDF5's
// message and says the file looks truncated or damaged.
FileError damaged_file(const std::string& path, const H5::Exception& e);

// Writers. Strings are fixed-length, UTF-8, null-padded (what h5py makes of numpy bytes).
void write_string(H5::H5Object& obj, const std::string& name, const std::string& value);
// An empty list becomes an empty float64 array, as Keras writes it.
void write_string_list(H5::H5Object& obj, const std::string& name,
                       const std::vector<std::string>& values);
void write_int(H5::H5Object& obj, const std::string& name, int64_t value);
// A float32 dataset with t's shape. `name` may contain '/': missing groups are created.
void write_tensor(H5::Group& group, const std::string& name, const Tensor& t);

// Builds the file in memory, lets fill() write it, and writes the finished image to path
// through kiln::write_atomically (temporary name, fsync, rename), so a reader never sees a
// half-written file and a full disk is a FileError naming path, never a crash in HDF5.
void write_atomically(const std::string& path, const std::function<void(H5::H5File&)>& fill);

}  // namespace kiln::h5
