"""Actions: tokenisation (continuous actions <-> bins) and action chunks.

`ActionTokenizer` lives in `vla_eval.actions.tokenizer`, the chunking helpers in
`vla_eval.actions.chunking`; both are re-exported here. numpy only: nothing under
this package imports torch or any other part of the package but its errors.
"""

from vla_eval.actions.chunking import chunk_actions, chunk_episodes, execute_chunk
from vla_eval.actions.tokenizer import (
    NORMALIZATIONS,
    SCHEMES,
    STATE_FORMAT,
    ActionTokenizer,
    Normalization,
    Scheme,
)

__all__ = [
    "NORMALIZATIONS",
    "SCHEMES",
    "STATE_FORMAT",
    "ActionTokenizer",
    "Normalization",
    "Scheme",
    "chunk_actions",
    "chunk_episodes",
    "execute_chunk",
]
