"""The reference trainer: TinyVLA, data mixing, the three-stage recipe, checkpoints.

One file per idea: ``config`` (torch-free dataclasses), ``model`` and ``losses``,
``data/`` (demonstrations, filtering, datasets, augmentation, files; numpy only),
``sampling``, ``recipe``, ``schedule`` and ``optim``, ``batches``, ``evaluate``,
``checkpoint``, ``run_dir``, ``distributed``, ``setup`` (a run and its resume) and
``train`` (the loop). Most submodules
import torch; import them directly (``from vla_eval.trainer.model import TinyVLA``).
This package file imports nothing, so lighter modules such as
``vla_eval.trainer.config`` stay cheap to load.
"""
