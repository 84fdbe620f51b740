#include "optim/train/checkpoint.h"

#include <map>

#include <nlohmann/json.hpp>

#include "core/io/h5_io.h"

namespace kiln {

namespace {

using json = nlohmann::json;
constexpr const char* kFormatTag = "kiln-checkpoint";

json history_json(const History& h) {
  json epochs = json::array();
  for (const EpochLog& e : h.epochs)
    epochs.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"accuracy", e.accuracy}, {"auc", e.auc},
                      {"validated", e.validated}, {"val_loss", e.val_loss}, {"val_accuracy", e.val_accuracy},
                      {"val_auc", e.val_auc}, {"seconds", e.seconds}});
  return {{"has_auc", h.has_auc}, {"epochs", epochs}};
}

History history_from(const json& j) {
  History h;
  h.has_auc = j.at("has_auc").get<bool>();
  for (const json& e : j.at("epochs")) {
    EpochLog log;
    log.epoch = e.at("epoch").get<int64_t>();
    log.loss = e.at("loss").get<double>();
    log.accuracy = e.at("accuracy").get<double>();
    log.auc = e.at("auc").get<double>();
    log.validated = e.at("validated").get<bool>();
    log.val_loss = e.at("val_loss").get<double>();
    log.val_accuracy = e.at("val_accuracy").get<double>();
    log.val_auc = e.at("val_auc").get<double>();
    log.seconds = e.at("seconds").get<double>();
    h.epochs.push_back(log);
  }
  return h;
}

NamedGenerators all_generators(Module& model, const NamedGenerators& extra) {
  NamedGenerators all = model.named_generators();
  all.insert(all.end(), extra.begin(), extra.end());
  return all;
}

NamedTensors read_group(const H5::H5File& f, const std::string& group, const std::string& path) {
  if (!f.nameExists(group)) throw FileError(path, "checkpoint without a /" + group + " group");
  const H5::Group g = f.openGroup(group);
  NamedTensors out;
  for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
    const std::string name = g.getObjnameByIdx(i);
    out.emplace_back(name, h5::read_tensor(g.openDataSet(name), path, "/" + group + "/" + name));
  }
  return out;
}

// Checks that `stored` has exactly the names of `live`, with equal shapes.
void check_match(const NamedTensors& stored, const NamedTensors& live, const std::string& what,
                 const std::string& path) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [n, t] : stored) by_name[n] = &t;
  for (const auto& [n, t] : live) {
    const auto it = by_name.find(n);
    if (it == by_name.end())
      throw FileError(path, "the checkpoint has no " + what + " '" + n + "': it was written for another model");
    if (it->second->shape() != t.shape())
      throw FileError(path, what + " '" + n + "' is " + shape_str(it->second->shape()) +
                                     " in the checkpoint but " + shape_str(t.shape()) + " in this model");
  }
  if (stored.size() != live.size())
    throw FileError(path, "the checkpoint holds " + std::to_string(stored.size()) + " " + what + "s, this model " +
                                   std::to_string(live.size()) + ": it was written for another model");
}

void copy_into(const NamedTensors& stored, const NamedTensors& live) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [n, t] : stored) by_name[n] = &t;
  for (const auto& [n, t] : live) {
    Tensor target = t;
    target.copy_(*by_name.at(n));
  }
}

// The in_epoch attribute and datasets (version 2), checked against themselves and the history.
void read_in_epoch(const H5::H5File& f, const std::string& path, Checkpoint& c) {
  InEpochProgress& p = c.in_epoch;
  try {
    const json j = json::parse(h5::read_string(f, "in_epoch", path));
    p.steps_done = j.at("steps_done").get<int64_t>();
    p.loss_sum = j.at("loss_sum").get<double>();
    p.correct = j.at("correct").get<int64_t>();
    p.seen = j.at("seen").get<int64_t>();
    p.seconds = j.at("seconds").get<double>();
  } catch (const json::exception& e) {
    throw FileError(path, std::string("the in_epoch attribute is malformed: ") + e.what());
  }
  if (p.steps_done < 0 || p.seen < 0 || p.correct < 0 || p.correct > p.seen || (p.steps_done > 0) != (p.seen > 0))
    throw FileError(path, "the in_epoch attribute is inconsistent (steps_done " + std::to_string(p.steps_done) +
                              ", seen " + std::to_string(p.seen) + ", correct " + std::to_string(p.correct) + ")");
  if (!f.nameExists("in_epoch")) return;
  const NamedTensors stored = read_group(f, "in_epoch", path);
  const Tensor* scores = nullptr;
  const Tensor* labels = nullptr;
  for (const auto& [name, t] : stored) {
    if (name == "scores") scores = &t;
    else if (name == "score_labels") labels = &t;
    else throw FileError(path, "unexpected dataset /in_epoch/" + name);
  }
  if (!scores || !labels || scores->dim() != 1 || labels->shape() != scores->shape() || scores->numel() > p.seen)
    throw FileError(path, "/in_epoch must hold scores and score_labels of one length, at most the rows seen");
  p.scores.assign(scores->data(), scores->data() + scores->numel());
  for (int64_t i = 0; i < labels->numel(); ++i) p.score_labels.push_back(static_cast<int32_t>(labels->data()[i]));
}

}  // namespace

void save_checkpoint(const std::string& path, Module& model, const Optimizer& optimizer,
                     const NamedGenerators& extra_generators, int64_t epochs_done, const History& history,
                     const std::string& note, const InEpochProgress& in_epoch) {
  json generators = json::object();
  for (const auto& [name, g] : all_generators(model, extra_generators))
    generators[name] = json::array({g->seed(), g->counter()});
  h5::write_atomically(path, [&](H5::H5File& f) {
    h5::write_string(f, "kiln_format", kFormatTag);
    h5::write_int(f, "version", kCheckpointVersion);
    h5::write_int(f, "epochs_done", epochs_done);
    h5::write_string(f, "history", history_json(history).dump());
    h5::write_string(f, "generators", generators.dump());
    h5::write_string(f, "note", note);
    h5::write_string(f, "in_epoch", json{{"steps_done", in_epoch.steps_done},
                                         {"loss_sum", in_epoch.loss_sum},
                                         {"correct", in_epoch.correct},
                                         {"seen", in_epoch.seen},
                                         {"seconds", in_epoch.seconds}}.dump());
    if (!in_epoch.scores.empty()) {
      const auto n = static_cast<int64_t>(in_epoch.scores.size());
      Tensor scores = Tensor::empty({n}), labels = Tensor::empty({n});
      for (int64_t i = 0; i < n; ++i) {
        scores.data()[i] = in_epoch.scores[static_cast<size_t>(i)];
        labels.data()[i] = static_cast<float>(in_epoch.score_labels[static_cast<size_t>(i)]);
      }
      H5::Group g = f.createGroup("in_epoch");
      h5::write_tensor(g, "scores", scores);
      h5::write_tensor(g, "score_labels", labels);
    }
    H5::Group params = f.createGroup("parameters");
    for (const auto& [n, t] : model.named_parameters()) h5::write_tensor(params, n, t);
    H5::Group buffers = f.createGroup("buffers");
    for (const auto& [n, t] : model.named_buffers()) h5::write_tensor(buffers, n, t);
    H5::Group opt = f.createGroup("optimizer");
    for (const auto& [n, t] : optimizer.state()) h5::write_tensor(opt, n, t);
  });
}

Checkpoint read_checkpoint(const std::string& path) {
  try {
    H5::H5File f = h5::open_file(path);
    if (!h5::has_attr(f, "kiln_format") || h5::read_string(f, "kiln_format", path) != kFormatTag)
      throw FileError(path, "not a kiln checkpoint (attribute kiln_format is not '" + std::string(kFormatTag) + "')");
    const int64_t version = h5::has_attr(f, "version") ? h5::read_int(f, "version", path) : -1;
    if (version != 1 && version != kCheckpointVersion)
      throw FileError(path, "checkpoint version " + std::to_string(version) + "; this kiln reads versions 1 to " +
                                     std::to_string(kCheckpointVersion));
    Checkpoint c;
    c.epochs_done = h5::read_int(f, "epochs_done", path);
    try {
      c.history = history_from(json::parse(h5::read_string(f, "history", path)));
      const json generators = json::parse(h5::read_string(f, "generators", path));
      for (const auto& [name, state] : generators.items())
        c.generators.push_back({name, state.at(0).get<uint64_t>(), state.at(1).get<uint64_t>()});
    } catch (const json::exception& e) {
      throw FileError(path, std::string("a checkpoint attribute is malformed: ") + e.what());
    }
    if (c.epochs_done < 0 || static_cast<int64_t>(c.history.epochs.size()) != c.epochs_done)
      throw FileError(path, "epochs_done is " + std::to_string(c.epochs_done) + " but the history holds " +
                                     std::to_string(c.history.epochs.size()) + " epochs");
    c.note = h5::read_string(f, "note", path);
    if (version >= 2) read_in_epoch(f, path, c);
    c.parameters = read_group(f, "parameters", path);
    c.buffers = read_group(f, "buffers", path);
    c.optimizer = read_group(f, "optimizer", path);
    return c;
  } catch (const H5::Exception& e) {
    throw h5::damaged_file(path, e);
  }
}

void restore_checkpoint(const Checkpoint& c, const std::string& path, Module& model, Optimizer& optimizer,
                        const NamedGenerators& extra_generators) {
  const NamedTensors params = model.named_parameters(), buffers = model.named_buffers();
  check_match(c.parameters, params, "parameter", path);
  check_match(c.buffers, buffers, "buffer", path);
  const NamedGenerators generators = all_generators(model, extra_generators);
  std::map<std::string, const GeneratorState*> stored;
  for (const GeneratorState& g : c.generators) stored[g.name] = &g;
  for (const auto& [name, g] : generators)
    if (!stored.count(name)) throw FileError(path, "the checkpoint has no random stream '" + name + "'");
  if (stored.size() != generators.size())
    throw FileError(path, "the checkpoint holds " + std::to_string(stored.size()) + " random streams, this run " +
                                   std::to_string(generators.size()));
  try {
    optimizer.load_state(c.optimizer);  // checks every entry before writing any
  } catch (const std::invalid_argument& e) {
    throw FileError(path, std::string("the optimizer state does not fit: ") + e.what());
  }
  copy_into(c.parameters, params);
  copy_into(c.buffers, buffers);
  for (const auto& [name, g] : generators) g->restore(stored.at(name)->seed, stored.at(name)->counter);
}

}  // namespace kiln
