"""Benchmark: seconds per epoch of DP-SGD against non-private training, same model, same data.

Trains the Adult MLP (64, 64, LayerNorm) with :func:`governance.privacy.train` three ways in one
run, interleaved so that machine load hits each alike: non-private, DP with Opacus hooks
(per-sample gradients) and DP with ghost clipping. Every run uses the same expected batch size.
The figure per mode is the median epoch time over all repeats, first epoch of each run excluded
(warm-up). Torch runs on one thread by default: this machine's cores are shared, and
oversubscribed intra-op threads made epoch times swing tenfold. The default expected batch
(4096) is a usual DP-SGD batch for Adult; ``--batch-size`` changes it for all three modes. The
last line printed is one JSON object.

    python bench/dp.py          # quick: under a minute
    python bench/dp.py --full   # more epochs and repeats
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from governance.datasets import load_adult
from governance.privacy import train


def _epoch_seconds(
    dataset: Any, mode: str, *, epochs: int, batch_size: int, device: str
) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            dataset=dataset,
            model_kind="mlp",
            hidden=(64, 64),
            epochs=epochs,
            batch_size=batch_size,
            lr=3e-3,
            epsilon=None if mode == "non_private" else 1.0,
            delta=1e-5,
            grad_sample_mode="ghost" if mode == "ghost" else "hooks",
            seed=0,
            device=device,
            out_dir=Path(tmp) / "artifact",
            name="bench-dp",
            version="v1",
        )
    if mode != "non_private" and result.grad_sample_mode != mode:
        raise RuntimeError(f"asked for {mode} but {result.grad_sample_mode} ran")
    return result.epoch_seconds[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="more epochs and repeats")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
    torch.set_num_threads(args.threads)
    epochs, repeats = (8, 5) if args.full else (4, 3)

    dataset = load_adult()
    modes = ("non_private", "ghost", "hooks")
    samples: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(repeats):
        for mode in modes:
            samples[mode] += _epoch_seconds(
                dataset, mode, epochs=epochs, batch_size=args.batch_size, device=args.device
            )
    per_epoch = {m: statistics.median(v) for m, v in samples.items()}
    for mode in modes:
        print(f"{mode:12s} {per_epoch[mode]:.4f} s/epoch  (n={len(samples[mode])})")
    baseline = per_epoch["non_private"]
    print(
        json.dumps(
            {
                "bench": "dp",
                "metric": "s/epoch DP(ghost) / non-private",
                "ours": round(per_epoch["ghost"], 4),
                "baseline": round(baseline, 4),
                "ratio": round(per_epoch["ghost"] / baseline, 3),
                "hooks_ratio": round(per_epoch["hooks"] / baseline, 3),
                "hooks": round(per_epoch["hooks"], 4),
                "rows": len(dataset.train),
                "batch_size": args.batch_size,
                "device": args.device,
                "threads": args.threads,
            }
        )
    )


if __name__ == "__main__":
    main()
