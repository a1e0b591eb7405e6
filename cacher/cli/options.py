"""The store and output flags every storage command takes, as cyclopts parameters.

They resolve into a `cacher.cli.session.Session`; that module needs no cyclopts, so the fast
path (`cacher.cli.fastpath`) builds the same session without it."""

from __future__ import annotations

from dataclasses import dataclass, make_dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING, Annotated, Any

from cyclopts import Parameter

from cacher.cli.report import Reporter
from cacher.cli.session import Session
from cacher.config import FIELDS, Field
from cacher.registry import Registry

STORE_GROUP = "Store options"


class _StoreFlags:
    """Flags that override the config file and ``CACHER_*`` variables for one command: one per
    setting of `cacher.config.Settings` (generated from it), plus ``--config`` and ``--debug``."""

    config: str | None
    debug: bool

    def flags(self) -> dict[str, Any]:
        """The settings given on the command line (None: not given); not ``config`` and
        ``debug``, which steer this one run."""
        return {spec.name: getattr(self, spec.name) for spec in FIELDS}


def flag_help(spec: Field) -> str:
    """A setting's flag help: its declared help and its default."""
    if spec.default is None or spec.default == "" or spec.type is bool:
        return spec.help
    default = f"{spec.default:g}" if isinstance(spec.default, float) else str(spec.default)
    text = spec.help.rstrip(".")
    if text.endswith(")"):  # "(bounds a stuck transfer; default 300)", not two parentheses
        return f"{text[:-1]}; default {default})."
    return f"{text} (default {default})."


def _generate() -> type[_StoreFlags]:
    """`StoreOptions`: a dataclass with an optional flag per setting, in declaration order."""
    def unset() -> Any:
        return dataclass_field(default=None)  # one Field object per field: dataclasses name it

    specs: list[tuple[str, Any, Any]] = [
        (spec.name, Annotated[spec.type | None, Parameter(help=flag_help(spec))], unset()) for spec in FIELDS
    ]
    config_help = "Config file (default: ~/.config/cacher/config.toml)."
    specs.append(("config", Annotated[str | None, Parameter(help=config_help)], unset()))
    debug_help = "Show tracebacks (also CACHER_DEBUG=1)."
    specs.append(("debug", Annotated[bool, Parameter(help=debug_help)], dataclass_field(default=False)))
    cls = make_dataclass(
        "StoreOptions", specs, bases=(_StoreFlags,), namespace={"__doc__": _StoreFlags.__doc__}
    )
    cls.__module__ = __name__
    return Parameter(name="*", group=STORE_GROUP)(cls)


if TYPE_CHECKING:

    class StoreOptions(_StoreFlags):
        """What the code reads of the generated class (mypy cannot see generated fields)."""

        def __init__(self, **flags: Any) -> None: ...

else:
    StoreOptions = _generate()


@Parameter(name="*", group="Output")
@dataclass
class OutputOptions:
    """How a command reports: quiet, or a JSON document on stdout."""

    quiet: Annotated[bool, Parameter(name=["--quiet", "-q"], help="Print nothing but errors.")] = False
    json: Annotated[bool, Parameter(help="Print the result as JSON on stdout (docs/json.md).")] = False

    def reporter(self) -> Reporter:
        return Reporter(quiet=self.quiet, json_output=self.json)


def open_session(
    store: StoreOptions | None, registry: Registry, output: OutputOptions | None = None
) -> Session:
    """The session a command's parsed flags resolve into."""
    opts = store or StoreOptions()
    return Session(opts.flags(), registry, (output or OutputOptions()).reporter(), config_flag=opts.config)
