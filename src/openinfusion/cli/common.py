"""What every CLI command shares: one-line errors, machine-readable errors, the console."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from openinfusion.errors import InputError, IntegrityError, OpenInfusionError

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

EXIT_INVALID = 1  # input is invalid (a file, a value, a signature)
EXIT_ERROR = 2  # the command could not run


def fail(error: OpenInfusionError, as_json: bool = False) -> typer.Exit:
    """Print ``error`` as one line (or one JSON object) on stderr and return the Exit to raise."""
    if isinstance(error, InputError):
        payload = {"error": type(error).__name__, "where": error.where, "why": error.why}
    else:
        payload = {"error": type(error).__name__, "where": "", "why": str(error)}
    if as_json:
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        # the message is text, never markup: "[unknown_drug]" or "[iU]" must print as they are
        err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    code = EXIT_INVALID if isinstance(error, InputError | IntegrityError) else EXIT_ERROR
    return typer.Exit(code)


def guarded(as_json_param: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a command so that an :class:`OpenInfusionError` becomes one line and an exit code.

    ``as_json_param`` names the command's boolean ``--json`` parameter, if it has one.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except OpenInfusionError as e:
                as_json = bool(kwargs.get(as_json_param)) if as_json_param else False
                raise fail(e, as_json) from None

        return wrapper

    return decorate
