"""The frozen text encoder: RoBERTa-base last hidden states (768) and the attention mask.

- ``weights="pretrained"``: ``transformers.RobertaModel`` and its tokenizer for the hub model
  ``roberta-base``, read from the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``,
  else ``~/.cache/huggingface/hub``) without network access when cached, else downloaded;
  offline (``HF_HUB_OFFLINE=1``, ...) or unreachable hub -> :class:`WeightsUnavailable`.
- ``weights=PATH``: a folder written by ``save_pretrained`` (model and tokenizer; a folder that
  holds such a folder named ``roberta-base`` also works).
- ``weights="mdetr:PATH"``: the RoBERTa MDETR fine-tuned (``transformer.text_encoder.*`` of an
  MDETR checkpoint, the paper's text encoder) with roberta-base's own tokenizer (MDETR's), read
  from the Hugging Face cache as for ``pretrained``; MDETR's unused pooler is left out.
- ``weights="random"``: the same architecture, :func:`roberta_base_config` (the exact
  roberta-base numbers, written out below), initialized by transformers' own init under a fixed
  seed, with the offline byte-level BPE tokenizer of :mod:`.tokenizer`.

``layers`` keeps only the first ``layers`` transformer layers (12 = the full model; fewer makes
tests and the offline demo fast) and is recorded in ``spec``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from stvg.extract.backbones.image import autocast_context
from stvg.extract.backbones.tokenizer import build_transformers_tokenizer, tokenizer_id
from stvg.extract.backbones.weights import (
    WeightsUnavailable,
    can_reach,
    file_id,
    is_offline,
    load_into,
    mdetr_id,
    mdetr_part,
    parse_weights,
    random_id,
    seeded,
)

log = logging.getLogger(__name__)

HUB_NAME = "roberta-base"
HUB_URL = "https://huggingface.co/FacebookAI/roberta-base"
MAX_POSITIONS = 512  # usable tokens: 514 position embeddings minus the padding offset of 2

# The exact roberta-base configuration (its config.json on the hub), written out so that random
# weights build the same architecture without downloading anything.
ROBERTA_BASE = {
    "vocab_size": 50265,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}


def roberta_base_config(layers: int = 12):  # -> transformers.RobertaConfig
    """``RobertaConfig`` with the roberta-base numbers and ``num_hidden_layers=layers``."""
    from transformers import RobertaConfig

    return RobertaConfig(**{**ROBERTA_BASE, "num_hidden_layers": layers})


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home) / "hub"


class TextEncoder(nn.Module):
    """Tokenizer + frozen RoBERTa. ``encode`` gives per-token states and the padding mask."""

    dim = 768

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        *,
        weights_id: str,
        tokenizer_name: str,
        layers: int,
        device: torch.device,
        amp: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.amp = amp
        self.layers = layers
        self.spec = {
            "kind": "text",
            "name": "roberta-base",
            "weights": weights_id,
            "tokenizer": tokenizer_name,
            "layers": layers,
            "dim": self.dim,
            "autocast": ("float16" if device.type == "cuda" else "bfloat16") if amp else None,
        }

        self.eval()

    def train(self, mode: bool = True):
        """Frozen: stays in eval mode (BatchNorm statistics, no dropout) whatever ``mode`` says."""
        return super().train(False)

    def encode(
        self, texts: list[str], max_length: int = MAX_POSITIONS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states ``[B, L, 768]`` float32 and mask ``[B, L]`` bool (True = token).

        Each text is tokenized as ``<s> ... </s>``, padded to the longest in the batch (``L``),
        truncated to ``max_length`` tokens (at most 512; a warning is logged when it happens).
        Both tensors are on the encoder's device. States at padded positions are meaningless.
        """
        if not texts:
            return torch.zeros(0, 0, self.dim, device=self.device), torch.zeros(
                0, 0, dtype=torch.bool, device=self.device
            )
        max_length = min(max_length, MAX_POSITIONS)
        lengths = [len(ids) for ids in self.tokenizer(list(texts))["input_ids"]]
        if max(lengths) > max_length:
            log.warning(
                "%d of %d texts have more than %d tokens and are truncated",
                sum(n > max_length for n in lengths),
                len(texts),
                max_length,
            )
        batch = self.tokenizer(
            list(texts),
            padding="longest",
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        ids = batch["input_ids"].to(self.device)  # [B, L]
        mask = batch["attention_mask"].to(self.device)  # [B, L] 1 = token
        with torch.inference_mode(), autocast_context(self.device, self.amp):
            states = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return states.float(), mask.bool()  # [B, L, 768], [B, L]

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(texts)


def _local_folder(path: Path) -> Path:
    for candidate in (path, path / HUB_NAME):
        if (candidate / "config.json").is_file():
            return candidate
    raise WeightsUnavailable(
        "the text encoder needs a folder with config.json, the model weights and the tokenizer "
        "files (as written by save_pretrained)",
        file=path,
        field="--weights",
        hint=f"Save one with RobertaModel.from_pretrained('{HUB_NAME}').save_pretrained(DIR) and "
        "the tokenizer's save_pretrained(DIR), or put it in a subfolder named roberta-base",
    )


def _load_pretrained(source: str | Path, **kwargs):
    from transformers import AutoTokenizer, RobertaModel

    model = RobertaModel.from_pretrained(source, add_pooling_layer=False, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    return model, tokenizer


def _hub_cached(cache: Path) -> bool:
    snapshots = cache / f"models--{HUB_NAME}" / "snapshots"
    return any(
        (snap / "config.json").exists()
        and any((snap / w).exists() for w in ("model.safetensors", "pytorch_model.bin"))
        for snap in (snapshots.iterdir() if snapshots.is_dir() else [])
    )


def _unavailable(reason: str, cache: Path) -> WeightsUnavailable:
    return WeightsUnavailable(
        f"cannot get the pretrained text encoder '{HUB_NAME}': {reason}",
        file=cache,
        hint=f"Download it from {HUB_URL} on a connected machine (e.g. `hf download {HUB_NAME}` "
        "or RobertaModel.from_pretrained) into the Hugging Face cache read here (HF_HOME / "
        f"HF_HUB_CACHE: {cache}), or save it with save_pretrained to a folder and pass "
        "--weights PATH, or pass --weights random",
    )


def mdetr_text_model(path: str | Path, layers: int = 12) -> nn.Module:
    """RoBERTa-base cut to its first ``layers`` layers (``transformers.RobertaModel``, no pooler)
    holding the ``transformer.text_encoder.*`` tensors of the MDETR checkpoint at ``path``; every
    tensor of the model must be there with its shape (:class:`WeightsUnavailable` otherwise).
    The pooler, later layers and the legacy ``embeddings.position_ids`` buffer are not used."""
    from transformers import RobertaModel

    state = mdetr_part(path, "transformer.text_encoder.", "RoBERTa text")
    with seeded():
        model = RobertaModel(roberta_base_config(layers), add_pooling_layer=False)
    load_into(model, state, "RoBERTa (MDETR)", path)
    return model


def roberta_tokenizer():
    """roberta-base's tokenizer from the Hugging Face cache, downloaded when allowed and needed
    (the rules of ``weights="pretrained"``); :class:`WeightsUnavailable` when it cannot be had."""
    from transformers import AutoTokenizer

    cache = hf_hub_cache()
    try:
        return AutoTokenizer.from_pretrained(HUB_NAME, cache_dir=cache, local_files_only=True)
    except (OSError, ValueError):
        pass
    if is_offline():
        raise _unavailable("its tokenizer is not in the Hugging Face cache and offline", cache)
    if not can_reach(HUB_URL):
        raise _unavailable("its tokenizer is not cached and huggingface.co is unreachable", cache)
    try:
        return AutoTokenizer.from_pretrained(HUB_NAME, cache_dir=cache)
    except (OSError, ValueError) as exc:
        raise _unavailable(f"the tokenizer download failed ({exc})", cache) from exc


def build_text_encoder(
    weights: str = "pretrained",
    device: str | torch.device = "cpu",
    *,
    layers: int = 12,
    amp: bool = False,
) -> TextEncoder:
    """Build the frozen (eval mode) RoBERTa-base encoder; see the module docstring for weights.

    ``layers``: number of transformer layers kept (1..12). ``amp``: bf16 autocast on CPU, fp16
    on CUDA. Raises :class:`~stvg.extract.backbones.weights.WeightsUnavailable`.
    """
    if not 1 <= layers <= ROBERTA_BASE["num_hidden_layers"]:
        raise ValueError(f"layers must be in 1..12, got {layers}")
    choice = parse_weights(weights)
    if choice.kind == "random":
        from transformers import RobertaModel

        with seeded():
            model = RobertaModel(roberta_base_config(layers), add_pooling_layer=False)
        tokenizer = build_transformers_tokenizer()
        weights_id, tokenizer_name = random_id(), tokenizer_id()
    elif choice.kind == "mdetr":
        model = mdetr_text_model(choice.path, layers)
        tokenizer = roberta_tokenizer()
        weights_id, tokenizer_name = mdetr_id(choice.path), f"hf:{HUB_NAME}"
    elif choice.kind == "file":
        folder = _local_folder(choice.path)
        try:
            model, tokenizer = _load_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise WeightsUnavailable(
                f"cannot load the text encoder from this folder ({exc})", file=folder
            ) from exc
        weights_id = tokenizer_name = file_id(folder)
    else:
        cache = hf_hub_cache()
        if _hub_cached(cache):
            try:
                model, tokenizer = _load_pretrained(
                    HUB_NAME, cache_dir=cache, local_files_only=True
                )
            except (OSError, ValueError) as exc:
                raise _unavailable(f"the cached copy cannot be loaded ({exc})", cache) from exc
        elif is_offline():
            raise _unavailable("not in the Hugging Face cache and offline mode is set", cache)
        elif not can_reach(HUB_URL):
            raise _unavailable(
                "not in the Hugging Face cache and huggingface.co is unreachable", cache
            )
        else:
            try:
                model, tokenizer = _load_pretrained(HUB_NAME, cache_dir=cache)
            except (OSError, ValueError) as exc:
                raise _unavailable(f"download failed ({exc})", cache) from exc
        weights_id = tokenizer_name = f"hf:{HUB_NAME}"
    if len(model.encoder.layer) > layers:
        model.encoder.layer = model.encoder.layer[:layers]
        model.config.num_hidden_layers = layers
    elif len(model.encoder.layer) < layers:
        log.warning("the checkpoint has %d layers, fewer than %d", len(model.encoder.layer), layers)
        layers = len(model.encoder.layer)
    dev = torch.device(device)
    model = model.eval().requires_grad_(False).to(dev)
    return TextEncoder(
        model,
        tokenizer,
        weights_id=weights_id,
        tokenizer_name=tokenizer_name,
        layers=layers,
        device=dev,
        amp=amp,
    )
