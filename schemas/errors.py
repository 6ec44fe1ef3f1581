"""The one formatter of pydantic validation errors: `where: message`, one line each.

Every command that reports a schema violation (validate's `schema` findings,
upgrade-annotations, shard, metadata and pose attributes) words it the same way:
the location joined with dots (`<root>` when the whole object is wrong), then
pydantic's message. The v2 annotation model nests clips under a synthetic
`clips` level that the file does not have; it is left out, so the location is
the one a user finds in their JSON (`video.clip.field`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True)
class SchemaError:
    """One violation: where in the data (keys from the top), pydantic's message, its
    error type (`missing`, `extra_forbidden`, ...) and the offending input, so a
    caller that words some types its own way (sltrain's config errors) starts from
    the same located errors as everyone else."""

    loc: tuple[str, ...]
    msg: str
    type: str = ""
    input: Any = None

    @property
    def where(self) -> str:
        return ".".join(self.loc) or "<root>"

    def __str__(self) -> str:
        return f"{self.where}: {self.msg}"


def schema_errors(exc: ValidationError, prefix: tuple[str, ...] = (),
                  synthetic: tuple[str, ...] = ("clips",)) -> list[SchemaError]:
    """Every error of `exc`, located; `prefix` names where the validated object sits (e.g. `attrs`).

    `synthetic` names second-level keys of the model that the data does not have
    (the annotation models' `clips`); a model without them (a config) passes ().
    """
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if len(loc) >= 2 and loc[1] in synthetic:
            del loc[1]
        out.append(SchemaError((*prefix, *loc), err["msg"], err["type"], err.get("input")))
    return out


def format_errors(exc: ValidationError, limit: int = 20, prefix: tuple[str, ...] = ()) -> list[str]:
    """At most `limit` errors as `where: message` lines, then how many more there are."""
    errors = schema_errors(exc, prefix)
    out = [str(e) for e in errors[:limit]]
    if len(errors) > limit:
        out.append(f"... and {len(errors) - limit} more")
    return out
