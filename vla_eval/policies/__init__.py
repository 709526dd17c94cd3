"""Policies: the contract a rollout relies on, the built-in policies, and `make_policy`.

A policy is ``policy(obs) -> actions`` of shape (N, D) or an action chunk
(N, chunk, D), with an optional ``reset(n)`` (a batch of n episodes started) and an
optional ``close()`` (see `Policy`). Modules: `base` (the contract), `factory`
(`make_policy`: the one door from a spec such as ``expert`` or a checkpoint path to
a policy), `expert` (the environments' scripted experts) and `checkpoint` (TinyVLA
checkpoints; torch is imported when one is built). Plug-in policies will live here
(entry-point group ``vla_eval.policies``). Importing this package imports neither
torch nor the trainer.
"""

from vla_eval.policies.base import Policy
from vla_eval.policies.factory import NamedPolicy, make_policy

__all__ = ["NamedPolicy", "Policy", "make_policy"]
