"""Diagnose: the callback API inside a plain PyTorch loop."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vla_eval.diagnose import Diagnose, Finding, GradientReading  # noqa: E402
from vla_eval.errors import UsageError  # noqa: E402
from vla_eval.results import dumps  # noqa: E402


def test_importing_diagnose_does_not_import_torch():
    code = "import sys, vla_eval.diagnose, vla_eval.diagnose.offline; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_grad_norm_is_the_total_two_norm():
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 3))
    model(torch.randn(7, 5)).pow(2).sum().backward()
    reading = Diagnose(model).read_gradients()
    expected = math.sqrt(sum(float((p.grad**2).sum()) for p in model.parameters()))
    assert float(reading.total) == pytest.approx(expected, rel=1e-5)
    assert reading.names == ("0.weight", "0.bias", "1.weight", "1.bias")


def test_frozen_parameters_are_skipped_and_the_first_nonfinite_is_named():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)
    model(torch.randn(4, 3)).sum().backward()
    model[2].weight.grad[0, 0] = float("inf")
    model[1].bias.grad[1] = float("nan")
    diag = Diagnose(model)
    assert diag.read_gradients().names == ("1.weight", "1.bias", "2.weight", "2.bias")
    assert diag.first_nonfinite_parameter() == "1.bias"


def test_an_overflowed_total_norm_names_the_largest_gradients():
    """Every gradient is finite but the float32 total overflows (as AVX2 kernels do).

    The squares of these norms add up to 5.3e38, above float32's largest value
    (3.4e38): summed in float32 the total is inf while each parameter's own norm is
    finite. Kernels that rescale get 2.3e19 instead; the reading here is the
    overflowing one.
    """
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    model(torch.randn(3, 2)).sum().backward()
    names = ("0.weight", "0.bias", "1.weight", "1.bias")
    norms = torch.tensor([1e19, 3e18, 2e19, 5e18], dtype=torch.float32)
    assert float((norms.double() ** 2).sum()) > torch.finfo(torch.float32).max
    reading = GradientReading(names, norms, torch.tensor(math.inf))
    diag = Diagnose(model, check_every=1)
    [finding] = diag.step(0, loss=5.3e4, gradients=reading) + diag.flush()
    assert finding.severity == "critical"
    assert finding.evidence["nonfinite_kind"] == "norm_overflow"
    assert finding.evidence["nonfinite_param"] is None
    largest = finding.evidence["largest_grad_params"]
    assert [name for name, _ in largest] == ["1.weight", "0.weight", "1.bias"]
    assert largest[0][1] == pytest.approx(2e19, rel=1e-6)
    assert "overflowed" in finding.message and "'1.weight'" in finding.message


def test_a_nonfinite_gradient_is_named_as_such():
    model = torch.nn.Linear(3, 2)
    model(torch.randn(4, 3)).sum().backward()
    model.bias.grad[0] = float("nan")
    diag = Diagnose(model, check_every=1)
    [finding] = diag.step(0, loss=1.0) + diag.flush()
    assert finding.evidence["nonfinite_kind"] == "gradient"
    assert finding.evidence["nonfinite_param"] == "bias"
    assert finding.evidence["largest_grad_params"] is None


def test_deferred_sync_reports_the_step_it_happened_at():
    model = torch.nn.Linear(3, 1)
    diag = Diagnose(model, sync_every=5, check_every=100)
    out = []
    for step in range(10):
        model.zero_grad()
        loss = model(torch.randn(8, 3)).pow(2).mean()
        if step == 6:
            loss = loss * float("nan")
        loss.backward()
        out.append(diag.step(step, loss=loss))
    # call 0 is a check step and syncs; then steps 1-5 sync at call 5; 6-9 still wait
    assert all(x == [] for x in out)
    assert len(diag._pending) == 4
    [late] = diag.flush()
    assert late.step == 6 and late.severity == "critical"


def test_clip_before_step_pass_the_norm_clip_returned():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    diag = Diagnose(model)
    found = []
    for step in range(40):
        model.zero_grad()
        x = torch.randn(16, 4) * (1000.0 if step == 30 else 1.0)
        model(x).pow(2).mean().backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        found += diag.step(step, loss=None, grad_norm=norm)
    assert [(f.symptom, f.step) for f in found] == [("gradient_explosion", 30)]


def test_logits_with_integer_targets_are_judged_as_bins():
    diag = Diagnose(None, check_every=1, thresholds={"mode_collapse": {"warmup_steps": 0}})
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 256, (32, 4, 7), generator=gen)
    logits = torch.zeros(32, 4, 7, 256)
    logits[..., 17] = 5.0  # every prediction in bin 17
    found = []
    for step in range(3):
        found += diag.step(step, pred_actions=logits, target_actions=target)
    assert [f.symptom for f in found] == ["mode_collapse"]
    assert found[0].evidence["pred_top_bin_share"] == 1.0


def test_per_task_losses_from_the_trainer():
    diag = Diagnose(None, check_every=1, task_counts={"pick": 5000, "pour": 50})
    found = []
    for step in range(60):
        found += diag.step(
            step,
            loss_per_task={"pick": 0.1, "place": 0.12, "pour": 0.9},
            samples_per_task={"pick": 40, "place": 23, "pour": 1},
        )
    assert [f.symptom for f in found] == ["task_imbalance"]
    assert found[0].evidence["task"] == "pour"
    assert "from dataset counts" in found[0].fix


def test_summary_is_strict_json_and_fixes_can_be_left_out():
    diag = Diagnose(None, fixes=False)
    for step in range(30):
        diag.step(step, loss=1.0, grad_norm=1.0)
    diag.step(30, loss=float("nan"), grad_norm=float("nan"))
    [f] = diag.findings
    assert f.fix == "" and "Fix:" not in str(f)
    data = json.loads(dumps(diag.to_dict()))
    assert data["schema"] == "vla-eval/diagnose/1"
    assert data["counts"] == {"gradient_explosion": 1}
    assert data["findings"][0]["evidence"]["loss"] == "nan"  # a measured NaN -> "nan"
    assert Finding.from_dict(data["findings"][0]).step == 30
    assert data["thresholds"]["gradient_explosion"]["spike_factor"] == 20.0


def test_bad_input_is_a_usage_error():
    diag = Diagnose(None, check_every=1)
    with pytest.raises(UsageError, match="does not match"):
        diag.step(0, pred_actions=np.zeros((4, 7)), target_actions=np.zeros((4, 8)))
    with pytest.raises(UsageError, match="task has 3 ids for a batch of 4"):
        diag.step(1, pred_actions=np.zeros((4, 7)), target_actions=np.ones((4, 7)), task=["a"] * 3)
    with pytest.raises(UsageError, match="web_accuracy"):
        diag.evaluate(2, web_accuracy=57.0)
    with pytest.raises(UsageError, match="heldout_loss must be a number"):
        diag.evaluate(2, heldout_loss="low")
    with pytest.raises(UsageError, match="check_every"):
        Diagnose(None, check_every=0)
    with pytest.raises(UsageError, match="unknown threshold"):
        Diagnose(None, thresholds={"action_jitter": {"treshold": 1}})
