"""Tiny random models built from configs, so engine tests run in seconds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from engine import embedded
from engine.backends.hf import HfBackend
from engine.bridge import Bridge, BridgeSpec
from engine.config import BridgeConfig, EngineConfig
from engine.language import LanguageModel
from engine.model import RSCapRet


class TinyEncoder(nn.Module):
    """A small random conv net standing in for the image tower: (N, dim) features."""

    def __init__(self, dim: int = 32, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Conv2d(3, dim, 8, stride=8), nn.AdaptiveAvgPool2d(1))
        self.dim = dim
        self.encoder_id = f"tiny-conv-{dim}-{seed}"
        self.grid_cells = 0  # a pooled vector only, as ImageEncoder requires it to say
        self.requires_grad_(False)

    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        arrays = [np.asarray(im.convert("RGB").resize((32, 32)), np.float32) / 255 for im in images]
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # (N, 3, 32, 32)
        return self.net(x).flatten(1)


def tiny_lm(tied: bool = True, seed: int = 0) -> LanguageModel:
    """A tiny random Llama with the embedded LM's real tokenizer (and [RET] added)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(embedded.language_folder()))
    torch.manual_seed(seed)
    hidden = 64
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, tie_word_embeddings=tied,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
    )
    return LanguageModel(LlamaForCausalLM(config), tokenizer, "[RET]", name=f"tiny-llama-{seed}")


def tiny_engine(prefix_tokens: int = 4, tied: bool = True, ret_bias: float = 0.0,
                seed: int = 0) -> RSCapRet:
    lm = tiny_lm(tied=tied, seed=seed)
    encoder = TinyEncoder(seed=seed)
    spec = BridgeSpec(image_dim=encoder.dim, lm_dim=lm.hidden_size, prefix_tokens=prefix_tokens,
                      shared_dim=16, tied_head=lm.tied, encoder_id=encoder.encoder_id,
                      lm_id=lm.name)
    torch.manual_seed(seed)
    bridge = Bridge(spec)
    config = EngineConfig(bridge=BridgeConfig(prefix_tokens=prefix_tokens, shared_dim=16))
    config = _with_bias(config, ret_bias)
    return RSCapRet(config, encoder, lm, bridge, HfBackend(lm, bridge), bridge_id="tiny")


def _with_bias(config: EngineConfig, bias: float) -> EngineConfig:
    import dataclasses

    # Every reply greedy, descriptions too (a test of the shipped beams asks for them).
    generation = dataclasses.replace(config.generation, ret_logit_bias=bias, max_new_tokens=12,
                                     description_beams=1, description_match=0.0)
    return dataclasses.replace(config, generation=generation)
