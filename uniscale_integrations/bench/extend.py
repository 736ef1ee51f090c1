"""Raise a collection's token cap after the fact: continue the rows that reached it.

A row of :mod:`~uniscale_integrations.bench.samples` that hit the cap (``"length"``) is
continued from its stored text, to a higher cap, with its own random stream: a row's draw at
position ``t`` depends only on its stream and ``t`` (:mod:`~uniscale_integrations.backends.hf.session`),
so the continuation samples what a session with the higher cap would have sampled next. Two
small differences remain, and both are counted: the prefix is the stored text tokenised again
(``retokenised``: a rare re-merge changes its length, which shifts the later draws by a
position), and its cache comes from one prefill instead of token-by-token decoding (float
summation order, which can flip a near-tie).

Rows that the loop stop would end before the old cap are left alone: a replay with the loop
stop cuts them there anyway. The continuations are appended, one JSON line per row, to
``extended-<cap>.jsonl`` in the work directory (resumable); :func:`with_extensions` puts them in
place of the capped rows.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from uniscale_integrations.bench.data import question_seed
from uniscale_integrations.bench.derived_table import loop_stop
from uniscale_integrations.bench.samples import SamplePlan, read_records

if TYPE_CHECKING:
    from uniscale_integrations.backends.base import SamplingParams
    from uniscale_integrations.backends.hf.generator import HFGenerator

logger = logging.getLogger(__name__)

Record = Mapping[str, Any]
Key = tuple[str, str, int, int]
"""(question, model, variant, sample) of one row."""


def extension_file(work: Path, cap: int) -> Path:
    return work / f"extended-{cap}.jsonl"


def read_extensions(work: Path, cap: int) -> dict[Key, dict[str, Any]]:
    """The continued rows of ``work`` at ``cap``, by row; a torn last line is skipped."""
    path = extension_file(work, cap)
    if not path.exists():
        return {}
    out: dict[Key, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s:%d: ignoring a torn line", path, number)
            continue
        out[(row["question"], row["model"], row["variant"], row["sample"])] = row
    return out


def with_extensions(records: Sequence[Record], extensions: Mapping[Key, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records with every continued row in place of its capped original."""
    fields = ("tokens", "finish", "logprob", "steps", "text")
    out = []
    for record in records:
        paths = []
        seconds = float(record["seconds"])
        for path in record["paths"]:
            extended = extensions.get((record["question"], record["model"], path["variant"], path["sample"]))
            if extended is None:
                paths.append(path)
                continue
            paths.append({**path, **{f: extended[f] for f in fields}, "extended": True})
            seconds += float(extended["seconds"])
        out.append({**record, "paths": paths, "seconds": round(seconds, 2)})
    return out


def capped_rows(records: Sequence[Record], tokenizers: Mapping[str, Any]) -> Iterator[tuple[Record, Mapping]]:
    """The (record, path) pairs that reached the cap without falling into a loop first."""
    for record in records:
        for path in record["paths"]:
            if path["finish"] != "length":
                continue
            ids = tokenizers[record["model"]](path["text"], add_special_tokens=False)["input_ids"]
            if loop_stop(ids[: path["tokens"]], tokenizers[record["model"]]) is None:
                yield record, path


def continue_rows(
    generator: HFGenerator,
    prompts: Sequence[str],
    paths: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    params: SamplingParams,
    step_delimiter: str | None = None,
) -> list[dict[str, Any]]:
    """Continue each stored ``path`` (its prompt, and the seed of the session that sampled it) up to
    ``params.max_new_tokens``, in one batch; the paths with their new ``tokens`` .. ``text``."""
    from uniscale_integrations.backends.hf.sampling import row_stream
    from uniscale_integrations.backends.hf.session import DecodeSession

    tokenizer = generator.tokenizer
    started = time.perf_counter()
    joined = [prompt + path["text"] for prompt, path in zip(prompts, paths, strict=True)]
    session = DecodeSession(
        generator.loaded, joined, 1, replace(params, step_delimiter=step_delimiter), mark_steps=True
    )
    retokenised = []
    for row, path, seed in zip(session.rows, paths, seeds, strict=True):
        row.token_ids = list(tokenizer(path["text"], add_special_tokens=False)["input_ids"])
        row.logprob_sum = float(path["logprob"])
        row.stream = row_stream(seed, path["variant"], path["sample"])
        row.greedy = path["sample"] == -1
        row.step_marks = [(int(t), float(lp)) for t, lp in path.get("steps", [])]
        row.step_start = row.step_marks[-1][0] if row.step_marks else 0
        retokenised.append(len(row.token_ids) != path["tokens"])
    session.advance()
    seconds = (time.perf_counter() - started) / len(paths)
    return [
        {
            **path,
            "tokens": len(row.token_ids),
            "finish": row.finish_reason,
            "logprob": round(row.logprob_sum, 4),
            "steps": [[t, round(lp, 4)] for t, lp in row.step_marks],
            "text": row.text(tokenizer).strip(),
            "retokenised": moved,
            "seconds": round(seconds, 2),
        }
        for row, path, moved in zip(session.rows, paths, retokenised, strict=True)
    ]


def extend_capped(plan: SamplePlan, work: Path, cap: int, *, batch: int = 16, progress: bool = True) -> Path:
    """Continue every capped row of ``work`` to ``cap`` new tokens; resumable. Returns the output file."""
    from tqdm.auto import tqdm

    from uniscale_integrations.backends.base import SamplingParams
    from uniscale_integrations.backends.hf.generator import HFGenerator
    from uniscale_integrations.executor.prompts import question_variants
    from uniscale_integrations.executor.styles import STYLES
    from uniscale_integrations.models import ModelRegistry, load_model, load_tokenizer

    if any(cap <= s.max_new_tokens for s in plan.sampling.values()):
        raise ValueError(f"cap {cap} must exceed the collection's ({plan.sampling})")
    reasoned = STYLES["reasoned"]
    registry = ModelRegistry.default()
    records = list(read_records(work))
    done = read_extensions(work, cap)
    todo: dict[str, list[tuple[Record, Mapping]]] = {m: [] for m in plan.models}
    tokenizers = {m: load_tokenizer(registry[m]) for m in plan.models}
    for record, path in capped_rows(records, tokenizers):
        if (record["question"], record["model"], path["variant"], path["sample"]) not in done:
            todo[record["model"]].append((record, path))
    out = extension_file(work, cap)
    bar = tqdm(total=sum(map(len, todo.values())), desc=f"extend to {cap}", unit="row", disable=not progress)
    for model, pending in todo.items():
        if not pending:
            continue
        generator = HFGenerator(load_model(registry[model]))
        sampling = plan.sampling[model]
        params = SamplingParams(
            max_new_tokens=cap,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            stop_at_answer=reasoned.stop_at_answer,
        )
        for start in range(0, len(pending), batch):
            group = pending[start : start + batch]
            prompts = [
                generator.render(
                    question_variants([{"role": "user", "content": r["text"]}], plan.variants, reasoned.instruction)[
                        p["variant"]
                    ]
                )
                for r, p in group
            ]
            continued = continue_rows(
                generator,
                prompts,
                [p for _, p in group],
                [question_seed(r["question"]) for r, _ in group],
                params,
                plan.step_delimiter,
            )
            with out.open("a", encoding="utf-8") as lines:
                for (record, _), path in zip(group, continued, strict=True):
                    kept = {k: path[k] for k in ("variant", "sample", "tokens", "finish", "logprob", "steps", "text")}
                    entry = {"question": record["question"], "model": model, **kept}
                    entry.update(retokenised=path["retokenised"], seconds=path["seconds"])
                    lines.write(json.dumps(entry) + "\n")
            bar.update(len(group))
    return out
