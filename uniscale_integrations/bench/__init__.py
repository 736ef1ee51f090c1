"""Benchmark data and tooling (reasoning-gym question streams)."""
