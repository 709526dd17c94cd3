"""The policy contract: what a rollout asks of a policy, and nothing else.

Any callable that turns an observation batch into actions is a policy; it is not
tied to this project's checkpoints or to torch. Standard library only.
"""

from __future__ import annotations

from typing import Any, Protocol


class Policy(Protocol):
    """What `vla_eval.online.run` needs from a policy.

    Called with an observation batch ``{"image": (N, H, W, 3) uint8, "state": (N, S),
    "instruction": list[str]}`` (whatever the environment observes) plus
    ``"env_index"`` (N,): which of the batch's environments each row is (only
    environments that need a new action are asked). It returns actions as ``(N, D)``
    or an action chunk ``(N, C, D)`` (numpy, a torch tensor or anything
    ``np.asarray`` takes).

    Optional methods, used when present:

    * ``reset(n)``: called after the environments of a batch of n episodes are
      reset, for policies with memory;
    * ``close()``: called once by whoever built the policy (the command line) when
      it is done with it, to free what it holds (simulators, devices, files).
    """

    def __call__(self, obs: dict[str, Any]) -> Any: ...
