"""Where the package keeps what it derives once per machine (converted models, distilled tables)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$UNISCALE_CACHE_DIR`` or ``~/.cache/uniscale_integrations``."""
    configured = os.environ.get("UNISCALE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "uniscale_integrations"
