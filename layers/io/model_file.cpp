#include "layers/io/model_file.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/io/h5_io.h"
#include "core/io/zip_archive.h"
#include "layers/graph.h"
#include "layers/io/keras/keras_import.h"
#include "layers/io/onnx/onnx_import.h"
#include "layers/layer_registry.h"

namespace kiln {

using json = nlohmann::json;

namespace {

constexpr const char* kFormatTag = "kiln-model";

// The architecture of one module (and its children) as JSON: a Sequential lists its layers;
// every other module is a registered layer type (layers/layer_registry.h) whose config
// follows its name, type and config version, and whose children its build() makes.
json describe(const Module& m, const std::string& name, const std::string& path) {
  json j = {{"name", name}};
  if (auto* s = dynamic_cast<const Sequential*>(&m)) {
    j["type"] = "Sequential";
    j["layers"] = json::array();
    for (const auto& [child, module] : s->named_children()) j["layers"].push_back(describe(*module, child, path));
    return j;
  }
  if (auto* g = dynamic_cast<const Graph*>(&m)) {
    j["type"] = "Graph";
    j["inputs"] = g->input_names();
    j["output"] = g->output_name();
    j["nodes"] = json::array();
    for (const Graph::Node& n : g->nodes())
      j["nodes"].push_back({{"name", n.name}, {"inputs", n.inputs}, {"module", describe(*n.module, n.name, path)}});
    return j;
  }
  const LayerType* t = layer_type_of(m);
  if (t == nullptr)
    throw FileError(path, "cannot save module '" + name + "' of type " + m.type_name() +
                              ": it is not a registered layer type (register it with register_layer, "
                              "layers/layer_registry.h); registered: Sequential, Graph, " + registered_layer_names());
  j["type"] = t->name;
  j["version"] = t->version;
  const json config = t->write_config(m);  // a named local: items() would dangle on a temporary
  for (const auto& [key, value] : config.items()) j[key] = value;
  return j;
}

// Sequentials and Graphs inside each other: each level one recursion here and in the model's own walks.
constexpr int kMaxNesting = 64;

std::shared_ptr<Module> build(const json& j, const std::string& path, int depth = 1) {
  const std::string type = j.at("type").get<std::string>();
  if (type == "Sequential") {
    if (depth > kMaxNesting)
      throw FileError(path, "the architecture nests Sequentials more than " + std::to_string(kMaxNesting) +
                                " deep; kiln refuses deeper nesting");
    auto s = std::make_shared<Sequential>();
    for (const json& c : j.at("layers")) s->add(build(c, path, depth + 1), c.at("name").get<std::string>());
    return s;
  }
  if (type == "Graph") {
    if (depth > kMaxNesting)
      throw FileError(path, "the architecture nests models more than " + std::to_string(kMaxNesting) +
                                " deep; kiln refuses deeper nesting");
    auto g = std::make_shared<Graph>();
    for (const json& in : j.at("inputs")) g->input(in.get<std::string>());
    // Graph::add refuses a node that names anything not defined before it, so a file whose
    // nodes form a cycle or name a missing node fails here, naming the node.
    for (const json& n : j.at("nodes"))
      g->add(n.at("name").get<std::string>(), build(n.at("module"), path, depth + 1),
             n.at("inputs").get<std::vector<std::string>>());
    g->output(j.at("output").get<std::string>());
    return g;
  }
  const LayerType* t = find_layer_type(type);
  if (t == nullptr)
    throw FileError(path, "the architecture has a module '" + j.value("name", "?") + "' of type '" + type +
                              "', which this kiln does not know (it knows Sequential, Graph, " + registered_layer_names() +
                              "; a type of your own must be registered before loading)");
  // Files written before layers carried a config version hold version 1 of every config.
  const int version = j.contains("version") ? j.at("version").get<int>() : 1;
  if (version != t->version)
    throw FileError(path, "module '" + j.value("name", "?") + "' of type " + type + " has config version " +
                              std::to_string(version) + "; this kiln reads version " + std::to_string(t->version));
  return t->build(j);
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
  link_builtin_layer_types();
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
  link_builtin_layer_types();
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
      m.model = build(arch.at("model"), path);
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
  if (!h5::is_hdf5(path)) {
    // ONNX files have no magic number: a file ending in .onnx is read as one, anything else
    // only when it parses as one.
    if (std::filesystem::path(path).extension() == ".onnx") return import_onnx(path);
    try {
      return import_onnx(path);
    } catch (const FileError& e) {
      if (std::string(e.what()).find("not an ONNX model") == std::string::npos) throw;
    }
    throw FileError(path, "not a model file kiln reads: neither HDF5 (a kiln model or a Keras .h5), "
                               "a zip archive (a Keras .keras) nor an ONNX model");
  }
  bool kiln_file = false;
  {
    H5::H5File f = h5::open_file(path);
    kiln_file = h5::has_attr(f, "kiln_format");
  }
  return kiln_file ? load_kiln_model(path) : import_keras(path);
}

}  // namespace kiln
