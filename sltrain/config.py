"""YAML config → validated recipe config, with `--set a.b=c` overrides and readable errors.

Overrides are applied to the raw mapping and the whole config is validated
again, so an override is held to the same rules as the file (unknown keys, types,
ranges). Every error names its key path (`trainer.batch_size`) and, where there
is a closed set, the allowed keys or values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from schemas.config import TrainConfig
from schemas.errors import schema_errors
from sldata.errors import UserError
from sldata.io import write_bytes_atomic

from .recipes import RecipeUnavailable, config_class, recipe_names


class ConfigError(UserError):
    """A config that cannot be used: the message lists every problem with its key path."""


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable YAML file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (recipe, data, model, optim, trainer)")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=c` → (["a", "b"], value parsed as YAML: numbers, booleans, lists, null)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"bad --set {item!r}: expected KEY=VALUE with a dotted key, e.g. trainer.max_steps=100")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of `data` with each `a.b=c` set; intermediate sections are created."""
    import copy

    out = copy.deepcopy(data)
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"bad --set {item!r}: {'.'.join(path[:i + 1])} is a value, not a section")
            node = child
        node[path[-1]] = value
    return out


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, list, tuple, dict) or get_args(annotation):
        for arg in get_args(annotation):
            found = _submodel(arg)
            if found is not None:
                return found
    try:
        import types

        if isinstance(annotation, types.UnionType):
            for arg in get_args(annotation):
                found = _submodel(arg)
                if found is not None:
                    return found
    except AttributeError:
        pass
    return None


def _model_at(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the key at `loc` (for listing allowed keys)."""
    model: type[BaseModel] | None = cls
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = _submodel(field.annotation)
    return model


#: Keys that moved, old dotted key -> new one: a config that still uses the old place is
#: told where the key lives now, not just that it is unknown.
MOVED_KEYS: dict[str, str] = {
    "data.eval_batch_size": "trainer.eval_batch_size",  # islr, before one eval batch size for every recipe
    "model.eval_batch_size": "trainer.eval_batch_size",  # sign_llava, likewise
}


def format_errors(cls: type[BaseModel], exc: ValidationError, source: str) -> str:
    """sltrain's wording of config errors: one line per problem, each naming its key path.

    The located errors come from the toolkit's one formatter (`schemas.errors`); this
    adds what a config author needs: the keys allowed where an unknown one was
    given, and where a moved key lives now.
    """
    lines = []
    for err in schema_errors(exc, synthetic=()):
        key = err.where
        if err.type == "extra_forbidden" and key in MOVED_KEYS:
            lines.append(f"  {key}: moved to {MOVED_KEYS[key]} (set it there)")
        elif err.type == "extra_forbidden":
            parent = _model_at(cls, tuple(int(p) if p.isdigit() else p for p in err.loc[:-1]))
            allowed = ", ".join(parent.model_fields) if parent is not None else "?"
            lines.append(f"  {key}: unknown key (allowed here: {allowed})")
        elif err.type == "missing":
            lines.append(f"  {key}: required key is missing")
        else:
            shown = "" if isinstance(err.input, (dict, list)) else f" (got {err.input!r})"
            lines.append(f"  {key}: {err.msg}{shown}")
    return f"{source}: invalid config:\n" + "\n".join(lines)


def build_config(data: dict[str, Any], source: str = "config") -> TrainConfig:
    """Validate a raw mapping against the config class of its `recipe`."""
    recipe = data.get("recipe")
    if recipe is None:
        raise ConfigError(f"{source}: invalid config:\n  recipe: required key is missing "
                          f"(allowed: {', '.join(recipe_names())})")
    if not isinstance(recipe, str):
        raise ConfigError(f"{source}: invalid config:\n  recipe: must be a name (allowed: {', '.join(recipe_names())})")
    try:
        cls = config_class(recipe)
    except RecipeUnavailable as exc:
        raise ConfigError(f"{source}: recipe: {exc}") from None
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(cls, exc, source)) from None


#: The file each loaded config came from (by object identity): an input, which
#: `save_resolved` never rewrites. Configs built in code have none.
_SOURCES: dict[int, tuple[TrainConfig, Path]] = {}


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read YAML, apply `--set` overrides, validate the result as one config."""
    cfg = build_config(apply_overrides(read_yaml(path), list(overrides)), str(path))
    _SOURCES[id(cfg)] = (cfg, Path(path))
    return cfg


def dump_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def save_resolved(cfg: TrainConfig, path: str | Path) -> None:
    """The config as it ran (defaults filled, overrides applied), written atomically.

    Rerunning with `OUT_DIR/config.yaml` itself as the config is fine (nothing to
    rewrite); rewriting it, e.g. with `--set`, would modify an input: refused.
    """
    from .checkpoint import write_error

    data = dump_yaml(cfg).encode("utf-8")
    path = Path(path)
    entry = _SOURCES.get(id(cfg))
    src = entry[1] if entry is not None and entry[0] is cfg else None
    if src is not None and path.exists() and src.exists() and os.path.samefile(path, src):
        if path.read_bytes() == data:
            return
        raise UserError(f"{src}: is trainer.out_dir's own config.yaml and this run's config differs "
                        "from it (--set?); copy it elsewhere and run that copy, so the input stays as it is")
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise write_error(Path(path), exc) from None
