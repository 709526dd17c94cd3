"""The one forward-evaluation loop: the trainer's held-out evaluation and `vla-eval offline`
run the same passes, so on the same model and data they give the same numbers."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vla_eval.offline.evaluate import evaluate_model
from vla_eval.offline.heldout import builtin_heldout
from vla_eval.trainer.checkpoint import load_policy
from vla_eval.trainer.evaluate import evaluate
from vla_eval.trainer.forward import forward_metrics, merged


@pytest.fixture(scope="module")
def policy(smoke_checkpoint):
    model, tokenizer, _ = load_policy(smoke_checkpoint)
    return model, tokenizer


@pytest.fixture(scope="module")
def heldout():
    """The smoke run's own held-out data: 2 episodes per task, seed 0, 64 web questions."""
    return builtin_heldout(per_task=2, horizon=8, seed=0, web_examples=64)


def test_trainer_evaluate_equals_offline_on_the_same_data(policy, heldout, smoke_run) -> None:
    model, tokenizer = policy
    data = SimpleNamespace(heldout=dict(heldout.demos), web_heldout=heldout.web)
    trained = evaluate(model, data, tokenizer)
    offline = evaluate_model(model, tokenizer, heldout, n_traces=0)["metrics"]
    # Same process, same loop, same batches: identical, not merely close.
    for split, numbers in trained["heldout"].items():
        for key, value in numbers.items():
            assert offline["per_split"][split][key] == value, (split, key)
    assert trained["web_loss"] == offline["web"]["loss"]
    assert trained["web_accuracy"] == offline["web"]["accuracy"]
    assert trained["heldout_loss"] == offline["per_split"]["seen"]["loss"]
    # ... and what the trainer logged at its last step, for the weights it saved (the
    # same batches in the same process: equal up to the rounding of the saved floats).
    logged = json.loads((smoke_run / "run.json").read_text())["heldout"]
    for split, numbers in trained["heldout"].items():
        assert logged["heldout"][split] == pytest.approx(numbers, rel=1e-9)


def test_batch_size_changes_no_count_and_the_losses_only_by_rounding(policy, heldout) -> None:
    model, tokenizer = policy
    parts = [
        (
            split,
            {
                "images": ds.images,
                "tokens": ds.tokens,
                "states": ds.states,
                "actions": ds.actions,
                "mask": ds.mask,
                "task": ds.task.astype(str),
            },
        )
        for split, ds in heldout.demos
    ]
    seen = []
    results = []
    for batch_size in (7, 500):
        per_split, web = forward_metrics(
            model,
            tokenizer,
            parts,
            batch_size=batch_size,
            on_batch=lambda part, start, bins: seen.append((part, start, bins.shape[0])),
        )
        assert web.web.count == 0
        results.append(merged(per_split).compute())
    small, big = results
    assert (
        small["overall"]["count"]
        == big["overall"]["count"]
        == sum(int(ds.mask.sum()) * ds.actions.shape[-1] for _, ds in heldout.demos)
    )
    # Arg-max bins are per sample; a batch of another size may round a logit differently
    # only where two bins tie to float32 precision, so accuracies agree to a few samples.
    assert small["overall"]["accuracy"] == pytest.approx(big["overall"]["accuracy"], abs=1e-3)
    assert small["overall"]["loss"] == pytest.approx(big["overall"]["loss"], rel=1e-4)
    # The hook saw every row once per run, in order.
    rows = sum(len(ds) for _, ds in heldout.demos)
    assert sum(n for _, _, n in seen) == 2 * rows
    assert model.training is False  # load_policy's eval mode is restored


def test_training_mode_is_restored_even_when_a_batch_fails(policy) -> None:
    model, tokenizer = policy
    model.train()
    bad = {
        "images": np.zeros((2, 5, 5, 3), np.uint8),  # the wrong image size
        "tokens": np.zeros((2, 4), np.int64),
        "states": np.zeros((2, model.config.state_dim), np.float32),
        "actions": np.zeros((2, model.config.horizon, model.config.action_dim)),
        "mask": np.ones((2, model.config.horizon), bool),
        "task": np.array(["a", "b"]),
    }
    try:
        with pytest.raises(Exception, match="images"):
            forward_metrics(model, tokenizer, [("seen", bad)])
        assert model.training is True
        assert torch.is_grad_enabled()
    finally:
        model.eval()
