"""A static distillation of the query encoder's MiniLM: one vector per token, so a query embeds by a
table lookup and a mean (well under a millisecond) instead of a transformer pass (5-8 ms on 2 CPU cores).

The recipe is Model2Vec's (Tulkens and van Dongen, 2024): every vocabulary token goes through MiniLM
alone, between the special tokens in reverse order (``[SEP] token [CLS]``, which their benchmarks
preferred); the three output vectors are averaged; the table is centred on the mean of the real tokens
(their PCA centres it; the encoder's projection then reduces it) and each row is weighted by SIF,
``a / (a + p)`` with ``p`` from Zipf's law over the token ids and ``a = 1e-4``. A query's embedding is the
mean of its tokens' rows, scaled to unit norm.

Written here rather than called from ``model2vec``: its distillation extra pulls transformers back to
5.3 (through ``skeletoken``) and then fails to import beside the transformers this package runs on; the
recipe is a few lines. The table (30,522 x 384 floats) is distilled once per machine, about 10 s on 2
cores, and kept in the cache (:func:`~uniscale_integrations.cache.cache_dir`); a damaged cache file is
distilled again, never used.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np

from uniscale_integrations.cache import cache_dir
from uniscale_integrations.features.joint import FloatArray
from uniscale_integrations.features.minilm import EMBEDDING_PACKAGE, MiniLMEmbedder, embedding_model_path

logger = logging.getLogger(__name__)

RECIPE = "r1"
"""Names the distillation recipe in the cache file's name: change it when the recipe changes."""
SIF_COEFFICIENT = 1e-4
_UNUSED = re.compile(r"\[unused\d+\]")
_BATCH = 1024


def distill_token_table(embedder: MiniLMEmbedder) -> FloatArray:
    """The static table of ``embedder``'s model: one SIF-weighted, centred row per token id (float32)."""
    import torch
    from tqdm.auto import tqdm

    model = embedder.sentence_transformer[0].auto_model  # type: ignore[index]
    tokenizer = embedder.sentence_transformer.tokenizer  # type: ignore[attr-defined]
    vocab = tokenizer.get_vocab()
    ids = torch.arange(len(vocab))
    sequences = torch.stack(
        [torch.full_like(ids, tokenizer.sep_token_id), ids, torch.full_like(ids, tokenizer.cls_token_id)], dim=1
    ).to(model.device)
    rows = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(ids), _BATCH), desc="distilling MiniLM's token table", leave=False):
            batch = sequences[start : start + _BATCH]
            hidden = model(input_ids=batch, attention_mask=torch.ones_like(batch)).last_hidden_state
            rows.append(hidden.mean(dim=1).float().cpu().numpy())
    table = np.concatenate(rows).astype(np.float64)
    used = np.ones(len(table), dtype=bool)
    used[[index for token, index in vocab.items() if _UNUSED.fullmatch(token)]] = False
    table -= table[used].mean(axis=0)
    inverse_rank = 1.0 / np.arange(2, len(table) + 2)
    zipf = inverse_rank / inverse_rank.sum()
    table *= (SIF_COEFFICIENT / (SIF_COEFFICIENT + zipf))[:, None]
    table[~used] = 0.0
    return table.astype(np.float32)


class StaticMiniLMEmbedder:
    """all-MiniLM-L6-v2 distilled to a static token table (see the module's docstring); loaded lazily.

    ``cache``: the folder of the table's file (default: ``static/`` in the package's cache); ``None`` keeps
    it in memory only. ``device``: where MiniLM runs for the one distillation.
    """

    name = "minilm-l6-static"
    dim = 384

    def __init__(self, cache: Path | Literal["default"] | None = "default", device: str | None = None):
        self._cache = (cache_dir() / "static") if cache == "default" else cache
        self._device = device
        self._loaded: tuple[FloatArray, object] | None = None
        self._lock = threading.Lock()

    @property
    def cache_file(self) -> Path | None:
        """The table's file: named by the model package's version and the recipe."""
        if self._cache is None:
            return None
        embedding_model_path()  # without the model package: a MissingModelError naming the fix
        return self._cache / f"{EMBEDDING_PACKAGE}-{metadata.version(EMBEDDING_PACKAGE)}-{RECIPE}.npy"

    def _load(self) -> tuple[FloatArray, object]:
        with self._lock:
            if self._loaded is None:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(Path(embedding_model_path()) / "tokenizer.json"))
                tokenizer.no_truncation()
                tokenizer.no_padding()
                table = self._cached(tokenizer.get_vocab_size())
                if table is None:
                    table = distill_token_table(MiniLMEmbedder(self._device))
                    self._keep(table)
                self._loaded = table, tokenizer
            return self._loaded

    def _cached(self, vocab_size: int) -> FloatArray | None:
        path = self.cache_file
        if path is None or not path.exists():
            return None
        try:
            table = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            logger.warning("static token table %s unreadable (%s): distilling it again", path, error)
            return None
        if table.shape != (vocab_size, self.dim) or table.dtype != np.float32 or not np.isfinite(table).all():
            shape = f"{table.shape} {table.dtype}"
            logger.warning("static token table %s is damaged (%s): distilling it again", path, shape)
            return None
        return table

    def _keep(self, table: FloatArray) -> None:
        path = self.cache_file
        if path is None:
            return
        temporary = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
                temporary = Path(handle.name)
                np.save(handle, table, allow_pickle=False)
            os.replace(temporary, path)  # whole or not at all, for readers in other processes
            logger.info("static token table kept in %s", path)
        except OSError as error:
            logger.warning("static token table not kept in %s (%s): it stays in memory", path, error)
            if temporary is not None:
                temporary.unlink(missing_ok=True)

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """Unit-norm embeddings, ``(len(texts), 384)``; a text with no tokens embeds as zeros."""
        table, tokenizer = self._load()
        out = np.zeros((len(texts), self.dim))
        for row, encoding in enumerate(tokenizer.encode_batch(list(texts), add_special_tokens=False)):  # type: ignore[attr-defined]
            if encoding.ids:
                mean = table[encoding.ids].mean(axis=0, dtype=np.float64)
                norm = np.linalg.norm(mean)
                out[row] = mean / norm if norm > 0 else 0.0
        return out
