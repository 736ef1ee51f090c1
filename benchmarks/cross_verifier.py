"""The cross-model verifier against self-confidence and plain majority, on table v2's samples.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/cross_verifier.py --split tune     # resumable
    python benchmarks/cross_verifier.py --split tune --report-only

S's candidates (the greedy path and 8 samples per variant, raised to the 768-token cap) are
scored once by M's log-likelihood (:class:`~uniscale_integrations.executor.verifiers.LMLikelihoodVerifier`,
what ``UniScale.from_defaults(verifier="cross-model")`` does for S); each S configuration with
CP > 1 then pools its rows three ways: weighted by the path's own confidence (the default),
by plain majority, and weighted by M's score. M's work is priced as the verifier prices it (one
padded batch of the configuration's rows) and added to S's generation.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from statistics import mean

from _results import write_section
from _table_v2 import WORKS
from tqdm.auto import tqdm

from uniscale_integrations.bench.derive import derived_usage, rows_of, vote
from uniscale_integrations.bench.sample_set import load_sample_set
from uniscale_integrations.executor.verifiers import LMLikelihoodVerifier
from uniscale_integrations.models import ModelRegistry, load_model
from uniscale_integrations.reward.cost import CostModel, Usage

HERE = Path(__file__).resolve().parent
SCORES = HERE / "results" / "cross_verifier" / "scores.jsonl"
CONFIGS = [(qp, cp) for qp in (1, 2) for cp in (2, 4, 8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("tune", "test", "all"), default="tune")
    parser.add_argument("--cap", type=int, default=768)
    parser.add_argument("--work", type=Path, action="append", help="a work directory (repeatable; default: table v2's)")
    parser.add_argument("--report-only", action="store_true", help="report on the scores collected so far")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    samples = load_sample_set(args.work or WORKS, cap=args.cap, split=args.split)
    records = [r for r in samples.records if r["model"] == "S"]
    judge = LMLikelihoodVerifier(load_model(ModelRegistry.default()["M"], device="cpu"), CostModel())
    scores = _collect(records, judge, collect=not args.report_only)
    scored = [r for r in records if r["question"] in scores]
    m_records = {r["question"]: r for r in samples.records if r["model"] == "M" and r["question"] in scores}
    shape_s = ModelRegistry.default()["S"]
    cost = CostModel()
    lines = [
        f"Command: `python benchmarks/cross_verifier.py --split {args.split}`. {len(scored)} questions of the "
        f"{args.split} split; S's rows scored by M's mean token log-likelihood (the `cross-model` verifier), "
        "rows raised to the 768-token cap, loop stop on, candidate 0 greedy. eFLOPs: S's generation, plus M's "
        "scoring of the configuration's rows in one padded batch.",
        "",
        "| config | self-confidence | majority | M judges | eFLOPs S | eFLOPs S + M judge |",
        "|---|---|---|---|---|---|",
    ]
    for qp, cp in CONFIGS:
        own, majority, judged, generation, judging = [], [], [], [], []
        for record in scored:
            rows = rows_of(record, qp, cp, greedy_first=True)
            table = scores[record["question"]]
            own.append(vote(rows).correct)
            majority.append(vote(rows, "majority").correct)
            judged.append(vote(rows, weight=lambda p, t=table: t[_key(p)]["score"]).correct)
            usage = derived_usage(record["prompt_tokens"], [(p["variant"], p["tokens"]) for p in rows])
            generation.append(cost.eflops(shape_s, usage))
            lengths = [table[_key(p)]["tokens"] for p in rows]
            prompt = table["prompt"]
            batch = Usage(
                prompt_tokens=sum(prompt + n for n in lengths),
                tokens_processed=len(lengths) * (prompt + max(lengths)),
                forward_passes=math.ceil(len(lengths) / judge.batch_size),
            )
            judging.append(cost.eflops(judge.shape, batch))
        lines.append(
            f"| S/qp{qp}/cp{cp} | {mean(own):.3f} | {mean(majority):.3f} | {mean(judged):.3f} | "
            f"{mean(generation):.2e} | {mean(g + j for g, j in zip(generation, judging, strict=True)):.2e} |"
        )
    shape_m = ModelRegistry.default()["M"]
    m_greedy = [vote(rows_of(r, 1, 1)).correct for r in m_records.values()]
    m_cost = [
        cost.eflops(shape_m, derived_usage(r["prompt_tokens"], [(p["variant"], p["tokens"]) for p in rows_of(r, 1, 1)]))
        for r in m_records.values()
    ]
    lines.append(f"| M/qp1/cp1 (for scale) | {mean(m_greedy):.3f} | | | {mean(m_cost):.2e} | |")
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(HERE / "RESULTS.md", f"Cross-model verifier ({args.split} split)", text)


def _key(path: dict) -> str:
    return f"{path['variant']}/{path['sample']}"


def _collect(records: list[dict], judge: LMLikelihoodVerifier, *, collect: bool) -> dict[str, dict]:
    """M's score of every S row, by question (appended to :data:`SCORES` as it goes)."""
    SCORES.parent.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict] = {}
    if SCORES.exists():
        for line in SCORES.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            done[entry["question"]] = entry["rows"]
    todo = [r for r in records if r["question"] not in done] if collect else []
    tokenizer = judge.loaded.tokenizer
    for record in tqdm(todo, desc="M judges S", unit="question"):
        texts = [p["text"] for p in record["paths"]]
        verdicts = judge.score(record["text"], texts)
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": record["text"]}], tokenize=False, add_generation_prompt=True
        )
        rows: dict = {"prompt": len(tokenizer(str(prompt), add_special_tokens=False)["input_ids"])}
        for path, score in zip(record["paths"], verdicts.scores, strict=True):
            rows[_key(path)] = {
                "score": score,
                "tokens": len(tokenizer(path["text"], add_special_tokens=False)["input_ids"]),
            }
        with SCORES.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"question": record["question"], "rows": rows}) + "\n")
        done[record["question"]] = rows
    return done


if __name__ == "__main__":
    main()
