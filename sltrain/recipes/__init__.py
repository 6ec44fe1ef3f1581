"""THE recipe registry: one entry per recipe, read by config loading, the loop and the CLI.

An entry names the recipe's config class, its `Recipe` class and the `sltrain`
command that runs it. Classes are given as "module:Class" and imported only when
a config asks for them, so a recipe whose module (or optional dependency) is
absent gives "recipe ... is not available" (exit 2), never an ImportError.

Adding a recipe: write `schemas/config_NAME.py` (a `TrainConfig` subclass) and
`sltrain/recipes/NAME.py` (a `Recipe` subclass), then add one line to `RECIPES`.
Nothing else changes: the loop, checkpoints, metrics, evaluation and CLI are shared.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sldata.errors import UserError

if TYPE_CHECKING:
    from schemas.config import TrainConfig

    from .base import Recipe

#: The commands that run recipes, with what they are for (the CLI's messages use it).
COMMANDS: dict[str, str] = {"pretrain": "pretraining", "finetune": "supervised fine-tuning"}


@dataclass(frozen=True)
class RecipeEntry:
    """Where a recipe's two classes live ("module:Class") and which command runs it."""

    config: str
    recipe: str
    command: str


RECIPES: dict[str, RecipeEntry] = {
    "dpc": RecipeEntry("schemas.config_dpc:DPCConfig", "sltrain.recipes.dpc:DPCRecipe", "pretrain"),
    "islr": RecipeEntry("schemas.config_islr:ISLRConfig", "sltrain.recipes.islr:ISLRRecipe", "finetune"),
    "sign_llava": RecipeEntry("schemas.config_sign_llava:SignLlavaConfig",
                              "sltrain.recipes.sign_llava:SignLlavaRecipe", "pretrain"),
}


class RecipeUnavailable(UserError):
    """The config names a recipe that is unknown or whose module is not installed."""


def recipe_names() -> list[str]:
    return sorted(RECIPES)


def entry(name: str) -> RecipeEntry:
    """The registry entry of `name`; RecipeUnavailable (listing the known ones) when there is none."""
    found = RECIPES.get(name)
    if found is None:
        raise RecipeUnavailable(f"unknown recipe {name!r} (allowed: {', '.join(recipe_names())})")
    return found


def _load(name: str, target: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise RecipeUnavailable(f"recipe {name!r} is not available in this installation ({exc})") from None


def config_class(name: str) -> "type[TrainConfig]":
    """The config model of recipe `name`, imported lazily."""
    return _load(name, entry(name).config)


def recipe_class(name: str) -> "type[Recipe]":
    """The Recipe subclass of recipe `name`, imported lazily."""
    return _load(name, entry(name).recipe)


def build_recipe(cfg: "TrainConfig") -> "Recipe":
    """The recipe object for a validated config (its __init__ rejects bad flag combinations)."""
    return recipe_class(cfg.recipe)(cfg)


def recipes_of(command: str) -> list[str]:
    """The recipes `sltrain COMMAND` runs, as the registry lists them."""
    return [name for name, e in RECIPES.items() if e.command == command]


def check_command(name: str, command: str, source: str) -> None:
    """Refuse (UserError, exit 2) running recipe `name` with `sltrain COMMAND`, saying which command runs it."""
    own = entry(name).command
    if own not in COMMANDS:
        raise RecipeUnavailable(f"recipe {name!r} is registered for `sltrain {own}`, which does not exist "
                                f"(commands: {', '.join(COMMANDS)})")
    if own != command:
        runs = ", ".join(recipes_of(command)) or "no recipe"
        raise UserError(f"{source}: recipe {name!r} is run by `sltrain {own}`, not `sltrain {command}` "
                        f"(which runs {runs})")
