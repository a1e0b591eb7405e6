"""The command line: parse, run, and turn every outcome into one of the documented exit codes.

`main` is the single place where exceptions become exit codes and messages.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any

from cacher.errors import CacheMiss, CacherError, ExitCode


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every cleanup on the way out runs."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def _debug(argv: Sequence[str]) -> bool:
    return "--debug" in _options(argv) or os.environ.get("CACHER_DEBUG", "") not in ("", "0")


#: Output flags a command line may give before the command as well as after it.
GLOBAL_FLAGS = ("-q", "--quiet", "--json", "--debug", "--soft-fail")


def hoist_global_flags(argv: Sequence[str]) -> list[str]:
    """``cacher -q dir download …`` as ``cacher dir download … -q``: the output flags given
    before the command move after it (before a ``--``, which starts ``ensure``'s build
    command), so they mean exactly what they mean there. ``--debug`` is read by `main` itself
    and stays where it is."""
    args = list(argv)
    leading = []
    while args and args[0] in GLOBAL_FLAGS:
        leading.append(args.pop(0))
    moved = [flag for flag in dict.fromkeys(leading) if flag != "--debug"]
    at = args.index("--") if "--" in args else len(args)
    return args[:at] + moved + args[at:]


def _options(argv: Sequence[str]) -> list[str]:
    """The arguments before a ``--`` (after it, they belong to a build command)."""
    args = list(argv)
    return args[: args.index("--")] if "--" in args else args


def _quiet(argv: Sequence[str]) -> bool:
    return any(a in ("-q", "--quiet") for a in _options(argv))


def _print_traceback() -> None:
    import traceback  # only for --debug: a start-up cost otherwise

    traceback.print_exc()


def _error(message: str, hint: str | None = None) -> None:
    line = f"cacher: error: {message}"
    if hint:
        line += f" (hint: {hint})"
    print(line, file=sys.stderr)


KEY_DEPENDENCIES = ("fsspec", "s3fs", "zstandard", "stevedore", "cyclopts", "tomli-w")


def version_text() -> str:
    """``cacher X.Y.Z`` and, on the next line, the versions of the libraries it stands on."""
    from importlib import metadata

    from cacher import __version__

    parts = []
    for dist in KEY_DEPENDENCIES:
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} (missing)")
    python = ".".join(str(v) for v in sys.version_info[:3])
    return f"cacher {__version__}\n{', '.join(parts)}, python {python}"


def _command_of(argv: Sequence[str]) -> tuple[str | None, str | None]:
    """The command and kind a command line names, as far as it can be told without parsing."""
    from cacher.cli.commands import CORE_COMMANDS, KIND_VERBS

    words = _options(argv)[:2]
    if not words or words[0].startswith("-"):
        return None, None
    if words[0] in KIND_VERBS:
        return words[0], "file"
    if words[0] not in CORE_COMMANDS and len(words) > 1 and words[1] in KIND_VERBS:
        return words[1], words[0]
    return words[0], None


class _Outcome:
    """How this run ends when it ends in an error: the line on stderr and, with ``--json``, the
    error document on stdout (unless the command already wrote its document)."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = argv
        self.json = "--json" in _options(argv)

    def error(
        self,
        kind: str,
        message: str,
        hint: str | None = None,
        code: int = ExitCode.ERROR,
        details: dict[str, Any] | None = None,
    ) -> int:
        _error(message, hint)
        if self.json:
            from cacher.cli.report import JSON_SCHEMA, Reporter

            if Reporter.documents == 0:
                command, kind_name = _command_of(self.argv)
                document: dict[str, Any] = {
                    "schema": JSON_SCHEMA,
                    "command": command,
                    "outcome": "error",
                    "error": {"kind": kind, "message": message, "hint": hint},
                    "exit_code": int(code),
                    "failed": "cacher",
                    **(details or {}),
                }
                if kind_name is not None:
                    document.setdefault("kind", kind_name)
                try:
                    print(json.dumps(document, sort_keys=True), flush=True)
                except OSError:
                    pass  # stdout is gone or full: the error line and the exit code still say it
        return code


_SAME_SUGGESTION = re.compile(r'Unknown option: "?(\S+?)"?\. Did you mean "?\1"?\?')


def _usage_message(text: str) -> str:
    """cyclopts's parse error on one line. An argument after ``--`` that looks like an option is
    one too many positional argument, not an unknown option that is its own suggestion."""
    text = " ".join(text.split())
    return _SAME_SUGGESTION.sub(r"unexpected argument \1: the command takes no more arguments", text)


def _alone(args: Sequence[str]) -> str:
    """The command line when it is nothing but flags that belong before a command, else ""."""
    return " ".join(args) if args and all(a in GLOBAL_FLAGS for a in args) else ""


def _dispatch(args: list[str], end: _Outcome) -> int:
    """Run the command: by a fast path when the line is plain, else through cyclopts."""
    if args[:1] == ["key"]:
        from cacher.cli.keyrun import fast_key

        fast = fast_key(args)
        if fast is not None:
            return fast
    from cacher.registry import Registry

    registry = Registry.from_entry_points()
    if "--help" not in args and "-h" not in args:
        from cacher.cli.fastpath import fast_transfer

        fast = fast_transfer(args, registry)
        if fast is not None:
            return fast
    import cyclopts

    from cacher.cli.app import build_app

    app = build_app(registry, args[0] if args else None)
    try:
        result = app(args, exit_on_error=False, print_error=False, result_action="return_value")
    except cyclopts.CycloptsError as exc:
        return end.error("usage", _usage_message(str(exc)))
    return int(result) if isinstance(result, int) else ExitCode.OK


def _plugin_miss(exc: CacheMiss, args: Sequence[str], end: _Outcome) -> int:
    """A plugin's own miss, reported like the verbs' (a result, not an error)."""
    if not _quiet(args):
        print(f"cacher: {exc.message}", file=sys.stderr)
    if end.json:
        from cacher.cli.report import Reporter, miss_document

        command, kind_name = _command_of(args)
        Reporter(json_output=True).emit(miss_document(command, kind_name, exc.key, exc))
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (0 ok, 1 miss, 2 error, 3 download miss)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):
        print(version_text())
        return ExitCode.OK
    debug = _debug(args)
    alone = _alone(args)
    args = hoist_global_flags(args)
    end = _Outcome(args)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if alone:
        return end.error(
            "usage", f"{alone} needs a command after it",
            hint="e.g. cacher --json exists KEY; cacher --help lists the commands",
        )
    try:
        return _dispatch(args, end)
    except BrokenPipeError:
        # stdout's reader went away (`cacher list | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except KeyboardInterrupt:
        return end.error("interrupted", "interrupted", code=ExitCode.INTERRUPTED)
    except Terminated:
        return end.error("terminated", "terminated", code=ExitCode.TERMINATED)
    except CacheMiss as exc:
        return _plugin_miss(exc, args, end)
    except CacherError as exc:
        if debug:
            _print_traceback()
        return end.error(exc.error_kind, exc.message, exc.hint, exc.exit_code, exc.details)
    except Exception as exc:  # noqa: BLE001 - the one boundary that catches everything
        if debug:
            _print_traceback()
        message = f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"
        return end.error("internal", message)
