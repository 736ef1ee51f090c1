"""Throughput of batched best-of-8 decoding, against sequential and plain ``generate``.

Run from the repository root::

    python benchmarks/tts_throughput.py            # S and M, 5 prompts x 64 new tokens

For each rung (S = SmolLM2-135M, M = Qwen2.5-Coder-0.5B, fp32 on CPU) and each of the
same chat prompts, in the same process, interleaved prompt by prompt:

* **session, batched**: one :class:`DecodeSession` with 8 rows from one prompt (one
  prefill, then one forward pass per token for all 8 rows), default (fast) runner;
* **session, batched, hf runner**: the same with the model's own forward (``backend="hf"``);
* **generate x8 sequential**: 8 single-row ``model.generate`` calls (the baseline);
* **session x8 sequential**: 8 single-row sessions (fast runner at batch 1);
* **generate(num_return_sequences=8)**: transformers' own batched sampling (reference).

Every method samples (temperature 0.7, top-p 0.95) exactly ``--new-tokens`` tokens per
row: early end-of-sequence is forbidden (``min_new_tokens`` for ``generate``,
``ignore_eos=True`` for the session), so all methods produce the same number of tokens.
Tokens/s = generated tokens / wall time, prefill included (the one-time weight packing
of the fast runner is excluded and reported apart). All timings of a rung come from the
same run; the machine is shared, so compare ratios, not absolute figures across runs.

The roofline: a decode step of batch ``B`` cannot be faster than
``max(2 * P_lin * B / peak_flops, 4 * P_lin / bandwidth)`` (plus attention, counted
too), where ``P_lin`` is the number of weights in linear layers (lm_head included),
``peak_flops`` the best fp32 matmul rate measured here (torch.mm and oneDNN, large
shapes, same threads) and ``bandwidth`` the measured read bandwidth (median of 9 sums
over a 512 MiB tensor; measured before and after the run, the larger is used). The
prefill is priced at ``peak_flops``. The roofline tokens/s is the same workload's tokens
over that lower bound on time.

The script replaces the "TTS throughput" section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import torch
from _results import write_section

from uniscale_integrations.backends.base import SamplingParams
from uniscale_integrations.backends.hf.runners import _packed_model
from uniscale_integrations.backends.hf.sampling import sample_tokens
from uniscale_integrations.backends.hf.session import DecodeSession
from uniscale_integrations.models import LoadedModel, ModelRegistry, load_model

HERE = Path(__file__).resolve().parent
SECTION_TITLE = "TTS throughput"
QUESTIONS = (
    "Tom has 3 boxes with 4 apples each. He eats 2. How many apples are left? Think step by step.",
    "A train travels 60 km in 1.5 hours. What is its average speed in km/h? Explain.",
    "What is 17 * 23? Show your working.",
    "Sara reads 12 pages a day. How many days does she need for a 150-page book?",
    "List three prime numbers between 20 and 40 and say why each is prime.",
    "A shop sells pens at 3 for 2 dollars. How much do 18 pens cost?",
    "If x + 7 = 19, what is 3x? Solve step by step.",
    "A rectangle is 8 cm by 5 cm. What are its area and its perimeter?",
)
WIDTH = 8
FINDINGS = """Where the time went (torch.profiler on the decode loop, 2-core AMD EPYC with AVX-512) and what fixed it:

- **GEMMs through MKL on an AMD CPU.** 90% of a transformers decode step is `aten::mm`, and MKL takes a
  slow generic path on this CPU: at batch 8 an M-sized linear layer ran at 15-40 GFLOP/s, 2-4x slower than
  at batch 1, so batching paid little (see the `generate(num_return_sequences=8)` rows). The fast
  runner packs each linear weight once for oneDNN (`torch.ops.mkldnn._reorder_linear_weight` +
  `_linear_pointwise`, same fp32 arithmetic) and fuses Q/K/V and gate/up into one GEMM each: 2-3x faster
  per layer at batch 8 (~100 GFLOP/s per core); the whole step is then bound by streaming the weights
  (the lm_head alone is 545 MB on M). Compare the hf-runner row (same session, transformers forward).
- **Sampling over the vocabulary.** A full sort per step for top-p costs ~10x the partial top-p used
  here (top-64 candidates, widened only when the nucleus does not fit: exact); see the sampling figures
  above. Log-probs are taken as `logit - logsumexp` (one pass, closer to float64 than fp32 `log_softmax`).
- **Prefill and logits.** Each distinct prompt is prefilled once for all 8 rows (sequential calls prefill
  8 times) and the lm_head runs on the last position only (no `output_logits` for the whole vocabulary).
- **Idle rows.** Rows waiting at a step end or finished are moved out of the batch prefix (one KV gather
  when a row changes state, not per step), so they are not computed; the KV cache is preallocated (no
  per-step `torch.cat`) and gaps left by waiting rows are squeezed out before the next step.
- **Threads on a shared box.** With another process busy on the 2 cores, libgomp's spinning threads
  made a 2-thread decode step 2-4x slower than 1 thread, and with two torch processes running at once
  every small op can wait a scheduler slice at an OpenMP barrier (one test of tests/test_decoding.py took
  497 s instead of ~3 s during a parallel full test run); `OMP_WAIT_POLICY=PASSIVE` (set before starting
  Python) or `torch.set_num_threads(1)` recovers most of it. The table above ran with the load average shown.
- **Left on the table.** S's layers are narrow (576 wide): ~120 small GEMM calls and ~900 other small
  ops per step, each paying a thread fork/join, keep it far from its roofline; fusing them (e.g.
  `torch.compile`) is the next step. Beyond fp32, int8 dynamic quantisation of the linear layers (the
  `weights="int8"` option) is 1.8-2.4x faster again, but it is a different model: greedy outputs diverge
  from fp32 within a few tokens, so it is not the default."""


@dataclass
class Method:
    name: str
    seconds: float = 0.0
    tokens: int = 0
    per_prompt: list[float] = field(default_factory=list)

    def add(self, seconds: float, tokens: int) -> None:
        self.seconds += seconds
        self.tokens += tokens
        self.per_prompt.append(tokens / seconds)

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


@dataclass
class Hardware:
    peak_gflops: float
    bandwidth_gbs: float
    detail: str


def measure_hardware() -> Hardware:
    """Best fp32 matmul GFLOP/s (torch.mm and oneDNN) and read bandwidth, with current threads."""
    with torch.inference_mode():
        a = torch.randn(2048, 2048)
        b = torch.randn(2048, 2048)
        mm = _best(lambda: a @ b, 6)
        mm_gflops = 2 * 2048**3 / mm / 1e9
        x = torch.randn(1024, 4096)
        w = torch.ops.mkldnn._reorder_linear_weight(torch.randn(4096, 4096), None)
        dnn = _best(lambda: torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], ""), 6)
        dnn_gflops = 2 * 1024 * 4096 * 4096 / dnn / 1e9
        big = torch.ones(128 * 1024 * 1024)  # 512 MiB, far beyond the caches
        read = statistics.median(_times(lambda: big.sum(), 9))
        bandwidth = big.numel() * 4 / read / 1e9
    detail = (
        f"torch.mm 2048^3: {mm_gflops:.0f} GFLOP/s; oneDNN linear 1024x4096x4096: {dnn_gflops:.0f} GFLOP/s; "
        f"read bandwidth (median of 9 sums over 512 MiB): {bandwidth:.1f} GB/s"
    )
    return Hardware(max(mm_gflops, dnn_gflops), bandwidth, detail)


def _best(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def linear_params(loaded: LoadedModel) -> int:
    return sum(m.weight.numel() for m in loaded.model.modules() if isinstance(m, torch.nn.Linear))


def roofline_seconds(loaded: LoadedModel, hw: Hardware, prompt_len: int, new_tokens: int, batch: int) -> float:
    """Lower bound on the time of one prompt's prefill + ``new_tokens`` tokens for ``batch`` rows."""
    config = loaded.model.config
    p_lin = linear_params(loaded)
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_dim = config.num_key_value_heads * head_dim
    peak = hw.peak_gflops * 1e9
    bandwidth = hw.bandwidth_gbs * 1e9
    total = 2 * p_lin * prompt_len / peak
    for step in range(1, new_tokens):  # the first token comes from the prefill
        span = prompt_len + step
        flops = 2 * p_lin * batch + 4 * layers * heads * head_dim * span * batch
        traffic = 4 * p_lin + 4 * 2 * layers * kv_dim * span * batch
        total += max(flops / peak, traffic / bandwidth)
    return total


def run_rung(name: str, prompts_count: int, new_tokens: int, log: Callable[[str], None]) -> dict[str, object]:
    loaded = load_model(ModelRegistry.default()[name])
    tokenizer, model = loaded.tokenizer, loaded.model
    start = time.perf_counter()
    _packed_model(model)
    pack_seconds = time.perf_counter() - start
    start = time.perf_counter()
    _packed_model(model, "int8")
    pack_int8_seconds = time.perf_counter() - start
    prompts = [
        str(tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True))
        for q in QUESTIONS[:prompts_count]
    ]
    params = SamplingParams(max_new_tokens=new_tokens, temperature=0.7, top_p=0.95, seed=0)
    gen_kwargs = {
        "do_sample": True,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": 0,
        "max_new_tokens": new_tokens,
        "min_new_tokens": new_tokens,
        "pad_token_id": tokenizer.pad_token_id,
    }

    def session(prompt: str, n: int, backend: str = "auto", weights: str = "fp32") -> int:
        s = DecodeSession(loaded, [prompt], n, params, backend=backend, weights=weights, ignore_eos=True)  # type: ignore[arg-type]
        s.advance()
        assert all(len(r.token_ids) == new_tokens for r in s.rows)
        return sum(len(r.token_ids) for r in s.rows)

    def generate(prompt: str, n: int) -> int:
        encoded = tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**encoded, num_return_sequences=n, **gen_kwargs)  # type: ignore[operator]
        generated = out.shape[1] - encoded["input_ids"].shape[1]
        assert generated == new_tokens
        return int(out.shape[0] * generated)

    def timed(method: Method, fn: Callable[[], int]) -> None:
        begin = time.perf_counter()
        tokens = fn()
        method.add(time.perf_counter() - begin, tokens)

    # warm-up (first calls allocate, page weights in)
    session(prompts[0], 2)
    generate(prompts[0], 1)
    methods = {
        "batched": Method("session, 8 rows batched (fast runner)"),
        "batched_hf": Method("session, 8 rows batched (hf runner)"),
        "sequential": Method("generate x8 sequential (batch 1)"),
        "sequential_session": Method("session x8 sequential (fast runner, batch 1)"),
        "generate8": Method("generate(num_return_sequences=8)"),
        "batched_int8": Method("option: session, 8 rows batched, int8 dynamic weights (changes numerics)"),
    }
    prompt_lens = []
    for i, prompt in enumerate(prompts):
        prompt_lens.append(len(tokenizer(prompt, add_special_tokens=False)["input_ids"]))
        timed(methods["batched"], lambda p=prompt: session(p, WIDTH))
        timed(methods["batched_hf"], lambda p=prompt: session(p, WIDTH, "hf"))
        timed(methods["generate8"], lambda p=prompt: generate(p, WIDTH))
        timed(methods["sequential"], lambda p=prompt: sum(generate(p, 1) for _ in range(WIDTH)))
        timed(methods["sequential_session"], lambda p=prompt: sum(session(p, 1) for _ in range(WIDTH)))
        timed(methods["batched_int8"], lambda p=prompt: session(p, WIDTH, weights="int8"))
        log(
            f"{name} prompt {i + 1}/{len(prompts)} ({prompt_lens[-1]} tokens): "
            + ", ".join(f"{k} {m.per_prompt[-1]:.1f} tok/s" for k, m in methods.items())
        )
    components = time_components(loaded, prompts[0], params)
    agreement = int8_agreement(loaded, prompts)
    return {
        "agreement": agreement,
        "pack_int8_seconds": pack_int8_seconds,
        "name": name,
        "spec": loaded.spec,
        "loaded": loaded,
        "methods": methods,
        "prompt_lens": prompt_lens,
        "pack_seconds": pack_seconds,
        "components": components,
    }


def int8_agreement(loaded: LoadedModel, prompts: list[str], tokens: int = 32) -> tuple[int, float]:
    """Greedy outputs of int8 vs fp32 weights: how many are identical, and the mean first divergence."""
    params = SamplingParams(max_new_tokens=tokens, temperature=0)
    rows = {}
    for weights in ("fp32", "int8"):
        s = DecodeSession(loaded, prompts, 1, params, weights=weights)  # type: ignore[arg-type]
        s.advance()
        rows[weights] = [r.token_ids for r in s.rows]
    identical = 0
    firsts = []
    for a, b in zip(rows["fp32"], rows["int8"], strict=True):
        identical += a == b
        firsts.append(next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))))
    return identical, statistics.mean(firsts)


def time_components(loaded: LoadedModel, prompt: str, params: SamplingParams) -> dict[str, float]:
    """Milliseconds per decode step at batch 8: the forward pass, and sampling two ways."""
    vocab = loaded.model.config.vocab_size
    s = DecodeSession(loaded, [prompt], WIDTH, params, ignore_eos=True)
    s.advance(4)
    runner = s._runner
    tokens = torch.tensor([r.token_ids[-1] for r in s.rows])
    with torch.inference_mode():
        forward = statistics.median(_times(lambda: runner.decode(tokens), 7))
        logits = torch.randn(WIDTH, vocab) * 4
        gen = torch.Generator().manual_seed(0)
        topk = statistics.median(_times(lambda: sample_tokens(logits, params, gen), 20))
        full = statistics.median(_times(lambda: _full_sort_top_p(logits, params, gen), 20))
    return {"forward": forward * 1e3, "sample_topk": topk * 1e3, "sample_full_sort": full * 1e3}


def _times(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        out.append(time.perf_counter() - begin)
    return out


def _full_sort_top_p(logits: torch.Tensor, params: SamplingParams, gen: torch.Generator) -> torch.Tensor:
    """The usual top-p (transformers' TopPLogitsWarper): sort the whole vocabulary every step."""
    scaled = logits / params.temperature
    values, ids = scaled.sort(dim=-1, descending=True)
    probs = values.softmax(dim=-1)
    keep = (probs.cumsum(-1) - probs) < params.top_p
    probs = probs.masked_fill(~keep, 0.0)
    return ids.gather(1, torch.multinomial(probs, 1, generator=gen))


def render(results: list[dict[str, object]], hw: Hardware, args: argparse.Namespace, load: str) -> str:
    lines = [
        f"Command: `python benchmarks/tts_throughput.py --prompts {args.prompts} --new-tokens {args.new_tokens}` "
        f"(written by that script).",
        "",
        f"Environment: Python {platform.python_version()}, torch {torch.__version__}, transformers "
        f"{version('transformers')}, {os.cpu_count()} CPUs ({platform.machine()}), torch threads "
        f"{torch.get_num_threads()}, fp32; load average {load}.",
        f"Hardware measured in this run: {hw.detail}.",
        "",
        f"Workload per rung: {args.prompts} chat prompts, each decoded into {WIDTH} rows x {args.new_tokens} new "
        "tokens (temperature 0.7, top-p 0.95); early end-of-sequence forbidden in every method (`min_new_tokens` "
        "for `generate`, `ignore_eos=True` for the session), so every method produces exactly the same number of "
        "tokens. Tokens/s = generated tokens / wall time, prefill included; the fast runner's one-time weight "
        "packing is excluded (listed below). Roofline: see the script's docstring "
        "(max of compute at the measured peak and weight + KV traffic at the measured bandwidth, per step).",
        "",
        "| rung | method | tokens | seconds | tokens/s | vs sequential generate | share of roofline |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    goals = []
    for result in results:
        name = str(result["name"])
        methods: dict[str, Method] = result["methods"]  # type: ignore[assignment]
        loaded: LoadedModel = result["loaded"]  # type: ignore[assignment]
        lens: list[int] = result["prompt_lens"]  # type: ignore[assignment]
        base = methods["sequential"].rate
        roof_time = sum(roofline_seconds(loaded, hw, n, args.new_tokens, WIDTH) for n in lens)
        roof_rate = WIDTH * args.new_tokens * len(lens) / roof_time
        for key, method in methods.items():
            share = "n/a (int8 moves 1/4 of the bytes)" if key == "batched_int8" else f"{method.rate / roof_rate:.0%}"
            lines.append(
                f"| {name} | {method.name} | {method.tokens} | {method.seconds:.1f} | {method.rate:.1f} | "
                f"{method.rate / base:.2f}x | {share} |"
            )
        lines.append(
            f"| {name} | roofline, 8 rows batched | | {roof_time:.1f} | {roof_rate:.1f} | "
            f"{roof_rate / base:.2f}x | 100% |"
        )
        comp: dict[str, float] = result["components"]  # type: ignore[assignment]
        p_lin = linear_params(loaded)
        compute_ms = 2 * p_lin * WIDTH / (hw.peak_gflops * 1e9) * 1e3
        traffic_ms = 4 * p_lin / (hw.bandwidth_gbs * 1e9) * 1e3
        step_roof = max(compute_ms, traffic_ms) / 1e3
        forward_s = comp["forward"] / 1e3
        notes.append(
            f"- {name}: {p_lin / 1e6:.0f}M weights in linear layers; roofline decode step at batch 8 "
            f"{step_roof * 1e3:.0f} ms (compute {compute_ms:.0f} ms, weight traffic {traffic_ms:.0f} ms; "
            f"{WIDTH / step_roof:.0f} tok/s without prefill or attention); measured fast forward at batch 8 "
            f"{comp['forward']:.0f} ms/step (weights streamed at {4 * p_lin / forward_s / 1e9:.0f} GB/s, "
            f"{2 * p_lin * WIDTH / forward_s / 1e9:.0f} GFLOP/s); sampling 8 rows with partial top-p "
            f"{comp['sample_topk']:.2f} ms vs full-sort top-p {comp['sample_full_sort']:.2f} ms; one-time weight "
            f"packing {float(result['pack_seconds']):.1f} s (prompts of {min(lens)}-{max(lens)} tokens)."
        )
        identical, first = result["agreement"]  # type: ignore[misc]
        notes.append(
            f"  int8 option: packing {float(result['pack_int8_seconds']):.1f} s; greedy 32-token outputs identical "
            f"to fp32 for {identical} of {len(lens)} prompts, first differing token at position {first:.1f} on "
            "average: faster, but not the same model."
        )
        speedup = methods["batched"].rate / base
        goals.append(
            f"- {name}: batched session {speedup:.1f}x the sequential generate calls: "
            f"{'met' if speedup >= 4 else 'NOT met'} (goal >= 4x)."
        )
        if name == "M":
            share = methods["batched"].rate / roof_rate
            goals.append(
                f"- M: batched session at {methods['batched'].rate:.0f} tok/s = {share:.0%} of this run's roofline "
                f"({roof_rate:.0f} tok/s): {'met' if share >= 0.5 else 'NOT met'} (goal >= 50%); against the "
                f"~45 tok/s batch-8 roofline estimated in docs/offline-stack.md it is "
                f"{methods['batched'].rate / 45:.1f}x."
            )
            if share < 0.5:
                goals.append(
                    f"  Why: at batch 8 the compute and traffic bounds nearly coincide ({compute_ms:.0f} vs "
                    f"{traffic_ms:.0f} ms per step), and the max() roofline assumes both run at peak at once. "
                    "oneDNN's fp32 kernels for 8-row GEMMs reach about half the peak FLOP rate (each weight is "
                    "used for only 8 FMAs), so weights stream well below the measured bandwidth (figures above). "
                    "Closing that gap needs fewer bytes or FLOPs per token (int8/bf16 weights: not the same model) "
                    "or wider batches."
                )
    lines += ["", "Per rung, measured in the same run:", "", *notes, "", "Goals:", "", *goals, "", FINDINGS]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rungs", nargs="+", default=["S", "M"])
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write it")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not 1 <= args.prompts <= len(QUESTIONS):
        raise SystemExit(f"--prompts must lie in 1..{len(QUESTIONS)}")
    load_before = os.getloadavg()[0]
    hw = measure_hardware()
    print(hw.detail, flush=True)
    results = [run_rung(name, args.prompts, args.new_tokens, lambda s: print(s, flush=True)) for name in args.rungs]
    hw_after = measure_hardware()
    hw = Hardware(
        max(hw.peak_gflops, hw_after.peak_gflops),
        max(hw.bandwidth_gbs, hw_after.bandwidth_gbs),
        f"{hw.detail} (before); {hw_after.detail} (after); the roofline uses the better of each",
    )
    load = f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    section = render(results, hw, args, load)
    print(section)
    if not args.no_write:
        write_section(args.results, SECTION_TITLE, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
