"""Directory restores that replace the target whole or not at all.

A kind builds the new tree in a staging directory beside the target (same filesystem), then
`swap_into_place` renames it over the target. On any failure the staging directory is removed
and the target is exactly as it was.

Before anything is touched the target is resolved (a symlink to a directory restores into the
directory it names; the link stays) and refused when replacing it would destroy what is not a
cache: an empty path, ``/``, HOME or the current directory, or anything containing them.
Restores of one directory take turns on an ``flock`` of a file in cacher's runtime directory
(nothing is written beside the target), and each staging directory is ``flock``ed by its
owner, so a restore removes the staging and old trees that a killed restore left behind.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cacher.config import runtime_dir
from cacher.errors import ArtifactError, ConfigError, UsageError
from cacher.fs import locks
from cacher.fs.ownership import Untrusted, distrust, private_dir
from cacher.fs.removal import remove_tree

STAGING_MARK = ".cacher-staging-"
OLD_MARK = ".cacher-old-"


def force_rmtree(path: Path) -> None:
    """Remove a tree even where it is read-only (Go's module cache is 0555/0444), of mode
    0000 or deeper than Python's recursion limit (`cacher.fs.removal`)."""
    remove_tree(path)


#: Directories cacher itself keeps (the file store's root, the local tier), registered by the
#: command that uses them: a restore must never replace one of them or a directory holding one.
_KEPT: dict[Path, str] = {}


def keep_out(path: str | os.PathLike[str], what: str) -> None:
    """Refuse restores into ``path`` or any directory that contains it (``what`` names it).
    Two such directories stay apart: `ConfigError` when ``path`` is, lies inside or holds
    another (a local tier inside the file store would show its files as objects)."""
    resolved = Path(os.path.realpath(path))
    for kept, other in _KEPT.items():
        if other != what and (resolved.is_relative_to(kept) or kept.is_relative_to(resolved)):
            raise ConfigError(
                f"{what} ({resolved}) and {other} ({kept}) overlap: each needs a directory of its own"
            )
    _KEPT[resolved] = what


def _kept_conflict(resolved: Path, *, replaces_tree: bool) -> str | None:
    """How ``resolved`` meets a directory cacher keeps: it is one, is inside one, or (for a
    restore that replaces a whole tree) contains one; None when it meets none."""
    for path, what in _KEPT.items():
        if resolved == path:
            return f"it is {what}"
        if resolved.is_relative_to(path):
            return f"it is inside {what} ({path})"
        if replaces_tree and path.is_relative_to(resolved):
            return f"it contains {what}"
    return None


def check_upload_tree(target: str | os.PathLike[str]) -> Path:
    """The directory a tree upload would pack, or `UsageError` when it is ``/`` or HOME or an
    ancestor of HOME: a slip (``"$UNSET/"``, ``~/$UNSET``) that would pack the whole machine or
    the user's credentials (``~/.ssh``, ``~/.aws``) into a shared cache. The current directory
    may be packed (a restore names another place)."""
    raw = os.fspath(target)
    resolved = Path(os.path.realpath(raw))
    shown = repr(raw) if raw == str(resolved) else f"{raw!r} ({resolved})"
    home_text = os.path.expanduser("~")
    home = Path(os.path.realpath(home_text)) if home_text not in ("", "~") else None
    why = None
    if resolved == Path(resolved.anchor):
        why = "it is the root directory"
    elif home is not None and home.is_relative_to(resolved):
        why = "it is the home directory" if home == resolved else "it contains the home directory"
    if why is not None:
        raise UsageError(
            f"refusing to upload {shown}: {why}, which holds far more than a cache (and credentials)",
            hint="name the directory that holds only the cache; is a variable in the path unset?",
        )
    return resolved


def check_restore_target(target: str | os.PathLike[str]) -> Path:
    """The directory a restore into ``target`` would replace, or `UsageError` if it must not.

    The path is resolved (its final symlink included), then refused when it is empty, ``/``,
    HOME or an ancestor of HOME, the current directory or one of its ancestors, or the
    directory of cacher's own store or local tier, a directory inside one or holding one
    (`keep_out`).
    """
    raw = os.fspath(target)
    if not raw.strip():
        raise UsageError(
            "refusing to restore into an empty path: the directory would be the current one",
            hint="is the variable naming the directory unset?",
        )
    resolved = Path(os.path.realpath(raw))
    shown = repr(raw) if raw == str(resolved) else f"{raw!r} ({resolved})"

    def refuse(why: str) -> UsageError:
        return UsageError(
            f"refusing to restore into {shown}: {why}, and a restore replaces the whole directory",
            hint="name a directory that holds only the cache",
        )

    if resolved == Path(resolved.anchor):
        raise refuse("it is the root directory")
    try:
        cwd: Path | None = Path(os.path.realpath(os.getcwd()))
    except OSError:
        cwd = None
    home = os.path.expanduser("~")
    protected = [("the current directory", cwd)]
    if home not in ("", "~"):
        protected.append(("the home directory", Path(os.path.realpath(home))))
    for what, path in protected:
        if path is not None and path.is_relative_to(resolved):
            raise refuse(f"it is {what}" if path == resolved else f"it contains {what}")
    why = _kept_conflict(resolved, replaces_tree=True)
    if why is not None:
        raise refuse(why)
    return resolved


def check_restore_file(dest: str | os.PathLike[str]) -> Path:
    """Where a file restored to ``dest`` lands (its directory resolved, its own name kept: a
    link there is replaced, not followed), or `UsageError` when that is cacher's own store or
    local tier, or inside one (a download there would overwrite a cached object)."""
    raw = os.fspath(dest)
    if not raw.strip():
        raise UsageError(
            "refusing to restore into an empty path: it names no file",
            hint="is the variable naming the file unset?",
        )
    path = Path(raw)
    landing = Path(os.path.realpath(path.parent)) / path.name
    why = _kept_conflict(landing, replaces_tree=False)
    if why is None and os.path.isdir(landing):
        why = _kept_conflict(Path(os.path.realpath(landing)), replaces_tree=True)
    if why is not None:
        shown = repr(raw) if raw == str(landing) else f"{raw!r} ({landing})"
        raise UsageError(
            f"refusing to restore into {shown}: {why}",
            hint="name a path outside cacher's own directories",
        )
    return landing


def lock_path(target: Path) -> Path:
    """The lock file that restores of ``target`` (a resolved path) take turns on."""
    digest = hashlib.sha256(os.fsencode(target)).hexdigest()
    return runtime_dir(os.environ) / "locks" / f"{digest}.lock"


@contextmanager
def restore_lock(target: Path) -> Iterator[None]:
    """Hold the exclusive lock of restores into ``target`` (a resolved path); a wait is
    bounded and told (`cacher.fs.locks.hold`)."""
    path = lock_path(target)
    try:
        base = path.parent.parent
        private_dir(base)
        private_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except Untrusted as exc:
        raise ArtifactError(f"cannot use {base} for restore locks: {exc.message}") from None
    except OSError as exc:
        raise ArtifactError(f"cannot create the restore lock {path}: {exc.strerror}") from None
    try:
        why = distrust(os.fstat(fd))
        if why is not None:
            raise ArtifactError(f"cannot use the restore lock {path}: {why}")
        with locks.hold(fd, path, f"restores into {target}"):
            yield
    finally:
        os.close(fd)  # releases the lock


def lock_dir(path: Path, *, wait: bool = False) -> int | None:
    """An fd holding an exclusive flock on directory ``path``; None if another process holds one."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_leftovers(target: Path) -> list[Path]:
    """Remove staging and old trees of ``target`` that no living process holds; return them."""
    removed: list[Path] = []
    marks = (f".{target.name}{STAGING_MARK}", f".{target.name}{OLD_MARK}")
    try:
        entries = [Path(e.path) for e in os.scandir(target.parent) if e.name.startswith(marks)]
    except OSError:
        return removed
    for path in entries:
        try:
            fd = lock_dir(path)
        except OSError:
            continue
        if fd is None:
            continue  # its owner is alive
        try:
            force_rmtree(path)
            removed.append(path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


@contextmanager
def staged_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging directory beside ``target``; swap it in if the block succeeds.

    ``target`` is checked and resolved first (`check_restore_target`); concurrent restores of
    one directory run one after the other.
    """
    resolved = check_restore_target(target)
    if resolved.exists() and not resolved.is_dir():
        raise ArtifactError(f"cannot restore into {resolved}: it exists and is not a directory")
    try:
        resolved.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"cannot create the directory {resolved.parent}: {exc.strerror}") from None
    with restore_lock(resolved):
        remove_leftovers(resolved)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{resolved.name}{STAGING_MARK}", dir=resolved.parent))
        except OSError as exc:
            raise ArtifactError(
                f"cannot create a staging directory beside {resolved}: {exc.strerror}"
            ) from None
        owner: int | None = None
        try:  # one handler from here on: a signal while the lock is taken leaves nothing behind
            try:
                owner = lock_dir(staging)
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it 0700; a restored tree is not private
            except OSError as exc:
                why = exc.strerror
                raise ArtifactError(f"cannot prepare the staging directory {staging}: {why}") from None
            yield staging
            swap_into_place(staging, resolved)
        except BaseException:
            force_rmtree(staging)
            raise
        finally:
            if owner is not None:
                os.close(owner)


def swap_into_place(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an existing target is moved aside, then removed.

    No exists-then-rename: a target that is not there when it is moved aside is simply new.
    """
    aside = Path(tempfile.mktemp(prefix=f".{target.name}{OLD_MARK}", dir=target.parent))
    try:
        os.rename(target, aside)
        moved = True
    except FileNotFoundError:
        moved = False
    except OSError as exc:
        why = exc.strerror
        if exc.errno in (errno.EBUSY, errno.EXDEV, errno.EPERM):
            why = f"{why}; it may be a mount point: restore into a directory below it"
        raise ArtifactError(f"cannot replace {target}: {why}") from None
    try:
        os.rename(staging, target)
    except OSError as exc:
        if moved:
            os.rename(aside, target)
        raise ArtifactError(f"cannot move the restored tree into {target}: {exc.strerror}") from None
    if moved:
        try:
            held = lock_dir(aside) if aside.is_dir() and not aside.is_symlink() else None
        except OSError:
            held = None
        try:
            force_rmtree(aside)
        finally:
            if held is not None:
                os.close(held)
