"""The reference trainer: TinyVLA, data mixing, the three-stage recipe, checkpoints.

Submodules import torch; import them directly (``from vla_eval.trainer.model import
TinyVLA``). This package file imports nothing, so lighter modules such as
``vla_eval.trainer.sampling`` stay cheap to load.
"""
