"""Benchmark: our Dawid-Skene engine beside crowd-kit's DawidSkene, measured in the same run.

Both sides fit the same synthetic label table (string task and worker ids, rows in random
order, 3 classes, 5 labels per task, workers of varied accuracy) with the same
initialisation, iteration cap (100) and tolerance (1e-5); ours runs with
``stop="crowdkit"`` so both run the same number of iterations, and the run checks that
they return the same labels with posteriors within 1e-6. Each side at each size runs in its
own subprocess; time is the wall time of ``fit`` on a ready DataFrame (validation and id
factorisation included on our side); memory is the peak resident memory the fit adds
(Linux VmHWM, reset before the fit; tracemalloc elsewhere), or on CUDA the peak allocated.

    python bench/aggregate.py                 # 10k, 100k, 1M, 5M labels
    python bench/aggregate.py --quick         # 10k and 50k labels, seconds
    python bench/aggregate.py --device cuda   # ours in torch on the GPU, then 100M x 100 it.
    python bench/aggregate.py --datasets ../shared/data/crowd   # stopping rules, real data

``--datasets DIR`` instead compares the stopping rules on every ``DIR/<name>/labels.csv``
with its ``gold.csv``: crowd-kit's own rule against the marginal likelihood (our default).
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH = "aggregate"
TARGET_RATIO = 5.0
FULL_SIZES = (10_000, 100_000, 1_000_000, 5_000_000)
QUICK_SIZES = (10_000, 50_000)
GPU_LABELS = 100_000_000
GPU_ITERATIONS = 100
CLASSES = 3
OVERLAP = 5
PRIOR = (0.5, 0.3, 0.2)


# --- the data --------------------------------------------------------------------------------


def shape(labels: int) -> tuple[int, int]:
    """Return (tasks, workers) for a table of ``labels`` labels."""
    tasks = max(labels // OVERLAP, 1)
    workers = int(min(5_000, max(20, labels // 1_000)))
    return tasks, workers


def make_codes(labels: int, seed: int = 7) -> tuple[np.ndarray, ...]:
    """Return (task, worker, label, truth) codes; each task has OVERLAP distinct workers."""
    rng = np.random.default_rng(seed)
    tasks, workers = shape(labels)
    truth = rng.choice(CLASSES, size=tasks, p=PRIOR)
    accuracy = rng.uniform(0.55, 0.95, size=workers)
    start = rng.integers(0, workers, size=tasks)
    stride = rng.integers(1, max(2, workers // OVERLAP), size=tasks)
    worker = (start[:, None] + stride[:, None] * np.arange(OVERLAP)) % workers
    task = np.repeat(np.arange(tasks), OVERLAP)
    worker = worker.ravel()
    right = rng.random(task.size) < accuracy[worker]
    wrong = (truth[task] + rng.integers(1, CLASSES, size=task.size)) % CLASSES
    label = np.where(right, truth[task], wrong)
    order = rng.permutation(task.size)[:labels]  # rows in random order, as submitted
    return task[order], worker[order], label[order], truth


def make_frame(labels: int, seed: int = 7) -> pd.DataFrame:
    """Return the synthetic table with string ids, as read from a CSV."""
    task, worker, label, _ = make_codes(labels, seed)
    task_ids = np.array([f"t{i:08d}" for i in range(task.max() + 1)], dtype=object)
    worker_ids = np.array([f"w{i:05d}" for i in range(worker.max() + 1)], dtype=object)
    return pd.DataFrame({"task": pd.array(task_ids[task], dtype="str"),
                         "worker": pd.array(worker_ids[worker], dtype="str"),
                         "label": label.astype(np.int64)})


# --- one measurement, in a fresh process -------------------------------------------------------


def _status_kib(key: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else None


class PeakMemory:
    """Peak memory added by a block: VmHWM reset through clear_refs, else tracemalloc."""

    def __enter__(self) -> PeakMemory:
        gc.collect()
        self.how = "tracemalloc"
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.before = _status_kib("VmRSS")
            if self.before is not None and _status_kib("VmHWM") is not None:
                self.how = "rss"
        except OSError:
            pass
        if self.how == "tracemalloc":
            tracemalloc.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.how == "rss":
            self.peak_mb = max(0, (_status_kib("VmHWM") or 0) - (self.before or 0)) / 1024
        else:
            self.peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()


def measure(side: str, labels: int, seed: int, device: str, out: Path) -> dict[str, Any]:
    """Fit one side on the synthetic table; save labels and posteriors for the comparison."""
    import warnings

    warnings.simplefilter("ignore")  # crowd-kit's pandas deprecation notices
    frame = make_frame(labels, seed)
    if side == "crowdkit":
        from crowdkit.aggregation import DawidSkene

        model = DawidSkene(n_iter=100, tol=1e-5)
    else:
        from aggregation import DawidSkene

        engine = "numpy" if device == "numpy" else "torch"
        model = DawidSkene(n_iter=100, tol=1e-5, stop="crowdkit", engine=engine,
                           device=None if device == "numpy" else device)
        if engine == "torch":  # load torch and warm the device outside the measurement
            model.fit(make_frame(1_000, seed + 1))
    cuda = device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with PeakMemory() as memory:
        started = time.perf_counter()
        model.fit(frame)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    probas = model.probas_.sort_index()
    np.save(out / f"{side}-{labels}.npy", probas.reindex(columns=sorted(probas.columns))
            .to_numpy())
    labels_ = model.labels_.sort_index().to_numpy()
    np.save(out / f"{side}-{labels}-labels.npy", labels_.astype(np.int64))
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else memory.peak_mb
    return {"side": side, "labels": labels, "seconds": seconds, "peak_mb": peak,
            "memory": "cuda" if cuda else memory.how,
            "iterations": len(model.loss_history_)}


def run_measurement(side: str, labels: int, seed: int, device: str, out: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--_measure", side, str(labels), "--seed", str(seed),
               "--_engine-device", device, "--_out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{side} at {labels} labels failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the comparison ------------------------------------------------------------------------


def compare(sizes: tuple[int, ...], seed: int, device: str) -> list[dict[str, Any]]:
    rows = []
    header = (f"{'labels':>10} {'tasks':>9} {'workers':>7} {'iters':>5} {'crowd-kit s':>11} "
              f"{'ours s':>8} {'speedup':>8} {'crowd-kit MB':>12} {'ours MB':>8} "
              f"{'mem ratio':>9} {'max |dp|':>9} {'labels':>7}")
    print(f"Dawid-Skene fit, ours ({device}) vs crowd-kit 1.4.2 (CPU), same iterations")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        for labels in sizes:
            theirs = run_measurement("crowdkit", labels, seed, "cpu", out)
            ours = run_measurement("ours", labels, seed, device, out)
            p_theirs = np.load(out / f"crowdkit-{labels}.npy")
            p_ours = np.load(out / f"ours-{labels}.npy")
            same = np.load(out / f"crowdkit-{labels}-labels.npy") == np.load(
                out / f"ours-{labels}-labels.npy")
            tasks, workers = shape(labels)
            row = {
                "labels": labels, "tasks": tasks, "workers": workers,
                "iterations": ours["iterations"], "iterations_crowdkit": theirs["iterations"],
                "crowdkit_s": theirs["seconds"], "ours_s": ours["seconds"],
                "speedup": theirs["seconds"] / ours["seconds"],
                "crowdkit_mb": theirs["peak_mb"], "ours_mb": ours["peak_mb"],
                "memory_ratio": theirs["peak_mb"] / max(ours["peak_mb"], 1e-9),
                "max_abs_diff": float(np.abs(p_theirs - p_ours).max()),
                "labels_equal": float(same.mean()),
                "memory_measure": ours["memory"],
            }
            rows.append(row)
            print(f"{labels:>10,} {tasks:>9,} {workers:>7,} {row['iterations']:>5} "
                  f"{row['crowdkit_s']:>11.2f} {row['ours_s']:>8.3f} {row['speedup']:>7.1f}x "
                  f"{row['crowdkit_mb']:>12.1f} {row['ours_mb']:>8.1f} "
                  f"{row['memory_ratio']:>8.1f}x {row['max_abs_diff']:>9.1e} "
                  f"{row['labels_equal']:>7.2%}", flush=True)
            if row["iterations"] != theirs["iterations"] or row["max_abs_diff"] > 1e-6 \
                    or row["labels_equal"] < 1.0:
                print("  ! ours and crowd-kit disagree at this size", flush=True)
    return rows


def gpu_run(labels: int, iterations: int, device: str, seed: int) -> dict[str, Any]:
    """Time ``iterations`` EM iterations on ``labels`` labels in torch, data made on device."""
    import torch

    from aggregation import dawid_skene, dawid_skene_torch

    target = dawid_skene_torch.resolve_device(device)
    task, worker, label, _ = make_codes(labels, seed)
    tasks, workers = shape(labels)
    codes = [torch.as_tensor(a, device=target) for a in (task, worker, label)]
    del task, worker, label
    if target.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    fit = dawid_skene_torch.fit_arrays(*codes, tasks, workers, CLASSES, n_iter=iterations,
                                       tol=-np.inf, stop="likelihood", device=target)
    if target.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**20 if target.type == "cuda" else float("nan")
    # The baseline beside it: the NumPy engine on the CPU, a few iterations of the same data.
    cpu_codes = [c.cpu().numpy() for c in codes]
    del codes
    cpu_iterations = 5
    started = time.perf_counter()
    dawid_skene.fit_arrays(*cpu_codes, tasks, workers, CLASSES, n_iter=cpu_iterations,
                           tol=-np.inf, stop="likelihood")
    cpu_per_iteration = (time.perf_counter() - started) / cpu_iterations
    return {"labels": labels, "iterations": fit.iterations, "seconds": seconds,
            "per_iteration_s": seconds / fit.iterations, "peak_mb": peak,
            "numpy_cpu_per_iteration_s": cpu_per_iteration,
            "ratio_vs_numpy_cpu": cpu_per_iteration / (seconds / fit.iterations),
            "device": str(target)}


# --- stopping rules on real datasets -----------------------------------------------------------


def biased_workers(seed: int = 7, tasks: int = 400, workers: int = 30, overlap: int = 5
                   ) -> tuple[pd.DataFrame, pd.Series]:
    """Balanced truth, workers who over-answer class 0: majority vote skews the prior."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, tasks)
    says_0_if_0 = rng.uniform(0.85, 0.98, workers)
    says_0_if_1 = rng.uniform(0.3, 0.6, workers)
    task = np.repeat(np.arange(tasks), overlap)
    worker = np.concatenate([rng.choice(workers, overlap, replace=False) for _ in range(tasks)])
    p0 = np.where(truth[task] == 0, says_0_if_0[worker], says_0_if_1[worker])
    label = (rng.random(task.size) >= p0).astype(int)
    frame = pd.DataFrame({"task": [f"t{i}" for i in task], "worker": [f"w{i}" for i in worker],
                          "label": [str(v) for v in label]})
    gold = pd.Series([str(v) for v in truth], index=pd.Index([f"t{i}" for i in range(tasks)],
                                                              name="task"), name="label")
    return frame, gold


def stopping(directory: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    import warnings

    from crowdkit.aggregation import DawidSkene as CrowdKit

    from aggregation import prepare_labels, split_gold
    from aggregation.dawid_skene import DawidSkene, marginal_log_likelihood
    from aggregation.io import read_gold, read_labels
    from aggregation.methods import accuracy

    warnings.simplefilter("ignore")
    sets = []
    for folder in sorted(p for p in directory.iterdir() if (p / "labels.csv").exists()):
        sets.append((folder.name, read_labels(folder / "labels.csv"),
                     read_gold(folder / "gold.csv")))
    sets.append(("synthetic_biased", *biased_workers()))
    header = (f"{'dataset':<18} {'gold':>5} {'labels':>7} | {'crowd-kit':>9} {'ours=ck':>7} "
              f"{'acc':>7} {'loglik':>8} | {'likelihood':>10} {'acc':>7} {'loglik':>8}")
    print("Stopping rule: crowd-kit's quantity vs the marginal log-likelihood "
          "(iterations, accuracy on held-out gold, log-likelihood per label)")
    print(header)
    print("-" * len(header))
    rows = []
    for name, frame, gold in sets:
        table = prepare_labels(frame)
        for share in (0.0, 0.8):  # gold clamped: none, or 80% (measured on the other 20%)
            used, held = split_gold(gold, 1.0 - share, seed=0)
            reference = CrowdKit(n_iter=100, tol=1e-5)
            reference.fit(table.frame, used if len(used) else None)
            ours_ck = DawidSkene(stop="crowdkit").fit(table.frame, used)
            ours_ll = DawidSkene(stop="likelihood").fit(table.frame, used)
            row = {
                "dataset": name, "gold_clamped": share, "labels": table.n_labels,
                "crowdkit_iterations": len(reference.loss_history_),
                "ours_crowdkit_iterations": ours_ck.n_iter_,
                "crowdkit_accuracy": accuracy(reference.labels_, held),
                "crowdkit_loglik": marginal_log_likelihood(
                    ours_ck.table_, ours_ck.fit_.priors, ours_ck.fit_.confusions),
                "likelihood_iterations": ours_ll.n_iter_,
                "likelihood_accuracy": accuracy(ours_ll.labels_, held),
                "likelihood_loglik": marginal_log_likelihood(
                    ours_ll.table_, ours_ll.fit_.priors, ours_ll.fit_.confusions),
                "crowdkit_quantity_fell": bool(np.any(np.diff(reference.loss_history_) < 0)),
            }
            rows.append(row)
            print(f"{name:<18} {share:>5.0%} {row['labels']:>7,} | "
                  f"{row['crowdkit_iterations']:>9} {row['ours_crowdkit_iterations']:>7} "
                  f"{row['crowdkit_accuracy']:>7.4f} {row['crowdkit_loglik']:>8.5f} | "
                  f"{row['likelihood_iterations']:>10} {row['likelihood_accuracy']:>7.4f} "
                  f"{row['likelihood_loglik']:>8.5f}"
                  f"{'  (crowd-kit quantity fell)' if row['crowdkit_quantity_fell'] else ''}",
                  flush=True)
    print()
    return rows, subsets(sets)


def subsets(sets: list[tuple[str, pd.DataFrame, pd.Series]], draws: int = 20,
            share: float = 0.1, seed: int = 1) -> list[dict[str, Any]]:
    """Repeat the comparison on random 10% task subsets (our engine in both modes; the table
    above shows it reproduces crowd-kit's iterations exactly)."""
    from aggregation.dawid_skene import DawidSkene
    from aggregation.methods import accuracy

    rng = np.random.default_rng(seed)
    print(f"The same on {draws} random subsets of {share:.0%} of the tasks, no gold clamped")
    header = (f"{'dataset':<18} {'fell':>5} {'ck<=3 it.':>9} | {'iterations ck':>13} "
              f"{'likelihood':>10} | {'accuracy ck':>11} {'likelihood':>10}")
    print(header)
    print("-" * len(header))
    rows = []
    for name, frame, gold in sets:
        tasks = pd.unique(frame["task"])
        fell = short = 0
        iterations: list[tuple[int, int]] = []
        accuracies: list[tuple[float, float]] = []
        for _ in range(draws):
            chosen = rng.choice(tasks, size=max(2, int(len(tasks) * share)), replace=False)
            part = frame[frame["task"].isin(chosen)]
            ck = DawidSkene(stop="crowdkit").fit(part)
            ll = DawidSkene(stop="likelihood").fit(part)
            fell += bool(np.any(np.diff(ck.loss_history_) < 0))
            short += ck.n_iter_ <= 3
            iterations.append((ck.n_iter_, ll.n_iter_))
            accuracies.append((accuracy(ck.labels_, gold), accuracy(ll.labels_, gold)))
        its, accs = np.array(iterations), np.array(accuracies)
        row = {"dataset": name, "draws": draws, "crowdkit_quantity_fell": fell,
               "crowdkit_stopped_within_3": short,
               "median_iterations_crowdkit": float(np.median(its[:, 0])),
               "median_iterations_likelihood": float(np.median(its[:, 1])),
               "mean_accuracy_crowdkit": float(accs[:, 0].mean()),
               "mean_accuracy_likelihood": float(accs[:, 1].mean())}
        rows.append(row)
        print(f"{name:<18} {fell:>5} {short:>9} | {row['median_iterations_crowdkit']:>13.1f} "
              f"{row['median_iterations_likelihood']:>10.1f} | "
              f"{row['mean_accuracy_crowdkit']:>11.4f} {row['mean_accuracy_likelihood']:>10.4f}",
              flush=True)
    return rows


# --- the command -------------------------------------------------------------------------


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds")
    parser.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")),
                        help="comma-separated label counts (overrides the defaults)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where ours runs: cuda = torch on the GPU; cpu = --engine")
    parser.add_argument("--engine", choices=("numpy", "torch"), default="numpy",
                        help="our engine on the CPU")
    parser.add_argument("--gpu-labels", type=int, default=GPU_LABELS)
    parser.add_argument("--gpu-iterations", type=int, default=GPU_ITERATIONS)
    parser.add_argument("--force-gpu-run", action="store_true",
                        help="run the large torch measurement even without CUDA (testing)")
    parser.add_argument("--datasets", type=Path,
                        help="compare the stopping rules on DIR/<name>/{labels,gold}.csv")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--_measure", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_engine-device", default="numpy", help=argparse.SUPPRESS)
    parser.add_argument("--_out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._measure:
        side, labels = args._measure
        print(json.dumps(measure(side, int(labels), args.seed, args._engine_device, args._out)))
        return 0

    if args.datasets:
        rows, subset_rows = stopping(args.datasets)
        ck = sum(r["crowdkit_iterations"] for r in rows)
        ll = sum(r["likelihood_iterations"] for r in rows)
        print(json.dumps({"bench": BENCH, "mode": "stopping",
                          "ratio": round(ck / max(ll, 1), 3),
                          "ratio_is": "crowd-kit iterations / likelihood-rule iterations",
                          "rows": rows, "subsets": subset_rows}))
        return 0

    has_cuda = cuda_available()
    if args.device == "cuda" and not has_cuda:
        print("CUDA is not available: ours runs on the CPU and the GPU size is skipped.")
    use_cuda = has_cuda and args.device in ("cuda", "auto")
    engine_device = "cuda" if use_cuda else ("cpu" if args.engine == "torch" else "numpy")
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    rows = compare(sizes, args.seed, engine_device)

    gpu = None
    if (use_cuda and not args.quick) or args.force_gpu_run:
        gpu = gpu_run(args.gpu_labels, args.gpu_iterations,
                      "cuda" if use_cuda else "cpu", args.seed)
        print(f"\ntorch on {gpu['device']}: {gpu['labels']:,} labels x {gpu['iterations']} "
              f"iterations in {gpu['seconds']:.1f} s ({gpu['per_iteration_s']:.3f} s per "
              f"iteration, peak {gpu['peak_mb']:.0f} MB); NumPy on the CPU: "
              f"{gpu['numpy_cpu_per_iteration_s']:.2f} s per iteration "
              f"({gpu['ratio_vs_numpy_cpu']:.1f}x)")
    elif not args.quick:
        print(f"\n{GPU_LABELS:,} labels x {GPU_ITERATIONS} iterations: skipped (no CUDA device)")

    headline = next((r for r in rows if r["labels"] == 1_000_000), rows[-1])
    print(json.dumps({
        "bench": BENCH, "ratio": round(headline["speedup"], 2),
        "ratio_at_labels": headline["labels"], "target": TARGET_RATIO,
        "memory_ratio": round(headline["memory_ratio"], 2), "device": engine_device,
        "sizes": [{k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in r.items()}
                  for r in rows],
        "gpu": gpu,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
