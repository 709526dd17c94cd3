"""Experiments: a protocol's variants trained, evaluated and compared (`vla-eval run`).

An experiment is a set of runs: each variant of a protocol changes some training
settings (dotted keys under ``[train]``, e.g. ``sampling.temperature``), is trained
with the recipe, scored offline on held-out demonstrations and online in rollouts
on both splits with the *same seeds* as every other variant, and its Diagnose
findings are collected. The results come together in one report with the
statistics each question needs: per-variant success with Wilson intervals per task
and split, paired comparisons against the baseline (McNemar's exact test on shared
seeds, Newcombe intervals, Holm-adjusted), and the analysis of the experiment's
kind (the four ablations of RECIPE.md). Every stage is resumable.

The package: `config` (the ``[experiment]`` section, torch-free), `plan` (variants made
concrete, ``--dry-run``; torch-free), `run` (train, evaluate, compare), `analyse` (the
answer per kind, training stability) and `output` (figures and experiment.md). This
file imports nothing, so that reading a protocol (which needs `config`) stays light.
"""
