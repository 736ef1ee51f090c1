"""The prepared GPU check: one script for the few minutes a GPU machine is lent (under 10 minutes).

    python benchmarks/gpu_check.py --out "$OUT"       # on the GPU machine
    python benchmarks/gpu_check.py                    # anywhere else: says there is no CUDA, exits 0

On CUDA, in this order (each part is timed and reported even when a later one fails):

1. **Greedy tokens, CUDA against CPU**: S's and M's greedy continuations of 5 prompts (64 new
   tokens), once on the CPU in fp32 and once on CUDA in the loader's dtype (bf16). Where the
   tokens part, the first differing position is given, and the CUDA model's agreement with the
   CPU text read teacher-forced (the share of the CPU's tokens that are also CUDA's top choice):
   a near-tie flipped by bf16 rounding keeps that share near 1, a broken path does not.
2. **Batched decode throughput** on CUDA at 8, 32 and 64 rows (sampled, 64 new tokens, no
   early end), tokens per second, prefill included.
3. **A chunk of the table collection**: :func:`~uniscale_integrations.bench.samples.collect_samples`
   with table v2's plan into ``OUT/samples_gpu`` for ``--records`` records, with tokens per second.
   The records are bf16 ones: they are kept apart from the CPU table's samples.

The results go to the "GPU check" section of ``benchmarks/RESULTS.md`` and to ``OUT/gpu_check.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from _results import write_section
from tts_throughput import QUESTIONS

from uniscale_integrations.backends.base import SamplingParams
from uniscale_integrations.backends.hf.session import DecodeSession
from uniscale_integrations.bench.samples import SamplePlan, collect_samples, read_records
from uniscale_integrations.models import LoadedModel, ModelRegistry, load_model

HERE = Path(__file__).resolve().parent
SECTION_TITLE = "GPU check"
PROMPTS = QUESTIONS[:5]
NEW_TOKENS = 64


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/gpu_check"))
    parser.add_argument("--records", type=int, default=8, help="(question, model) records of the collection chunk")
    parser.add_argument(
        "--rehearse", action="store_true", help="run every part on the CPU with S alone and 8 rows (tries the script)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not torch.cuda.is_available() and not args.rehearse:
        print("gpu_check: no CUDA device here; nothing to check (exit 0)")
        return 0
    device, models, rows = ("cpu", ("S",), (8,)) if args.rehearse else ("cuda", ("S", "M"), (8, 32, 64))
    args.out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (rehearsal)"
    lines = [f"Command: `python benchmarks/gpu_check.py`. Device: {name}, torch {torch.__version__}.", ""]
    registry = ModelRegistry.default()
    lines += _guarded("greedy parity", lambda: _greedy_parity(registry, device, models))
    lines += _guarded("throughput", lambda: _throughput(registry, device, models, rows))
    lines += _guarded("collection chunk", lambda: _collection_chunk(args.out / "samples_gpu", args.records, models))
    text = "\n".join(lines)
    (args.out / "gpu_check.md").write_text(text + "\n")
    if not args.rehearse:
        write_section(HERE / "RESULTS.md", SECTION_TITLE, text)
    print(text)
    return 0


def _guarded(name: str, part: Callable[[], list[str]]) -> list[str]:
    """Run one part; a failure is reported in its place and the next part still runs."""
    started = time.perf_counter()
    try:
        body = part()
    except Exception as exc:
        logging.exception("gpu_check: %s failed", name)
        body = [f"**{name} failed**: `{type(exc).__name__}: {exc}`"]
    return [*body, "", f"({name}: {time.perf_counter() - started:.0f} s)", ""]


def _greedy(loaded: LoadedModel, prompt: str) -> list[int]:
    session = DecodeSession(loaded, [prompt], 1, SamplingParams(max_new_tokens=NEW_TOKENS, temperature=0.0))
    session.advance()
    return list(session.rows[0].token_ids)


def _teacher_forced_agreement(loaded: LoadedModel, prompt: str, tokens: list[int]) -> float:
    prompt_ids = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + tokens], device=loaded.device)
    with torch.inference_mode():
        logits = loaded.model(ids).logits[0, len(prompt_ids) - 1 : -1]
    return float((logits.argmax(-1).cpu() == torch.tensor(tokens)).float().mean())


def _greedy_parity(registry: ModelRegistry, device: str, models: tuple[str, ...]) -> list[str]:
    lines = [
        "**Greedy tokens, CUDA against CPU** (64 new tokens)",
        "",
        "| model | prompt | same tokens | first difference | CUDA top choice along the CPU text |",
        "|---|---|---|---|---|",
    ]
    for name in models:
        cpu, cuda = load_model(registry[name], device="cpu"), load_model(registry[name], device=device)
        for i, question in enumerate(PROMPTS):
            prompt = str(
                cpu.tokenizer.apply_chat_template(
                    [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
                )
            )
            on_cpu, on_cuda = _greedy(cpu, prompt), _greedy(cuda, prompt)
            first = next((k for k, (a, b) in enumerate(zip(on_cpu, on_cuda, strict=False)) if a != b), None)
            if first is None and len(on_cpu) != len(on_cuda):
                first = min(len(on_cpu), len(on_cuda))
            agreement = _teacher_forced_agreement(cuda, prompt, on_cpu) if on_cpu else 1.0
            lines.append(
                f"| {name} ({cuda.dtype}) | {i} | {'yes' if first is None else 'no'} | "
                f"{'-' if first is None else f'token {first}'} | {agreement:.1%} |"
            )
    return lines


def _throughput(registry: ModelRegistry, device: str, models: tuple[str, ...], sizes: tuple[int, ...]) -> list[str]:
    lines = ["**Batched decode throughput** (sampled, 64 new tokens per row)", ""]
    lines += ["| model | rows | tokens/s |", "|---|---|---|"]
    params = SamplingParams(max_new_tokens=NEW_TOKENS, temperature=0.7, top_p=0.95, seed=0)
    for name in models:
        loaded = load_model(registry[name], device=device)
        prompt = str(
            loaded.tokenizer.apply_chat_template(
                [{"role": "user", "content": PROMPTS[0]}], tokenize=False, add_generation_prompt=True
            )
        )
        DecodeSession(loaded, [prompt], 2, params, ignore_eos=True).advance()  # warm-up
        for rows in sizes:
            _synchronize(device)
            started = time.perf_counter()
            session = DecodeSession(loaded, [prompt], rows, params, ignore_eos=True)
            session.advance()
            _synchronize(device)
            seconds = time.perf_counter() - started
            tokens = sum(len(r.token_ids) for r in session.rows)
            lines.append(f"| {name} | {rows} | {tokens / seconds:,.0f} |")
    return lines


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _collection_chunk(work: Path, records: int, models: tuple[str, ...]) -> list[str]:
    started = time.perf_counter()
    plan = SamplePlan()
    if models != plan.models:
        plan = replace(plan, models=models, sampling={m: plan.sampling[m] for m in models})
    collect_samples(plan, work, limit=records, progress=False)
    seconds = time.perf_counter() - started
    done = list(read_records(work))
    tokens = sum(p["tokens"] for r in done for p in r["paths"])
    return [
        f"**Collection chunk** (table v2's plan, bf16 on CUDA, kept apart in `{work.name}`): {len(done)} records, "
        f"{tokens:,} generated tokens, {tokens / seconds:,.0f} tokens/s over the chunk (model loading included)."
    ]


if __name__ == "__main__":
    sys.exit(main())
