"""sltrain: the trainer. `sltrain.evaluate` scores a checkpoint (the `sltrain evaluate` command)."""

from .evaluation import evaluate

__all__ = ["evaluate"]
