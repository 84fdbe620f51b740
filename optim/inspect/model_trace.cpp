#include "optim/inspect/model_trace.h"

#include <map>

#include "layers/graph.h"
#include "layers/sequential.h"

namespace kiln {
namespace {

class Tracer {
 public:
  Tracer(const TraceOptions& o, Trace& t) : o_(o), t_(t) {}

  Tensor run(Module& m, const std::string& name, const std::vector<Tensor>& xs, bool logits) {
    if (auto* s = dynamic_cast<Sequential*>(&m)) {
      const auto children = s->named_children();
      Tensor v = xs.at(0);
      for (size_t i = 0; i < children.size(); ++i)
        v = run(*children[i].second, join(name, children[i].first), {v}, logits && i + 1 == children.size());
      return v;
    }
    if (auto* g = dynamic_cast<Graph*>(&m)) {
      std::map<std::string, Tensor> values;
      for (size_t i = 0; i < g->input_names().size(); ++i) values[g->input_names()[i]] = xs.at(i);
      const bool out_logits = logits && g->ends_in_softmax();
      for (const Graph::Node& n : g->nodes()) {
        std::vector<Tensor> ins;
        for (const auto& in : n.inputs) ins.push_back(values.at(in));
        values[n.name] = run(*n.module, join(name, n.name), ins, out_logits && n.name == g->output_name());
      }
      return values.at(g->output_name());
    }
    Tensor y;
    if (!o_.replace_layer.empty() && name == o_.replace_layer) {
      replaced_ = true;
      y = logits ? m.forward_logits(xs.at(0)) : m.forward_many(xs);  // its shape, to check the replacement
      check_arg(o_.replacement.shape() == y.shape(), "trace_layers",
                "replacement " + shape_str(o_.replacement.shape()) + " for layer '" + name + "' whose output is " +
                    shape_str(y.shape()));
      y = o_.replacement;
    } else {
      y = logits && xs.size() == 1 ? m.forward_logits(xs[0]) : m.forward_many(xs);
    }
    t_.layers.push_back({name, &m, y});
    return y;
  }
  bool replaced() const { return replaced_; }

 private:
  static std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }
  const TraceOptions& o_;
  Trace& t_;
  bool replaced_ = false;
};

}  // namespace

Trace trace_layers(Module& model, const Tensor& x, const TraceOptions& options) {
  Trace t;
  Tracer tracer(options, t);
  t.output = tracer.run(model, "", {x}, options.logits);
  check_arg(options.replace_layer.empty() || tracer.replaced(), "trace_layers",
            "the model has no layer named '" + options.replace_layer + "'");
  return t;
}

}  // namespace kiln
