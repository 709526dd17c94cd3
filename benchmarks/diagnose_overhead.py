"""Overhead of `Diagnose` on a training step, as a ratio measured in one run.

Trains a small transformer-style policy (token embedding of the observation, two
encoder layers, an action head predicting 8x7 action chunks) with AdamW, once plain
and once with `Diagnose` called every step exactly as a user's loop would (loss,
pred/target actions, task ids; gradients read by the monitor). The two loops are
interleaved in blocks so drift in machine load hits both alike; the median block
time of each gives ``overhead_ratio``. On a busy machine that difference is noisy,
so ``overhead_ratio_direct`` also reports the mean time spent inside ``diag.step``
over the plain step time.

The same is measured on the reference model: a TinyVLA training step of the reference
trainer (a robot batch with augmentation, forward, action loss, backward, clipping at
1.0, AdamW), with and without the trainer's own ``diag.step`` call (loss, grad norm,
action logits vs target bins, per-task losses), on the same precomputed batches,
single steps interleaved, medians of many steps (``reference_*`` keys). Prints one
JSON object. Never fails on a timing.

    python benchmarks/diagnose_overhead.py [--steps 300] [--block 25] [--device cpu]
        [--ref-steps 200] [--ref-batch 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from vla_eval.diagnose import Diagnose

OBS_TOKENS, WIDTH, CHUNK, DIM, TASKS = 16, 128, 8, 7, 4


class Policy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(32, WIDTH)
        self.task = torch.nn.Embedding(TASKS, WIDTH)
        layer = torch.nn.TransformerEncoderLayer(WIDTH, 4, 4 * WIDTH, batch_first=True, dropout=0.0)
        self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(WIDTH, CHUNK * DIM)

    def forward(self, obs: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(obs) + self.task(task)[:, None])
        return self.head(h.mean(dim=1)).view(-1, CHUNK, DIM)


def reference_batches(batch: int, device: torch.device) -> tuple:
    """(config, data, 16 precomputed robot batches with their indices, task names)."""
    import numpy as np

    from vla_eval.actions import ActionTokenizer
    from vla_eval.envs.base import FAMILIES
    from vla_eval.trainer.batches import build_data, robot_batch
    from vla_eval.trainer.config import DataConfig, TrainConfig

    cfg = TrainConfig(
        batch_size=batch, data=DataConfig(heldout_per_task=1, web_examples=64)
    )  # the default TinyVLA and data counts
    tokenizer = ActionTokenizer(n_bins=cfg.model.n_bins)
    data = build_data(cfg, tokenizer, progress=False)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(16):
        index = rng.integers(0, len(data.robot), batch)
        b = robot_batch(data, index, cfg, rng, tokenizer)
        batches.append(({k: v.to(device) for k, v in b.items() if v is not None}, index))
    return cfg, data, batches, np.asarray(FAMILIES)[data.robot.task]


def reference_step_overhead(steps: int, batch: int, device: torch.device) -> dict:
    """Median TinyVLA step time with and without Diagnose, steps interleaved."""
    import numpy as np

    from vla_eval.diagnose import CROSS_ENTROPY_THRESHOLDS
    from vla_eval.trainer import optim as recipe_mod
    from vla_eval.trainer.losses import action_loss
    from vla_eval.trainer.losses import per_task_losses as _per_task_losses
    from vla_eval.trainer.model import TinyVLA

    cfg, data, batches, names = reference_batches(batch, device)

    def make():
        torch.manual_seed(0)
        model = TinyVLA(cfg.model).to(device)
        return model, torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

    variants = {"plain": make(), "diagnose": make()}
    in_call: list[float] = []
    diag = Diagnose(
        variants["diagnose"][0],
        task_counts={k: v for k, v in data.robot.task_counts().items() if v},
        thresholds=CROSS_ENTROPY_THRESHOLDS,
        stage="co-train",  # the loop's context, as the trainer gives it
        lr=1e-4,
        clip=1.0,
        web_ratio=0.25,
        temperature=2.0,
    )

    def one_step(which: str, step: int) -> float:
        model, opt = variants[which]
        rb, index = batches[step % len(batches)]
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(rb["images"], rb["text"], rb["state"])
        loss = action_loss(out.action_logits, rb["bins"], rb["mask"])
        loss.backward()
        grad_norm = recipe_mod.clip_gradients(model, 1.0)
        # the trainer logs per-task losses with or without Diagnose
        task_loss: dict[str, list[float]] = {}
        _per_task_losses(out.action_logits.detach(), rb, task_loss)
        if which == "diagnose":  # exactly the trainer's call
            t1 = time.perf_counter()
            diag.step(
                step,
                loss=float(loss.detach()),
                grad_norm=grad_norm,
                pred_actions=out.action_logits.detach(),
                target_actions=rb["bins"],
                task=names[index],
                lr=opt.param_groups[0]["lr"],
                loss_per_task={k: float(np.mean(v)) for k, v in task_loss.items()},
                samples_per_task={k: len(v) for k, v in task_loss.items()},
            )
            in_call.append(time.perf_counter() - t1)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for step in range(5):  # warm-up
        one_step("plain", step), one_step("diagnose", step)
    times: dict[str, list[float]] = {"plain": [], "diagnose": []}
    for step in range(steps):
        order = ("plain", "diagnose") if step % 2 == 0 else ("diagnose", "plain")
        for which in order:
            times[which].append(one_step(which, step))
    plain_s = statistics.median(times["plain"])
    diag_s = statistics.median(times["diagnose"])
    call_s = statistics.fmean(in_call[5:])  # without the warm-up steps
    return {
        "reference_model": "TinyVLA (default config)",
        "reference_params": sum(p.numel() for p in variants["plain"][0].parameters()),
        "reference_batch": batch,
        "reference_steps_per_variant": steps,
        "reference_plain_step_ms": round(1e3 * plain_s, 3),
        "reference_diagnose_step_ms": round(1e3 * diag_s, 3),
        "reference_diagnose_call_ms": round(1e3 * call_s, 3),
        "reference_overhead_ratio": round(diag_s / plain_s - 1, 4),
        "reference_overhead_ratio_direct": round(call_s / plain_s, 4),
        "reference_findings": [str(f) for f in diag.findings],
    }


def policy_overhead(args: argparse.Namespace, device: torch.device) -> dict:
    """Median block time of the small policy with and without Diagnose, blocks interleaved."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    data = [
        (
            torch.randn(args.batch, OBS_TOKENS, 32, generator=gen).to(device),
            torch.randint(0, TASKS, (args.batch,), generator=gen).to(device),
            torch.randn(args.batch, CHUNK, DIM, generator=gen).to(device),
        )
        for _ in range(8)
    ]
    names = ("pick", "place", "stack", "pour")
    in_diag: list[float] = []  # time spent inside diag.step, measured directly

    def make():
        model = Policy().to(device)
        return model, torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)

    plain, diagnosed = make(), make()
    diag = Diagnose(diagnosed[0], stage="train", lr=1e-4, clip=1.0)

    def block(which: str, start: int) -> float:
        model, opt = plain if which == "plain" else diagnosed
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for step in range(start, start + args.block):
            obs, task, target = data[step % len(data)]
            pred = model(obs, task)
            loss = torch.nn.functional.mse_loss(pred, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if which == "diagnose":
                t1 = time.perf_counter()
                diag.step(
                    step,
                    loss=loss,
                    pred_actions=pred,
                    target_actions=target,
                    task=[names[t] for t in task.tolist()]
                    if step % diag.check_every == 0
                    else None,
                )
                in_diag.append(time.perf_counter() - t1)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / args.block

    block("plain", 0), block("diagnose", 0)  # warm-up
    times: dict[str, list[float]] = {"plain": [], "diagnose": []}
    for b in range(args.steps // args.block):
        order = ("plain", "diagnose") if b % 2 == 0 else ("diagnose", "plain")
        for which in order:
            times[which].append(block(which, b * args.block))
    plain_s, diag_s = statistics.median(times["plain"]), statistics.median(times["diagnose"])
    call_s = statistics.fmean(in_diag[args.block :])  # without the warm-up block
    return {
        "params": sum(p.numel() for p in plain[0].parameters()),
        "steps_per_variant": args.block * (args.steps // args.block),
        "plain_step_ms": round(1e3 * plain_s, 3),
        "diagnose_step_ms": round(1e3 * diag_s, 3),
        "diagnose_call_ms": round(1e3 * call_s, 3),
        "overhead_ratio": round(diag_s / plain_s - 1, 4),
        "overhead_ratio_direct": round(call_s / plain_s, 4),
        "target": "<= 0.02",
        "findings": [str(f) for f in diag.findings],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per variant")
    parser.add_argument("--block", type=int, default=25, help="steps per timed block")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--ref-steps", type=int, default=200, help="TinyVLA steps per variant")
    parser.add_argument("--ref-batch", type=int, default=64, help="TinyVLA batch size")
    args = parser.parse_args()
    device = torch.device(args.device)
    result = {
        "benchmark": "diagnose_overhead",
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        **policy_overhead(args, device),
        **reference_step_overhead(args.ref_steps, args.ref_batch, device),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
