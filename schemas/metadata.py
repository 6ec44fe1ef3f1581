"""v2 shard metadata: `{video_id: K}`; K may be an int or a decimal string in the wild."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, RootModel, ValidationError

from .errors import format_errors


def _shard_index(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("shard index must be an int or decimal string, not a boolean")
    if isinstance(v, int):
        if v < 0:
            raise ValueError("shard index must be >= 0")
        return v
    if isinstance(v, str) and v.strip().isdigit():
        return int(v.strip())
    raise ValueError(f"shard index must be an int or decimal string, got {v!r}")


ShardIndex = Annotated[int, BeforeValidator(_shard_index)]


class ShardMetadata(RootModel[dict[str, ShardIndex]]):
    """Readers accept int or string indices; writers write ints."""


def parse_metadata(raw: Any) -> tuple[dict[str, int], list[str]]:
    """Returns ({video: shard}, located errors)."""
    try:
        return ShardMetadata.model_validate(raw).root, []
    except ValidationError as exc:
        return {}, format_errors(exc)
