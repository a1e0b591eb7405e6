"""Putting a ``paths`` restore in place: every path below its base, never through a link.

Each entry of a ``paths`` archive is restored under a base (the workspace, HOME or ``/``) as
the ``dir`` kind extracts a member under its root (`cacher.tar.extract`): every directory on
the way is opened from its parent's descriptor with ``O_NOFOLLOW``, so a link in any parent
(``sub -> ../outside``) refuses the restore instead of leading it elsewhere, and a file is
staged and renamed into place relative to its parent's descriptor. The base itself may be
reached through links (a HOME on another disk), and so may a restored directory itself (a
link naming a directory restores into that directory, as ``dir`` does).

Every destination is checked before anything moves (`cacher.fs.staging.check_restore_target`,
`check_restore_file`: not ``/``, HOME, the current directory, cacher's store or tier). Two
entries that are one place once links are followed (``link`` and the ``real`` it names) are
refused, and each directory's restore lock is taken once, in the order of resolved paths.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import stat
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from cacher.plugin import (
    ArtifactError,
    ObjectRefused,
    check_restore_file,
    check_restore_target,
    staged_directory,
)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
TEMP_MARK = ".cacher-paths-"


@dataclass(frozen=True)
class Planned:
    """One archive entry: its extracted copy, its base and path below it, and its kind."""

    source: Path
    base: str
    rel: str
    is_dir: bool

    @property
    def dest(self) -> str:
        return os.path.normpath(os.path.join(self.base, self.rel))


def link_in_parents(base: str, rel: str) -> str | None:
    """The first parent of ``rel`` below ``base`` that is a symbolic link (or not a
    directory), as ``base/…``; None when every existing parent is a real directory."""
    parts = rel.split("/")[:-1]
    try:
        fd = os.open(base, _DIR_FLAGS & ~os.O_NOFOLLOW)
    except OSError as exc:
        raise ArtifactError(f"cannot open {base}: {exc.strerror or exc}") from None
    try:
        for i, part in enumerate(parts):
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                return None  # from here on everything is made by the restore
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    return os.path.join(base, *parts[: i + 1])
                raise ArtifactError(
                    f"cannot open {os.path.join(base, *parts[: i + 1])}: {exc.strerror}"
                ) from None
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    return None


def refuse_linked_parent(dest: str, link: str) -> ArtifactError:
    return ArtifactError(
        f"cannot restore {dest}: {link} is a symbolic link (or not a directory), "
        "and a restore never writes through one",
        hint="name the directory it points to, or remove the link",
    )


def _open_parent(entry: Planned) -> int:
    """A descriptor of ``entry``'s parent directory, made where missing, never through a link."""
    fd = os.open(entry.base, _DIR_FLAGS & ~os.O_NOFOLLOW)
    try:
        for part in entry.rel.split("/")[:-1]:
            try:
                os.mkdir(part, 0o777, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise refuse_linked_parent(entry.dest, part) from None
                raise
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check(planned: Sequence[Planned]) -> dict[str, Path]:
    """Refuse, before anything is touched, what no restore may do; each directory's resolved
    destination by entry."""
    resolved: dict[str, Path] = {}
    for p in planned:
        link = link_in_parents(p.base, p.rel)
        if link is not None:
            raise refuse_linked_parent(p.dest, link)
        if p.is_dir:
            resolved[p.dest] = check_restore_target(p.dest)
        else:
            check_restore_file(p.dest)
            if os.path.isdir(p.dest) and not os.path.islink(p.dest):
                raise ArtifactError(f"cannot restore the file {p.dest}: a directory is in its place")
    places = sorted(resolved.items(), key=lambda item: os.fsencode(item[1]))
    for i, (a, ra) in enumerate(places):
        for b, rb in places[i + 1 :]:
            if rb == ra or rb.is_relative_to(ra):
                raise ObjectRefused(
                    f"the stored archive lists {a} and {b}, which are one directory here"
                    f"{'' if rb == ra else ' and one inside it'} (a symbolic link names the other)",
                    hint="upload it again: a new upload stores such a directory once",
                )
    for p in planned:
        if not p.is_dir:
            landing = Path(os.path.realpath(os.path.dirname(p.dest))) / os.path.basename(p.dest)
            for d, rd in places:
                if landing.is_relative_to(rd):
                    raise ObjectRefused(
                        f"the stored archive lists {p.dest}, which is inside {d} here "
                        "(a symbolic link leads there)"
                    )
    return resolved


def _move(source: Path, dest: Path) -> None:
    """Rename, or copy across filesystems (links stay links; the scratch copy is removed later).

    A directory moved to another parent must be writable by its owner (its ``..`` changes):
    a read-only one (Go's module cache is 0555) is opened up for the move and closed after.
    """
    st = source.lstat()
    locked = stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IWUSR
    try:
        if locked:
            os.chmod(source, stat.S_IMODE(st.st_mode) | stat.S_IWUSR)
        os.rename(source, dest)
        if locked:
            os.chmod(dest, stat.S_IMODE(st.st_mode))
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise ArtifactError(f"cannot stage {dest}: {exc.strerror or exc}") from None
    try:
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, dest, symlinks=True)
        else:
            shutil.copy2(source, dest, follow_symlinks=False)
    except OSError as exc:
        raise ArtifactError(f"cannot stage {dest}: {exc.strerror or exc}") from None


def _stage_file(source: Path, parent_fd: int, name: str, dest: str, stack: ExitStack) -> str:
    """Put ``source`` beside ``name`` in the directory open on ``parent_fd``, under a new
    temporary name (returned): a rename, or a copy made in that directory across filesystems.
    A regular file is ``flock``ed (until ``stack`` closes) before it appears there, so a restore
    tells it from one a killed restore left (`_remove_stale_staged`)."""
    tmp = f".{name}{TEMP_MARK}{secrets.token_hex(4)}"
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        if stat.S_ISREG(source.lstat().st_mode):
            held = os.open(source, flags)
            stack.callback(os.close, held)
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the inode: the lock moves with it
        os.rename(source, tmp, dst_dir_fd=parent_fd)
        return tmp
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise ArtifactError(f"cannot stage {dest}: {exc.strerror or exc}") from None
    try:
        st = source.lstat()
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(source), tmp, dir_fd=parent_fd)
            return tmp
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(tmp, flags, 0o600, dir_fd=parent_fd)
        stack.callback(os.close, out)
        fcntl.flock(out, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with open(source, "rb") as f, os.fdopen(os.dup(out), "wb") as o:
            shutil.copyfileobj(f, o, 1 << 20)
        os.fchmod(out, stat.S_IMODE(st.st_mode))
        os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
    except OSError as exc:
        raise ArtifactError(f"cannot stage {dest}: {exc.strerror or exc}") from None
    return tmp


def _remove_stale_staged(parent_fd: int, name: str) -> None:
    """Remove the staged copies of ``name`` that killed restores left: regular files that no
    process holds an ``flock`` on."""
    mark = f".{name}{TEMP_MARK}"
    try:
        with os.scandir(parent_fd) as entries:
            names = [e.name for e in entries if e.name.startswith(mark) and e.is_file(follow_symlinks=False)]
    except OSError:
        return
    for stale in names:
        try:
            fd = os.open(stale, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=parent_fd)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(stale, dir_fd=parent_fd)
        except OSError:
            pass  # held: a living restore's
        finally:
            os.close(fd)


def _unlink_quietly(name: str, dir_fd: int) -> None:
    """Remove a staged file that was not swapped in (gone already once it was)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def put_in_place(planned: Sequence[Planned]) -> None:
    """Stage every directory and file beside its destination, then swap them all in."""
    resolved = _check(planned)  # before anything is touched
    files: list[tuple[int, str, str, str]] = []
    with ExitStack() as stack:
        # One order for the locks: the resolved destinations, each taken once (`_check`).
        for p in sorted(planned, key=lambda q: os.fsencode(resolved.get(q.dest, q.dest))):
            if p.is_dir:
                parent_fd = _open_parent(p)  # makes missing parents; refuses a link among them
                os.close(parent_fd)
                staging = stack.enter_context(staged_directory(p.dest))
                st = p.source.lstat()
                os.chmod(p.source, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)  # a 0555 tree lets go
                for child in sorted(p.source.iterdir()):
                    _move(child, staging / child.name)
                os.chmod(staging, stat.S_IMODE(st.st_mode))
                os.utime(staging, (st.st_mtime, st.st_mtime))
            else:
                try:
                    parent_fd = _open_parent(p)
                except OSError as exc:
                    raise ArtifactError(f"cannot stage {p.dest}: {exc.strerror or exc}") from None
                stack.callback(os.close, parent_fd)
                name = p.rel.rpartition("/")[2]
                _remove_stale_staged(parent_fd, name)
                tmp = _stage_file(p.source, parent_fd, name, p.dest, stack)
                stack.callback(_unlink_quietly, tmp, parent_fd)
                files.append((parent_fd, tmp, name, p.dest))
        for parent_fd, tmp, name, dest in files:  # everything is staged: now swap in
            try:
                os.rename(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
            except OSError as exc:
                raise ArtifactError(f"cannot replace {dest}: {exc.strerror or exc}") from None
