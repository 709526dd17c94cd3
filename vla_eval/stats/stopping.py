"""Stopping rules for rollouts: stop as soon as the answer is known, with the error rate kept.

`parse_rule` reads the text of ``vla-eval online --stop-when`` (``half-width<=H`` or
``decided``); a `Stopper` watches a run's episode outcomes arrive in the plan's fixed
order and says when the rule holds. Both rules use the anytime-valid statistics of
`vla_eval.stats.sequential`, so stopping at the first look where the rule holds keeps
the stated error rate however often the run looked:

- ``half-width<=H``: the beta-binomial mixture confidence sequence of the pooled
  success rate, over the complete *rounds* of the plan (a round is one episode of
  every (task, split), seed-major order). Within a round the tasks differ in rate;
  at round boundaries the mixture is a supermartingale for the mean of the per-task
  rates (each round's likelihood ratio factor has expectation at most 1, by
  1 + x <= e^x), so the sequence covers the macro-mean rate, which is what the full
  run's pooled rate estimates.
- ``decided``: the sequential sign test of `compare_sequentially` on the episodes
  paired with a baseline's by (task, split, seed); valid at any episode count.

numpy and scipy only (through `sequential`); never imports torch or the rollout code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from vla_eval.errors import UsageError
from vla_eval.stats.sequential import (
    ConfidenceSequence,
    SequentialComparison,
    compare_sequentially,
    confidence_sequence,
)

#: (task, split, seed): an episode's identity within a run.
Key = tuple[str, str, int]

_HALF_WIDTH = re.compile(r"^\s*half-width\s*<=\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class StopRule:
    """A parsed ``--stop-when`` rule.

    Attributes:
        kind: ``"half-width"`` or ``"decided"``.
        threshold: the largest acceptable half-width (a fraction), for ``half-width``.
        confidence: 1 - alpha of the anytime-valid interval or test.
    """

    kind: Literal["half-width", "decided"]
    threshold: float | None = None
    confidence: float = 0.95

    @property
    def text(self) -> str:
        """The rule as a user writes it."""
        return "decided" if self.kind == "decided" else f"half-width<={self.threshold:g}"


def parse_rule(text: str, confidence: float = 0.95) -> StopRule:
    """``"half-width<=0.05"`` or ``"decided"`` -> `StopRule`; a UsageError for anything else.

    Example:
        >>> parse_rule("half-width<=0.05").threshold
        0.05
    """
    if text.strip() == "decided":
        return StopRule("decided", None, confidence)
    match = _HALF_WIDTH.match(text)
    if match is None:
        raise UsageError(
            f"--stop-when {text!r}: use 'half-width<=H' (H a fraction, e.g. 0.05) or 'decided'"
        )
    h = float(match.group(1))
    if not 0 < h < 0.5:
        raise UsageError(f"--stop-when {text!r}: the half-width must lie strictly in (0, 0.5)")
    return StopRule("half-width", h, confidence)


@dataclass(frozen=True)
class StopDecision:
    """Where a stopping rule stands after the episodes seen so far.

    Attributes:
        rule: the rule's text.
        stop: whether it holds (the run stops).
        episodes: the episodes the statistic counts (complete rounds for
            ``half-width``; every episode seen for ``decided``).
        seen: the episodes seen so far, in plan order.
        interval: the anytime-valid interval (``half-width``; None before a round).
        comparison: the sequential comparison with the baseline (``decided``).
    """

    rule: str
    stop: bool
    episodes: int
    seen: int
    interval: ConfidenceSequence | None = None
    comparison: SequentialComparison | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view for JSON."""
        return {
            "rule": self.rule,
            "stopped": self.stop,
            "episodes": self.episodes,
            "seen": self.seen,
            "interval": self.interval.to_dict() if self.interval else None,
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }

    def describe(self) -> str:
        """One line: which rule, after how many episodes, and the anytime-valid statistic."""
        head = (
            f"stopped by {self.rule} after {self.episodes} episodes"
            if self.stop
            else f"{self.rule} did not hold within the {self.seen} planned episodes"
        )
        if self.interval is not None:
            cs = self.interval
            return (
                f"{head}: anytime-valid {cs.confidence:.0%} interval "
                f"{100 * cs.lower:.1f}-{100 * cs.upper:.1f}% "
                f"({cs.successes}/{cs.trials}, half-width {cs.half_width:.3f})"
            )
        if self.comparison is not None:
            c = self.comparison
            verdict = f"{c.better} is better" if c.decided else "no difference established"
            return (
                f"{head}: {verdict}; e-value {c.e_value:.3g} (decided at {1 / c.alpha:g}), "
                f"{c.pairs} pairs, {c.a_only} won only by this policy, {c.b_only} only by "
                "the baseline"
            )
        return f"{head} (no complete round yet)"


class Stopper:
    """Watches outcomes arrive in plan order and decides when a rule holds.

    Args:
        rule: the rule.
        round_size: episodes per round (the number of (task, split) in the plan);
            ``half-width`` is judged at complete rounds only.
        baseline: (task, split, seed) -> success of the baseline policy; needed
            for ``decided``.
        name: this policy's name, used in ``better``.
        baseline_name: the baseline's name.
    """

    def __init__(
        self,
        rule: StopRule,
        round_size: int = 1,
        baseline: Mapping[Key, bool] | None = None,
        name: str = "policy",
        baseline_name: str = "baseline",
    ) -> None:
        if rule.kind == "decided" and not baseline:
            raise UsageError("--stop-when decided needs --baseline BASE.jsonl")
        if round_size < 1:
            raise UsageError(f"round size must be at least 1, got {round_size}")
        self.rule = rule
        self.round_size = round_size
        self.baseline = dict(baseline or {})
        self.names = (name, baseline_name)
        self.seen = 0
        self.successes = 0
        self.round_successes = 0  # successes over the complete rounds
        self.a_only = 0
        self.b_only = 0
        self.pairs = 0

    def begin(self, round_size: int) -> None:
        """Set the round size once the plan is known (called by the runner)."""
        if round_size < 1:
            raise UsageError(f"round size must be at least 1, got {round_size}")
        self.round_size = round_size

    def observe(self, outcomes: Iterable[tuple[Key, bool]]) -> bool:
        """Add the next outcomes (in plan order); True when the rule now holds."""
        for key, success in outcomes:
            self.seen += 1
            self.successes += bool(success)
            if self.seen % self.round_size == 0:
                self.round_successes = self.successes
            base = self.baseline.get(tuple(key))  # type: ignore[arg-type]
            if base is not None:
                self.pairs += 1
                self.a_only += bool(success) and not base
                self.b_only += base and not bool(success)
        return self.decision().stop

    def decision(self) -> StopDecision:
        """The rule's state after the outcomes so far."""
        rule = self.rule
        if rule.kind == "decided":
            alpha = 1 - rule.confidence
            c = compare_sequentially(self.a_only, self.b_only, self.pairs, alpha, self.names)
            return StopDecision(rule.text, c.decided, self.seen, self.seen, comparison=c)
        counted = self.seen - self.seen % self.round_size
        if counted == 0:
            return StopDecision(rule.text, False, 0, self.seen)
        cs = confidence_sequence(self.round_successes, counted, rule.confidence)
        assert rule.threshold is not None
        # A tiny tolerance so a half-width equal to H up to rounding counts as <= H.
        stop = cs.half_width <= rule.threshold + 1e-12 and math.isfinite(cs.half_width)
        return StopDecision(rule.text, stop, counted, self.seen, interval=cs)
