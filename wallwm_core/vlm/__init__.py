"""The VLM side of WALL-WM: causal LM interface, Staircase Decoding, heads, proposer.

Quick start (tiny random model)::

    from wallwm_core.vlm import WallVLM, load_vlm_config
    vlm = WallVLM.from_config(load_vlm_config("vlm_tiny"))
    prompt = vlm.encode_prompts(["make tea"], [["fill the kettle"]])
    latents, mask = vlm.staircase_latents(prompt)      # [1, K, width], [1, K]
    caption = vlm.next_event("make tea", ["fill the kettle"])
"""

from wallwm_core.vlm.config import VLMConfig, available_configs, load_vlm_config
from wallwm_core.vlm.interface import CausalLM, TextTokenizer, causal_padding_mask
from wallwm_core.vlm.layer_counting import CountingLM
from wallwm_core.vlm.model import PromptBatch, VLMOutput, WallVLM
from wallwm_core.vlm.proposer import VLMEventProposer
from wallwm_core.vlm.staircase import (
    StaircaseBranch,
    StaircaseOutput,
    naive_cost,
    naive_latent_loop,
    staircase_cost,
    staircase_forward,
)
from wallwm_core.vlm.tiny_lm import TinyCausalLM
from wallwm_core.vlm.training import (
    NextEventExample,
    VLMBatch,
    VLMLosses,
    collate,
    compute_losses,
    make_optimizer,
    train_step,
)

__all__ = [
    "CausalLM",
    "CountingLM",
    "NextEventExample",
    "PromptBatch",
    "StaircaseBranch",
    "StaircaseOutput",
    "TextTokenizer",
    "TinyCausalLM",
    "VLMBatch",
    "VLMConfig",
    "VLMEventProposer",
    "VLMLosses",
    "VLMOutput",
    "WallVLM",
    "available_configs",
    "causal_padding_mask",
    "collate",
    "compute_losses",
    "load_vlm_config",
    "make_optimizer",
    "naive_cost",
    "naive_latent_loop",
    "staircase_cost",
    "staircase_forward",
    "train_step",
]
