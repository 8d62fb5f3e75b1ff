"""Generation backends (see :mod:`gazal.eval.backends.base` for the interface)."""

from gazal.eval.backends.base import Backend, Conversation, Generation, GenerationParams

__all__ = ["Backend", "Conversation", "Generation", "GenerationParams"]
