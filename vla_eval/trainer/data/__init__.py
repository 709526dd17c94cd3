"""Training and evaluation data from the built-in world: demonstrations, web VQA, files on disk.

`demos` runs the scripted expert in the tabletop world (`collect_demos`: per-task
counts, a split, a `DemoQuality`); `filtering` drops failed, too short or long, idle and
jerky demonstrations and says how many and why (`filter_demos`); `datasets` turns
episodes into per-step samples with action chunks of H steps (padded and masked at
episode end), gives clean seen/unseen held-out sets and renders captioned
question/answer tables for language retention (`make_web_dataset`); `augment` holds
the augmentation helpers (random shift, colour jitter, action noise) that work on
numpy batches with an explicit generator; `files` saves datasets as compressed
``.npz`` and loads them with ``allow_pickle=False``. Images stay uint8 (12 KB a sample).

The package uses numpy (and tqdm for progress) only; it must not import torch, so a
data set can be built and inspected without it.
"""
