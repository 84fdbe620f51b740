// Whole-model benchmarks of the lab's three networks: a training step (forward, loss with the
// L2 penalty, backward, optimizer update; batch norm and dropout active; augmentation
// excluded) and inference, on synthetic data. items_per_second = images per second; the
// GFLOP/s counter uses the analytic GEMM FLOPs of the convolutions and dense layers
// (2*M*K*N per product; a training step counts three products per layer: forward, input
// gradient, weight gradient), so it is comparable with the sgemm peak measured beside it. The
// count is the direct form's: layers that run as Winograd F(2x2, 3x3) do fewer multiplies, so
// a model of them can show more GFLOP/s than the sgemm peak.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <memory>
#include <string>

#include "core/autograd.h"
#include "core/ops/ops.h"
#include "core/runtime/memory.h"
#include "data/dataset.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/zoo/lab_models.h"
#include "optim/adam.h"

namespace kiln {
namespace {

struct ModelConfig {
  const char* name;
  std::shared_ptr<Sequential> (*build)();
  Shape input;  // [H,W,C]
  int64_t classes;
  bool adamw;
};

std::shared_ptr<Sequential> build_task1() { return task1_model(); }
std::shared_ptr<Sequential> build_task2() { return task2_model(); }
std::shared_ptr<Sequential> build_task3() { return task3_model(32, 32, 3, 2); }
std::shared_ptr<Sequential> build_task3_96() { return task3_model(96, 96, 3, 2); }

const ModelConfig kTask1{"task1", build_task1, {28, 28, 1}, 10, false};
const ModelConfig kTask2{"task2", build_task2, {28, 28, 1}, 10, false};
const ModelConfig kTask3{"task3_32", build_task3, {32, 32, 3}, 2, true};
// The lab's Task 3 network on the original release's whole 96x96 patches (task3 --image-size 96).
const ModelConfig kTask3Full{"task3_96", build_task3_96, {96, 96, 3}, 2, true};

// Forward GEMM FLOPs for one image: runs one zero image through the model layer by layer and
// adds 2*K*N per output position of every Conv2D and Dense.
double forward_flops_per_image(Module& m, Tensor& x) {
  if (auto* seq = dynamic_cast<Sequential*>(&m)) {
    double total = 0;
    for (auto& [name, child] : seq->named_children()) total += forward_flops_per_image(*child, x);
    return total;
  }
  const Tensor y = m.forward(x);
  double flops = 0;
  if (auto* conv = dynamic_cast<Conv2D*>(&m)) {
    const auto& k = conv->kernel().shape();  // [kh,kw,C,F]
    flops = 2.0 * (y.numel() / k[3]) * k[0] * k[1] * k[2] * k[3];
  } else if (auto* dense = dynamic_cast<Dense*>(&m)) {
    flops = 2.0 * dense->kernel().size(0) * dense->kernel().size(1);
  }
  x = y;
  return flops;
}

double model_flops(const ModelConfig& c) {
  auto model = c.build();
  model->eval();
  NoGradGuard no_grad;
  Shape s = {1};
  s.insert(s.end(), c.input.begin(), c.input.end());
  Tensor x = Tensor::zeros(s);
  return forward_flops_per_image(*model, x);
}

Tensor synthetic_images(const ModelConfig& c, int64_t batch) {
  Shape s = {batch};
  s.insert(s.end(), c.input.begin(), c.input.end());
  return Tensor::uniform(s, -1.0f, 1.0f, 42);
}

Tensor synthetic_targets(const ModelConfig& c, int64_t batch) {
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) labels[i] = static_cast<int32_t>(i % c.classes);
  return one_hot(labels, c.classes);
}

void BM_TrainStep(benchmark::State& state, const ModelConfig& c, int64_t batch) {
  manual_seed(1);
  auto model = c.build();
  std::unique_ptr<Optimizer> opt;
  if (c.adamw) opt = std::make_unique<AdamW>(model->named_parameters(), AdamWOptions{});
  else opt = std::make_unique<Adam>(model->named_parameters(), AdamOptions{});
  const Tensor x = synthetic_images(c, batch);
  const Tensor y = synthetic_targets(c, batch);
  model->train();
  for (auto _ : state) {
    Tensor loss = softmax_cross_entropy(model->forward_logits(x), y);
    Tensor reg = model->regularization_loss();
    if (reg.defined()) loss = add(loss, reg);
    opt->zero_grad();
    loss.backward();
    opt->step();
    benchmark::DoNotOptimize(loss.item());
  }
  const double flops = 3.0 * model_flops(c) * batch;
  state.counters["peak_rss_MiB"] = peak_resident_mib();  // of the whole process, so run it alone
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9 * state.iterations(),
                                                 benchmark::Counter::kIsRate);
}

void BM_Inference(benchmark::State& state, const ModelConfig& c, int64_t batch) {
  manual_seed(1);
  auto model = c.build();
  model->eval();
  const Tensor x = synthetic_images(c, batch);
  NoGradGuard no_grad;
  for (auto _ : state) {
    const Tensor p = model->forward(x);
    benchmark::DoNotOptimize(p.data()[0]);
  }
  const double flops = model_flops(c) * batch;
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9 * state.iterations(),
                                                 benchmark::Counter::kIsRate);
}

// What OpenBLAS reaches on a large square sgemm here: the ceiling the models are measured against.
void BM_SgemmPeak(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const Tensor a = Tensor::uniform({n, n}, -1, 1, 1), b = Tensor::uniform({n, n}, -1, 1, 2);
  Tensor c = Tensor::zeros({n, n});
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n,
                0.0f, c.data(), n);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * n * n * 1e-9 * state.iterations(),
                                                 benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(BM_TrainStep, task1, kTask1, 128)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep, task2, kTask2, 16)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep, task3_32, kTask3, 70)->UseRealTime()->Unit(benchmark::kMillisecond);
// Seconds per step: without a warm-up the one timed step would include first touching every page.
BENCHMARK_CAPTURE(BM_TrainStep, task3_96, kTask3Full, 70)->UseRealTime()->MinWarmUpTime(1)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Inference, task1_b256, kTask1, 256)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Inference, task2_b256, kTask2, 256)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Inference, task3_32_b70, kTask3, 70)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SgemmPeak)->Arg(2048)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace kiln
