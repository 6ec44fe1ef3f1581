"""The `sldata` command: each command family lives in its own module and registers here."""

from __future__ import annotations

import typer

from . import features, look, migrate, pack, pose, validate

app = typer.Typer(
    name="sldata",
    help="Sign-language ML data: extract, convert, migrate, validate and look at datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for module in (features, validate, migrate, pose, pack, look):
    module.register(app)


@app.callback()
def _root() -> None:
    """Run `COMMAND --help` for each command's options."""


def main() -> None:
    app()
