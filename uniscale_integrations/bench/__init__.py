"""The benchmark (``uniscale bench``; see docs/bench.md).

- ``data``: reasoning-gym question streams in difficulty tiers, with checking and tuning/test splits
- ``collect``: every config on every question with the real models, resumable, into a work file
- ``outcomes``: the outcome table on disk (gzip JSON lines) and its validating loader
- ``replay``: the package's policies run online over shuffled streams of a table
- ``metrics``: regret, the non-decreasing convex hull, AIQ, APGR, savings at iso-accuracy
- ``evaluate``: tuning, replays in both modes, the frontier sweep, ablations and the goals P1-P4
- ``report`` / ``plots``: JSON, CSV, Markdown and PNG output
- ``live``: the real closed loop on a short stream, compared with the replay
- ``synthetic``: a synthetic table and a fake engine, for tests and timing
- ``command``: the ``bench`` subcommand
"""
