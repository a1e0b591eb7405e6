"""Turning a bundle back into a repository, all or nothing.

Two cases, chosen by what DEST is:

- **new** (DEST absent or an empty directory): ``git init`` in a staging directory beside DEST,
  fetch every ref of the bundle under its own name (``+refs/*:refs/*``), point HEAD as REPO's
  was, check out, then swap the staging directory into place. The result has REPO's refs
  exactly, remote-tracking ones included, which is what a later ``git fetch`` negotiates from.
  (Not ``git clone``: it renames ``refs/heads/*`` to ``refs/remotes/origin/*``, drops REPO's
  own ``refs/remotes/*`` and records the temporary bundle as origin.)
- **existing** (DEST is a repository): DEST's branches, HEAD and work tree are the user's, so
  nothing of theirs moves. The bundle's refs land under ``refs/bundles/`` (the namespace git's
  own bundle-URI feature uses), where ``git fetch`` sees them as things it already has. The
  fetch is ``--atomic``: all those refs move, or none. Its objects may stay behind on a failed
  update, unreferenced, for ``git gc`` to drop; every ref, the index and the work tree are as
  they were.
"""

from __future__ import annotations

import enum
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from cacher.plugin import ArtifactError, UsageError, staged_directory

from cacher_git import _git

CHUNK = 1 << 20
BUNDLE_REFS = "refs/bundles/"
# Fetching from a bundle must never reach out: no submodule fetches, no background gc left
# running in DEST after cacher has returned.
_FETCH = ["fetch", "--quiet", "--no-write-fetch-head", "--no-tags", "--no-recurse-submodules", "--no-auto-gc"]


class DestState(enum.Enum):
    """What a download will do with DEST."""

    NEW = "new"
    EXISTING = "existing"


def dest_state(dest: Path) -> DestState:
    """NEW for an absent or empty directory, EXISTING for a repository; UsageError otherwise."""
    if not dest.exists():
        return DestState.NEW
    if not dest.is_dir():
        raise UsageError(f"cannot restore into {dest}: it exists and is not a directory")
    if not any(dest.iterdir()):
        return DestState.NEW
    ok, why = _git.repository_at(dest)
    if not ok:
        raise UsageError(
            f"cannot restore into {dest}: it is neither empty nor a git repository ({why})",
            hint="give a new directory, or an existing clone to update",
        )
    return DestState.EXISTING


def restore(source: BinaryIO, dest: Path, remote: str | None) -> None:
    """Read the whole bundle from ``source``, verify it, then create or update DEST from it."""
    dest = Path(os.path.abspath(dest))
    state = dest_state(dest)
    with _spooled(source, dest) as bundle:
        if state is DestState.EXISTING:
            _update(dest, bundle, remote)
            return
        with staged_directory(dest) as staging:
            _create(staging, bundle, remote)


@contextmanager
def _spooled(source: BinaryIO, dest: Path) -> Iterator[Path]:
    """The whole stream in a temporary bundle file beside DEST, removed afterwards.

    The one temporary file the plugin writes, and on purpose: git only reads a bundle by
    path (``git fetch`` and ``git bundle verify`` open and seek it), never from a pipe. It
    is read to the end here, before git sees any of it, so that the codec's checksum and
    truncation checks have passed before DEST can change.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.cacher-", suffix=".bundle", dir=dest.parent)
    except OSError as exc:
        raise ArtifactError(f"cannot write a temporary bundle beside {dest}: {exc.strerror}") from None
    path = Path(name)
    try:
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
        except OSError as exc:
            raise ArtifactError(f"cannot write the temporary bundle {path}: {exc.strerror}") from None
        yield path
    finally:
        path.unlink(missing_ok=True)


def _heads(repo: Path, bundle: Path) -> dict[str, str]:
    """The bundle's refs, ``{name: object id}``, after checking it is a bundle git can use."""
    _git.run(["-C", str(repo), "bundle", "verify", "--quiet", str(bundle)], what="git bundle verify")
    out = _git.run(["-C", str(repo), "bundle", "list-heads", str(bundle)], what="git bundle list-heads")
    heads: dict[str, str] = {}
    for line in out.splitlines():
        oid, _, name = line.partition(" ")
        if name:
            heads[name] = oid
    return heads


def _create(repo: Path, bundle: Path, remote: str | None) -> None:
    """Make the empty directory ``repo`` a copy of the bundle's repository, checked out."""
    _git.run(["init", "--quiet", str(repo)], what="git init")
    # The staging directory is private (0700); give the clone the mode git gave its .git.
    repo.chmod(stat.S_IMODE((repo / ".git").stat().st_mode))
    heads = _heads(repo, bundle)
    # HEAD (no destination) makes sure a detached HEAD's commit comes along, even with no ref.
    specs = ["+refs/*:refs/*", *(["HEAD"] if "HEAD" in heads else [])]
    _git.run(
        ["-C", str(repo), *_FETCH, "--update-head-ok", str(bundle), *specs], what="git fetch from the bundle"
    )
    branch = _point_head(repo, heads)
    _point_remote_heads(repo, heads, branch)
    ok, _ = _git.probe(["-C", str(repo), "rev-parse", "--quiet", "--verify", "HEAD^{commit}"])
    if ok:
        _git.run(["-C", str(repo), "reset", "--quiet", "--hard"], what="git reset --hard (checkout)")
    if remote:
        _set_origin(repo, remote)


def _point_head(repo: Path, heads: dict[str, str]) -> str | None:
    """Point HEAD as REPO's was; return its branch, or None when detached.

    A bundle records HEAD as an object id only. Like ``git clone``, take the branch at that
    commit, preferring the branch ``git init`` named (init.defaultBranch); with none, detach.
    """
    ok, current = _git.probe(["-C", str(repo), "symbolic-ref", "--quiet", "HEAD"])
    current = current.strip() if ok else ""
    head = heads.get("HEAD")
    if head is None:
        return current or None
    candidates = sorted(n for n, oid in heads.items() if n.startswith("refs/heads/") and oid == head)
    if current in candidates:
        return current
    if candidates:
        _git.run(["-C", str(repo), "symbolic-ref", "HEAD", candidates[0]], what="git symbolic-ref HEAD")
        return candidates[0]
    _git.run(["-C", str(repo), "update-ref", "--no-deref", "HEAD", head], what="git update-ref HEAD")
    return None


def _point_remote_heads(repo: Path, heads: dict[str, str], branch: str | None) -> None:
    """Turn ``refs/remotes/R/HEAD`` back into the symbolic ref it was in REPO.

    A bundle stores it resolved; left as a plain ref it would never move again (``git fetch``
    does not update it), and ``origin`` would name an old commit forever.
    """
    local = branch.removeprefix("refs/heads/") if branch else ""
    for name, oid in heads.items():
        if not (name.startswith("refs/remotes/") and name.endswith("/HEAD")):
            continue
        prefix = name[: -len("HEAD")]
        same = sorted(n for n, o in heads.items() if n.startswith(prefix) and n != name and o == oid)
        if not same:
            continue
        target = f"{prefix}{local}" if f"{prefix}{local}" in same else same[0]
        _git.run(["-C", str(repo), "symbolic-ref", name, target], what=f"git symbolic-ref {name}")


def _update(repo: Path, bundle: Path, remote: str | None) -> None:
    """Fetch the bundle's refs into ``refs/bundles/`` of an existing repository, atomically."""
    heads = _heads(repo, bundle)
    # ``^refs/bundles/*``: a REPO that was itself updated from a bundle must not nest them.
    specs = [f"+refs/*:{BUNDLE_REFS}*", f"^{BUNDLE_REFS}*"]
    if "HEAD" in heads:
        specs.append(f"+HEAD:{BUNDLE_REFS}HEAD")
    _git.run(
        ["-C", str(repo), *_FETCH, "--atomic", "--prune", str(bundle), *specs],
        what=f"git fetch from the bundle into {repo}",
    )
    if remote:
        _set_origin(repo, remote)


def _set_origin(repo: Path, url: str) -> None:
    has_origin, _ = _git.probe(["-C", str(repo), "remote", "get-url", "origin"])
    verb = "set-url" if has_origin else "add"
    _git.run(["-C", str(repo), "remote", verb, "origin", url], what=f"git remote {verb} origin")
