"""Test-time scaling: generator backends and the search that executes a configuration."""

from uniscale_integrations.tts.backends import Generator, HFGenerator, SamplingParams
from uniscale_integrations.tts.search import Execution, Executor, Path

__all__ = ["Execution", "Executor", "Generator", "HFGenerator", "Path", "SamplingParams"]
