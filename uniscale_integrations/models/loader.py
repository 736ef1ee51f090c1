"""Load a :class:`ModelSpec` into memory, once per process and device.

Nothing loads at import time. The first :func:`load_model` call for a GGUF model converts
it into the cache (:func:`cache_dir`, once per machine); later calls in the process get the
same :class:`LoadedModel` object back.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from uniscale_integrations.cache import cache_dir
from uniscale_integrations.errors import MissingModelError, UniScaleError
from uniscale_integrations.models.gguf import ensure_converted
from uniscale_integrations.models.registry import HFDirectory, ModelSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

_LOCK = threading.Lock()
_LOADED: dict[tuple[str, str], LoadedModel] = {}


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to generate: eval mode, on ``device``, tokenizer padding on the left."""

    spec: ModelSpec
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: str
    dtype: torch.dtype


def resolve_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> torch.dtype:
    """bf16 on CUDA (fp16 without native bf16), fp32 elsewhere (bf16 is slower on CPUs)."""
    if torch.device(device).type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def load_model(spec: ModelSpec, device: str | None = None) -> LoadedModel:
    """Load ``spec`` on ``device`` (default :func:`resolve_device`), cached per (name, device).

    GGUF sources are converted into the cache on first use. Raises
    :class:`MissingModelError` when the weights are not installed and
    :class:`UniScaleError` when a model directory cannot be loaded.
    """
    device = device or resolve_device()
    key = (spec.name, device)
    with _LOCK:
        loaded = _LOADED.get(key)
        if loaded is None or loaded.spec != spec:
            loaded = _load(spec, device)
            _LOADED[key] = loaded
        return loaded


def _model_path(spec: ModelSpec) -> Path:
    if isinstance(spec.source, HFDirectory):
        if not spec.source.path.is_dir():
            raise MissingModelError(f"model directory of {spec.name!r} not found: {spec.source.path}")
        return spec.source.path
    return ensure_converted(spec, cache_dir())


def load_tokenizer(spec: ModelSpec) -> PreTrainedTokenizerBase:
    """The tokenizer of ``spec`` alone (no weights loaded), padding on the left."""
    return _tokenizer_at(_model_path(spec), spec)


def _tokenizer_at(path: Path, spec: ModelSpec) -> PreTrainedTokenizerBase:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=spec.trust_remote_code)
    except Exception as exc:  # transformers raises many types; keep the cause chained
        raise UniScaleError(f"could not load model {spec.name!r} (its tokenizer) from {path}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _load(spec: ModelSpec, device: str) -> LoadedModel:
    path = _model_path(spec)
    tokenizer = _tokenizer_at(path, spec)
    from transformers import AutoModelForCausalLM

    dtype = default_dtype(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, local_files_only=True, trust_remote_code=spec.trust_remote_code
        )
    except Exception as exc:  # transformers raises many types; keep the cause chained
        raise UniScaleError(f"could not load model {spec.name!r} from {path}: {exc}") from exc
    model.to(torch.device(device))  # type: ignore[arg-type]  # transformers' @wraps hides the bound signature
    model.eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(spec=spec, model=model, tokenizer=tokenizer, device=device, dtype=dtype)
