#include "layers/io/model_file.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "layers/activation.h"
#include "layers/avg_pool2d.h"
#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "core/io/h5_io.h"
#include "layers/io/keras/keras_import.h"
#include "layers/max_pool2d.h"
#include "layers/permute.h"
#include "layers/reshape.h"
#include "core/io/zip_archive.h"

namespace kiln {

using json = nlohmann::json;

namespace {

constexpr const char* kFormatTag = "kiln-model";
constexpr const char* kKnownTypes =
    "Sequential, Conv2D, Dense, BatchNormalization, Dropout, MaxPooling2D, AveragePooling2D, "
    "Flatten, Reshape, Permute, Activation/ReLU/Softmax";

std::string padding_name(Padding p) { return p == Padding::Same ? "same" : "valid"; }

// The architecture of one module (and its children) as JSON; throws for a module kiln's
// format does not know.
json describe(const Module& m, const std::string& name, const std::string& path) {
  json j = {{"name", name}};
  if (auto* s = dynamic_cast<const Sequential*>(&m)) {
    j["type"] = "Sequential";
    j["layers"] = json::array();
    for (const auto& [child, module] : s->named_children()) j["layers"].push_back(describe(*module, child, path));
  } else if (auto* c = dynamic_cast<const Conv2D*>(&m)) {
    const Conv2DOptions& o = c->options();
    j.update({{"type", "Conv2D"}, {"in_channels", o.in_channels}, {"filters", o.filters}, {"kernel", o.kernel},
              {"stride", o.stride}, {"padding", padding_name(o.padding)}, {"use_bias", o.use_bias},
              {"activation", activation_name(o.activation)}, {"l2", o.l2}});
  } else if (auto* d = dynamic_cast<const Dense*>(&m)) {
    const DenseOptions& o = d->options();
    j.update({{"type", "Dense"}, {"in_features", o.in_features}, {"units", o.units}, {"use_bias", o.use_bias},
              {"activation", activation_name(o.activation)}, {"l2", o.l2}});
  } else if (auto* b = dynamic_cast<const BatchNorm2d*>(&m)) {
    const BatchNormOptions& o = b->options();
    j.update({{"type", "BatchNormalization"}, {"channels", o.channels}, {"momentum", o.momentum},
              {"epsilon", o.epsilon}});
  } else if (auto* dr = dynamic_cast<const Dropout*>(&m)) {
    j.update({{"type", "Dropout"}, {"rate", dr->rate()}});
  } else if (auto* mp = dynamic_cast<const MaxPool2D*>(&m)) {
    j.update({{"type", "MaxPooling2D"}, {"pool", mp->options().pool}, {"stride", mp->options().stride},
              {"padding", padding_name(mp->options().padding)}});
  } else if (auto* ap = dynamic_cast<const AvgPool2D*>(&m)) {
    j.update({{"type", "AveragePooling2D"}, {"pool", ap->options().pool}, {"stride", ap->options().stride},
              {"padding", padding_name(ap->options().padding)}});
  } else if (dynamic_cast<const Flatten*>(&m)) {
    j["type"] = "Flatten";
  } else if (auto* r = dynamic_cast<const Reshape*>(&m)) {
    j.update({{"type", "Reshape"}, {"target", r->target()}});
  } else if (auto* p = dynamic_cast<const Permute*>(&m)) {
    j.update({{"type", "Permute"}, {"dims", p->dims()}});
  } else if (auto* a = dynamic_cast<const ActivationLayer*>(&m)) {
    j.update({{"type", "Activation"}, {"activation", activation_name(a->activation())}});
  } else {
    throw FileError(path, "cannot save module '" + name + "' of type " + m.type_name() +
                                   ": kiln's model format describes " + kKnownTypes);
  }
  return j;
}

Padding padding_of(const json& j) { return j.at("padding").get<std::string>() == "same" ? Padding::Same : Padding::Valid; }

std::shared_ptr<Module> build(const json& j, const std::string& path) {
  const std::string type = j.at("type").get<std::string>();
  if (type == "Sequential") {
    auto s = std::make_shared<Sequential>();
    for (const json& c : j.at("layers")) s->add(build(c, path), c.at("name").get<std::string>());
    return s;
  }
  if (type == "Conv2D")
    return std::make_shared<Conv2D>(Conv2DOptions{
        .in_channels = j.at("in_channels").get<int64_t>(), .filters = j.at("filters").get<int64_t>(),
        .kernel = j.at("kernel").get<int>(), .stride = j.at("stride").get<int>(), .padding = padding_of(j),
        .use_bias = j.at("use_bias").get<bool>(),
        .activation = parse_activation(j.at("activation").get<std::string>()), .l2 = j.at("l2").get<float>()});
  if (type == "Dense")
    return std::make_shared<Dense>(DenseOptions{.in_features = j.at("in_features").get<int64_t>(),
                                                .units = j.at("units").get<int64_t>(),
                                                .use_bias = j.at("use_bias").get<bool>(),
                                                .activation = parse_activation(j.at("activation").get<std::string>()),
                                                .l2 = j.at("l2").get<float>()});
  if (type == "BatchNormalization")
    return std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = j.at("channels").get<int64_t>(),
                                                          .momentum = j.at("momentum").get<float>(),
                                                          .epsilon = j.at("epsilon").get<float>()});
  if (type == "Dropout") return std::make_shared<Dropout>(j.at("rate").get<float>());
  if (type == "MaxPooling2D")
    return std::make_shared<MaxPool2D>(MaxPool2DOptions{
        .pool = j.at("pool").get<int>(), .stride = j.at("stride").get<int>(), .padding = padding_of(j)});
  if (type == "AveragePooling2D")
    return std::make_shared<AvgPool2D>(AvgPool2DOptions{
        .pool = j.at("pool").get<int>(), .stride = j.at("stride").get<int>(), .padding = padding_of(j)});
  if (type == "Flatten") return std::make_shared<Flatten>();
  if (type == "Reshape") return std::make_shared<Reshape>(j.at("target").get<Shape>());
  if (type == "Permute") return std::make_shared<Permute>(j.at("dims").get<std::vector<int64_t>>());
  if (type == "Activation")
    return std::make_shared<ActivationLayer>(parse_activation(j.at("activation").get<std::string>()));
  throw FileError(path, "the architecture has a module '" + j.value("name", "?") + "' of type '" + type +
                                 "', which this kiln does not know (it knows " + kKnownTypes + ")");
}


}  // namespace

void check_model_runs(const Module& model, const Shape& input_shape, const std::string& path) {
  Shape batch = {1};
  batch.insert(batch.end(), input_shape.begin(), input_shape.end());
  auto& m = const_cast<Module&>(model);  // forward() is not const; eval mode is restored below
  const bool was_training = m.is_training();
  m.eval();
  NoGradGuard no_grad;
  try {
    m.forward(Tensor::zeros(batch));
  } catch (const std::invalid_argument& e) {
    m.train(was_training);
    throw FileError(path, "the model does not run on input " + shape_str(input_shape) + ": " + e.what());
  }
  m.train(was_training);
}

void save_model(const std::string& path, const Module& model, const Shape& input_shape, const std::string& name) {
  const json arch = {{"name", name}, {"input_shape", input_shape}, {"model", describe(model, name, path)}};
  check_model_runs(model, input_shape, path);
  h5::write_atomically(path, [&](H5::H5File& f) {
    h5::write_string(f, "kiln_format", kFormatTag);
    h5::write_int(f, "version", kModelFileVersion);
    h5::write_string(f, "architecture", arch.dump());
    H5::Group params = f.createGroup("parameters");
    for (const auto& [n, t] : model.named_parameters()) h5::write_tensor(params, n, t);
    H5::Group buffers = f.createGroup("buffers");
    for (const auto& [n, t] : model.named_buffers()) h5::write_tensor(buffers, n, t);
  });
}

LoadedModel load_kiln_model(const std::string& path) {
  try {
    H5::H5File f = h5::open_file(path);
    if (!h5::has_attr(f, "kiln_format") || h5::read_string(f, "kiln_format", path) != kFormatTag)
      throw FileError(path, "not a kiln model file (attribute kiln_format is not '" + std::string(kFormatTag) + "')");
    if (!h5::has_attr(f, "version"))
      throw FileError(path, "kiln model file without a 'version' attribute; this kiln reads version " +
                                     std::to_string(kModelFileVersion));
    const int64_t version = h5::read_int(f, "version", path);
    if (version != kModelFileVersion)
      throw FileError(path, "kiln model file version " + std::to_string(version) + "; this kiln reads version " +
                                     std::to_string(kModelFileVersion));
    json arch;
    try {
      arch = json::parse(h5::read_string(f, "architecture", path));
    } catch (const json::exception& e) {
      throw FileError(path, std::string("the architecture attribute is not valid JSON: ") + e.what());
    }
    LoadedModel m;
    m.format = "kiln";
    try {
      m.name = arch.at("name").get<std::string>();
      m.input_shape = arch.at("input_shape").get<Shape>();
      std::shared_ptr<Module> root = build(arch.at("model"), path);
      m.model = std::dynamic_pointer_cast<Sequential>(root);
      if (!m.model) {
        m.model = std::make_shared<Sequential>();
        m.model->add(root, arch.at("model").at("name").get<std::string>());
      }
    } catch (const json::exception& e) {
      throw FileError(path, std::string("the architecture is malformed: ") + e.what());
    } catch (const std::invalid_argument& e) {
      throw FileError(path, std::string("the architecture describes a module kiln cannot build: ") + e.what());
    }
    // Every parameter and buffer from its dataset, and no dataset left over.
    for (const char* group : {"parameters", "buffers"}) {
      const NamedTensors tensors = std::string(group) == "parameters" ? m.model->named_parameters()
                                                                     : m.model->named_buffers();
      if (!f.nameExists(group)) throw FileError(path, std::string("no /") + group + " group");
      const H5::Group g = f.openGroup(group);
      for (const auto& [n, t] : tensors) {
        if (!g.nameExists(n)) throw FileError(path, std::string("no dataset /") + group + "/" + n);
        const Tensor v = h5::read_tensor(g.openDataSet(n), path, std::string("/") + group + "/" + n);
        if (v.shape() != t.shape())
          throw FileError(path, std::string("/") + group + "/" + n + " has shape " + shape_str(v.shape()) +
                                         ", the architecture needs " + shape_str(t.shape()));
        Tensor target = t;
        target.copy_(v);
      }
      if (g.getNumObjs() != tensors.size())
        throw FileError(path, std::string("/") + group + " holds " + std::to_string(g.getNumObjs()) +
                                       " entries, the architecture has " + std::to_string(tensors.size()));
    }
    m.model->eval();
    return m;
  } catch (const H5::Exception& e) {
    throw h5::damaged_file(path, e);
  }
}

LoadedModel load_model(const std::string& path) {
  if (!std::filesystem::exists(path)) throw FileError(path, "file not found");
  if (ZipArchive::looks_like_zip(path)) return import_keras(path);
  if (!h5::is_hdf5(path))
    throw FileError(path, "not a model file kiln reads: neither HDF5 (a kiln model or a Keras .h5) "
                               "nor a zip archive (a Keras .keras)");
  bool kiln_file = false;
  {
    H5::H5File f = h5::open_file(path);
    kiln_file = h5::has_attr(f, "kiln_format");
  }
  return kiln_file ? load_kiln_model(path) : import_keras(path);
}

}  // namespace kiln
