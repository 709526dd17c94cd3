"""Overhead of `vla-eval offline` over the bare model forward passes, as a ratio in one run.

Builds a TinyVLA of the default size (random weights: the cost of a forward pass does
not depend on what it learned), saves it as a checkpoint and generates the built-in
held-out data once. Then, in interleaved repeats so that drift in machine load hits
both alike, it times

* ``bare``: only the model's forward passes over exactly the batches the evaluation
  uses (held-out demonstrations of both splits, then the web VQA questions), under
  ``torch.no_grad``, inputs converted from numpy as the evaluation does;
* ``evaluate``: `vla_eval.offline.evaluate.evaluate_model`, the per-checkpoint path of
  ``vla-eval offline`` (the trainer's forward loop, `vla_eval.trainer.forward`): the
  same forward passes plus cross-entropy, arg-max, the `OfflineMetrics` updates,
  traces and ``compute()``.

``overhead_ratio`` = median(evaluate) / median(bare) - 1; the target is <= 0.10. On a
busy machine that difference of two medians is noisy, so ``overhead_ratio_direct``
also reports, from forward hooks, the time the evaluation spends outside the model's
forward passes over the time inside them (median over repeats). Also
reports the end-to-end `evaluate_checkpoints` time (checkpoint load, data generation
and evaluation) once, for scale. Prints one JSON object; never fails on a timing.

    python benchmarks/offline_overhead.py [--per-task 20] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vla_eval.actions import ActionTokenizer
from vla_eval.offline.evaluate import evaluate_checkpoints, evaluate_model
from vla_eval.offline.heldout import builtin_heldout
from vla_eval.trainer.checkpoint import save_checkpoint
from vla_eval.trainer.config import TinyVLAConfig
from vla_eval.trainer.model import TinyVLA


@torch.no_grad()
def bare_forward(model: TinyVLA, data, batch_size: int) -> None:
    """Only the forward passes of the batches `evaluate_model` runs."""
    for _, ds in data.demos:
        for s in range(0, len(ds), batch_size):
            sl = slice(s, s + batch_size)
            model(
                torch.from_numpy(ds.images[sl]),
                torch.from_numpy(ds.tokens[sl]),
                torch.from_numpy(ds.states[sl]),
            )
    web = data.web
    for s in range(0, len(web), batch_size):
        sl = slice(s, s + batch_size)
        n = len(web.answers[sl])
        model(
            torch.from_numpy(web.images[sl]),
            torch.from_numpy(web.questions[sl]),
            torch.zeros(n, model.config.state_dim),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-task", type=int, default=20, help="episodes per task and split")
    parser.add_argument("--web-examples", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of each variant")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = TinyVLA(TinyVLAConfig()).eval()
    tokenizer = ActionTokenizer(n_bins=model.config.n_bins)
    data = builtin_heldout(None, args.per_task, model.config.horizon, 0, args.web_examples)
    samples = sum(len(ds) for _, ds in data.demos)

    # Forward hooks time the model's own calls inside the evaluation too: on a busy
    # machine the two medians are noisy, the share spent outside forward is not.
    clock = {"start": 0.0, "forward": 0.0}

    def started(module, inputs):
        clock["start"] = time.perf_counter()

    def finished(module, inputs, output):
        clock["forward"] += time.perf_counter() - clock["start"]

    # Warm-up: first calls allocate and pick kernels.
    bare_forward(model, data, args.batch_size)
    evaluate_model(model, tokenizer, data, batch_size=args.batch_size)
    bare, full, direct = [], [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        bare_forward(model, data, args.batch_size)
        bare.append(time.perf_counter() - t)
        hooks = [model.register_forward_pre_hook(started), model.register_forward_hook(finished)]
        clock["forward"] = 0.0
        t = time.perf_counter()
        evaluate_model(model, tokenizer, data, batch_size=args.batch_size)
        full.append(time.perf_counter() - t)
        direct.append(full[-1] / clock["forward"] - 1.0)
        for h in hooks:
            h.remove()

    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(
            Path(tmp) / "step_000000.pt", model=model, tokenizer=tokenizer, step=0, stage="none"
        )
        t = time.perf_counter()
        evaluate_checkpoints(
            [str(path)], per_task=args.per_task, web_examples=args.web_examples,
            batch_size=args.batch_size,
        )  # fmt: skip
        end_to_end = time.perf_counter() - t

    b, f = statistics.median(bare), statistics.median(full)
    print(
        json.dumps(
            {
                "benchmark": "offline_overhead",
                "samples": samples,
                "web_examples": len(data.web),
                "batch_size": args.batch_size,
                "threads": torch.get_num_threads(),
                "bare_forward_s": round(b, 4),
                "evaluate_s": round(f, 4),
                "overhead_ratio": round(f / b - 1.0, 4),
                "overhead_ratio_direct": round(statistics.median(direct), 4),
                "target": "<= 0.10",
                "end_to_end_s": round(end_to_end, 3),
                "bare_rounds_s": [round(x, 4) for x in bare],
                "evaluate_rounds_s": [round(x, 4) for x in full],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
