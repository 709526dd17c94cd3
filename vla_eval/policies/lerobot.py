"""LeRobot policies (ACT, diffusion, VQ-BeT, SmolVLA, pi0, ...) behind the `Policy` contract.

``--policy lerobot --policy-arg path=DIR`` loads any policy LeRobot saved with
``save_pretrained`` (``config.json`` and ``model.safetensors``, with the pre- and
post-processor pipelines LeRobot 0.4 saves beside them) through LeRobot's own classes.
A LeRobot policy keeps one action queue and one observation history for its whole batch,
while a rollout asks only the environments that need an action and starts episodes at
different times; so each environment gets its own copy of the policy's episode state
(queues, history, temporal ensembler) sharing the one set of weights, and its own random
stream (for sampling policies such as diffusion), seeded at each episode's first step from
``seed`` and that first observation (`episode_seed`): the same episode gets the same noise
whatever batch, slot or shard it runs in. Environments whose states line up (they started
together) share one ``select_action`` call unless the policy draws random numbers
(`vla_eval.policies.lerobot_state`).
Observations are converted to the keys and shapes the policy's config declares (images to
float CHW in [0, 1]), actions come back in the environment's units. lerobot and torch are
imported when a policy is built, never at import.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.errors import UsageError
from vla_eval.policies.lerobot_state import (
    EnvState,
    batched_select,
    episode_copy,
    episode_seed,
    signature,
    state_keys,
)

INSTALL_HINT = "pip install lerobot (in its own environment: see docs/lerobot.md)"

#: Where each LeRobot input key is looked for in an observation batch, in order
#: (gym-pusht and LeRobot's own environments name them ``pixels`` and ``agent_pos``).
SOURCES: dict[str, tuple[str, ...]] = {
    "observation.image": ("pixels", "image"),
    "observation.state": ("agent_pos", "state"),
    "observation.environment_state": ("environment_state",),
}


def make_policy(
    env: Any, path: Any = None, device: Any = "cpu", seed: Any = 0, name: Any = None
) -> LeRobotPolicy:
    """The ``lerobot`` plug-in: a saved LeRobot policy, checked against ``env``.

    Args:
        env: the environment it will act in (None for offline scoring: no checks).
        path: the directory ``save_pretrained`` wrote.
        device: torch device to run on (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
        seed: seeds the random stream of each environment's episodes.
        name: the name written into episode records (default: `default_name`).
    """
    if path is None:
        raise UsageError("policy lerobot needs --policy-arg path=DIR (a saved LeRobot policy)")
    policy = LeRobotPolicy(path, device=str(device), seed=_whole(seed, "seed"), name=name)
    if env is not None:
        policy.check_env(env)
    return policy


class LeRobotPolicy:
    """A saved LeRobot policy with per-environment episode state (imports torch when built).

    Attributes:
        policy: the LeRobot ``PreTrainedPolicy`` (its weights are shared by every environment).
        preprocessor, postprocessor: its processor pipelines (identity when none were saved).
        name: the name episode records carry.
        path: the saved directory.
        batching: whether environments whose states line up share one ``select_action``
            call (False, then row by row, once a call drew random numbers or a state was
            not made of queues and tensors).
    """

    def __init__(self, path: Any, device: str = "cpu", seed: int = 0, name: Any = None) -> None:
        torch = _import("torch")
        self.path = Path(str(path))
        self.seed = seed
        self.device = _device(torch, device)
        self.policy, self.preprocessor, self.postprocessor = _load(self.path, self.device)
        self.config = self.policy.config
        self.name = str(name) if name else default_name(self.path)
        self.type = str(self.config.type)
        self._torch = torch
        self._envs: dict[int, EnvState] = {}
        self._keys = state_keys(self.policy)
        self._batch = episode_copy(self.policy, self._keys)  # runs lined-up environments
        self.batching = True  # until a call draws random numbers (see `batching`)
        self._checked = False
        action = self.config.output_features.get("action")
        self.action_dim = int(action.shape[0]) if action is not None else None

    # --- the contract -----------------------------------------------------------------------

    def fingerprint(self) -> str:
        """sha256 of the saved directory's files (names and contents): the policy's identity."""
        digest = hashlib.sha256()
        for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(self.path)).encode() + b"\0")
            with open(file, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()[:16]

    def reset(self, env_indices: Any) -> None:
        """Environments ``env_indices`` start new episodes: fresh queues, history, noise stream.

        An int n (the older contract) means environments 0..n-1.
        """
        if isinstance(env_indices, int | np.integer):
            self._envs.clear()
            env_indices = range(int(env_indices))
        for i in np.asarray(list(env_indices), dtype=np.int64).tolist():
            self._envs[i] = self._fresh_state()

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        """One action (N, D) per asked environment, from each one's own queue and history."""
        torch = self._torch
        n = _batch_size(obs)
        if not self._checked:
            self.check_keys([k for k in obs if k != "env_index"])
        with torch.inference_mode():
            batch = self.preprocessor(to_lerobot(obs, self.config.input_features, n))
            actions = self._act(obs, batch, n)
            action = self.postprocessor(torch.cat([a.reshape(1, -1) for a in actions]))
        return action.detach().to("cpu", torch.float64).numpy()

    def close(self) -> None:
        """Drop every environment's state and the weights (frees device memory)."""
        self._envs.clear()
        self.policy = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            self._torch.cuda.empty_cache()

    # --- checks -----------------------------------------------------------------------------

    def check_env(self, env: Any) -> None:
        """A UsageError when ``env`` cannot feed this policy or take its actions."""
        dim = getattr(env, "action_dim", None)
        if self.action_dim is not None and dim is not None and int(dim) != self.action_dim:
            raise UsageError(
                f"the LeRobot policy at {self.path} outputs {self.action_dim}-D actions but "
                f"{getattr(env, 'name', 'the environment')} takes {dim}-D actions"
            )
        keys = observation_keys(env)
        if keys is not None:
            self.check_keys(keys)

    def check_keys(self, keys: list[str]) -> None:
        """A UsageError naming the first input feature none of ``keys`` can supply."""
        for feature in self.config.input_features:
            if _source(feature, keys, self.config.input_features) is None:
                wanted = ", ".join(_candidates(feature, self.config.input_features))
                raise UsageError(
                    f"the LeRobot policy at {self.path} needs {feature!r} (looked for {wanted}); "
                    f"the environment gives {', '.join(sorted(keys)) or 'nothing'}"
                )
        self._checked = True

    # --- per-environment state --------------------------------------------------------------

    def _fresh_state(self) -> EnvState:
        clone = episode_copy(self.policy, self._keys)
        clone.reset()
        return EnvState(clone)

    def _act(self, obs: dict[str, Any], batch: dict[str, Any], n: int) -> list[Any]:
        """Each asked environment's action; environments whose states line up share one call."""
        torch = self._torch
        rows = np.asarray(obs.get("env_index", np.arange(n)), dtype=np.int64).tolist()
        states = []
        for r, i in enumerate(rows):
            state = self._envs.get(i) or self._envs.setdefault(i, self._fresh_state())
            if state.rng is None:
                state.seed(torch, self.device, episode_seed(self.seed, obs, r))
            states.append(state)
        groups: dict[Any, list[int]] = {}
        for r, state in enumerate(states):
            sig = tuple(signature(state.policy.__dict__[k]) for k in self._keys)
            self.batching = self.batching and None not in sig
            key = sig if self.batching else ("row", r)
            groups.setdefault(key, []).append(r)
        actions: list[Any] = [None] * len(rows)
        for rs in groups.values():
            out = None
            if len(rs) > 1:
                group = [states[r] for r in rs]
                out = batched_select(torch, self._batch, self._keys, group, _rows(batch, rs, n))
                self.batching = out is not None
            for j, r in enumerate(rs):
                if out is not None:
                    actions[r] = out[j : j + 1]
                    continue
                with states[r].active(torch, self.device):
                    actions[r] = states[r].policy.select_action(_rows(batch, [r], n))
        return actions


def default_name(path: Path) -> str:
    """The directory's name; for ``lerobot-train``'s ``RUN/checkpoints/STEP/pretrained_model``,
    ``RUN-STEP`` (``pretrained_model`` alone would name every checkpoint alike)."""
    parts = path.resolve().parts
    if parts[-1] == "pretrained_model" and len(parts) >= 4 and parts[-3] == "checkpoints":
        return f"{parts[-4]}-{parts[-2]}"
    return parts[-1]


# --- observations ---------------------------------------------------------------------------


def observation_keys(env: Any) -> list[str] | None:
    """The keys an environment's observations carry, when it says (None: known at the first call)."""
    keys = getattr(env, "observation_keys", None)
    if keys is not None:
        return [str(k) for k in keys]
    space = getattr(env, "observation_space", None)
    spaces = getattr(space, "spaces", None)
    if isinstance(spaces, dict):
        return _flat_keys(spaces)
    return None


def _flat_keys(spaces: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, sub in spaces.items():
        inner = getattr(sub, "spaces", None)
        if isinstance(inner, dict):
            out += _flat_keys(inner, f"{prefix}{key}/")
        else:
            out.append(f"{prefix}{key}")
    return out


def _candidates(feature: str, features: dict[str, Any]) -> tuple[str, ...]:
    """The observation keys that can supply LeRobot input ``feature``, in order."""
    if feature in SOURCES:
        found = SOURCES[feature]
    elif feature.startswith("observation.images."):
        cam = feature.removeprefix("observation.images.")
        found = (f"pixels/{cam}", f"images/{cam}", cam)
        visual = [k for k, f in features.items() if str(f.type.value) == "VISUAL"]
        if visual == [feature]:
            found += ("pixels", "image")  # one camera: the environment's one image
    else:
        rest = feature.removeprefix("observation.")
        found = (rest, rest.replace(".", "/"))
    return tuple(dict.fromkeys((*found, feature)))


def _source(feature: str, keys: Any, features: dict[str, Any]) -> str | None:
    return next((k for k in _candidates(feature, features) if k in keys), None)


def to_lerobot(obs: dict[str, Any], features: dict[str, Any], n: int) -> dict[str, Any]:
    """An observation batch as LeRobot's inputs: its keys, float32 tensors, images CHW in [0, 1].

    Args:
        obs: the environment's batch (``pixels`` / ``image`` (N, H, W, C) uint8,
            ``agent_pos`` / ``state`` (N, S), ``instruction``, ...).
        features: the policy config's ``input_features``.
        n: the batch size.
    """
    import torch

    out: dict[str, Any] = {}
    for feature, spec in features.items():
        key = _source(feature, obs, features)
        if key is None:
            raise UsageError(f"the LeRobot policy needs {feature!r}; the observation lacks it")
        value = obs[key]
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if str(spec.type.value) == "VISUAL":
            tensor = _image(value, feature, key, tuple(spec.shape), torch)
        else:
            tensor = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)).reshape(n, -1)
            if tuple(tensor.shape[1:]) != tuple(spec.shape):
                raise UsageError(
                    f"the LeRobot policy's {feature!r} is {tuple(spec.shape)}; the environment's "
                    f"{key!r} is {tuple(value.shape[1:])}"
                )
        out[feature] = tensor
    if "instruction" in obs:
        out["task"] = [str(t) for t in obs["instruction"]]
    return out


def _image(value: np.ndarray, feature: str, key: str, shape: tuple, torch: Any) -> Any:
    """(N, H, W, C) uint8 (or float in [0, 1]) -> float32 (N, C, H, W) in [0, 1]."""
    if value.ndim != 4:
        raise UsageError(f"{key!r} must be images (N, H, W, C) for {feature!r}, got {value.shape}")
    chw = (value.shape[3], value.shape[1], value.shape[2])
    if chw != shape:
        raise UsageError(
            f"the LeRobot policy's {feature!r} is {shape} (C, H, W); the environment's "
            f"{key!r} images are {chw}"
        )
    tensor = torch.from_numpy(np.ascontiguousarray(value)).permute(0, 3, 1, 2).contiguous()
    if value.dtype == np.uint8:
        return tensor.to(torch.float32) / 255
    return tensor.to(torch.float32)


def _rows(batch: dict[str, Any], rows: list[int], n: int) -> dict[str, Any]:
    """Rows ``rows`` of a preprocessed batch of ``n`` (tensors and lists of n; the rest as is)."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if hasattr(value, "shape") and len(value.shape) and value.shape[0] == n:
            out[key] = value[rows]
        elif isinstance(value, list) and len(value) == n:
            out[key] = [value[r] for r in rows]
        else:
            out[key] = value
    return out


def _batch_size(obs: dict[str, Any]) -> int:
    for key, value in obs.items():
        if key != "env_index" and hasattr(value, "shape") and len(value.shape):
            return int(value.shape[0])
    if "env_index" in obs:
        return len(obs["env_index"])
    raise UsageError("the observation batch has no arrays to act on")


# --- loading --------------------------------------------------------------------------------


def _import(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise UsageError(f"LeRobot policies need {exc.name!r}: {INSTALL_HINT}") from None


def _device(torch: Any, device: str) -> Any:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"policy lerobot: unknown device {device!r} (cpu, cuda, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"policy lerobot: device {device!r} asked for, but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"policy lerobot: device {device!r} asked for, but MPS is not available")
    return dev


def saved_policy_type(path: Path) -> str:
    """The policy type a ``save_pretrained`` directory declares; a UsageError if it is not one."""
    if not path.is_dir():
        raise UsageError(f"{path}: no such directory (a saved LeRobot policy is a directory)")
    missing = [f for f in ("config.json", "model.safetensors") if not (path / f).is_file()]
    if missing:
        raise UsageError(
            f"{path} is not a saved LeRobot policy: it lacks {' and '.join(missing)} "
            "(save one with policy.save_pretrained(DIR))"
        )
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path / 'config.json'}: not readable JSON ({exc})") from None
    kind = config.get("type") if isinstance(config, dict) else None
    if not isinstance(kind, str):
        raise UsageError(f"{path / 'config.json'} names no policy 'type': not a LeRobot policy")
    return kind


def _load(path: Path, device: Any) -> tuple[Any, Any, Any]:
    """LeRobot's own loading: config, policy class, weights, then its processor pipelines."""
    kind = saved_policy_type(path)
    _import("lerobot")
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    # LeRobot prints progress notes while loading; stdout belongs to --json output.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            cls = get_policy_class(kind)
        except (ValueError, NotImplementedError, ImportError) as exc:
            raise UsageError(f"{path}: LeRobot cannot build a {kind!r} policy ({exc})") from None
        config = PreTrainedConfig.from_pretrained(str(path))
        config.device = device.type if device.index is None else str(device)
        policy = cls.from_pretrained(str(path), config=config)
        policy.to(device)
        policy.eval()
        if (path / "policy_preprocessor.json").is_file():
            pre, post = make_pre_post_processors(
                config,
                pretrained_path=str(path),
                preprocessor_overrides={"device_processor": {"device": str(device)}},
            )
        else:  # saved without processors: inputs go in as they are, on the policy's device
            pre, post = _on_device(device), _identity
    return policy, pre, post


def _on_device(device: Any) -> Any:
    def move(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}

    return move


def _identity(x: Any) -> Any:
    return x


def _whole(value: Any, what: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise UsageError(f"policy lerobot: {what} must be a whole number, got {value!r}") from None
    if number < 0:
        raise UsageError(f"policy lerobot: {what} must be >= 0, got {value!r}")
    return number
