"""The ``paths`` kind: several files and directories under one key, as actions/cache's ``path:``.

Each target is a pattern, or several, one per line: a file, a directory or a glob (``*``,
``?``, ``[...]``, ``**`` across directories), ``~`` for HOME, absolute or relative to the
current directory (the workspace); ``!PATTERN`` leaves out what it matches, inside matched
directories too. What the patterns match at upload is recorded in the archive
(``cacher-paths.json``, first member) and stored under ``workspace/``, ``home/`` and ``root/``,
so ``zstd -d | tar -x`` shows where each came from.

The pattern list is bound into the key (`PathsKind.key_namespace`): the object lives under
``_paths/<16 hex of the sha256 of the patterns, one per line>/<key>``, so a changed list is a
miss, never a restore of another layout (actions/cache puts ``path:`` into its cache version
for the same reason). A restore reads and verifies the whole archive into a scratch directory
first (`cacher.fs.scratch`), then puts every path in place (`cacher.kinds.paths_place`: never
through a link in a parent, never ``/``, HOME, the current directory, cacher's store or tier),
and swaps them in only once all are staged. It restores only where the patterns given now
point: an archive naming any other place is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cacher.kinds.paths_place import Planned, link_in_parents, put_in_place
from cacher.plugin import (
    ArtifactError,
    Kind,
    ObjectRefused,
    Target,
    TarWriter,
    UsageError,
    Writable,
    check_restore_file,
    check_restore_target,
    expand_glob,
    extract_tree,
    glob_regex,
    has_magic,
    scratch_directory,
)

MANIFEST = "cacher-paths.json"
NAMESPACE = "_paths"
ROOTS = ("workspace", "home", "root")


def patterns_of(targets: Sequence[str]) -> list[str]:
    """The patterns the targets give: one per line, stripped, empty lines dropped."""
    return [line.strip() for target in targets for line in target.splitlines() if line.strip()]


def namespace_of(patterns: Sequence[str]) -> str:
    """``_paths/<16 hex>``: the sha256 of the patterns, one per line, as given (order counts)."""
    digest = hashlib.sha256("\n".join(patterns).encode()).hexdigest()
    return f"{NAMESPACE}/{digest[:16]}"


def _bases() -> dict[str, str]:
    home = os.path.expanduser("~")
    if home in ("", "~"):
        home = ""
    home = os.path.normpath(home) if home else ""
    return {"workspace": os.path.abspath(os.getcwd()), "home": home, "root": "/"}


def _absolute(pattern: str, bases: Mapping[str, str]) -> str:
    """The pattern as an absolute, normalised path pattern."""
    if pattern == "~" or pattern.startswith("~/"):
        if not bases["home"]:
            raise UsageError(f"cannot expand {pattern!r}: HOME is not set")
        return os.path.normpath(bases["home"] + pattern[1:])
    if pattern.startswith("~"):
        raise UsageError(f"cannot expand {pattern!r}: only ~ and ~/ (this user's HOME) are understood")
    return os.path.normpath(os.path.join(bases["workspace"], pattern))


@dataclass(frozen=True)
class Entry:
    """One matched file or directory: where it lives now and how the archive names it."""

    root: str
    rel: str
    path: str
    is_dir: bool

    @property
    def name(self) -> str:
        return f"{self.root}/{self.rel}"


def _real(path: str, is_dir: bool) -> str:
    """Where ``path`` is once links are followed: a directory's own link too, a file's not."""
    if is_dir:
        return os.path.realpath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


class PathSet:
    """Parsed patterns: the includes, the excludes, and what they match on this machine."""

    def __init__(self, targets: Sequence[str]) -> None:
        self.patterns = patterns_of(targets)
        if not self.patterns:
            raise UsageError("cacher paths needs at least one PATH")
        self.bases = _bases()
        self.includes: list[str] = []
        self.classes: list[str] = []  # how each include was written: workspace, home or root
        excludes: list[str] = []
        for pattern in self.patterns:
            if pattern.startswith("!"):
                if not pattern[1:].strip():
                    raise UsageError("an exclude pattern '!' names nothing")
                excludes.append(_absolute(pattern[1:].strip(), self.bases))
            else:
                self.includes.append(_absolute(pattern, self.bases))
                self.classes.append(
                    "home" if pattern.startswith("~") else "root" if pattern.startswith("/") else "workspace"
                )
        if not self.includes:
            raise UsageError("cacher paths needs at least one PATH that is not an exclude (!PATTERN)")
        self._include_res = [glob_regex(p) for p in self.includes]
        self._exclude_res = [glob_regex(p) for p in excludes]

    def excluded(self, path: str) -> bool:
        return any(r.fullmatch(path) for r in self._exclude_res)

    def wanted(self, path: str) -> bool:
        """Whether ``path`` (absolute) is one an include names and no exclude removes."""
        return any(r.fullmatch(path) for r in self._include_res) and not self._excluded_or_below(path)

    def _excluded_or_below(self, path: str) -> bool:
        p = path
        while True:
            if self.excluded(p):
                return True
            parent = os.path.dirname(p)
            if parent == p:
                return False
            p = parent

    def entry(self, path: str, is_dir: bool, root: str) -> Entry:
        """How ``path`` (absolute, normalised), matched by a pattern written relative to
        ``root``, is recorded: relative to that base when it is below it, else absolute (a
        ``../`` pattern restores to the same absolute place)."""
        base = self.bases[root].rstrip("/") if root != "root" else ""
        if base and path.startswith(base + "/"):
            return Entry(root, path[len(base) + 1 :], path, is_dir)
        return Entry("root", path.lstrip("/"), path, is_dir)

    def destination(self, root: str, rel: str) -> str:
        base = self.bases[root] if root != "root" else "/"
        if not base:
            raise ArtifactError("cannot restore paths under HOME: HOME is not set")
        return os.path.normpath(os.path.join(base, rel))

    def match(self) -> list[Entry]:
        """What the patterns match now, outermost first; nothing nested twice."""
        found: dict[str, tuple[bool, str]] = {}
        for pattern, root in zip(self.includes, self.classes, strict=True):
            hits = (
                expand_glob(pattern)
                if has_magic(pattern)
                else ([pattern] if os.path.lexists(pattern) else [])
            )
            for hit in hits:
                path = os.path.normpath(hit)
                if not self._excluded_or_below(path) and path not in found:
                    found[path] = (os.path.isdir(path), root)
        kept_dirs: list[str] = []
        survivors: list[str] = []
        for path in sorted(found, key=lambda p: os.fsencode(p)):
            if any(path.startswith(d.rstrip("/") + "/") for d in kept_dirs):
                continue  # inside a directory already archived whole
            if found[path][0]:
                kept_dirs.append(path)
            survivors.append(path)
        # Once links are followed, two matches may be one place (``link`` and the ``real`` it
        # names, or a file inside it): archive it once, preferring the path without a link.
        real = {p: _real(p, found[p][0]) for p in survivors}
        kept_real: list[str] = []
        entries: list[Entry] = []
        for path in sorted(survivors, key=lambda p: (os.fsencode(real[p]), real[p] != p, os.fsencode(p))):
            if any(real[path] == r or real[path].startswith(r.rstrip("/") + "/") for r in kept_real):
                continue
            is_dir, root = found[path]
            entry = self.entry(path, is_dir, root)
            base = self.bases[entry.root] if entry.root != "root" else "/"
            link = link_in_parents(base, entry.rel)
            if link is not None:  # a restore would refuse it: refuse now, not then
                raise UsageError(
                    f"cannot store {path}: {link} is a symbolic link, and a restore never writes through one",
                    hint="name the directory the link points to",
                )
            if is_dir:
                try:
                    check_restore_target(path)  # a restore would replace it: refuse now, not then
                except UsageError as exc:
                    why = f"a restore of it would be refused ({exc.message})"
                    raise UsageError(f"cannot store {path}: {why}", hint=exc.hint) from None
                kept_real.append(real[path])
            entries.append(entry)
        return sorted(entries, key=lambda e: os.fsencode(e.path))

    def skip_below(self, entry: Entry) -> Callable[[str, bool], bool]:
        """The tree writer's filter for one directory entry: the excludes, by absolute path."""
        top = entry.path.rstrip("/")
        return lambda rel, _is_dir: self.excluded(f"{top}/{rel}")


class PathsKind(Kind):
    """Several files and directories under one key: globs, ~, !excludes (actions/cache's path:)."""

    summary = "Several files and directories (globs, ~, !excludes) under one key, restored together."
    archive = True
    trees = True
    upload_target = Target(
        "PATH",
        "Files, directories or globs (** spans directories); ~ is HOME, relative paths are under "
        "the current directory; !PATTERN leaves out what it matches. Several per argument, one per line.",
        many=True,
    )
    download_target = Target(
        "PATH",
        "The PATH patterns the upload was given, in the same order: they are part of the key.",
        many=True,
    )

    def key_namespace(self, targets: Sequence[str], options: Mapping[str, Any]) -> str | None:
        patterns = patterns_of(targets)
        return namespace_of(patterns) if patterns else None

    def check_upload(self, targets: Sequence[str], options: Mapping[str, Any]) -> None:
        paths = PathSet(targets)
        if not paths.match():
            raise UsageError(f"no file or directory matches {' '.join(paths.patterns)}")

    def check_download(self, target: str | None, options: Mapping[str, Any]) -> None:
        paths = PathSet([target or ""])
        for pattern in paths.includes:  # literal paths are checked before any I/O
            if not has_magic(pattern):
                if os.path.isdir(pattern):
                    check_restore_target(pattern)
                else:
                    check_restore_file(pattern)

    def pack(self, targets: Sequence[str], sink: Writable, options: Mapping[str, Any]) -> None:
        paths = PathSet(targets)
        entries = paths.match()
        if not entries:
            raise ArtifactError(f"no file or directory matches {' '.join(paths.patterns)}")
        manifest = {
            "version": 1,
            "patterns": paths.patterns,
            "entries": [
                {"root": e.root, "path": e.rel, "type": "dir" if e.is_dir else "file"} for e in entries
            ],
        }
        writer = TarWriter(sink)
        writer.add_bytes(MANIFEST, json.dumps(manifest, sort_keys=True, indent=1).encode() + b"\n")
        for entry in entries:
            if entry.is_dir:
                real = Path(os.path.realpath(entry.path))  # a link to a directory: what it names
                writer.add_path(real, entry.name)
                writer.add_tree(real, entry.name, paths.skip_below(entry))
            else:
                writer.add_path(Path(entry.path), entry.name)
        writer.close()

    def unpack(self, source: BinaryIO, target: str | None, options: Mapping[str, Any]) -> None:
        paths = PathSet([target or ""])
        with scratch_directory() as scratch:
            extract_tree(source, scratch)  # to the end of the stream: verified before anything moves
            put_in_place(_plan(scratch, paths))


def _read_manifest(scratch: Path) -> dict[str, Any]:
    try:
        data = json.loads((scratch / MANIFEST).read_text())
    except FileNotFoundError:
        raise ObjectRefused(f"the stored archive has no {MANIFEST}: not one the paths kind made") from None
    except (OSError, ValueError) as exc:
        raise ObjectRefused(f"the stored archive's {MANIFEST} cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("entries"), list):
        raise ObjectRefused(f"the stored archive's {MANIFEST} is not version 1")
    return data


def _plan(scratch: Path, paths: PathSet) -> list[Planned]:
    """Every entry of the archive and where it goes; refused unless the patterns name it."""
    manifest = _read_manifest(scratch)
    if manifest.get("patterns") != paths.patterns:
        raise ObjectRefused("the stored archive was made for other paths")
    planned: list[Planned] = []
    for item in manifest["entries"]:
        if not isinstance(item, dict):
            raise ObjectRefused(f"the stored archive's {MANIFEST} has an invalid entry")
        root, rel, kind = item.get("root"), item.get("path"), item.get("type")
        if root not in ROOTS or not isinstance(rel, str) or kind not in ("dir", "file"):
            raise ObjectRefused(f"the stored archive's {MANIFEST} has an invalid entry: {item!r}")
        parts = rel.split("/")
        if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ObjectRefused(f"the stored archive names {rel!r}, which is not a clean relative path")
        dest = paths.destination(str(root), rel)
        if not paths.wanted(dest):
            raise ObjectRefused(f"the stored archive would restore {dest}, which no PATH names")
        source = scratch / str(root) / rel
        st = source.lstat() if os.path.lexists(source) else None
        if st is None or stat.S_ISDIR(st.st_mode) != (kind == "dir"):
            raise ObjectRefused(f"the stored archive lacks the {kind} it lists as {root}/{rel}")
        base = paths.bases[str(root)] if root != "root" else "/"
        planned.append(Planned(source, base, rel, kind == "dir"))
    dirs = sorted(p.dest for p in planned if p.is_dir)
    for p in planned:
        inside = [d for d in dirs if p.dest != d and p.dest.startswith(d.rstrip("/") + "/")]
        if inside or sum(1 for q in planned if q.dest == p.dest) > 1:
            raise ObjectRefused(f"the stored archive lists {p.dest} twice or inside another entry")
    return planned
