#!/usr/bin/python3
"""kiln against PyTorch on this machine, in one run.

Runs kiln_bench's seven model configurations (training step and inference of the lab's three
networks, and a Task 3 training step on whole 96x96 patches), then the same architectures in PyTorch (Debian's python3-torch, as shipped, oneDNN on)
with the same batch sizes, synthetic data and thread count, and prints one table: images per
second of each, their ratio, kiln's GFLOP/s and its share of the sgemm peak that kiln_bench
measures in the same run. Then the peak memory (max RSS) of a task3_32 training step in a
process of its own for each.

Every figure is a median over --repetitions timed rounds. The machines here are shared and
noisy, so only ratios measured in the same run mean much.

Usage: /usr/bin/python3 bench/compare_pytorch.py [--kiln-bench build/bench/kiln_bench]
       [--threads 2] [--repetitions 5] [--json out.json]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

CONFIGS = [
    # name in kiln_bench, model, batch, mode
    ("BM_TrainStep/task1", "task1", 128, "train"),
    ("BM_TrainStep/task2", "task2", 16, "train"),
    ("BM_TrainStep/task3_32", "task3_32", 70, "train"),
    ("BM_Inference/task1_b256", "task1", 256, "infer"),
    ("BM_Inference/task2_b256", "task2", 256, "infer"),
    ("BM_Inference/task3_32_b70", "task3_32", 70, "infer"),
    ("BM_TrainStep/task3_96", "task3_96", 70, "train"),
]


def run_kiln(bench, threads, reps, min_time):
    env = dict(os.environ, KILN_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    names = "|".join(c[0] for c in CONFIGS) + "|BM_SgemmPeak"
    out = subprocess.run(
        [bench, "--benchmark_filter=" + names, "--benchmark_repetitions=%d" % reps,
         "--benchmark_min_time=%g" % min_time, "--benchmark_format=json"],
        env=env, check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    results = {"context": report.get("context", {})}
    for b in report["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        key = re.sub(r"/(real_time|min_warmup_time:[0-9.]+)", "", b["run_name"])
        results[key] = {"img_s": b.get("items_per_second"), "gflops": b.get("GFLOP/s", 0) / 1e9
                        if b.get("GFLOP/s", 0) > 1e6 else b.get("GFLOP/s", 0)}
    return results


# ---------------------------------------------------------------- the PyTorch side
def torch_models():
    import torch
    from torch import nn

    def conv_block(n, cin, ch):
        layers = []
        for i in range(n):
            layers += [nn.Conv2d(cin if i == 0 else ch, ch, 3, padding=1),
                       nn.BatchNorm2d(ch, eps=1e-3, momentum=0.01), nn.ReLU()]
        layers.append(nn.MaxPool2d(2))
        return layers

    def task1():
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(392, 10))

    def task2():
        return nn.Sequential(*conv_block(2, 1, 64), *conv_block(2, 64, 128), nn.Dropout(0.1),
                             *conv_block(2, 128, 128), nn.Dropout(0.1), nn.Flatten(),
                             nn.Linear(1152, 512), nn.ReLU(), nn.Dropout(0.1), nn.Linear(512, 10))

    def task3(side=32):
        return nn.Sequential(*conv_block(2, 3, 128), *conv_block(2, 128, 128),
                             *conv_block(2, 128, 256), nn.Flatten(), nn.Dropout(0.3),
                             nn.Linear(256 * (side // 8) ** 2, 256), nn.ReLU(), nn.Dropout(0.3),
                             nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2))

    return {"task1": (task1, (1, 28, 28), 10, False, 0.0),
            "task2": (task2, (1, 28, 28), 10, False, 1e-4),
            "task3_32": (task3, (3, 32, 32), 2, True, 1e-4),
            "task3_96": (lambda: task3(96), (3, 96, 96), 2, True, 1e-4)}


def torch_rate(model_name, batch, mode, reps, min_time):
    """Median images per second of PyTorch's train step or inference."""
    import torch
    build, shape, classes, adamw, l2 = torch_models()[model_name]
    torch.manual_seed(0)
    model = build()
    x = torch.rand((batch,) + shape) * 2 - 1
    y = torch.arange(batch) % classes
    if mode == "train":
        model.train()
        if adamw:
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=1e-7, weight_decay=0.004)
        else:
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        kernels = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            loss = loss_fn(model(x), y)
            if l2:
                loss = loss + l2 * sum((k * k).sum() for k in kernels)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step():
            with torch.no_grad():
                model(x)

    for _ in range(2):
        step()
    rates = []
    for _ in range(reps):
        n, start = 0, time.perf_counter()
        while True:
            step()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time and n >= 2:
                break
        rates.append(n * batch / elapsed)
    return statistics.median(rates)


def vm_hwm_mib():
    """This process's peak resident memory (VmHWM) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def peak_rss_mib(cmd, env, parse):
    """Peak RSS (MiB) that a child process running cmd reports about itself. (The rusage of a
    child is no good here: Linux carries the forking parent's high-water mark into it.)"""
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return parse(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln-bench", default="build/bench/kiln_bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per timed round")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--only", help="run only the configurations whose name contains this text "
                                   "(e.g. task1); skips the memory probe unless it matches task3_32")
    ap.add_argument("--torch-one", nargs=3, metavar=("MODEL", "BATCH", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.torch_one:  # child process: one PyTorch configuration, for the memory probe
        import torch
        torch.set_num_threads(args.threads)
        torch_rate(args.torch_one[0], int(args.torch_one[1]), args.torch_one[2], 1, 0.5)
        print(json.dumps({"peak_rss_mib": vm_hwm_mib()}))
        return

    if not os.access(args.kiln_bench, os.X_OK):
        sys.exit("compare_pytorch: %s not found or not executable (build kiln first)" % args.kiln_bench)
    try:
        import torch
    except ImportError:
        sys.exit("compare_pytorch: PyTorch is missing (apt-get install python3-torch; run with /usr/bin/python3)")
    # One pool per framework: PyTorch's intra-op threads, and no second OpenBLAS pool under it.
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    torch.set_num_threads(args.threads)

    global CONFIGS
    if args.only:
        CONFIGS = [c for c in CONFIGS if args.only in c[0]]
        if not CONFIGS:
            sys.exit("compare_pytorch: no configuration matches --only %s" % args.only)
    print("kiln vs PyTorch %s, %d threads, median of %d rounds" % (torch.__version__, args.threads, args.repetitions))
    kiln = run_kiln(args.kiln_bench, args.threads, args.repetitions, args.min_time)
    ctx = kiln["context"]
    print("CPU: %s (%s); OpenBLAS kernel %s (%s)" % (ctx.get("cpu_model", "?"), ctx.get("cpu_isa", "?"),
                                                     ctx.get("blas_core", "?"), ctx.get("blas_config", "?")))
    peak = kiln["BM_SgemmPeak/2048"]["gflops"]
    rows = []
    for bench_name, model, batch, mode in CONFIGS:
        k = kiln[bench_name]
        t = torch_rate(model, batch, mode, args.repetitions, args.min_time)
        rows.append({"config": bench_name, "batch": batch, "kiln_img_s": k["img_s"], "torch_img_s": t,
                     "ratio": k["img_s"] / t, "kiln_gflops": k["gflops"],
                     "kiln_pct_of_sgemm_peak": 100.0 * k["gflops"] / peak})

    print("\n%-28s %6s %12s %12s %7s %12s %9s" % ("configuration", "batch", "kiln img/s", "torch img/s",
                                               "ratio", "kiln GFLOP/s", "% peak"))
    for r in rows:
        print("%-28s %6d %12.1f %12.1f %7.2f %12.1f %8.0f%%" % (
            r["config"], r["batch"], r["kiln_img_s"], r["torch_img_s"], r["ratio"], r["kiln_gflops"],
            r["kiln_pct_of_sgemm_peak"]))
    print("sgemm peak (2048^3, OpenBLAS, same run): %.1f GFLOP/s" % peak)
    print("(GFLOP/s count the direct convolution's multiply-adds; kiln's Winograd layers do 2.25x fewer,\n"
          " so a model built of them can pass 100 % of the sgemm peak)")

    kiln_mem = torch_mem = None
    if any(c[0] == "BM_TrainStep/task3_32" for c in CONFIGS):
        kiln_mem, torch_mem = memory_probe(args)

    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump({"cpu": ctx.get("cpu_model"), "isa": ctx.get("cpu_isa"), "blas_kernel": ctx.get("blas_core"),
                       "threads": args.threads, "repetitions": args.repetitions, "torch": torch.__version__,
                       "sgemm_peak_gflops": peak, "rows": rows,
                       "peak_rss_mib": {"kiln": kiln_mem, "torch": torch_mem}}, f, indent=2)
        os.replace(args.json + ".tmp", args.json)


def memory_probe(args):
    env = dict(os.environ, KILN_NUM_THREADS=str(args.threads))
    kiln_mem = peak_rss_mib([args.kiln_bench, "--benchmark_filter=BM_TrainStep/task3_32",
                             "--benchmark_min_time=0.5", "--benchmark_format=json"], env,
                            lambda out: json.loads(out)["benchmarks"][0]["peak_rss_MiB"])
    torch_mem = peak_rss_mib([sys.executable, __file__, "--threads", str(args.threads),
                              "--torch-one", "task3_32", "70", "train"], env,
                             lambda out: json.loads(out.strip().splitlines()[-1])["peak_rss_mib"])
    print("peak memory, task3_32 training step (batch 70), whole process max RSS: kiln %.0f MiB, "
          "PyTorch %.0f MiB" % (kiln_mem, torch_mem))
    return kiln_mem, torch_mem


if __name__ == "__main__":
    main()
