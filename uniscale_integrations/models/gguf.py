"""Turn packaged GGUF weights into a cached plain safetensors model directory.

Loading a GGUF through transformers dequantises every tensor (S: ~15 s, M: ~30 s); a
converted directory loads in about a second. So each GGUF model is converted once per
machine into ``<cache>/models/<name>/``, written to a temporary directory and renamed into
place, with a marker file recording what it was converted from. A directory without a
matching marker (partial, or converted from another source or transformers version) is
converted again.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from uniscale_integrations.errors import MissingModelError, UniScaleError
from uniscale_integrations.models.registry import GGUFFile, GGUFPackages, ModelSpec

logger = logging.getLogger(__name__)

MARKER = "uniscale-conversion.json"
"""Name of the marker file a finished conversion leaves in its directory."""

_MARKER_FORMAT = 1
_CHUNK = 16 * 1024 * 1024


def assemble_gguf(files: Sequence[Path], dest: Path, size: int) -> Path:
    """Concatenate ``files`` into ``dest``, which must come out exactly ``size`` bytes.

    Streams through a temporary file next to ``dest`` and renames it into place, so
    ``dest`` is either absent or complete. Raises :class:`UniScaleError` on a size mismatch.
    """
    total = sum(path.stat().st_size for path in files)
    if total != size:
        raise UniScaleError(
            f"GGUF chunks add up to {total:,} bytes, expected {size:,}: the installed packages "
            f"are damaged or of another version ({', '.join(str(path) for path in files)})"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as out:
            for path in files:
                with path.open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, _CHUNK)
        written = tmp.stat().st_size
        if written != size:
            raise UniScaleError(f"assembled GGUF {dest} has {written:,} bytes, expected {size:,}")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def convert_to_safetensors(
    gguf_path: Path,
    out_dir: Path,
    *,
    marker: dict[str, Any] | None = None,
    trust_remote_code: bool = False,
) -> Path:
    """Dequantise ``gguf_path`` to an fp32 safetensors model + tokenizer in ``out_dir``.

    The result is written to a temporary directory and renamed into place (replacing an
    old ``out_dir``), with ``marker`` (default: the GGUF's path and size) written to
    :data:`MARKER` inside it.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    record = {**(marker or source_marker(GGUFFile(gguf_path))), "transformers": version("transformers")}
    options: dict[str, Any] = {
        "gguf_file": gguf_path.name,
        "local_files_only": True,
        "trust_remote_code": trust_remote_code,
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".part", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **options)
            quantized = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **options)
        except Exception as exc:  # transformers raises many types; keep the cause chained
            raise UniScaleError(f"could not load GGUF {gguf_path}: {exc}") from exc
        # save_pretrained refuses GGUF-loaded models: rebuild from the config without the
        # quantization_config. Building on the meta device skips a useless random init.
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=trust_remote_code)
        plain.load_state_dict(quantized.state_dict(), strict=True, assign=True)
        plain.tie_weights()
        plain.generation_config = quantized.generation_config
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del plain, quantized
        gc.collect()
        (tmp / MARKER).write_text(json.dumps(record, indent=2) + "\n")
        _move_into_place(tmp, out_dir, record)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def ensure_converted(spec: ModelSpec, cache: Path) -> Path:
    """The converted safetensors directory of GGUF model ``spec``, converting it if needed.

    Package chunks are assembled into ``<cache>/gguf/<name>.gguf`` first and that
    intermediate file is deleted once the conversion ends; a single-file package
    and a user's GGUF are read in place and never deleted.
    """
    source = spec.source
    if not isinstance(source, GGUFPackages | GGUFFile):
        raise TypeError(f"model {spec.name!r} has no GGUF source")
    if isinstance(source, GGUFFile) and not source.path.is_file():
        raise MissingModelError(f"GGUF file of model {spec.name!r} not found: {source.path}")
    out_dir = Path(cache) / "models" / spec.name
    record = source_marker(source)
    if is_current(out_dir, record):
        return out_dir

    intermediate: Path | None = None
    if isinstance(source, GGUFFile):
        gguf_path = source.path
    else:
        files = source.locate()
        if len(files) == 1:
            gguf_path = files[0]
            if gguf_path.stat().st_size != source.size:
                raise UniScaleError(
                    f"{gguf_path} has {gguf_path.stat().st_size:,} bytes, expected {source.size:,}; "
                    f"reinstall with: {source.pip_command(force_reinstall=True)}"
                )
        else:
            intermediate = Path(cache) / "gguf" / f"{spec.name}.gguf"
            logger.info("assembling %s from %d chunks into %s", spec.name, len(files), intermediate)
            gguf_path = assemble_gguf(files, intermediate, source.size)

    logger.info("converting %s (one-time, ~1 min)...", spec.name)
    start = time.perf_counter()
    try:
        convert_to_safetensors(gguf_path, out_dir, marker=record, trust_remote_code=spec.trust_remote_code)
    finally:  # the assembled file is only an intermediate: cheap to rebuild, large to keep
        if intermediate is not None:
            intermediate.unlink(missing_ok=True)
    logger.info("converted %s in %.0f s into %s", spec.name, time.perf_counter() - start, out_dir)
    return out_dir


def source_marker(source: GGUFPackages | GGUFFile) -> dict[str, Any]:
    """What a conversion records about its source (without the transformers version)."""
    if isinstance(source, GGUFPackages):
        return {"format": _MARKER_FORMAT, "source": list(source.packages), "source_size": source.size}
    path = source.path.resolve()
    return {"format": _MARKER_FORMAT, "source": str(path), "source_size": path.stat().st_size}


def is_current(out_dir: Path, marker: dict[str, Any]) -> bool:
    """Whether ``out_dir`` holds a finished conversion of ``marker``'s source with this transformers."""
    try:
        found = json.loads((Path(out_dir) / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return bool(found == {**marker, "transformers": version("transformers")})


def _move_into_place(tmp: Path, out_dir: Path, record: dict[str, Any]) -> None:
    """Rename ``tmp`` to ``out_dir``; an old ``out_dir`` is first renamed aside, then removed."""
    old = out_dir.with_name(f".{out_dir.name}.old.{os.getpid()}")
    if out_dir.exists():
        out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except OSError:
        if not is_current(out_dir, record):  # not a concurrent conversion finishing first
            raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
