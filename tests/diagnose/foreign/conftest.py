"""A tiny VLA world shared by the foreign-loop tests.

Four tasks of smooth 8-step, 2-D action chunks (each task its own small nonlinear
mapping from a 6-D observation, ramped along the chunk); `RARE` makes one of them rare
(3% of the demonstrations, too few to learn its mapping from); web-style vision-language data (a 4-way classification of the
observation) that a "pre-trained" backbone and VLM head already solve. The model's
``compute_loss`` returns only a scalar, as the lecture's does, so the loops read its
predictions through a forward hook.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pytest

torch = pytest.importorskip("torch")

TASKS = ("pick", "place", "stack", "pour")
COUNTS = {"pick": 300, "place": 250, "stack": 200, "pour": 150}
RARE = {"pick": 300, "place": 250, "stack": 200, "pour": 24}  # pour: 3% of the demos
CHUNK, DIM, OBS = 8, 2, 6


class TinyVLA(torch.nn.Module):
    """backbone (vision-language) -> projection -> action head; a VLM head for web data."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.backbone = torch.nn.Sequential(
            torch.nn.Linear(OBS + len(TASKS), width), torch.nn.Tanh()
        )
        self.projection = torch.nn.Linear(width, width)
        self.action_head = torch.nn.Linear(width, CHUNK * DIM)
        self.vlm_head = torch.nn.Linear(width, 4)

    def actions(self, obs, task):
        onehot = torch.nn.functional.one_hot(task, len(TASKS)).float()
        h = torch.relu(self.projection(self.backbone(torch.cat([obs, onehot], 1))))
        return self.action_head(h).view(-1, CHUNK, DIM)

    def compute_loss(self, batch):
        """The scalar robot loss, all the lecture's model gives back."""
        return (self.actions(batch["obs"], batch["task"]) - batch["actions"]).pow(2).mean()

    def compute_vlm_loss(self, batch):
        zeros = torch.zeros(len(batch["obs"]), len(TASKS))
        logits = self.vlm_head(self.backbone(torch.cat([batch["obs"], zeros], 1)))
        return torch.nn.functional.cross_entropy(logits, batch["label"])


@dataclass
class World:
    """Datasets (dicts of tensors) and a pre-trained model state."""

    robot: dict
    heldout: dict
    web: dict
    web_heldout: dict
    mappings: tuple = field(repr=False)
    pretrained: dict = field(repr=False)

    def data(self, counts, seed, noise=0.02, jitter=0.0, hard=()) -> dict:
        """Another dataset of the same tasks (smaller, noisier, jerkier or harder)."""
        rng = np.random.default_rng(seed)
        return robot_data(counts, rng, self.mappings, noise, jitter, hard)

    def model(self, width: int = 64) -> TinyVLA:
        model = TinyVLA(width)
        if width == 64:
            model.load_state_dict(copy.deepcopy(self.pretrained))
        return model


def robot_data(counts, rng, mappings, noise=0.02, jitter=0.0, hard=()):
    obs, task, actions = [], [], []
    ramp = 0.3 + 0.7 * np.arange(CHUNK) / (CHUNK - 1)
    for i, name in enumerate(TASKS):
        n = counts.get(name, 0)
        x = rng.standard_normal((n, OBS))
        # a task in ``hard`` follows a wigglier mapping, which a few demos cannot pin down
        a = np.sin(4 * x @ mappings[0][i]) if name in hard else np.tanh(x @ mappings[0][i])
        a = a @ mappings[1][i]
        a = a[:, None, :] * ramp[None, :, None]
        a = a + noise * rng.standard_normal(a.shape)
        a = a + jitter * (-1.0) ** np.arange(CHUNK)[None, :, None]
        obs.append(x), task.append(np.full(n, i)), actions.append(a)
    return {
        "obs": torch.tensor(np.concatenate(obs), dtype=torch.float32),
        "task": torch.tensor(np.concatenate(task)),
        "actions": torch.tensor(np.concatenate(actions), dtype=torch.float32),
    }


def web_data(n, rng, classes):
    x = rng.standard_normal((n, OBS))
    return {
        "obs": torch.tensor(x, dtype=torch.float32),
        "label": torch.tensor((x @ classes).argmax(1)),
    }


@pytest.fixture(scope="session")
def world() -> World:
    rng = np.random.default_rng(0)
    mappings = (
        rng.standard_normal((len(TASKS), OBS, 8)) / np.sqrt(OBS),
        rng.standard_normal((len(TASKS), 8, DIM)) / np.sqrt(8),
    )
    classes = rng.standard_normal((OBS, 4))
    web, web_heldout = web_data(2048, rng, classes), web_data(512, rng, classes)
    torch.manual_seed(0)
    model = TinyVLA()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _step in range(400):  # "pre-training": the backbone and VLM head solve web data
        idx = torch.randint(0, 2048, (64,))
        loss = model.compute_vlm_loss({k: v[idx] for k, v in web.items()})
        opt.zero_grad(), loss.backward(), opt.step()
    return World(
        robot=robot_data(COUNTS, rng, mappings),
        heldout=robot_data(dict.fromkeys(TASKS, 60), rng, mappings),
        web=web,
        web_heldout=web_heldout,
        mappings=mappings,
        pretrained=model.state_dict(),
    )
