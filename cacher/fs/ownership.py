"""Which files and directories cacher trusts: only the user's own, as ssh trusts its config.

A file cacher acts on (the config it obeys, the plugin index it imports from, lock files,
the soft-fail memory, runtime and scratch directories) could otherwise be planted or edited
by another user of a shared runner. The one rule, for every caller:

- a **private directory** is created mode 0700; an existing one is used only when it is a real
  directory (not a link), owned by the current user (or root) and not writable by group or
  others (`private_dir`);
- a **trusted file** is a regular file (not a link), owned by the current user (or root) and
  not writable by group or others (`trusted_file`, `read_trusted`, `distrust`);
- an untrusted *cache* file is ignored and replaced by its caller; an untrusted *config* file
  is refused (`read_config`: exit 2, one line naming the file and the fix);
- a file holding a secret that others can read gets a one-line warning
  (`readable_by_others`: the text, for the caller's reporter; this module never prints).

Imports only ``os`` and ``stat``: the fast path of ``exists``/``download`` uses it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cacher.errors import ConfigError

#: Mode bits that let someone other than the owner change a file or a directory's entries.
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
#: Mode bits that let someone other than the owner read a file.
_OTHERS_READ = stat.S_IRGRP | stat.S_IROTH


class Untrusted(ConfigError):
    """A file or directory cacher would act on is not the user's own (the message says why)."""


def _owners() -> tuple[int, ...]:
    return (os.getuid(), 0)


def distrust(st: os.stat_result) -> str | None:
    """Why a file or directory with this ``lstat``/``fstat`` result is not the user's own, or
    None when it is (owned by the user or root, not writable by group or others)."""
    if st.st_uid not in _owners():
        return f"it belongs to another user (uid {st.st_uid})"
    if st.st_mode & _OTHERS_WRITE:
        return f"it is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def private_dir(path: Path, *, create: bool = True) -> Path:
    """``path`` as a directory only the user can change: created mode 0700 (with its parents)
    when ``create`` and missing, and an existing one of the user's own made 0700; `Untrusted`
    when it is a link, not a directory, another user's, or writable by group or others.
    `OSError` (``FileNotFoundError`` when missing and not ``create``) when it cannot be made or
    looked at."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
        except FileExistsError:
            pass
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise Untrusted(f"refusing {path}: it is a symbolic link, not a directory of this user's")
    if not stat.S_ISDIR(st.st_mode):
        raise Untrusted(f"refusing {path}: it is not a directory")
    why = distrust(st)
    if why is not None:
        raise Untrusted(f"refusing the directory {path}: {why}")
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
        try:  # one made before this rule (0755): the user's own, so made private now
            os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700, follow_symlinks=False)
        except OSError:
            pass
    return path


def trusted_file(path: Path) -> bool:
    """Whether ``path`` is a regular file (not a link) that only the user can change."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and distrust(st) is None


def read_trusted(path: Path) -> bytes:
    """The bytes of ``path`` when it is a trusted file, checked on the open descriptor (no
    race between the check and the read); `Untrusted` when it is a link, not a regular file, or
    not the user's own; `OSError` when it cannot be read (``FileNotFoundError``: missing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if os.path.islink(path):
            raise Untrusted(f"ignoring {path}: it is a symbolic link") from None
        raise exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Untrusted(f"ignoring {path}: it is not a regular file")
        why = distrust(st)
        if why is not None:
            raise Untrusted(f"ignoring {path}: {why}")
        return f.read()


def read_config(path: Path, what: str = "config file") -> tuple[bytes, os.stat_result]:
    """The bytes of a file cacher obeys, and its status. It may be a link (a dotfiles checkout
    links its config), but the file read must be the user's own: another user's, or one group or
    others can write, is refused as ssh refuses its config (`Untrusted`, naming the fix).
    Devices (``/dev/null``) are not checked: only root makes them."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            why = distrust(st)
            if why is not None:
                fix = f"chmod go-w {path}" if st.st_uid in _owners() else f"chown {os.getuid()} {path}"
                raise Untrusted(f"bad owner or permissions on the {what} {path}: {why}; run {fix}")
        return f.read(), st


def readable_by_others(path: Path | str, what: str, st: os.stat_result | None = None) -> str | None:
    """A one-line warning when ``path`` (holding a secret: ``what``) is readable by group or
    others, else None (also when it cannot be looked at: reading it reports that)."""
    if st is None:
        try:
            st = os.stat(path)
        except OSError:
            return None
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & _OTHERS_READ:
        return None
    mode = stat.S_IMODE(st.st_mode)
    return f"the {what} {path} is readable by group or others (mode {mode:04o}): run chmod go-r {path}"
