"""Model backends: one small class per provider kind. `llama_cpp` is imported lazily by callers
because loading llama.cpp costs start-up time that pure-CLI commands do not need."""

from .fake import FakeCompletionBackend, FakeGeneratingBackend, FakeScoringBackend
from .litellm_backend import Completion, LitellmBackend, LitellmOptions

__all__ = ["Completion", "FakeCompletionBackend", "FakeGeneratingBackend", "FakeScoringBackend", "LitellmBackend", "LitellmOptions"]
