"""Policies: the contract a rollout relies on, the built-in policies, and `make_policy`.

A policy is ``policy(obs) -> actions`` of shape (N, D) or an action chunk
(N, chunk, D), with an optional ``reset(env_indices)`` (those environments start a
new episode) and an optional ``close()`` (see `Policy`). Modules: `base` (the
contract), `registry` (specs to factories: names from the entry-point group
``vla_eval.policies``, or ``package.module:factory``), `factory` (`make_policy`: the
one door from a spec to a policy), `builtin` (the registered ``tinyvla`` and
``expert`` factories), `expert` (the environments' scripted experts) and
`checkpoint` (TinyVLA checkpoints; torch is imported when one is built). Importing
this package imports neither torch nor the trainer.
"""

from vla_eval.policies.base import Policy
from vla_eval.policies.factory import NamedPolicy, make_policy
from vla_eval.policies.registry import GROUP, registered

__all__ = ["GROUP", "NamedPolicy", "Policy", "make_policy", "registered"]
