"""Backends: what decodes the paths. A :class:`~uniscale_integrations.backends.base.Generator` opens
decode sessions of many rows; ``hf`` runs a local transformers model, ``openai`` a model behind an
OpenAI-compatible server."""

from uniscale_integrations.backends.base import Generator, Row, SamplingParams, Session
from uniscale_integrations.backends.hf.generator import HFGenerator

__all__ = ["Generator", "HFGenerator", "Row", "SamplingParams", "Session"]
