"""The tabletop world's language: a fixed word-level tokenizer and web-style captions and questions.

Every word the world can say (instructions in all phrasings, captions, questions and
their one-word answers) is in `WORLD_VOCAB`, so a model's text embedding has a
fixed size and an unseen *phrasing* is new wording, not an unknown token.
`web_examples` draws random tables, renders them with the world's renderer and
describes them ("a red block left of a blue bowl") and asks about them ("what colour
is the object left of the blue bowl ?" -> "red"), so language retention can be
measured as VQA loss and accuracy. Depends on numpy and the tabletop world only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vla_eval.envs.tabletop.rendering import render
from vla_eval.envs.tabletop.world import (
    BLOCK,
    BOWL,
    COLOURS,
    CUP,
    EMPTY,
    GRIP_HIGH,
    GRIP_LOW,
    KIND_NAMES,
    PHRASINGS,
    TABLE_HIGH,
    TABLE_LOW,
    Scene,
)
from vla_eval.errors import UsageError

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>")
#: Default encoded length: the longest question is 11 words (instructions 9), + BOS + EOS.
TEXT_LENGTH = 16

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four")
OBJECT_KINDS: tuple[str, ...] = ("block", "bowl", "cup")
#: Every answer is a single word; answer ids index this tuple.
ANSWERS: tuple[str, ...] = (
    *COLOURS,
    "yes",
    "no",
    *NUMBER_WORDS,
    *OBJECT_KINDS,
    "nothing",
)
#: Question types, in the order `web_examples` numbers them.
QUESTION_TYPES: tuple[str, ...] = (
    "colour",
    "relation_colour",
    "relation_kind",
    "count",
    "holding",
    "held_kind",
    "exists",
)
_QUESTION_TEMPLATES = (
    "what colour is the {kind} ?",
    "what colour is the object {rel} the {colour} {kind} ?",
    "what is {rel} the {colour} {kind} ?",
    "how many {kinds} are there ?",
    "is the gripper holding something ?",
    "what is the gripper holding ?",
    "is there {art} {colour} {kind} ?",
)
_CAPTION_TEMPLATES = (
    "{art} {colour} {kind} {rel} {art2} {colour2} {kind2}",
    "{art} {colour} {kind} and {art2} {colour2} {kind2}",
    "the gripper holds {art} {colour} {kind}",
)
_WORD = re.compile(r"[a-z]+|\?")


def words(text: str) -> list[str]:
    """Lower-case words of ``text``; "?" is a word of its own, other punctuation is dropped.

    >>> words("What colour is the Block?")
    ['what', 'colour', 'is', 'the', 'block', '?']
    """
    return _WORD.findall(text.lower())


def _world_vocab() -> tuple[str, ...]:
    found: set[str] = set()
    templates = [p for fam in PHRASINGS.values() for split in fam.values() for p in split]
    templates += [*_QUESTION_TEMPLATES, *_CAPTION_TEMPLATES, *RELATIONS]
    for template in templates:
        found.update(words(re.sub(r"\{\w+\}", " ", template)))
    found.update(ANSWERS)
    found.update(("a", "an"))
    found.update(k + "s" for k in OBJECT_KINDS)
    return (*SPECIAL_TOKENS, *sorted(found))


#: The world's vocabulary: the special tokens, then every word in sorted order.
WORLD_VOCAB: tuple[str, ...] = _world_vocab()


class TextTokenizer:
    """Word-level tokenizer over a fixed vocabulary, encoding to fixed-length id arrays.

    Encoded text is ``<bos> w1 ... wn <eos>`` followed by ``<pad>`` (id 0); unknown
    words become ``<unk>``. Text longer than the length is an error, never truncated
    silently.

    >>> tok = TextTokenizer()
    >>> ids = tok.encode(["pick up the red block"], length=8)
    >>> ids.shape, int(ids[0, 0]) == BOS, int(ids[0, 7]) == PAD
    ((1, 8), True, True)
    >>> tok.decode(ids)
    ['pick up the red block']
    """

    def __init__(self, vocab: Sequence[str] | None = None) -> None:
        vocab = tuple(WORLD_VOCAB if vocab is None else vocab)
        if vocab[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise UsageError(f"a vocabulary must start with {SPECIAL_TOKENS}")
        if len(set(vocab)) != len(vocab):
            raise UsageError("a vocabulary must not repeat words")
        self.vocab = vocab
        self._ids = {w: i for i, w in enumerate(vocab)}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextTokenizer) and other.vocab == self.vocab

    def __hash__(self) -> int:
        return hash(self.vocab)

    def encode(self, texts: str | Sequence[str], length: int = TEXT_LENGTH) -> np.ndarray:
        """Ids (B, length) int64 for a list of texts, or (length,) for one string."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        if length < 2:
            raise UsageError(f"text length must be at least 2 (BOS and EOS), got {length}")
        out = np.full((len(batch), length), PAD, np.int64)
        for i, text in enumerate(batch):
            ids = [self._ids.get(w, UNK) for w in words(text)]
            if len(ids) + 2 > length:
                raise UsageError(
                    f"text has {len(ids)} words, more than fits in length {length}: {text!r}"
                )
            out[i, : len(ids) + 2] = [BOS, *ids, EOS]
        return out[0] if single else out

    def decode(self, ids: np.ndarray | Sequence[Sequence[int]]) -> list[str]:
        """Texts for ids (B, L): stops at EOS, skips PAD and BOS."""
        arr = np.atleast_2d(np.asarray(ids))
        if arr.size and ((arr < 0).any() or (arr >= self.vocab_size).any()):
            raise UsageError(f"token ids must be in [0, {self.vocab_size})")
        texts = []
        for row in arr.tolist():
            out = []
            for i in row:
                if i == EOS:
                    break
                if i not in (PAD, BOS):
                    out.append(self.vocab[i])
            texts.append(" ".join(out))
        return texts


def answer_ids(answers: Sequence[str]) -> np.ndarray:
    """Index of each one-word answer in `ANSWERS` (int64)."""
    index = {a: i for i, a in enumerate(ANSWERS)}
    try:
        return np.array([index[a] for a in answers], np.int64)
    except KeyError as e:
        raise UsageError(f"{e.args[0]!r} is not an answer of the world") from None


# --- web-style data ------------------------------------------------------------------

_WEB_SLOTS = 4
_WEB_SEPARATION = 0.22
_WEB_GRIP_CLEARANCE = 0.27  # an empty gripper is drawn clear of objects, so holding is legible
_RELATION_MARGIN = 0.05  # the dominant axis must win by this much for a relation to be clear


def relation(obj: np.ndarray, ref: np.ndarray) -> str | None:
    """Where ``obj`` (x, y) is relative to ``ref``: a `RELATIONS` entry, or None if unclear.

    The image's y axis points down, so a smaller y is "above".

    >>> relation(np.array([0.2, 0.5]), np.array([0.6, 0.55]))
    'left of'
    >>> relation(np.array([0.5, 0.5]), np.array([0.6, 0.6])) is None
    True
    """
    dx, dy = float(obj[0] - ref[0]), float(obj[1] - ref[1])
    if abs(dx) >= abs(dy) + _RELATION_MARGIN:
        return "left of" if dx < 0 else "right of"
    if abs(dy) >= abs(dx) + _RELATION_MARGIN:
        return "above" if dy < 0 else "below"
    return None


@dataclass
class WebExamples:
    """Rendered tables with a caption and one question/answer each.

    Attributes:
        images: (M, 64, 64, 3) uint8.
        captions, questions, answers: M strings each; answers are single words.
        question_types: (M,) int64 index into `QUESTION_TYPES`.
        scene: the tables' state (4 object slots each), to check answers against.
    """

    images: np.ndarray
    captions: list[str]
    questions: list[str]
    answers: list[str]
    question_types: np.ndarray
    scene: Scene


def _sample_web_scene(rng: np.random.Generator, scene: Scene, i: int) -> None:
    n_obj = int(rng.integers(2, _WEB_SLOTS + 1))
    kinds = rng.choice([BLOCK, BOWL, CUP], n_obj)
    colours = rng.choice(len(COLOURS), n_obj, replace=False)
    while True:
        pos = rng.uniform(TABLE_LOW, TABLE_HIGH, (n_obj, 2))
        gaps = np.linalg.norm(pos[:, None] - pos[None, :], axis=-1)[np.triu_indices(n_obj, 1)]
        if (gaps >= _WEB_SEPARATION).all():
            break
    scene.kind[i, :n_obj] = kinds
    scene.colour[i, :n_obj] = colours
    scene.pos[i, :n_obj] = pos
    scene.full[i, :n_obj] = (kinds == CUP) & (rng.random(n_obj) < 0.5)
    graspable = np.flatnonzero(kinds != BOWL)
    if graspable.size and rng.random() < 0.4:
        k = int(rng.choice(graspable))
        scene.held[i] = k
        scene.closed[i] = True
        scene.grip[i] = pos[k]
    else:
        scene.closed[i] = rng.random() < 0.15
        # The clearest of a few candidate spots (a crowded table may have no fully clear one).
        grips = rng.uniform(GRIP_LOW + 0.05, GRIP_HIGH - 0.05, (32, 2))
        clearance = np.linalg.norm(pos[None] - grips[:, None], axis=-1).min(axis=1)
        ok = np.flatnonzero(clearance >= _WEB_GRIP_CLEARANCE)
        scene.grip[i] = grips[ok[0] if ok.size else clearance.argmax()]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


@dataclass(frozen=True)
class _Table:
    """What one web table shows, by object slot: kinds, colours, relations, the held slot."""

    present: np.ndarray
    kind: dict[int, str]
    colour: dict[int, str]
    rel: dict[tuple[int, int], str | None]
    held: int


def _read_table(scene: Scene, i: int) -> _Table:
    present = np.flatnonzero(scene.kind[i] != EMPTY)
    kind = {int(k): KIND_NAMES[scene.kind[i, k]] for k in present}
    colour = {int(k): COLOURS[scene.colour[i, k]] for k in present}
    pos = scene.pos[i]
    rel = {(a, b): relation(pos[a], pos[b]) for a in kind for b in kind if a != b}
    return _Table(present, kind, colour, rel, int(scene.held[i]))


def _caption(rng: np.random.Generator, t: _Table) -> str:
    """A caption naming the held object, or two objects and (when clear) their relation."""
    kind, colour, rel, held = t.kind, t.colour, t.rel, t.held
    pairs = [(a, b) for (a, b), r in rel.items() if r is not None]
    if held >= 0 and rng.random() < 0.3:
        return _CAPTION_TEMPLATES[2].format(
            art=_article(colour[held]), colour=colour[held], kind=kind[held]
        )
    if pairs:
        a, b = pairs[rng.integers(len(pairs))]
        template = _CAPTION_TEMPLATES[0]
    else:
        a, b = (int(x) for x in t.present[:2])
        template = _CAPTION_TEMPLATES[1]
    return template.format(
        art=_article(colour[a]),
        colour=colour[a],
        kind=kind[a],
        rel=rel[a, b],
        art2=_article(colour[b]),
        colour2=colour[b],
        kind2=kind[b],
    )


def _questions(rng: np.random.Generator, t: _Table) -> list[tuple[int, str, str]]:
    """Every question that has exactly one right answer for this table: (type, question, answer)."""
    kind, colour, rel, held = t.kind, t.colour, t.rel, t.held
    candidates: list[tuple[int, str, str]] = []
    for name in OBJECT_KINDS:
        same = [k for k in kind if kind[k] == name]
        if len(same) == 1:
            candidates.append((0, _QUESTION_TEMPLATES[0].format(kind=name), colour[same[0]]))
        count = f"how many {name}s are there ?"
        candidates.append((3, count, NUMBER_WORDS[len(same)]))
    for ref in kind:
        for r in RELATIONS:
            match = [o for o in kind if o != ref and rel[o, ref] == r]
            clear = all(rel[o, ref] is not None for o in kind if o != ref)
            if len(match) == 1 and clear:
                o = match[0]
                fields = {"rel": r, "colour": colour[ref], "kind": kind[ref]}
                candidates.append((1, _QUESTION_TEMPLATES[1].format(**fields), colour[o]))
                candidates.append((2, _QUESTION_TEMPLATES[2].format(**fields), kind[o]))
    candidates.append((4, _QUESTION_TEMPLATES[4], "yes" if held >= 0 else "no"))
    candidates.append((5, _QUESTION_TEMPLATES[5], kind[held] if held >= 0 else "nothing"))
    absent = [(c, k) for c in COLOURS for k in OBJECT_KINDS]
    absent = [(c, k) for c, k in absent if (c, k) not in {(colour[o], kind[o]) for o in kind}]
    if rng.random() < 0.5:
        o = int(rng.choice(t.present))
        c, k, answer = colour[o], kind[o], "yes"
    else:
        (c, k), answer = absent[rng.integers(len(absent))], "no"
    exists = _QUESTION_TEMPLATES[6].format(art=_article(c), colour=c, kind=k)
    candidates.append((6, exists, answer))
    return candidates


def _describe(rng: np.random.Generator, scene: Scene, i: int) -> tuple[str, str, str, int]:
    """(caption, question, answer, question type) for table i of a web scene."""
    table = _read_table(scene, i)
    caption = _caption(rng, table)
    candidates = _questions(rng, table)
    # Draw a question type uniformly among those available, then one question of it,
    # so frequent types (counting) do not swamp rare ones (relations).
    types = sorted({c[0] for c in candidates})
    qtype = types[rng.integers(len(types))]
    of_type = [c for c in candidates if c[0] == qtype]
    _, question, answer = of_type[rng.integers(len(of_type))]
    return caption, question, answer, qtype


def web_examples(n: int, seed: int) -> WebExamples:
    """Draw ``n`` random tables (2-4 objects of distinct colours), render and describe them.

    Args:
        n: number of examples (>= 1).
        seed: the examples depend only on it.

    >>> ex = web_examples(3, seed=0)
    >>> ex.images.shape, len(ex.questions), all(a in ANSWERS for a in ex.answers)
    ((3, 64, 64, 3), 3, True)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UsageError(f"the number of web examples must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    # A stream of its own, so web tables never repeat a demonstration's draws.
    rng = np.random.default_rng([int(seed), 0x3EB])
    scene = Scene.empty(int(n), _WEB_SLOTS)
    captions, questions, answers, qtypes = [], [], [], []
    for i in range(int(n)):
        _sample_web_scene(rng, scene, i)
        caption, question, answer, qtype = _describe(rng, scene, i)
        captions.append(caption)
        questions.append(question)
        answers.append(answer)
        qtypes.append(qtype)
    return WebExamples(
        images=render(scene),
        captions=captions,
        questions=questions,
        answers=answers,
        question_types=np.array(qtypes, np.int64),
        scene=scene,
    )
