"""Click options made from the settings models (agenttop/config.py), and back.

A command's options are its settings model's fields: ``options(Model)`` makes one click
option per field (name, type, help with default and bounds, environment variable), the
command builds the model from what was given (``build``), and pydantic alone validates,
so ``--help``, validation and the model cannot disagree. ``serve_args`` turns settings
back into ``serve``'s command line, for ``run`` to start its receiver with.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

import annotated_types
import click
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from agenttop.config import Cli, ServeSettings

M = TypeVar("M", bound=BaseModel)


class Lines(click.ParamType):
    """Text; a repeatable option's environment variable holds one value a line."""

    name = "text"

    def split_envvar_value(self, rv: str) -> list[str]:
        return [line for line in rv.splitlines() if line.strip()]


def cli_of(info: FieldInfo) -> Cli:
    return next((m for m in info.metadata if isinstance(m, Cli)), Cli())


def flag_of(name: str, info: FieldInfo) -> str:
    return cli_of(info).flag or "--" + name.replace("_", "-")


def _inner(annotation: Any) -> Any:
    """``int | None`` -> int; ``tuple[X, ...]`` -> X."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is tuple:
        return typing.get_args(annotation)[0]
    return annotation


def _bounds(info: FieldInfo) -> str:
    """``1 to 2,047``, ``at least 1``..., from the field's constraints; empty if none."""
    low = high = None
    for m in info.metadata:
        if isinstance(m, annotated_types.Ge | annotated_types.Gt):
            low = m.ge if isinstance(m, annotated_types.Ge) else m.gt
        elif isinstance(m, annotated_types.Le | annotated_types.Lt):
            high = m.le if isinstance(m, annotated_types.Le) else m.lt
    if low is None and high is None:
        return ""
    if high is None:
        return f"at least {low:,}"
    return f"{low:,} to {high:,}" if low is not None else f"at most {high:,}"


def _text(value: Any, cli: Cli) -> str:
    if cli.to_text is not None:
        return cli.to_text(value)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


def option(name: str, info: FieldInfo, *, with_default: bool = False) -> Callable:
    """The click option of one settings field. Its value is None when not given (the
    model's default then applies in ``build``), or with ``with_default`` the model's
    default, for a command that uses the option without its model."""
    cli = cli_of(info)
    annotation = info.annotation
    inner = _inner(annotation)
    shown = cli.show_default
    if shown is None and inner is not bool:
        default = info.get_default(call_default_factory=True)
        if default not in (None, ()):
            shown = _text(default, cli)
    facts = [f"default: {shown}"] if shown is not None else []
    if cli.show_bounds and _bounds(info):
        facts.append(_bounds(info))
    help_text = (info.description or "") + (f"  [{'; '.join(facts)}]" if facts else "")
    kwargs: dict[str, Any] = {"help": help_text, "envvar": cli.env, "metavar": cli.metavar}
    if inner is bool:
        return click.option(flag_of(name, info), name, is_flag=True, default=False,
                            help=help_text, envvar=cli.env)
    if typing.get_origin(annotation) is tuple:
        kwargs.update(multiple=True, type=Lines())
    elif typing.get_origin(inner) is Literal:
        kwargs["type"] = click.Choice(typing.get_args(inner))
        kwargs["metavar"] = None
    elif inner is Path:
        kwargs["type"] = click.Path(dir_okay=False, path_type=Path, exists=cli.exists)
    elif inner in (int, float) and not cli.text:
        kwargs["type"] = inner
    # Not given: None, so that ``build`` leaves the field at the model's default; with
    # ``with_default``, the default itself (a factory is called when the command runs).
    kwargs["default"] = (info.default_factory or info.default) if with_default else None
    return click.option(flag_of(name, info), name, **kwargs)


def options(model: type[BaseModel], *, exclude: Iterable[str] = ()) -> Callable:
    """Decorate a click command with an option per field of ``model``."""
    skipped = set(exclude)

    def decorate(command: Callable) -> Callable:
        for name, info in reversed(model.model_fields.items()):
            if name not in skipped:
                command = option(name, info)(command)
        return command

    return decorate


def settings_error(model: type[BaseModel], e: ValidationError) -> str:
    """The first problem, said as ``--flag: message``."""
    first = e.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:
        return message
    name = str(first["loc"][0])
    info = model.model_fields.get(name)
    return f"{flag_of(name, info) if info else name}: {message}"


def build(model: type[M], values: dict[str, Any]) -> M:
    """The model from a command's options (those given; the rest keep their defaults);
    click.UsageError naming the option when a value is out of bounds or malformed."""
    given = {k: v for k, v in values.items()
             if k in model.model_fields and v is not None and v is not False and v != ()}
    try:
        return model(**given)
    except ValidationError as e:
        raise click.UsageError(settings_error(model, e)) from None


def serve_args(settings: ServeSettings, *, exclude: Iterable[str] = ()
               ) -> tuple[list[str], dict[str, str]]:
    """``serve``'s command line for these settings (the options that differ from their
    defaults, and always ``--db`` and ``--grpc``), and the environment for the secret ones."""
    args: list[str] = []
    env: dict[str, str] = {}
    skipped = set(exclude)
    for name, info in ServeSettings.model_fields.items():
        value = getattr(settings, name)
        default = info.get_default(call_default_factory=True)
        if name in skipped or (value == default and name not in ("db", "grpc")):
            continue
        cli = cli_of(info)
        flag = flag_of(name, info)
        values = list(value) if isinstance(value, tuple) else [value]
        if cli.secret and cli.env:
            env[cli.env] = "\n".join(_text(v, cli) for v in values)
        elif value is True:
            args.append(flag)
        else:
            for one in values:
                args += [flag, _text(one, cli)]
    return args, env
