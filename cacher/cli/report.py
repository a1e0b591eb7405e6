"""How results reach people and machines.

People: three kinds of line on stderr, results, warnings (``cacher: warning:``) and errors
(``cacher: error:``); ``--quiet`` silences results and warnings, never errors. Progress is a
live line on a terminal; in CI logs a line 2 s into a transfer, then one every 5 s.
Machines: ``--json`` documents on stdout, one per run, errors included (schema in
docs/json.md), and ``cache-hit`` in ``$GITHUB_OUTPUT``.
No colours are used, so ``NO_COLOR`` has nothing to turn off.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

if TYPE_CHECKING:
    from cacher.engine import Result
    from cacher.errors import CacheMiss

JSON_SCHEMA = 1
_TTY_INTERVAL = 0.1
#: Without a terminal: the first progress line this many seconds into a transfer, then one
#: at least every `_LOG_INTERVAL` seconds.
_LOG_FIRST = 2.0
_LOG_INTERVAL = 5.0


def human_bytes(n: float) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    else:
        unit = "TiB"
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def printable(text: str) -> str:
    """Text as one line of a log: control and format characters escaped as Python writes them
    (``\\n``, ``\\x1b``), so a name planted in the bucket as ``x\\n::error::`` never starts a
    line a CI runner reads as a workflow command, nor colours a terminal. No cacher key holds
    such a character (`cacher.keying.keyrules`), so no key is shown changed."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class Reporter:
    """Everything a command tells its user, in one place."""

    #: JSON documents written by this process: `cacher.cli.main` writes an error document
    #: only when the command has not written its own (stdout holds exactly one).
    documents: ClassVar[int] = 0

    def __init__(
        self, *, quiet: bool = False, json_output: bool = False, stream: TextIO | None = None
    ) -> None:
        self.quiet = quiet
        self.json_output = json_output
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def say(self, message: str) -> None:
        if not self.quiet:
            print(f"cacher: {printable(message)}", file=self.stream)

    def warn(self, message: str) -> None:
        if not self.quiet:
            print(f"cacher: warning: {printable(message)}", file=self.stream)

    def error(self, message: str, hint: str | None = None) -> None:
        """An error line: printed even with ``--quiet``."""
        line = f"cacher: error: {message}"
        if hint:
            line += f" (hint: {hint})"
        print(line, file=self.stream, flush=True)

    def miss(self, command: str | None, kind: str, key: str, miss: CacheMiss) -> None:
        """A download miss: a result line saying what was looked up (never an error line),
        the notes as warnings, and (given a command) its JSON document."""
        for note in miss.notes:
            self.warn(note)
        self.say(f"{kind} {miss.message}")
        if command:
            self.emit(miss_document(command, kind, key, miss))

    def emit(self, document: dict[str, Any]) -> None:
        """A ``--json`` result on stdout."""
        if self.json_output:
            try:
                print(json.dumps({"schema": JSON_SCHEMA, **document}, sort_keys=True), flush=True)
                Reporter.documents += 1
            except BrokenPipeError:
                raise  # the reader went away: cacher.cli.main ends quietly
            except OSError as exc:  # a full disk behind stdout: the work itself was done
                self.warn(f"cannot write the JSON result to stdout ({exc.strerror or exc})")

    def progress(self, label: str) -> _Progress | None:
        return None if self.quiet else _Progress(label, self.stream, self.tty)

    def transfer(self, command: str | None, result: Result) -> None:
        """The summary line of one transfer, its notes, and (given a command) its JSON document."""
        if result.outcome == "failed":
            self.warn(f"soft failure, {result.key} not stored: {result.reason}")
            if command:
                self.emit(
                    {
                        "command": command,
                        "key": result.key,
                        "kind": result.kind,
                        "outcome": "failed",
                        "notes": [result.reason],
                    }
                )
            return
        for note in result.notes:
            self.warn(note)
        if command:
            self.emit({"command": command, **result_document(result)})
        if result.outcome == "skipped":
            self.say(f"{result.key} already stored; skipped (use --force to overwrite)")
            return
        if result.outcome == "read-only":
            self.say(f"read-only: {result.key} not stored")
            return
        what = {
            "uploaded": "uploaded",
            "hit": "hit, restored",
            "partial": f"partial hit, restored {result.matched_key}"
            + (f" of scope {result.scope}" if result.scope else "")
            + " for",
            "fetched": "miss, made and stored",
            "fetched-not-stored": "miss, made but not stored",
            "local": (
                f"partial hit, restored {result.matched_key} from the local tier for"
                if result.local_match and result.matched_key not in (None, result.key)
                else "restored from the local tier"
                if result.local_match
                else "kept in the local tier only (offline, not shared)"
            ),
        }.get(result.outcome, result.outcome)
        ratio = result.raw_bytes / result.stored_bytes if result.stored_bytes else 0.0
        rate = result.raw_bytes / result.seconds / (1 << 20) if result.seconds > 0 else 0.0
        if result.codec == "cas":  # content-addressed: what moved, not a compression ratio
            moved = "fetched" if result.cas_blobs is not None else "sent"
            counts = result.cas_blobs
            blobs = f", {counts[0]} contents fetched, {counts[1]} local" if counts else ""
            sizes = f"{human_bytes(result.stored_bytes)} {moved} (content-addressed{blobs})"
        else:
            sizes = f"{human_bytes(result.stored_bytes)} stored ({result.codec}, x{ratio:.2f})"
        self.say(
            f"{result.kind} {what} {result.key}: {human_bytes(result.raw_bytes)} raw, {sizes} "
            f"in {result.seconds:.2f} s, {rate:.1f} MiB/s"
            + ("" if result.verified else "; unverified (stored without a digest by an older cacher)")
            + (", from the local tier" if result.from_local_tier and result.outcome != "local" else "")
        )


def miss_document(command: str | None, kind: str | None, key: str | None, miss: CacheMiss) -> dict[str, Any]:
    """The ``--json`` document of a download miss (the verbs' and a plugin's own alike)."""
    return {
        "command": command,
        "key": key,
        "kind": kind,
        "outcome": "miss",
        "match": "miss",
        "matched_key": None,
        "looked_up": miss.looked_up,
        "store": miss.store,
        "restore_keys": list(miss.restore_keys),
        "notes": list(miss.notes),
    }


#: Outcomes of a download that looked the key up (``match`` says how it answered).
_LOOKED_UP = ("hit", "partial", "fetched", "fetched-not-stored")


def result_document(result: Result) -> dict[str, Any]:
    return {
        "key": result.key,
        "kind": result.kind,
        "outcome": result.outcome,
        "match": result.match if result.outcome in _LOOKED_UP or result.local_match else None,
        "matched_key": result.matched_key,
        "codec": result.codec,
        "raw_bytes": result.raw_bytes,
        "stored_bytes": result.stored_bytes,
        "seconds": round(result.seconds, 3),
        "notes": list(result.notes),
        "verified": result.verified,
        "scope": result.scope,
        "local_tier": result.from_local_tier,
        "blobs": result.blobs,
    }


def github_output(hit: bool, matched_key: str | None, report: Reporter | None = None) -> None:
    """Write ``cache-hit`` and ``matched-key`` for GitHub Actions when it is listening.

    The work is done by then: a file that cannot be written is a warning, never an error that
    would turn a restore that happened into a failed step.
    """
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"cache-hit={'true' if hit else 'false'}\nmatched-key={matched_key or ''}\n")
        except OSError as exc:
            (report or Reporter()).warn(
                f"cannot write the GitHub output file {path} ({exc.strerror or exc}); the result stands"
            )


class _Progress:
    """A live line on a terminal, redrawn as bytes move. Elsewhere (CI logs) a line of its own,
    written by a ticker thread: the first `_LOG_FIRST` seconds into the transfer, then one every
    `_LOG_INTERVAL` seconds, whether bytes move or not (the last parts of an upload, a stalled
    store), so a log never sits silent."""

    def __init__(self, label: str, stream: TextIO, tty: bool) -> None:
        self.label, self.stream, self.tty = label, stream, tty
        self.started = self.last = time.monotonic()
        self.drawn = False
        self.done: int = 0
        self.total: int | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if not tty:
            self._ticker = threading.Thread(target=self._tick, name="cacher-progress", daemon=True)
            self._ticker.start()

    def __call__(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        if not self.tty:
            return
        now = time.monotonic()
        if now - self.last < _TTY_INTERVAL:
            return
        self.last = now
        self.stream.write("\r\x1b[2K" + self._text(now))
        self.stream.flush()
        self.drawn = True

    def _tick(self) -> None:
        wait = _LOG_FIRST
        while not self._stop.wait(wait):
            try:
                self.stream.write(self._text(time.monotonic()) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # stderr is gone: progress is not worth failing for
                return
            wait = _LOG_INTERVAL

    def _text(self, now: float) -> str:
        done, total = self.done, self.total
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        text = f"cacher: {self.label}: {human_bytes(done)}"
        if total:
            text += f" / {human_bytes(total)} ({100 * done / total:.0f}%)"
        text += f", {human_bytes(rate)}/s"
        if total and rate > 0:
            text += f", ETA {max(total - done, 0) / rate:.0f} s"
        return text

    def close(self) -> None:
        """Stop the ticker (before the summary line is written); clear a live line. Idempotent."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self.drawn:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.drawn = False
