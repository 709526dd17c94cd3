"""Open-loop traces: a few held-out episodes' predicted vs demonstrated actions, for plotting.

`TraceRecorder` picks up to n held-out episodes (one per task, splits taking turns),
collects the first action of the chunk the model predicted at each of their steps, and
returns plain data (``task``, ``split``, ``episode``, ``instruction``, ``dims``,
``step``, ``true``, ``pred``). numpy only; task and dimension names come from the
held-out data, so this module knows no world.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vla_eval.actions import ActionTokenizer


class TraceRecorder:
    """Collects open-loop traces of up to ``n`` held-out episodes during an evaluation.

    Args:
        demos: the held-out (split, `DemoDataset`) parts.
        n: episodes to trace (0: none).
        tokenizer: decodes the predicted bins.
        task_names: the name of each task index (numbers as text when missing).
        dim_names: action dimension names (None: ``d0, d1, ...``).
    """

    def __init__(
        self,
        demos: Sequence[tuple[str, Any]],
        n: int,
        tokenizer: ActionTokenizer,
        task_names: Sequence[str] = (),
        dim_names: Sequence[str] | None = None,
    ) -> None:
        self.demos = demos
        self.tokenizer = tokenizer
        self.task_names = tuple(task_names)
        self.dim_names = dim_names
        self.chosen = trace_episodes(demos, n)
        self.traces: dict[tuple[int, int], dict[str, list]] = {key: {} for key in self.chosen}
        self._rows: dict[int, np.ndarray] = {}

    def record(self, part: int, start: int, pred_bins: Any, p: Mapping[str, np.ndarray]) -> None:
        """Keep the traced rows of a batch of ``p`` (the model's arrays) starting at ``start``."""
        if part not in self._rows:
            self._rows[part] = np.isin(p["episode"], [e for (i, e) in self.chosen if i == part])
        traced = self._rows[part][start : start + len(pred_bins)]
        picked = np.flatnonzero(traced)
        if not picked.size:
            return
        first_pred = self.tokenizer.decode(pred_bins[picked, 0])
        for r, pred in zip(start + picked, first_pred, strict=True):
            t = self.traces[(part, int(p["episode"][r]))]
            t.setdefault("step", []).append(int(p["step"][r]))
            t.setdefault("true", []).append(p["actions"][r, 0].tolist())
            t.setdefault("pred", []).append(pred.tolist())

    def finish(self) -> list[dict[str, Any]]:
        """The traces as plain data, each in step order."""
        out = []
        names = self.dim_names
        for (part, episode), t in self.traces.items():
            if not t:
                continue
            split, ds = self.demos[part]
            order = np.argsort(t["step"])
            row = int(np.flatnonzero(ds.episode == episode)[0])
            task = int(ds.task[row])
            out.append(
                {
                    "task": self.task_names[task] if task < len(self.task_names) else str(task),
                    "split": split,
                    "episode": episode,
                    "instruction": str(ds.instructions[episode]),
                    "dims": list(names) if names else [f"d{i}" for i in range(len(t["true"][0]))],
                    "step": [t["step"][i] for i in order],
                    "true": [t["true"][i] for i in order],
                    "pred": [t["pred"][i] for i in order],
                }
            )
        return out


def trace_episodes(demos: Sequence[tuple[str, Any]], n: int) -> list[tuple[int, int]]:
    """(part, episode) of up to n held-out episodes: one per task family, splits taking turns."""
    chosen: list[tuple[int, int]] = []
    if n <= 0 or not demos:
        return chosen
    families = sorted({int(t) for _, ds in demos for t in np.unique(ds.task)})
    for j, fam in enumerate(families):
        order = [(j + i) % len(demos) for i in range(len(demos))]
        for part in order:
            ds = demos[part][1]
            eps = ds.episode[ds.task == fam]
            if eps.size:
                chosen.append((part, int(eps[0])))
                break
        if len(chosen) == n:
            break
    return chosen
