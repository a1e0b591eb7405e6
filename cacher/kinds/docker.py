"""The ``docker`` kind: images as the tar stream of ``docker save``, restored by ``docker load``.

Both directions stream through a pipe in 1 MiB chunks (no temporary file, memory bounded
whatever the image size). Any CLI that speaks docker's ``save``/``load``/``pull``/``image
inspect`` works (podman): ``--docker-cli`` or ``CACHER_DOCKER_CLI`` names it, ``docker`` from
PATH otherwise; the environment (``DOCKER_HOST``...) is inherited.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import IO, Any, BinaryIO

from cacher.errors import ArtifactError, UsageError
from cacher.kind import Kind, Option, Target
from cacher.streams import Writable

CHUNK = 1 << 20
STDERR_KEEP = 64 << 10
TAR_BLOCK = 512
TAR_END = bytes(2 * TAR_BLOCK)  # a complete tar archive ends with two zero blocks
CLI_ENV = "CACHER_DOCKER_CLI"


class DockerKind(Kind):
    """Docker images: ``docker save | zstd`` up, ``zstd -d | docker load`` down, ``--pull`` on a miss."""

    summary = "Docker images via streamed docker save/load; --pull on a miss (podman via --docker-cli)."
    archive = True
    upload_target = Target("IMAGE", "Images to save into one archive (names, tags or IDs).", many=True)
    download_target = Target(
        "IMAGE",
        "Image that must be present after the load; with --pull, what to pull on a miss.",
        required=False,
    )
    options = (
        Option("pull", "On a miss, docker pull IMAGE, store it under KEY and exit 0.", type=bool),
        Option(
            "docker_cli",
            f"The docker CLI to run (default: ${CLI_ENV}, else docker from PATH); podman works too.",
            verbs=("upload", "download"),
        ),
    )

    def check_upload(self, targets: Sequence[str], options: Mapping[str, Any]) -> None:
        for image in targets:
            _check_image(image)
        _cli(options)

    def check_download(self, target: str | None, options: Mapping[str, Any]) -> None:
        if options.get("pull") and not target:
            raise UsageError("--pull needs IMAGE: cacher docker download KEY IMAGE --pull")
        if target:
            _check_image(target)
        _cli(options)

    def pack(self, targets: Sequence[str], sink: Writable, options: Mapping[str, Any]) -> None:
        """Stream ``docker save`` into ``sink``; raise unless it exited 0 with a whole tar archive."""
        with _Docker(_cli(options), "save", *targets, stdout=subprocess.PIPE) as save:
            out = save.pipe(save.proc.stdout)
            total, tail = 0, b""
            while chunk := out.read(CHUNK):
                sink.write(chunk)
                total += len(chunk)
                tail = (tail + chunk[-len(TAR_END) :])[-len(TAR_END) :]
            save.finish()
        if total % TAR_BLOCK or tail != TAR_END:
            raise ArtifactError(f"{save.what} exited 0 but wrote an incomplete tar archive ({total} bytes)")

    def unpack(self, source: BinaryIO, target: str | None, options: Mapping[str, Any]) -> None:
        """Stream ``source`` into ``docker load``, whose stdin closes only after the source ended cleanly.

        The last chunk read is held back until the next read succeeds, so the archive's end
        reaches docker only once the codec has verified the whole stream; on any error docker
        load is killed mid-archive and loads nothing.
        """
        cli = _cli(options)
        with _Docker(cli, "load", stdin=subprocess.PIPE) as load:
            pipe = load.pipe(load.proc.stdin)
            held = b""
            stopped = False
            try:
                while chunk := source.read(CHUNK):
                    if held:
                        pipe.write(held)
                    held = chunk
                pipe.write(held)
            except BrokenPipeError:
                stopped = True  # docker load quit early; finish() says why
            load.finish()
            if stopped:
                raise ArtifactError(f"{load.what} stopped reading before the end of the archive")
        if target:
            with _Docker(cli, "image", "inspect", target) as seen:
                seen.finish(f"the archive was loaded but does not hold {target}")

    def fallback_requested(self, options: Mapping[str, Any]) -> bool:
        return bool(options.get("pull"))

    def produce(self, target: str | None, options: Mapping[str, Any]) -> Sequence[str] | None:
        """On a miss with ``--pull``: pull IMAGE, then hand it back for the engine to upload."""
        if not options.get("pull") or not target:
            return None
        with _Docker(_cli(options), "pull", target) as pull:
            pull.finish()
        return [target]


def _cli(options: Mapping[str, Any]) -> str:
    """The docker CLI to run: ``--docker-cli``, then ``$CACHER_DOCKER_CLI``, then ``docker``."""
    name = options.get("docker_cli") or os.environ.get(CLI_ENV) or "docker"
    found = shutil.which(name)
    if found is None:
        raise ArtifactError(
            f"the docker CLI {name!r} was not found",
            hint=f"install docker, or name another CLI (e.g. podman) with --docker-cli or {CLI_ENV}",
        )
    return found


def _check_image(image: str) -> None:
    """Refuse an image name the CLI would read as a flag (``--output=...``)."""
    if not image or image.startswith("-"):
        raise UsageError(f"not an image name: {image!r}")


class _Docker:
    """One run of the docker CLI, killed and reaped on any exception (KeyboardInterrupt too).

    It runs in its own process group, so a kill also reaches what a wrapper script (a CLI
    shim) started. Its stderr is drained by a thread (last 64 KiB kept for the message), so a
    chatty child can never block while we stream through its stdout or stdin.
    """

    def __init__(
        self, cli: str, *args: str, stdin: int = subprocess.DEVNULL, stdout: int = subprocess.DEVNULL
    ) -> None:
        self.what = " ".join([os.path.basename(cli), *args])
        try:
            self.proc = subprocess.Popen(
                [cli, *args], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, process_group=0
            )
        except OSError as exc:
            raise ArtifactError(f"cannot run {cli}: {exc.strerror or exc}") from None
        self._stderr = bytearray()
        self._drain = threading.Thread(target=self._read_stderr, name="docker-stderr", daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        err = self.pipe(self.proc.stderr)
        while data := err.read(STDERR_KEEP):
            self._stderr += data
            del self._stderr[:-STDERR_KEEP]

    @staticmethod
    def pipe(stream: IO[bytes] | None) -> IO[bytes]:
        assert stream is not None, "the pipe was asked for when the child was started"
        return stream

    def finish(self, failure: str | None = None) -> None:
        """Close our end of stdin, wait, and raise with docker's own message if it failed."""
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass  # the exit status below tells what happened
        code = self.proc.wait()
        self._drain.join(10)
        if code != 0:
            raise ArtifactError(f"{failure or self.what + ' failed'}: {self.message(code)}")

    def message(self, code: int) -> str:
        """The last line docker wrote on stderr, trimmed, or how it exited."""
        lines = [line.strip() for line in self._stderr.decode(errors="replace").splitlines() if line.strip()]
        if lines:
            return lines[-1][:300]
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def __enter__(self) -> _Docker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None or self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group outlives a leader that exited
            except ProcessLookupError:
                pass  # nothing of it left
        self.proc.wait()
        self._drain.join(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass  # a broken stdin pipe cannot be flushed: the child is gone anyway
