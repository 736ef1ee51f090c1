"""Re-encode the shipped outcome tables' questions with the engine's default query encoder.

Run from the repository root after the default encoder changes::

    python benchmarks/reencode_tables.py

A table holds each question's context vector as the engine's encoder gave it at collection, so a replay
sees what a live engine would see. When the default representation changes, the outcomes stay valid
(they do not depend on the context) and only the contexts are recomputed; the table records the
representation it was encoded with (``settings["representation"]``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from uniscale_integrations.features.encoder import QueryEncoder
from uniscale_integrations.outcomes import SHIPPED_TABLES, default_table_path, load_table, save_table


def main() -> None:
    encoder = QueryEncoder()
    for version in SHIPPED_TABLES:
        path = default_table_path(version)
        table = load_table(path)
        contexts = encoder.encode([q.text for q in table.questions])
        contexts /= np.linalg.norm(contexts, axis=1, keepdims=True)
        encoded = table.with_contexts(contexts)
        settings = {**table.meta.settings, "representation": encoder.representation}
        meta = dataclasses.replace(table.meta, settings=settings)
        save_table(path, meta, encoded.questions, encoded.rows())
        size = f"{table.n_questions} questions, {contexts.shape[1]} numbers each"
        print(f"{path}: re-encoded as {encoder.representation} ({size})")


if __name__ == "__main__":
    main()
