"""Sign_LLaVA annotation files, v1 (`{video: {clip: {...}}}`) and v2 (with `clip_order`).

Models validate; tools that rewrite annotations keep the parsed dicts verbatim so
extra clip fields (`keywords`, ...) and their order survive untouched.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, RootModel, ValidationError, field_validator, model_validator

from .errors import format_errors

PLACEHOLDERS = {"", "<none>"}


def is_placeholder(text: Any) -> bool:
    """Empty, `<none>`, None or NaN: text that carries no translation."""
    if text is None:
        return True
    if isinstance(text, float):
        return math.isnan(text)
    if isinstance(text, str):
        return text.strip() in PLACEHOLDERS or text.strip().lower() == "nan"
    return False


def _nan_or_str(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return v
    if v is None or isinstance(v, str):
        return v
    raise ValueError("must be a string (or NaN/null for a missing text)")


class Clip(BaseModel):
    """One clip's text fields. Unknown fields are kept as they are."""

    model_config = ConfigDict(extra="allow")

    translation: Any
    paraphrases: list[Any] = []

    @field_validator("translation")
    @classmethod
    def _translation(cls, v: Any) -> Any:
        return _nan_or_str(v)

    @field_validator("paraphrases")
    @classmethod
    def _paraphrases(cls, v: list[Any]) -> list[Any]:
        return [_nan_or_str(p) for p in v]


class AnnotationV1(RootModel[dict[str, dict[str, Clip]]]):
    """`{video_id: {clip_id: Clip}}` with decimal-integer clip ids."""


class VideoV2(BaseModel):
    """A v2 video: `clip_order` plus one entry per clip name."""

    model_config = ConfigDict(extra="forbid")

    clip_order: list[str]
    clips: dict[str, Clip]

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if "clip_order" not in data:
            raise ValueError("a v2 video needs a 'clip_order' list")
        return {"clip_order": data["clip_order"],
                "clips": {k: v for k, v in data.items() if k != "clip_order"}}


class AnnotationV2(RootModel[dict[str, VideoV2]]):
    """`{video_id: {"clip_order": [...], clip: Clip}}`."""


def annotation_version(raw: Any) -> int:
    """2 if any video carries `clip_order`, else 1 (an empty file counts as v1)."""
    if isinstance(raw, dict):
        for v in raw.values():
            if isinstance(v, dict) and "clip_order" in v:
                return 2
    return 1


def validate_annotation(raw: Any) -> tuple[int, list[str]]:
    """Validate a parsed annotation file; returns (version, located error messages)."""
    version = annotation_version(raw)
    model = AnnotationV2 if version == 2 else AnnotationV1
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        return version, format_errors(exc)
    return version, []


_NUM = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """`clip2` < `clip10`; pure integers sort numerically."""
    parts = _NUM.split(name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def is_int_key(name: str) -> bool:
    return name.isdigit() or (name.startswith("-") and name[1:].isdigit())


def sort_clip_keys(keys: list[str]) -> list[str]:
    """Numeric order for integer keys, natural order otherwise (ints first)."""
    ints = sorted((k for k in keys if is_int_key(k)), key=int)
    others = sorted((k for k in keys if not is_int_key(k)), key=natural_key)
    return ints + others
