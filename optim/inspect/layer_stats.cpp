#include "optim/inspect/layer_stats.h"

#include <cmath>
#include <cstdio>

#include "core/autograd.h"
#include "core/io/write_atomically.h"
#include "core/ops/ops.h"
#include "optim/inspect/model_trace.h"

namespace kiln {

std::vector<LayerStats> layer_statistics(Module& model, const Batch& batch, double learning_rate) {
  const bool was_training = model.is_training();
  std::vector<LayerStats> out;
  {
    model.eval();
    NoGradGuard no_grad;
    for (const TracedLayer& l : trace_layers(model, batch.x).layers) {
      LayerStats s{l.name, l.module->type_name(), l.output.shape()};
      const float* p = l.output.data();
      const int64_t n = l.output.numel();
      double sum = 0, sq = 0;
      int64_t zeros = 0;
      for (int64_t i = 0; i < n; ++i) sum += p[i], sq += static_cast<double>(p[i]) * p[i], zeros += p[i] == 0.0f;
      s.mean = n ? sum / static_cast<double>(n) : 0;
      s.stddev = n ? std::sqrt(std::max(0.0, sq / static_cast<double>(n) - s.mean * s.mean)) : 0;
      s.zero_fraction = n ? static_cast<double>(zeros) / static_cast<double>(n) : 0;
      for (const auto& [name, t] : l.module->named_parameters()) {
        s.parameters += t.numel();
        for (int64_t i = 0; i < t.numel(); ++i) s.weight_norm += static_cast<double>(t.data()[i]) * t.data()[i];
      }
      s.weight_norm = std::sqrt(s.weight_norm);
      out.push_back(std::move(s));
    }
  }
  // One training-mode pass for the gradients; batch-norm statistics and gradients restored after.
  std::vector<std::pair<Tensor, Tensor>> saved;
  for (auto& [name, b] : model.named_buffers()) saved.emplace_back(b, b.clone());
  for (Tensor& p : model.parameters()) p.zero_grad();
  model.train();
  const Trace t = trace_layers(model, batch.x, {.logits = true});
  const Tensor& y = t.output;
  Tensor loss;
  if (y.dim() == 2 && y.size(1) == 1) {  // one sigmoid output: binary cross-entropy on it
    Tensor target = Tensor::empty(y.shape());
    for (int64_t i = 0; i < y.size(0); ++i) target.data()[i] = static_cast<float>(batch.labels[static_cast<size_t>(i)]);
    const Tensor ones = Tensor::ones(y.shape());
    loss = neg(mean(add(mul(target, log(add(y, 1e-7f))), mul(sub(ones, target), log(add(sub(ones, y), 1e-7f))))));
  } else {
    loss = softmax_cross_entropy(y, batch.y_onehot);
  }
  loss.backward();
  // Each leaf layer's parameters, found again by module (the trace's order is the stats' order).
  for (size_t i = 0; i < out.size() && i < t.layers.size(); ++i) {
    double g2 = 0;
    for (const auto& [name, p] : t.layers[i].module->named_parameters()) {
      const Tensor g = p.grad();
      if (!g.defined()) continue;
      for (int64_t k = 0; k < g.numel(); ++k) g2 += static_cast<double>(g.data()[k]) * g.data()[k];
    }
    out[i].grad_norm = std::sqrt(g2);
    out[i].update_ratio = out[i].weight_norm > 0 ? learning_rate * out[i].grad_norm / out[i].weight_norm : 0;
  }
  for (Tensor& p : model.parameters()) p.zero_grad();
  for (auto& [live, copy] : saved) live.copy_(copy);
  model.train(was_training);
  return out;
}

void write_layer_stats_csv(const std::string& path, const std::vector<LayerStats>& stats) {
  write_stream_atomically(path, [&](std::ostream& f) {
    f << "layer,type,output_shape,mean,std,zero_fraction,parameters,weight_norm,grad_norm,update_ratio\n";
    char buf[256];
    for (const LayerStats& s : stats) {
      std::string shape;
      for (size_t i = 0; i < s.output_shape.size(); ++i) {
        if (i) shape += 'x';
        shape += std::to_string(s.output_shape[i]);
      }
      std::snprintf(buf, sizeof buf, ",%.6g,%.6g,%.6g,%lld,%.6g,%.6g,%.6g\n", s.mean, s.stddev, s.zero_fraction,
                    static_cast<long long>(s.parameters), s.weight_norm, s.grad_norm, s.update_ratio);
      f << s.name << "," << s.type << "," << shape << buf;
    }
  });
}

}  // namespace kiln
