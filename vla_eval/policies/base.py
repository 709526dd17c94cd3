"""The policy contract: what a rollout asks of a policy, and nothing else.

Any callable that turns an observation batch into actions is a policy; it is not
tied to this project's checkpoints or to torch. ``docs/policies.md`` is the user's
version of this contract. Standard library only.
"""

from __future__ import annotations

from typing import Any, Protocol


class Policy(Protocol):
    """What `vla_eval.online.run` needs from a policy.

    Called with an observation batch: whatever the environment observes (the
    tabletop world: ``{"image": (N, H, W, 3) uint8, "state": (N, S), "instruction":
    list[str]}``) plus ``"env_index"`` (N,) int: which of the batch's environments
    each row is (only environments that need a new action are asked, so N may be
    smaller than the batch). It returns actions as ``(N, D)`` or an action chunk
    ``(N, C, D)`` (numpy, a torch tensor or anything ``np.asarray`` takes), finite,
    with D the environment's ``action_dim``; anything else stops the run with an
    error naming the expected shape.

    Optional members, used when present:

    * ``reset(env_indices)``: called with an int ndarray of batch positions when
      those environments start a new episode, before the policy is first asked
      for them; a stateful policy clears its per-environment memory (action
      queues, observation history) for exactly those positions;
    * ``close()``: called once by whoever built the policy (the command line) when
      it is done with it, to free what it holds (simulators, devices, files);
    * ``name`` (str): what episode records call the policy;
    * ``fingerprint()`` -> str: identifies the policy's weights or settings in the
      run's fingerprint, so ``--resume`` never pools two different policies.

    An exception raised by the policy stops the run with that error; every episode
    already recorded stays, and a resumed run continues from them.
    """

    def __call__(self, obs: dict[str, Any]) -> Any: ...
