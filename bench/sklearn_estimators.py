"""deepmetric.sklearn against metric-learn: kNN accuracy, fit time and memory.

Usage: ``python bench/sklearn_estimators.py [--quick] [--skip-gamma] [--skip-scale]``. Prints
Markdown tables.

1. Accuracy: 5-fold ``cross_validate`` (``cv=5``) of ``make_pipeline(StandardScaler(), learner,
   KNeighborsClassifier())`` on iris, wine and digits, against ``StandardScaler + kNN`` alone
   (the textbook set-up of scikit-learn's NCA examples, which standardise first) and metric-learn's
   NCA, LMNN and ITML_Supervised and scikit-learn's NeighborhoodComponentsAnalysis with their
   default parameters. Then the textbook pipeline without the scaler,
   ``make_pipeline(learner, KNeighborsClassifier())``, for kNN and the three NCAs.
2. ITML's ``gamma``: deepmetric's ITML at several values against kNN alone and metric-learn's
   ITML_Supervised, on the three sets and breast cancer (``--skip-gamma`` leaves it out).
3. Scale: 50,000 points x 50 features, 100 classes (``make_classification``, seed 0); NCA and
   LMNN in mini-batch mode, each fit in its own subprocess on 2 threads under RLIMIT_AS = 8 GiB,
   reporting wall time, peak RSS and held-out 1-NN accuracy; metric-learn's NCA and LMNN on the
   same data under the same memory limit and a time limit, reported as "out of memory" or
   "timed out" when that is what happened.

metric-learn 0.7.0 passes scikit-learn's removed ``force_all_finite`` keyword to
``check_X_y``/``check_array``; ``_shim_metric_learn`` wraps the two names in
``metric_learn._util`` to rename it ``ensure_all_finite``. The shim lives only in this benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

# Run as a script, this file's folder comes first on sys.path, where this very file would shadow
# scikit-learn itself: drop that entry before anything imports sklearn.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import numpy as np  # noqa: E402

LIMIT_AS = 8 << 30
THREADS = "2"


def _shim_metric_learn() -> None:
    """Rename ``force_all_finite`` to ``ensure_all_finite`` in metric-learn's validation calls."""
    import metric_learn._util as util
    from sklearn.utils import check_array
    from sklearn.utils.validation import check_X_y

    def renamed(fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            if "force_all_finite" in kwargs:
                kwargs["ensure_all_finite"] = kwargs.pop("force_all_finite")
            return fn(*args, **kwargs)

        return call

    util.check_X_y = renamed(check_X_y)
    util.check_array = renamed(check_array)


def _learner(method: str, mode: str, params: dict[str, Any] | None = None) -> Any:
    """The estimator for ``method`` ('dm-nca', 'ml-lmnn', ...); ``mode`` 'small' or 'scale';
    ``params`` override a deepmetric learner's defaults."""
    if method.startswith("ml-"):
        _shim_metric_learn()
        import metric_learn

        return {
            "ml-nca": metric_learn.NCA,
            "ml-lmnn": metric_learn.LMNN,
            "ml-itml": metric_learn.ITML_Supervised,
        }[method](random_state=0)
    if method == "sk-nca":
        from sklearn.neighbors import NeighborhoodComponentsAnalysis

        return NeighborhoodComponentsAnalysis(random_state=0)
    from deepmetric.sklearn import ITML, LMNN, NCA

    if mode == "scale":
        if method == "dm-nca":
            return NCA(batch_size=1024, max_iter=10, learning_rate=0.01, random_state=0)
        return LMNN(batch_size=1024, max_iter=10, learning_rate=0.01, random_state=0)
    return {"dm-nca": NCA, "dm-lmnn": LMNN, "dm-itml": ITML}[method](
        random_state=0, **(params or {})
    )


def _small_job(
    dataset: str, method: str, scaled: bool, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    from sklearn import datasets
    from sklearn.model_selection import cross_validate
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = getattr(datasets, f"load_{dataset}")(return_X_y=True)
    steps = [StandardScaler()] if scaled else []
    steps += [] if method == "knn" else [_learner(method, "small", params)]
    result = cross_validate(make_pipeline(*steps, KNeighborsClassifier()), X, y, cv=5)
    return {
        "accuracy": float(result["test_score"].mean()),
        "fit_s": float(result["fit_time"].mean()),
    }


def scale_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """50,000 x 50 points of 100 classes, seed 0: 40,000 to fit, 10,000 held out."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=50_000,
        n_features=50,
        n_informative=30,
        n_redundant=10,
        n_classes=100,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=0,
    )
    X = ((X - X[:40_000].mean(0)) / X[:40_000].std(0)).astype(np.float32)
    return X[:40_000], y[:40_000], X[40_000:], y[40_000:]


def _scale_job(method: str) -> dict[str, Any]:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import FunctionTransformer

    X, y, X_test, y_test = scale_data()
    learner = FunctionTransformer() if method == "knn" else _learner(method, "scale")
    start = time.perf_counter()
    learner.fit(X, y)
    fit_s = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    knn = KNeighborsClassifier(n_neighbors=1).fit(learner.transform(X), y)
    return {
        "fit_s": fit_s,
        "peak_rss_mib": rss,
        "accuracy": float(knn.score(learner.transform(X_test), y_test)),
    }


def _child(job: dict[str, Any]) -> None:
    """Run one job in this (child) process and print its JSON result."""
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))
    import torch

    torch.set_num_threads(int(THREADS))
    try:
        if job["kind"] == "small":
            out = _small_job(job["dataset"], job["method"], job.get("scaled", True),
                             job.get("params"))  # fmt: skip
        else:
            out = _scale_job(job["method"])
    except MemoryError:
        out = {"status": "out of memory"}
    print(json.dumps(out))


def run(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``job`` in a fresh subprocess on 2 threads; its result or the reason it has none."""
    env = dict(
        os.environ, OMP_NUM_THREADS=THREADS, OPENBLAS_NUM_THREADS=THREADS, MKL_NUM_THREADS=THREADS
    )
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--job", json.dumps(job)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timed out (> {timeout:.0f} s)"}
    wall = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        oom = "MemoryError" in proc.stderr or "alloc" in proc.stderr or proc.returncode < 0
        status = "out of memory" if oom else "failed"
        return {"status": f"{status} ({tail[0][:80]})", "wall_s": wall}
    return dict(json.loads(lines[-1]), wall_s=wall)


NAMES = {
    "knn": "kNN alone",
    "dm-nca": "deepmetric NCA",
    "dm-lmnn": "deepmetric LMNN",
    "dm-itml": "deepmetric ITML",
    "ml-nca": "metric-learn NCA",
    "ml-lmnn": "metric-learn LMNN",
    "ml-itml": "metric-learn ITML_Supervised",
    "sk-nca": "scikit-learn NeighborhoodComponentsAnalysis",
}
TEXTBOOK = ("knn", "dm-nca", "ml-nca", "sk-nca")


def accuracy_table(datasets: list[str], timeout: float, scaled: bool) -> None:
    if scaled:
        print("## 5-fold CV kNN accuracy (StandardScaler + learner + KNeighborsClassifier(5))\n")
    else:
        print("\n## The textbook pipeline, unscaled: learner + KNeighborsClassifier(5)\n")
    print("| method | " + " | ".join(f"{d} acc | {d} fit s" for d in datasets) + " |")
    print("|---" * (1 + 2 * len(datasets)) + "|")
    for method in NAMES if scaled else TEXTBOOK:
        cells = []
        for dataset in datasets:
            job = {"kind": "small", "dataset": dataset, "method": method, "scaled": scaled}
            r = run(job, timeout)
            if "accuracy" in r:
                cells += [f"{r['accuracy']:.4f}", f"{r['fit_s']:.2f}"]
            else:
                cells += [r["status"], "-"]
        print(f"| {NAMES[method]} | " + " | ".join(cells) + " |", flush=True)


ITML_GAMMAS = (1.0, 0.3, 0.1, 0.03)
GAMMA_SETS = ("iris", "wine", "digits", "breast_cancer")


def gamma_table(timeout: float) -> None:
    """deepmetric ITML's accuracy over its slack ``gamma``, on the three sets and breast cancer,
    against kNN alone and metric-learn's ITML (``gamma=1``)."""
    print("\n## ITML's gamma: 5-fold CV kNN accuracy (StandardScaler + ITML + kNN(5))\n")
    print("| method | " + " | ".join(GAMMA_SETS) + " |")
    print("|---" * (1 + len(GAMMA_SETS)) + "|")
    rows = [(f"deepmetric ITML(gamma={g})", "dm-itml", {"gamma": g}) for g in ITML_GAMMAS]
    rows += [(NAMES["knn"], "knn", None), (NAMES["ml-itml"], "ml-itml", None)]
    for label, method, params in rows:
        jobs = [{"kind": "small", "dataset": d, "method": method, "params": params}
                for d in GAMMA_SETS]  # fmt: skip
        cells = [f"{r['accuracy']:.4f}" if "accuracy" in r else r["status"]
                 for r in (run(job, timeout) for job in jobs)]  # fmt: skip
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


def scale_table(timeout: float) -> None:
    print("\n## 50,000 x 50, 100 classes: fit on 40,000 (2 threads, RLIMIT_AS 8 GiB)\n")
    print("| method | fit s | peak RSS MiB | held-out 1-NN acc |")
    print("|---|---|---|---|")
    for method, limit in (
        ("knn", 600),
        ("dm-nca", 600),
        ("dm-lmnn", 600),
        ("ml-nca", timeout),
        ("ml-lmnn", timeout),
    ):
        r = run({"kind": "scale", "method": method}, limit)
        if "fit_s" in r:
            label = NAMES[method] + (" (mini-batch)" if method.startswith("dm") else "")
            cells = f"{r['fit_s']:.1f} | {r['peak_rss_mib']:.0f} | {r['accuracy']:.4f}"
            print(f"| {label} | {cells} |", flush=True)
        else:
            print(f"| {NAMES[method]} | {r['status']} | - | - |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="iris and wine only")
    parser.add_argument("--skip-scale", action="store_true", help="no 50,000-point runs")
    parser.add_argument("--skip-gamma", action="store_true", help="no sweep of ITML's gamma")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds allowed to each metric-learn run"
    )
    args = parser.parse_args()
    if args.job:
        _child(json.loads(args.job))
        return
    print(
        "metric-learn 0.7.0 runs through a shim renaming scikit-learn's removed "
        "force_all_finite keyword to ensure_all_finite (bench only).\n"
    )
    datasets = ["iris", "wine"] if args.quick else ["iris", "wine", "digits"]
    accuracy_table(datasets, args.timeout, scaled=True)
    accuracy_table(datasets, args.timeout, scaled=False)
    if not args.skip_gamma:
        gamma_table(args.timeout)
    if not args.skip_scale:
        scale_table(args.timeout)


if __name__ == "__main__":
    main()
