"""The local transformers backend: :class:`HFGenerator`, whose sessions are
:class:`~uniscale_integrations.backends.hf.session.DecodeSession` s (that module imports torch)."""

from uniscale_integrations.backends.hf.generator import HFGenerator

__all__ = ["HFGenerator"]
