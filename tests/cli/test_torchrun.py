"""``torchrun --nproc-per-node 2 deepmetric train``: two gloo processes train one run, equal to
one process with the same (global) batch, and only rank 0 writes or prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from deepmetric.training import read_jsonl

DIGITS = str(Path(__file__).resolve().parents[2] / "configs" / "digits.yaml")
SETS = ["epochs=2", "output.report=false", "runtime.deterministic=true", "runtime.progress=false"]


def deepmetric(*args: str, processes: int = 1, out: Path) -> subprocess.CompletedProcess[str]:
    script = str(Path(sys.executable).with_name("deepmetric"))
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              f"--nproc-per-node={processes}", script] if processes > 1 else [script]  # fmt: skip
    sets = [a for s in [*SETS, f"output.dir={out}"] for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*launch, *args, *sets, "--threads", "1"], capture_output=True, text=True, env=env,
        timeout=600,
    )  # fmt: skip


def test_two_processes_train_like_one_with_the_global_batch(tmp_path: Path) -> None:
    two = deepmetric("train", DIGITS, processes=2, out=tmp_path / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    one = deepmetric("train", DIGITS, out=tmp_path / "one")
    assert one.returncode == 0, one.stderr[-3000:]
    weights = [load_file(tmp_path / run / "model" / "model.safetensors") for run in ("one", "two")]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        torch.testing.assert_close(weights[1][key], weights[0][key], rtol=1e-4, atol=1e-5)
    epochs = [r for r in read_jsonl(tmp_path / "two" / "metrics.jsonl") if r["kind"] == "epoch"]
    assert len(epochs) == 2  # one writer: no record twice
    assert two.stdout.count("map_at_r") == 1 and two.stdout.count("model: ") == 1
    assert two.stderr.count("training ") == 1  # rank 0 alone speaks
