"""The offline model ladder: specs, GGUF conversion cache, and a cached loader."""

from uniscale_integrations.errors import MissingModelError, UniScaleError
from uniscale_integrations.models.gguf import assemble_gguf, convert_to_safetensors, ensure_converted
from uniscale_integrations.models.loader import (
    LoadedModel,
    cache_dir,
    default_dtype,
    load_model,
    load_tokenizer,
    resolve_device,
)
from uniscale_integrations.models.registry import (
    DEFAULT_LADDER,
    GGUFFile,
    GGUFPackages,
    HFDirectory,
    ModelRegistry,
    ModelSource,
    ModelSpec,
)

__all__ = [
    "DEFAULT_LADDER",
    "GGUFFile",
    "GGUFPackages",
    "HFDirectory",
    "LoadedModel",
    "MissingModelError",
    "ModelRegistry",
    "ModelSource",
    "ModelSpec",
    "UniScaleError",
    "assemble_gguf",
    "cache_dir",
    "convert_to_safetensors",
    "default_dtype",
    "ensure_converted",
    "load_model",
    "load_tokenizer",
    "resolve_device",
]
