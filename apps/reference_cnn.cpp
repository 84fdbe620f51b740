#include "apps/reference_cnn.h"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace kiln::reference {

std::vector<float> conv2d_same(const std::vector<float>& x, int h, int w, int c,
                               const std::vector<float>& kernel, int kh, int kw, int f,
                               const std::vector<float>& bias, Act act) {
  // TensorFlow's 'same': total padding k-1, the smaller half on top/left.
  const int pad_top = (kh - 1) / 2, pad_left = (kw - 1) / 2;
  std::vector<float> y(static_cast<size_t>(h) * w * f);
  for (int i = 0; i < h; ++i) {
    for (int j = 0; j < w; ++j) {
      for (int o = 0; o < f; ++o) {
        double acc = bias[o];
        for (int di = 0; di < kh; ++di) {
          const int ii = i + di - pad_top;
          if (ii < 0 || ii >= h) continue;  // zero padding
          for (int dj = 0; dj < kw; ++dj) {
            const int jj = j + dj - pad_left;
            if (jj < 0 || jj >= w) continue;
            for (int ci = 0; ci < c; ++ci) {
              acc += static_cast<double>(x[(static_cast<size_t>(ii) * w + jj) * c + ci]) *
                     kernel[((static_cast<size_t>(di) * kw + dj) * c + ci) * f + o];
            }
          }
        }
        y[(static_cast<size_t>(i) * w + j) * f + o] = static_cast<float>(acc);
      }
    }
  }
  activate(y, act);
  return y;
}

std::vector<float> max_pool_2x2(const std::vector<float>& x, int h, int w, int c) {
  const int ho = h / 2, wo = w / 2;
  std::vector<float> y(static_cast<size_t>(ho) * wo * c);
  for (int i = 0; i < ho; ++i) {
    for (int j = 0; j < wo; ++j) {
      for (int ch = 0; ch < c; ++ch) {
        float m = x[(static_cast<size_t>(2 * i) * w + 2 * j) * c + ch];
        m = std::max(m, x[(static_cast<size_t>(2 * i) * w + 2 * j + 1) * c + ch]);
        m = std::max(m, x[(static_cast<size_t>(2 * i + 1) * w + 2 * j) * c + ch]);
        m = std::max(m, x[(static_cast<size_t>(2 * i + 1) * w + 2 * j + 1) * c + ch]);
        y[(static_cast<size_t>(i) * wo + j) * c + ch] = m;
      }
    }
  }
  return y;
}

std::vector<float> flatten(const std::vector<float>& x) { return x; }

std::vector<float> dense(const std::vector<float>& x, const std::vector<float>& kernel, int in,
                         int out, const std::vector<float>& bias, Act act) {
  std::vector<float> y(static_cast<size_t>(out));
  for (int o = 0; o < out; ++o) {
    double acc = bias[o];
    for (int i = 0; i < in; ++i) acc += static_cast<double>(x[i]) * kernel[static_cast<size_t>(i) * out + o];
    y[o] = static_cast<float>(acc);
  }
  activate(y, act);
  return y;
}

void activate(std::vector<float>& v, Act act) {
  if (act == Act::Relu) {
    for (float& a : v) a = std::max(a, 0.0f);
  } else if (act == Act::Softmax && !v.empty()) {
    const double m = *std::max_element(v.begin(), v.end());  // shift so exp cannot overflow
    double sum = 0;
    std::vector<double> e(v.size());
    for (size_t i = 0; i < v.size(); ++i) sum += e[i] = std::exp(v[i] - m);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(e[i] / sum);
  }
}

// --- the model file's weights, read with the HDF5 C API ---------------------------------------------

namespace {

// Closes an HDF5 handle when it goes out of scope.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};

std::string read_string_attribute(hid_t file, const char* name, const std::string& path) {
  if (H5Aexists(file, name) <= 0) throw std::runtime_error(path + ": no '" + name + "' attribute (not a kiln model file)");
  Handle attr{H5Aopen(file, name, H5P_DEFAULT), H5Aclose};
  Handle type{H5Aget_type(attr.id), H5Tclose};
  if (H5Tget_class(type.id) != H5T_STRING || H5Tis_variable_str(type.id) > 0)
    throw std::runtime_error(path + ": attribute '" + name + "' is not a fixed-length string");
  std::string value(H5Tget_size(type.id), '\0');
  if (H5Aread(attr.id, type.id, value.data()) < 0)
    throw std::runtime_error(path + ": cannot read attribute '" + name + "'");
  value.erase(std::find(value.begin(), value.end(), '\0'), value.end());
  return value;
}

int read_int_attribute(hid_t file, const char* name, const std::string& path) {
  if (H5Aexists(file, name) <= 0) throw std::runtime_error(path + ": no '" + name + "' attribute");
  Handle attr{H5Aopen(file, name, H5P_DEFAULT), H5Aclose};
  int value = 0;
  if (H5Aread(attr.id, H5T_NATIVE_INT, &value) < 0)
    throw std::runtime_error(path + ": cannot read attribute '" + name + "' as an integer");
  return value;
}

Array read_array(hid_t file, const std::string& name, const std::string& path) {
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) <= 0)
    throw std::runtime_error(path + ": no dataset '" + name + "'");
  Handle ds{H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose};
  Handle space{H5Dget_space(ds.id), H5Sclose};
  const int rank = H5Sget_simple_extent_ndims(space.id);
  if (ds.id < 0 || rank < 0) throw std::runtime_error(path + ": cannot open dataset '" + name + "'");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.id, dims.data(), nullptr);
  Array a;
  size_t count = 1;
  for (hsize_t d : dims) {
    a.shape.push_back(static_cast<int64_t>(d));
    count *= d;
  }
  a.data.resize(count);
  if (H5Dread(ds.id, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.data.data()) < 0)
    throw std::runtime_error(path + ": cannot read dataset '" + name + "' as float");
  return a;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? "," : "") + std::to_string(s[i]);
  return t + "]";
}

}  // namespace

std::map<std::string, Array> read_weights(const std::string& path, const std::vector<std::string>& names) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported here, naming the file
  Handle file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  if (file.id < 0) throw std::runtime_error(path + ": cannot open as HDF5");
  // kiln's model file (layers/io/model_file.h): the parameters are /parameters/<dotted name>.
  const std::string format = read_string_attribute(file.id, "kiln_format", path);
  if (format != "kiln-model")
    throw std::runtime_error(path + ": kiln_format '" + format + "', expected 'kiln-model'");
  const int version = read_int_attribute(file.id, "version", path);
  if (version != 1)
    throw std::runtime_error(path + ": model file version " + std::to_string(version) +
                             ", this reader knows version 1");
  std::map<std::string, Array> out;
  for (const std::string& name : names) out[name] = read_array(file.id, "parameters/" + name, path);
  return out;
}

Task1Cnn Task1Cnn::load(const std::string& path, int height, int width) {
  auto w = read_weights(path, {"conv2d.kernel", "conv2d.bias", "conv2d_1.kernel", "conv2d_1.bias",
                               "dense.kernel", "dense.bias"});
  const Array &k1 = w["conv2d.kernel"], &b1 = w["conv2d.bias"], &k2 = w["conv2d_1.kernel"],
              &b2 = w["conv2d_1.bias"], &k3 = w["dense.kernel"], &b3 = w["dense.bias"];
  Task1Cnn net;
  net.height = height;
  net.width = width;
  const bool ok = k1.shape.size() == 4 && k1.shape[0] == 3 && k1.shape[1] == 3 &&
                  b1.shape == std::vector<int64_t>{k1.shape[3]} && k2.shape.size() == 4 &&
                  k2.shape[0] == 3 && k2.shape[1] == 3 && k2.shape[2] == k1.shape[3] &&
                  b2.shape == std::vector<int64_t>{k2.shape[3]} && k3.shape.size() == 2 &&
                  k3.shape[0] == (height / 4) * (width / 4) * k2.shape[3] &&
                  b3.shape == std::vector<int64_t>{k3.shape[1]};
  if (!ok)
    throw std::runtime_error(path + ": shapes conv2d.kernel " + shape_text(k1.shape) + ", conv2d_1.kernel " +
                             shape_text(k2.shape) + ", dense.kernel " + shape_text(k3.shape) +
                             " are not the Task 1 network on " + std::to_string(height) + "x" +
                             std::to_string(width) + " images");
  net.channels = static_cast<int>(k1.shape[2]);
  net.f1 = static_cast<int>(k1.shape[3]);
  net.f2 = static_cast<int>(k2.shape[3]);
  net.classes = static_cast<int>(k3.shape[1]);
  net.k1 = k1.data;
  net.b1 = b1.data;
  net.k2 = k2.data;
  net.b2 = b2.data;
  net.k3 = k3.data;
  net.b3 = b3.data;
  return net;
}

std::vector<float> Task1Cnn::forward(const float* image) const {
  const int h = height, w = width;
  std::vector<float> x(image, image + static_cast<size_t>(h) * w * channels);
  x = conv2d_same(x, h, w, channels, k1, 3, 3, f1, b1, Act::Relu);
  x = max_pool_2x2(x, h, w, f1);
  x = conv2d_same(x, h / 2, w / 2, f1, k2, 3, 3, f2, b2, Act::Relu);
  x = max_pool_2x2(x, h / 2, w / 2, f2);
  x = flatten(x);
  return dense(x, k3, (h / 4) * (w / 4) * f2, classes, b3, Act::Softmax);
}

Figures evaluate(const Task1Cnn& net, const float* images, int64_t n,
                 const std::vector<int32_t>& labels, std::vector<float>* probs) {
  if (static_cast<int64_t>(labels.size()) != n)
    throw std::invalid_argument("reference::evaluate: " + std::to_string(n) + " images but " +
                                std::to_string(labels.size()) + " labels");
  const int64_t row = static_cast<int64_t>(net.height) * net.width * net.channels;
  const int k = net.classes;
  std::vector<double> loss(static_cast<size_t>(n));
  std::vector<char> hit(static_cast<size_t>(n));
  if (probs) probs->assign(static_cast<size_t>(n) * k, 0.0f);
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<float> p = net.forward(images + i * row);
    const int label = labels[i];
    // Keras' categorical cross-entropy clips the probabilities before the log.
    const double q = std::clamp(static_cast<double>(p[label]), 1e-7, 1.0 - 1e-7);
    loss[i] = -std::log(q);
    hit[i] = std::max_element(p.begin(), p.end()) - p.begin() == label;
    if (probs) std::copy(p.begin(), p.end(), probs->begin() + i * k);
  }
  Figures f;
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    f.loss += loss[i];
    correct += hit[i];
  }
  f.loss /= static_cast<double>(std::max<int64_t>(n, 1));
  f.accuracy = static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(n, 1));
  return f;
}

}  // namespace kiln::reference
