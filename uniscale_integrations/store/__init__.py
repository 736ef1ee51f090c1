"""The policy store: every decision, the feedback log (the truth the policy replays) and policy snapshots.

One contract (:mod:`~uniscale_integrations.store.base`) in two dialects: SQLite
(:mod:`~uniscale_integrations.store.sqlite`) and PostgreSQL (:mod:`~uniscale_integrations.store.postgres`);
:func:`open_store` picks one from what a user names.
"""

from __future__ import annotations

import os

from uniscale_integrations.store.base import PolicyStore
from uniscale_integrations.store.sqlite import MEMORY, SQLiteStore, Synchronous

__all__ = ["PolicyStore", "SQLiteStore", "is_postgres_url", "open_store"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL database rather than an SQLite file."""
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def open_store(
    target: str | os.PathLike[str] | PolicyStore | None,
    *,
    schema: str | None = None,
    synchronous: Synchronous = "full",
) -> PolicyStore:
    """The store ``target`` names: a store as given, ``None`` (in memory), a ``postgresql://`` URL
    (:class:`~uniscale_integrations.store.postgres.PostgresStore` in ``schema``, needs the ``postgres``
    extra) or an SQLite file (committed with ``synchronous``)."""
    if isinstance(target, PolicyStore):
        return target
    if target is None:
        return SQLiteStore(MEMORY)
    if is_postgres_url(target):
        from uniscale_integrations.store.postgres import PostgresStore

        return PostgresStore(str(target)) if schema is None else PostgresStore(str(target), schema=schema)
    return SQLiteStore(target, synchronous=synchronous)
