"""The built-in tabletop world: a language-conditioned 2-D table seen as 64x64 RGB images.

Coloured blocks, bowls and cups lie on a table; a top-down gripper moves over it,
grasps, releases and tilts. Four task families follow the recipe: *pick* ("pick up
the red block"), *place* ("put the red block in the blue bowl"), *stack* ("stack the
red block on the green block") and *pour* ("pour the yellow cup into the blue
bowl", which needs the wrist tilted over the bowl). N environments are stepped
together in numpy. A vectorised `ScriptedExpert` solves every task and has knobs
that degrade demonstrations (noise, idle pauses, failures, zigzags).

The package holds one idea per module: `world` (constants, task specs, scene
state), `rendering` (images), `env` (`TabletopEnv`: sampling and dynamics; its
docstring lays out the actions), `expert` (the scripted expert) and `text` (the
world's language: tokenizer, captions and questions; imported on its own). This
file only gathers the public names; everything here depends on numpy and the
package's `envs.base` and `errors` only.
"""

from vla_eval.envs.tabletop.env import TabletopEnv, check_seeds
from vla_eval.envs.tabletop.expert import (
    ARRIVE_TOLERANCE,
    DemoQuality,
    ExpertPolicy,
    ScriptedExpert,
)
from vla_eval.envs.tabletop.rendering import render
from vla_eval.envs.tabletop.world import (
    ACTION_DIM,
    ACTION_NAMES,
    BLOCK,
    BOWL,
    BOWL_RADIUS,
    COLOUR_RGB,
    COLOURS,
    CUP,
    EMPTY,
    EMPTY_CUP_RGB,
    GRASP_RADIUS,
    GRIP_HIGH,
    GRIP_LOW,
    GRIP_START_HIGH,
    GRIP_START_LOW,
    GRIPPER_RGB,
    HOLDOUT_REGION,
    IMAGE_SIZE,
    KIND_NAMES,
    LIQUID_RGB,
    MAX_STEPS,
    MIN_SEPARATION,
    MOVE_STEP,
    PHRASINGS,
    POUR_ANGLE,
    STACK_RADIUS,
    STATE_DIM,
    STATE_NAMES,
    TABLE_HIGH,
    TABLE_LOW,
    TABLE_RGB,
    TILT_STEP,
    USED_ACTION_DIMS,
    VERSION,
    WRIST_MAX,
    Scene,
    TabletopSpec,
    colour_pairs,
    is_heldout_pair,
    make_tasks,
)

__all__ = [
    "ACTION_DIM",
    "ACTION_NAMES",
    "ARRIVE_TOLERANCE",
    "BLOCK",
    "BOWL",
    "BOWL_RADIUS",
    "COLOURS",
    "COLOUR_RGB",
    "CUP",
    "EMPTY",
    "EMPTY_CUP_RGB",
    "GRASP_RADIUS",
    "GRIPPER_RGB",
    "GRIP_HIGH",
    "GRIP_LOW",
    "GRIP_START_HIGH",
    "GRIP_START_LOW",
    "HOLDOUT_REGION",
    "IMAGE_SIZE",
    "KIND_NAMES",
    "LIQUID_RGB",
    "MAX_STEPS",
    "MIN_SEPARATION",
    "MOVE_STEP",
    "PHRASINGS",
    "POUR_ANGLE",
    "STACK_RADIUS",
    "STATE_DIM",
    "STATE_NAMES",
    "TABLE_HIGH",
    "TABLE_LOW",
    "TABLE_RGB",
    "TILT_STEP",
    "USED_ACTION_DIMS",
    "VERSION",
    "WRIST_MAX",
    "DemoQuality",
    "ExpertPolicy",
    "Scene",
    "ScriptedExpert",
    "TabletopEnv",
    "TabletopSpec",
    "check_seeds",
    "colour_pairs",
    "is_heldout_pair",
    "make_tasks",
    "render",
]
