"""The ``docker`` kind: images as the tar stream of ``docker save``, restored by ``docker load``.

Both directions stream through a pipe in 1 MiB chunks (no temporary file, memory bounded
whatever the image size). Any CLI that speaks docker's ``save``/``load``/``pull``/``image
inspect`` works (podman): ``--docker-cli`` or ``CACHER_DOCKER_CLI`` names it, ``docker`` from
PATH otherwise; the environment (``DOCKER_HOST``...) is inherited.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

from cacher.kinds.docker_archive import ArchiveWatch
from cacher.kinds.docker_refs import covers, is_id_prefix, valid_reference
from cacher.plugin import (
    ArtifactError,
    Kind,
    ObjectRefused,
    Option,
    PipedProcess,
    Target,
    UsageError,
    Writable,
)

CHUNK = 1 << 20  # the pipe's read size (the docstring's 1 MiB chunks)
TAR_BLOCK = 512
TAR_END = bytes(2 * TAR_BLOCK)  # a complete tar archive ends with two zero blocks
CLI_ENV = "CACHER_DOCKER_CLI"
RECORD = "docker-images"  # the metadata field recording IMAGE=ID for each image saved
RECORD_MAX = 1024


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

    def metadata(self, targets: Sequence[str], options: Mapping[str, Any]) -> Mapping[str, str]:
        """``docker-images``: each IMAGE as given and the ID it names (``app:1=<hex> ...``), so a
        restore of an image the object cannot hold is refused before it is read. None when
        docker cannot say (``docker save`` then fails with its own message) or when the record
        would not fit S3's 2 KB of metadata."""
        argv = [_cli(options), "image", "inspect", "--format", "{{.Id}}", *targets]
        try:
            with PipedProcess(argv, stdout=subprocess.PIPE) as seen:
                out = seen.pipe(seen.proc.stdout).read(RECORD_MAX * 2)
                seen.finish()
        except ArtifactError:
            return {}
        ids = [line.strip().removeprefix("sha256:") for line in out.decode("ascii", "replace").split()]
        record = " ".join(f"{image}={image_id}" for image, image_id in zip(targets, ids, strict=False))
        if len(ids) != len(targets) or len(record) > RECORD_MAX:
            return {}
        return {RECORD: record}

    def check_stored(
        self, metadata: Mapping[str, str], target: str | None, options: Mapping[str, Any]
    ) -> None:
        """Refuse an object whose record says it was saved from images that cannot include ``target``."""
        record = metadata.get(RECORD)
        if not target or not record:
            return
        saved = [entry.rpartition("=") for entry in record.split()]
        if any(covers(image, target) or is_id_prefix(target, image_id) for image, _, image_id in saved):
            return
        listed = ", ".join(image for image, _, _ in saved)
        raise ObjectRefused(f"the stored archive does not hold {target}: it was saved from {listed}")

    def pack(self, targets: Sequence[str], sink: Writable, options: Mapping[str, Any]) -> None:
        """Stream ``docker save`` into ``sink``; raise unless it exited 0 with a whole tar archive."""
        with PipedProcess([_cli(options), "save", *targets], stdout=subprocess.PIPE) as save:
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
        load is killed mid-archive and loads nothing. With IMAGE, each chunk is watched before
        docker gets it (`ArchiveWatch`): an archive whose manifest does not list IMAGE is refused
        before docker could load it, and after the load IMAGE must have the ID the archive gave it.
        """
        cli = _cli(options)
        watch = ArchiveWatch(target)
        with PipedProcess([cli, "load"], stdin=subprocess.PIPE) as load:
            pipe = load.pipe(load.proc.stdin)
            held = b""
            stopped = False
            try:
                while chunk := source.read(CHUNK):
                    watch.feed(chunk)
                    if held:
                        pipe.write(held)
                    held = chunk
                watch.finish()
                pipe.write(held)
            except BrokenPipeError:
                stopped = True  # docker load quit early; finish() says why
            load.finish()
            if stopped:
                raise ArtifactError(f"{load.what} stopped reading before the end of the archive")
        if target:
            _check_loaded_id(cli, target, watch.image_ids())

    def fallback_requested(self, options: Mapping[str, Any]) -> bool:
        return bool(options.get("pull"))

    def produce(self, target: str | None, options: Mapping[str, Any]) -> Sequence[str] | None:
        """On a miss with ``--pull``: pull IMAGE, then hand it back for the engine to upload."""
        if not options.get("pull") or not target:
            return None
        with PipedProcess([_cli(options), "pull", target]) as pull:
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
    """Refuse, before any I/O, a name docker would not parse as an image (or one it would read
    as a flag, ``--output=...``)."""
    if not valid_reference(image):
        raise UsageError(
            f"not a valid image reference: {image!r}",
            hint="name an image as [HOST[:PORT]/]NAME[:TAG][@DIGEST], lowercase, or by its ID",
        )


def _check_loaded_id(cli: str, target: str, expected: set[str]) -> None:
    """Raise unless ``target`` now names one of the ``expected`` image IDs (hex)."""
    what = f"docker image inspect {target}"
    with PipedProcess(
        [cli, "image", "inspect", "--format", "{{.Id}}", target], stdout=subprocess.PIPE, what=what
    ) as seen:
        out = seen.pipe(seen.proc.stdout).read(4096)
        seen.finish(f"the archive was loaded but does not hold {target}")
    got = out.decode("utf-8", "replace").strip()
    if got.removeprefix("sha256:") not in expected:
        wanted = " or ".join(f"sha256:{i}" for i in sorted(expected))
        raise ArtifactError(f"after the load, {target} is image {got}, not {wanted} from the archive")
