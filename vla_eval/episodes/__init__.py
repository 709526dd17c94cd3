"""Episode records: the one file format every rollout, report and comparison shares.

An episode is one rollout of a policy on a task with a seed, and whether it succeeded.
The package holds the record and its validation (`record`), the crash-safe JSON Lines
writer (`writer`), the columnar `EpisodeTable` (`table`), the streaming
per-(policy, task, split) `EpisodeCounts` a report needs (`counts`), the reader that
fills either from any supported file (`reader`) and the readers for other tools'
outputs, LeRobot's ``eval_info.json`` and CSV (`other_formats`). Depends on numpy and the standard
library only; never imports torch or scipy.
"""

from vla_eval.episodes.counts import Cell, EpisodeCounts
from vla_eval.episodes.reader import count_episodes, iter_episodes, load_episodes, read_episodes
from vla_eval.episodes.record import REQUIRED, SCHEMA, Episode
from vla_eval.episodes.table import EpisodeTable
from vla_eval.episodes.writer import EpisodeWriter, write_episodes

__all__ = [
    "REQUIRED",
    "SCHEMA",
    "Cell",
    "Episode",
    "EpisodeCounts",
    "EpisodeTable",
    "EpisodeWriter",
    "count_episodes",
    "iter_episodes",
    "load_episodes",
    "read_episodes",
    "write_episodes",
]
