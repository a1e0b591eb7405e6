"""The docker kind through the installed `cacher`, on a private dockerd and a local registry.

Images are made FROM scratch (no internet). Objects go to the default file store under the
isolated HOME. Every failure test checks what was left behind: nothing stored under the key,
no image loaded, no docker child left running.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import zstandard

from cacher import config
from cacher.stores import open_store
from cacher.stores.base import Store
from cacher.testing import KindContract
from cacher.testing.tools import find_tool
from tests.conftest import CACHER, Run, assert_one_error_line, unavailable
from tests.realparts import PartUnavailable
from tests.realparts.docker_engine import DockerEngine, Registry, build_scratch_image

pytestmark = pytest.mark.docker

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerEngine]:
    try:
        e = DockerEngine()
        e.start()
    except PartUnavailable as exc:
        unavailable(exc.reason)
    yield e
    e.cleanup()


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    try:
        r = Registry()
        r.start()
    except PartUnavailable as exc:
        unavailable(exc.reason)
    yield r
    r.cleanup()


@pytest.fixture
def docker_env(engine: DockerEngine) -> dict[str, str]:
    """What `cacher` needs to reach the private engine (and not the user's docker config)."""
    return {"DOCKER_HOST": engine.host, "DOCKER_CONFIG": engine.env["DOCKER_CONFIG"]}


@pytest.fixture
def dk(cacher, docker_env: dict[str, str]) -> Callable[..., Run]:  # type: ignore[no-untyped-def]
    """`cacher docker ARGS...` against the private engine."""

    def run(*args: str, extra_env: dict[str, str] | None = None, timeout: float = 120) -> Run:
        return cacher("docker", *args, extra_env={**docker_env, **(extra_env or {})}, timeout=timeout)

    return run


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """An image repository unique to the test, so tests never see each other's images."""
    return "t/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")


def make_image(engine: DockerEngine, ref: str, size: int = 0) -> str:
    """A scratch image holding one small file and, with ``size``, that many random bytes."""
    files = {"hello.txt": ref.encode()}
    if size:
        files["blob.bin"] = os.urandom(size)
    return build_scratch_image(engine, ref, files, method="import")


def stored(local_root: Path) -> list[str]:
    """Every file under the store's root (objects and any leftover temporaries)."""
    if not local_root.exists():
        return []
    return sorted(str(p.relative_to(local_root)) for p in local_root.rglob("*") if p.is_file())


def wrapper(tmp_path: Path, engine: DockerEngine, body: str) -> Path:
    """A shell script standing in for the docker CLI; ``$REAL`` is the real one."""
    path = tmp_path / "docker-wrapper"
    path.write_text(f'#!/bin/sh\nREAL={engine.docker_cli}\nPIDS={tmp_path}/pids\n{body}\nexec "$REAL" "$@"\n')
    path.chmod(0o755)
    return path


def gone(pid: int) -> bool:
    """The process was killed: it no longer exists, or is a zombie waiting for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def recorded_pids(tmp_path: Path) -> list[int]:
    pids = tmp_path / "pids"
    return [int(line) for line in pids.read_text().split()] if pids.exists() else []


# -- the happy paths ---------------------------------------------------------------------------


def test_round_trip_keeps_the_image_id(dk, engine: DockerEngine, name: str, local_root: Path) -> None:
    ref = f"{name}:1"
    image_id = build_scratch_image(engine, ref, {"app/hello.txt": b"hello\n"}, labels={"k": "v"})
    run = dk("upload", "img/app.tar.zst", ref)
    assert run.code == 0, run
    assert (local_root / "img/app.tar.zst").read_bytes().startswith(ZSTD_MAGIC)
    run = dk("upload", "img/app.tar.zst", ref)
    assert run.code == 0 and "skipped" in run.err, run

    engine.docker("rmi", ref)
    assert engine.image_id(ref) is None
    run = dk("download", "img/app.tar.zst", ref)
    assert run.code == 0, run
    assert "hit" in run.err
    assert engine.image_id(ref) == image_id


def test_the_object_is_plain_docker_save_in_zstd(
    dk, engine: DockerEngine, name: str, local_root: Path
) -> None:
    ref = f"{name}:1"
    make_image(engine, ref)
    assert dk("upload", "plain.tar.zst", ref).code == 0
    plain = (
        zstandard.ZstdDecompressor().decompressobj().decompress((local_root / "plain.tar.zst").read_bytes())
    )
    assert plain == engine.docker("save", ref).stdout  # docker save is deterministic here


def test_loads_what_docker_save_and_the_zstd_cli_wrote(
    dk, engine: DockerEngine, name: str, local_root: Path, tmp_path: Path
) -> None:
    try:
        zstd = find_tool("zstd")
    except PartUnavailable as exc:
        unavailable(exc.reason)
    ref = f"{name}:1"
    image_id = make_image(engine, ref)
    local_root.mkdir(parents=True)
    saved = engine.docker("save", ref).stdout
    (local_root / "by-hand.tar.zst").write_bytes(
        subprocess.run([zstd, "-q", "-c"], input=saved, capture_output=True, check=True).stdout
    )
    engine.docker("rmi", ref)
    run = dk("download", "by-hand.tar.zst", ref)
    assert run.code == 0, run
    assert engine.image_id(ref) == image_id


def test_two_images_in_one_key(dk, engine: DockerEngine, name: str) -> None:
    refs = [f"{name}-a:1", f"{name}-b:2"]
    ids = [make_image(engine, ref) for ref in refs]
    run = dk("upload", "two.tar.zst", *refs)
    assert run.code == 0, run
    engine.docker("rmi", *refs)
    run = dk("download", "two.tar.zst")
    assert run.code == 0, run
    assert [engine.image_id(ref) for ref in refs] == ids


def test_exists(dk, engine: DockerEngine, name: str) -> None:
    run = dk("exists", "e.tar.zst")
    assert run.code == 1, run
    make_image(engine, f"{name}:1")
    assert dk("upload", "e.tar.zst", f"{name}:1").code == 0
    run = dk("exists", "e.tar.zst")
    assert run.code == 0, run


def test_download_miss_exits_3_and_loads_nothing(
    dk, engine: DockerEngine, name: str, local_root: Path
) -> None:
    before = engine.image_ids()
    run = dk("download", "missing.tar.zst", f"{name}:1")
    assert run.code == 3, run
    assert "cacher: docker miss, nothing under missing.tar.zst in file://" in run.err, run
    assert "error" not in run.err, run
    assert engine.image_ids() == before
    assert stored(local_root) == []


def test_pull_on_a_miss_stores_the_image_and_then_hits(
    dk, engine: DockerEngine, registry: Registry, name: str, local_root: Path
) -> None:
    ref = f"{registry.address}/{name}:1"
    image_id = build_scratch_image(engine, ref, {"pulled.txt": b"from the registry"})
    engine.docker("push", ref)
    engine.docker("rmi", ref)
    assert engine.image_id(ref) is None

    run = dk("download", "pulled.tar.zst", ref, "--pull")
    assert run.code == 0, run
    assert "miss, made and stored" in run.err
    assert engine.image_id(ref) == image_id
    assert stored(local_root) == ["pulled.tar.zst"]

    def registry_requests() -> int:
        return registry.log_path.read_text(errors="replace").count(f"/v2/{name}/")

    asked = registry_requests()
    assert asked > 0  # the pull above went to the registry
    engine.docker("rmi", ref)
    run = dk("download", "pulled.tar.zst", ref, "--pull")
    assert run.code == 0, run
    assert "hit" in run.err
    assert engine.image_id(ref) == image_id
    time.sleep(0.2)  # let the registry flush its access log, were there anything to log
    assert registry_requests() == asked


def test_pull_of_an_image_the_registry_lacks(
    dk, engine: DockerEngine, registry: Registry, name: str, local_root: Path
) -> None:
    ref = f"{registry.address}/{name}:nope"
    run = dk("download", "nope.tar.zst", ref, "--pull")
    assert_one_error_line(run, "docker pull", "not found")
    assert run.code == 2
    assert engine.image_id(ref) is None
    assert stored(local_root) == []


def test_pull_needs_an_image(dk, local_root: Path) -> None:
    run = dk("download", "k.tar.zst", "--pull")
    assert_one_error_line(run, "--pull needs IMAGE")
    assert stored(local_root) == []


# -- nothing bad published ---------------------------------------------------------------------


def test_upload_of_a_missing_image_stores_nothing(dk, name: str, local_root: Path) -> None:
    run = dk("upload", "gone.tar.zst", f"{name}:absent")
    assert_one_error_line(run, "docker save", "reference does not exist")
    assert stored(local_root) == []


@pytest.mark.parametrize("code", [1, 0])
def test_docker_save_failing_mid_stream_stores_nothing(
    dk, engine: DockerEngine, name: str, local_root: Path, tmp_path: Path, code: int
) -> None:
    # Fault injection around the real CLI: `save` runs the real `docker save` but forwards only
    # its first MiB, then exits `code`, as an engine dying mid-stream would. With exit 0 only
    # the kind's own check (a tar archive ends with two zero blocks) can notice.
    ref = f"{name}:1"
    make_image(engine, ref, 3 << 20)
    cli = wrapper(
        tmp_path, engine, f'if [ "$1" = save ]; then "$REAL" "$@" | head -c 1048576; exit {code}; fi'
    )
    run = dk("upload", "cut.tar.zst", ref, "--docker-cli", str(cli))
    assert_one_error_line(run, "docker-wrapper save")
    assert ("exit status 1" if code else "incomplete tar archive") in run.err
    assert stored(local_root) == []


@pytest.mark.parametrize("damage", ["checksum-cut", "half", "flipped-byte", "cut-trailing-frame"])
def test_damaged_object_is_not_loaded(
    dk, engine: DockerEngine, name: str, local_root: Path, tmp_path: Path, damage: str
) -> None:
    ref = f"{name}:1"
    make_image(engine, ref, 3 << 20)  # several 1 MiB chunks: docker load is fed before the end
    assert dk("upload", "bad.tar.zst", ref).code == 0
    obj = local_root / "bad.tar.zst"
    data = bytearray(obj.read_bytes())
    if damage == "checksum-cut":
        data = data[:-4]
    elif damage == "cut-trailing-frame":
        # The worst case: the whole archive, end blocks included, decodes cleanly and reaches
        # docker load; only a second frame after it (zeros, as trailing tar padding) is cut.
        # Closing docker load's stdin here instead of killing it would load the image.
        extra = zstandard.ZstdCompressor(write_checksum=True).compress(bytes(8 << 20))
        data += extra[: len(extra) // 2]
    elif damage == "half":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    obj.write_bytes(bytes(data))
    engine.docker("rmi", ref)
    before = engine.image_ids()

    cli = wrapper(tmp_path, engine, 'echo $$ >> "$PIDS"')  # records the docker load pid
    run = dk("download", "bad.tar.zst", ref, "--docker-cli", str(cli))
    assert_one_error_line(run)
    assert re.search("truncated|corrupt|checksum", run.err), run
    assert engine.image_id(ref) is None
    assert engine.image_ids() == before
    assert all(gone(pid) for pid in recorded_pids(tmp_path))


def test_docker_load_failure_reports_dockers_message(dk, engine: DockerEngine, local_root: Path) -> None:
    local_root.mkdir(parents=True)
    garbage = zstandard.ZstdCompressor(write_checksum=True).compress(b"this is not a tar archive\n" * 100)
    (local_root / "garbage.tar.zst").write_bytes(garbage)
    before = engine.image_ids()
    run = dk("download", "garbage.tar.zst")
    assert_one_error_line(run, "docker load failed", "tar")
    assert engine.image_ids() == before
    assert (local_root / "garbage.tar.zst").read_bytes() == garbage


def test_an_image_the_archive_does_not_hold_is_refused_and_nothing_is_loaded(
    dk, engine: DockerEngine, name: str, local_root: Path
) -> None:
    # The object holds {name}-a:1; the engine then holds another image under that tag and its
    # own {name}-b:1. Asking for either other image must load nothing: the archive's {name}-a:1
    # would replace the engine's, and the engine's own {name}-b:1 would pass for a hit.
    held, own = f"{name}-a:1", f"{name}-b:1"
    make_image(engine, held)
    assert dk("upload", "other.tar.zst", held).code == 0
    engine.docker("rmi", held)
    local_held = build_scratch_image(engine, held, {"local.txt": b"the engine's own"}, method="import")
    own_id = make_image(engine, own)
    before = engine.image_ids()
    for asked in (own, f"{name}-c:1", f"docker.io/library/{name}-a:1"):
        run = dk("download", "other.tar.zst", asked)
        assert_one_error_line(run, f"does not hold {asked}", held)
        assert "hit" not in run.err, run
        assert engine.image_ids() == before, asked
        assert engine.image_id(held) == local_held, asked
        assert engine.image_id(own) == own_id, asked
    assert engine.image_id(f"{name}-c:1") is None
    assert stored(local_root) == ["other.tar.zst"]


def test_the_recorded_images_refuse_before_the_object_is_read(
    dk, engine: DockerEngine, name: str, local_root: Path, tmp_path: Path
) -> None:
    # The object records the images it was saved from and their IDs: a restore of another
    # image is refused before a byte is read (docker is not even started).
    held, own = f"{name}-a:1", f"{name}-b:1"
    held_id = make_image(engine, held)
    own_id = make_image(engine, own)
    assert dk("upload", "rec.tar.zst", held).code == 0
    assert (
        os.getxattr(local_root / "rec.tar.zst", "user.cacher-docker-images")
        == f"{held}={held_id[7:]}".encode()
    )
    cli = wrapper(tmp_path, engine, 'echo $$ >> "$PIDS"')
    run = dk("download", "rec.tar.zst", own, "--docker-cli", str(cli))
    assert_one_error_line(run, f"does not hold {own}", f"saved from {held}")
    assert recorded_pids(tmp_path) == []
    assert engine.image_id(own) == own_id
    # A repository saved without a tag holds all its tags: the record does not refuse them.
    engine.docker("tag", held_id, f"{name}-a:latest")
    engine.docker("tag", held_id, f"{name}-a:2")
    assert dk("upload", "repo.tar.zst", f"{name}-a").code == 0
    engine.docker("rmi", held, f"{name}-a:2", f"{name}-a:latest")
    run = dk("download", "repo.tar.zst", f"{name}-a:2")
    assert run.code == 0 and "hit" in run.err, run
    assert engine.image_id(f"{name}-a:2") == held_id


def test_the_record_on_s3(dk, engine: DockerEngine, name: str, seaweed_s3: Any, s3_bucket: str) -> None:
    # On S3 the record is user metadata (x-amz-meta-cacher-docker-images), set when the upload
    # starts; a download of another image is refused from the HEAD alone.
    s3 = {
        "CACHER_ENDPOINT": seaweed_s3.endpoint,
        "CACHER_BUCKET": s3_bucket,
        "CACHER_S3_KEY_ID": seaweed_s3.key_id,
        "CACHER_S3_SECRET": seaweed_s3.secret,
        "CACHER_REGION": "us-east-1",
    }
    held, other = f"{name}-a:1", f"{name}-b:1"
    held_id = make_image(engine, held)
    assert dk("upload", "s3.tar.zst", held, extra_env=s3).code == 0
    head = seaweed_s3.client().head_object(Bucket=s3_bucket, Key="s3.tar.zst")
    assert head["Metadata"]["cacher-docker-images"] == f"{held}={held_id[7:]}"
    run = dk("download", "s3.tar.zst", other, extra_env=s3)
    assert_one_error_line(run, f"does not hold {other}", f"saved from {held}")
    engine.docker("rmi", held)
    run = dk("download", "s3.tar.zst", held, extra_env=s3)
    assert run.code == 0 and "hit" in run.err, run
    assert engine.image_id(held) == held_id


def test_ensure_of_an_image_the_archive_does_not_hold_builds_it(
    cacher, docker_env: dict[str, str], engine: DockerEngine, name: str
) -> None:
    held, wanted = f"{name}-a:1", f"{name}-b:1"
    held_id = make_image(engine, held)
    assert cacher("docker", "upload", "e.tar.zst", held, extra_env=docker_env).code == 0
    engine.docker("rmi", held)
    wanted_id = make_image(engine, f"{name}-src:1")
    build = [engine.docker_cli, "tag", wanted_id, wanted]
    run = cacher("docker", "ensure", "e.tar.zst", wanted, "--", *build, extra_env=docker_env)
    assert run.code == 0, run
    assert "refused" in run.err, run
    assert engine.image_id(wanted) == wanted_id
    assert engine.image_id(held) is None  # the refused archive was not loaded
    engine.docker("rmi", wanted)
    run = cacher("docker", "download", "e.tar.zst", wanted, extra_env=docker_env)
    assert run.code == 0 and "hit" in run.err, run
    assert engine.image_id(wanted) == wanted_id
    assert held_id != wanted_id


@pytest.mark.parametrize(
    "image",
    [
        "bad image name!!",
        "t/Upper:1",
        "t/x:1:2",
        "t/x:",
        "t/x@sha256:abc",
        "t//x",
        "t/x:" + "a" * 129,
        "t/x:1\nevil",
        "UPPER:1",
    ],
)
def test_an_invalid_image_reference_is_a_usage_error_before_any_io(
    dk, engine: DockerEngine, name: str, local_root: Path, tmp_path: Path, image: str
) -> None:
    run = dk("download", "absent.tar.zst", image)  # a miss were the store asked first
    assert_one_error_line(run, "not a valid image reference")
    make_image(engine, f"{name}:1")
    assert dk("upload", "present.tar.zst", f"{name}:1").code == 0
    before = engine.image_ids()
    cli = wrapper(tmp_path, engine, 'echo $$ >> "$PIDS"')
    for args in (("download", "present.tar.zst", image), ("upload", "new.tar.zst", image)):
        run = dk(*args, "--docker-cli", str(cli))
        assert_one_error_line(run, "not a valid image reference")
    assert recorded_pids(tmp_path) == []  # docker was never started
    assert engine.image_ids() == before
    assert stored(local_root) == ["present.tar.zst"]


def test_the_names_an_image_goes_by_are_held(dk, engine: DockerEngine, name: str) -> None:
    ref = f"{name}:latest"
    image_id = make_image(engine, ref)
    assert dk("upload", "forms.tar.zst", ref).code == 0
    for asked in (ref, name, f"docker.io/{name}:latest", f"index.docker.io/{name}", image_id, image_id[7:19]):
        engine.docker("rmi", ref)
        run = dk("download", "forms.tar.zst", asked)
        assert run.code == 0 and "hit" in run.err, (asked, run)
        assert engine.image_id(ref) == image_id, asked


def test_the_loaded_image_id_is_checked(dk, engine: DockerEngine, name: str, tmp_path: Path) -> None:
    # Between the load and the check, something else tags another image with the same name:
    # the image under IMAGE is not the one the archive held, and the restore says so.
    ref = f"{name}:1"
    image_id = make_image(engine, ref)
    intruder = make_image(engine, f"{name}-intruder:1")
    assert dk("upload", "id.tar.zst", ref).code == 0
    engine.docker("rmi", ref)
    cli = wrapper(
        tmp_path, engine, f'if [ "$1" = load ]; then "$REAL" "$@" && "$REAL" tag {intruder} {ref}; exit; fi'
    )
    run = dk("download", "id.tar.zst", ref, "--docker-cli", str(cli))
    assert_one_error_line(run, ref, intruder, image_id)
    assert engine.image_id(ref) == intruder


def repack(saved: bytes, fmt: int, edit: Callable[[list[tuple[tarfile.TarInfo, bytes]]], None]) -> bytes:
    """``docker save`` output written again by Python's tarfile in ``fmt``, members edited first."""
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
        for info in tar.getmembers():
            data = tar.extractfile(info).read() if info.isfile() else b""  # type: ignore[union-attr]
            members.append((info, data))
    edit(members)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return out.getvalue()


def put_object(local_root: Path, key: str, plain: bytes) -> None:
    local_root.mkdir(parents=True, exist_ok=True)
    (local_root / key).write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(plain))


def member(name: str, data: bytes = b"", *, link: str | None = None) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    if link is None:
        info.size = len(data)
    else:
        info.type, info.linkname = tarfile.SYMTYPE, link
    return info, data


@pytest.mark.parametrize("layout", ["pax", "gnu-long-names", "ustar-prefix"])
def test_archives_in_other_tar_layouts_are_followed(
    dk, engine: DockerEngine, name: str, local_root: Path, layout: str
) -> None:
    # The stream watch reads tar headers itself: PAX records (a path among them), GNU long
    # names and ustar's prefix field must not lose its place before the manifest.
    ref = f"{name}:1"
    image_id = make_image(engine, ref)
    saved = engine.docker("save", ref).stdout

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        for info, _ in members:
            info.pax_headers = {"comment": "x" * 700} if layout == "pax" else {}
        extra = "d" * 90 + "/" + "e" * 60 if layout == "ustar-prefix" else "n" * 150 + "/" + "m" * 150
        members.insert(len(members) - 2, member(extra, os.urandom(1500)))

    fmt = {"pax": tarfile.PAX_FORMAT, "gnu-long-names": tarfile.GNU_FORMAT}.get(layout, tarfile.USTAR_FORMAT)
    put_object(local_root, "laid-out.tar.zst", repack(saved, fmt, edit))
    engine.docker("rmi", ref)
    before = engine.image_ids()
    run = dk("download", "laid-out.tar.zst", f"{name}:2")
    assert_one_error_line(run, f"does not hold {name}:2", ref)
    assert engine.image_ids() == before
    run = dk("download", "laid-out.tar.zst", ref)
    assert run.code == 0 and "hit" in run.err, run
    assert engine.image_id(ref) == image_id


@pytest.mark.parametrize("craft", ["manifest-is-a-link", "config-renamed", "config-relinked", "no-manifest"])
def test_a_crafted_archive_is_refused_before_the_load(
    dk, engine: DockerEngine, name: str, local_root: Path, craft: str
) -> None:
    # Archives docker would load, but not as the image their manifest names: the engine's own
    # image under the name must stay as it was.
    ref = f"{name}:1"
    make_image(engine, ref)
    saved = engine.docker("save", ref).stdout
    engine.docker("rmi", ref)
    local_id = build_scratch_image(engine, ref, {"local.txt": b"the engine's own"}, method="import")
    before = engine.image_ids()

    def edit(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        names = [info.name for info, _ in members]
        at = names.index("manifest.json")
        manifest = members[at][1]
        config = json.loads(manifest)[0]["Config"]
        if craft == "manifest-is-a-link":
            members[at] = member("manifest.json", link="m.json")
            members.insert(at, member("m.json", manifest))
        elif craft == "config-renamed":  # docker would give the image another ID than its name says
            fake = "0" * 64 + ".json"
            members[names.index(config)][0].name = fake
            members[at] = member("manifest.json", manifest.replace(config.encode(), fake.encode()))
        elif craft == "config-relinked":  # a later member replaces the config with a link
            members.insert(at, member(config, link="elsewhere.json"))
        else:
            del members[at]

    put_object(local_root, "crafted.tar.zst", repack(saved, tarfile.PAX_FORMAT, edit))
    run = dk("download", "crafted.tar.zst", ref)
    assert_one_error_line(run, f"does not hold {ref}")
    assert engine.image_ids() == before
    assert engine.image_id(ref) == local_id


# -- the CLI to run ----------------------------------------------------------------------------


def test_missing_docker_cli_is_an_error(dk, engine: DockerEngine, name: str, local_root: Path) -> None:
    make_image(engine, f"{name}:1")
    run = dk("upload", "x.tar.zst", f"{name}:1", "--docker-cli", "/nonexistent/docker")
    assert_one_error_line(run, "/nonexistent/docker", "not found")
    run = dk("upload", "x.tar.zst", f"{name}:1", extra_env={"CACHER_DOCKER_CLI": "/nonexistent/podman"})
    assert_one_error_line(run, "/nonexistent/podman")
    assert stored(local_root) == []
    assert dk("upload", "x.tar.zst", f"{name}:1").code == 0
    engine.docker("rmi", f"{name}:1")
    run = dk("download", "x.tar.zst", f"{name}:1", "--docker-cli", "/nonexistent/docker")
    assert_one_error_line(run, "/nonexistent/docker")
    assert engine.image_id(f"{name}:1") is None


def test_cli_from_env_and_a_stderr_flood(dk, engine: DockerEngine, name: str, tmp_path: Path) -> None:
    # 1 MiB on stderr before the real CLI starts: more than a pipe holds, so a kind that read
    # stdout (or wrote stdin) without draining stderr would deadlock here.
    cli = wrapper(tmp_path, engine, 'echo $$ >> "$PIDS"; head -c 1048576 /dev/zero | tr "\\0" x >&2')
    ref = f"{name}:1"
    image_id = make_image(engine, ref, 2 << 20)
    env = {"CACHER_DOCKER_CLI": str(cli)}
    assert dk("upload", "flood.tar.zst", ref, extra_env=env, timeout=60).code == 0
    engine.docker("rmi", ref)
    assert dk("download", "flood.tar.zst", ref, extra_env=env, timeout=60).code == 0
    assert engine.image_id(ref) == image_id
    assert len(recorded_pids(tmp_path)) == 4  # inspect, save; load, inspect: all through $CACHER_DOCKER_CLI


# -- the conformance kit that every kind passes ---------------------------------------------------


class TestDockerKindContract(KindContract):
    """`cacher.testing.KindContract` in process, on the file and memory stores.

    The kind reaches the private engine through a --docker-cli wrapper that sets DOCKER_HOST,
    so this process's environment is left alone. A "target" is an image reference; a failed
    restore must leave the image that already had that reference untouched.
    """

    kind_name = "docker"
    key = "conformance/image.tar.zst"

    @pytest.fixture(params=["memory", "file"])
    def cacher_store(self, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
        if request.param == "memory":
            from fsspec.implementations.memory import MemoryFileSystem

            fs = MemoryFileSystem(global_store=False, skip_instance_cache=True)
            return Store(fs, f"/mem-{tmp_path.name}", "", protocol="memory")
        settings = config.load(
            {}, {"backend": "file", "bucket": str(tmp_path / "store")}, config_flag=os.devnull
        )
        return open_store(settings, {})

    @pytest.fixture(autouse=True)
    def _engine(self, engine: DockerEngine, docker_env: dict[str, str], tmp_path: Path) -> None:
        self.engine = engine
        self.cli = tmp_path / "docker-at-test-engine"
        exports = "".join(f"export {k}={v}\n" for k, v in docker_env.items())
        self.cli.write_text(f'#!/bin/sh\n{exports}exec {engine.docker_cli} "$@"\n')
        self.cli.chmod(0o755)
        self.repo = "conformance/" + re.sub(r"[^a-z0-9]+", "-", tmp_path.name.lower()).strip("-")

    def make_artifact(self, tmp_path: Path) -> list[str]:
        refs = [f"{self.repo}-a:1", f"{self.repo}-b:1"]
        make_image(self.engine, refs[0], 300_000)
        make_image(self.engine, refs[1])
        return refs

    def options(self, targets: Sequence[str]) -> Mapping[str, Any]:
        return {"docker_cli": str(self.cli)}

    def restore_target(self, tmp_path: Path, targets: Sequence[str]) -> str:
        """Remove the images, so that only a load can bring them back."""
        self.engine.docker("rmi", "-f", *targets)
        return targets[0]

    def snapshot(self, target: str | None) -> object:
        return self.engine.image_id(target) if target else None

    def deterministic_targets(self, targets: Sequence[str]) -> Sequence[str]:
        """One image: `docker save a b` lists its images in Go map order, which varies per run."""
        return targets[:1]

    def prepare_existing_target(self, target: str | None, targets: Sequence[str]) -> None:
        assert target is not None
        make_image(self.engine, target)  # another image already holds the reference


# -- interrupted -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "sig", "code"), [("save", signal.SIGINT, 130), ("load", signal.SIGTERM, 143)]
)
def test_interrupt_kills_the_docker_child(
    env: dict[str, str],
    docker_env: dict[str, str],
    engine: DockerEngine,
    name: str,
    local_root: Path,
    tmp_path: Path,
    verb: str,
    sig: signal.Signals,
    code: int,
) -> None:
    ref = f"{name}:1"
    make_image(engine, ref, 3 << 20)
    full_env = {**env, **docker_env}
    if verb == "load":
        assert subprocess.run([CACHER, "docker", "upload", "i.tar.zst", ref], env=full_env).returncode == 0
        engine.docker("rmi", ref)
    # A stuck engine behind a CLI shim: the shim starts a child that writes a little (save) or
    # reads nothing (load) and hangs; both pids are recorded. Killing only the shim would
    # leave its child running.
    cli = wrapper(
        tmp_path,
        engine,
        f'if [ "$1" = {verb} ]; then echo $$ >> "$PIDS"; head -c 4096 /dev/zero;'
        ' sleep 60 & echo $! >> "$PIDS"; wait; exit 1; fi',
    )
    argv = [CACHER, "docker", "upload" if verb == "save" else "download", "i.tar.zst", ref]
    proc = subprocess.Popen(
        [*argv, "--docker-cli", str(cli)], env=full_env, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while len(recorded_pids(tmp_path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let cacher block on the pipe
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err
    pids = recorded_pids(tmp_path)
    assert len(pids) == 2 and all(gone(pid) for pid in pids), pids
    if verb == "save":
        assert stored(local_root) == []
    else:
        assert engine.image_id(ref) is None


# -- bounded memory ----------------------------------------------------------------------------


IMAGE_SIZE = 64 << 20
RSS_LIMIT_MIB = 64  # cacher idles at about 32 MiB here; holding the image would need 64 more


def zeros_image(engine: DockerEngine, ref: str, tmp_path: Path) -> None:
    """A one-layer image of IMAGE_SIZE zero bytes, imported from a tar streamed off disk."""
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar, open("/dev/zero", "rb") as zeros:
        info = tarfile.TarInfo("zeros.bin")
        info.size = IMAGE_SIZE
        tar.addfile(info, zeros)
    engine.docker("import", str(layer), ref)
    layer.unlink()


def peak_rss_mib(argv: list[str], env: dict[str, str]) -> float:
    """VmHWM (the kernel's peak RSS of this one process) of a command, sampled until it exits."""
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            break
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        peak = max(peak, int(found.group(1)) if found else 0)
        time.sleep(0.02)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    return peak / 1024


def test_memory_does_not_grow_with_the_image(
    env: dict[str, str], docker_env: dict[str, str], engine: DockerEngine, name: str, tmp_path: Path
) -> None:
    """The kind streams both ways: cacher's peak RSS stays far below the image's size.

    The key ends in .tar (no codec) so that only the kind and the store are measured.
    """
    ref = f"{name}:1"
    zeros_image(engine, ref, tmp_path)
    full_env = {**env, **docker_env}
    up = peak_rss_mib([CACHER, "docker", "upload", "big.tar", ref], full_env)
    engine.docker("rmi", ref)
    down = peak_rss_mib([CACHER, "docker", "download", "big.tar", ref], full_env)
    assert engine.image_id(ref) is not None
    assert up < RSS_LIMIT_MIB and down < RSS_LIMIT_MIB, (up, down)


def test_zstd_download_memory_does_not_grow_with_the_image(
    env: dict[str, str], docker_env: dict[str, str], engine: DockerEngine, name: str, tmp_path: Path
) -> None:
    ref = f"{name}:1"
    zeros_image(engine, ref, tmp_path)
    full_env = {**env, **docker_env}
    assert subprocess.run([CACHER, "docker", "upload", "big.tar.zst", ref], env=full_env).returncode == 0
    engine.docker("rmi", ref)
    down = peak_rss_mib([CACHER, "docker", "download", "big.tar.zst", ref], full_env)
    assert engine.image_id(ref) is not None
    assert down < RSS_LIMIT_MIB, down
