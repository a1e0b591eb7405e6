"""``{git-tree:PATH}``: the object id of PATH in the HEAD commit, a content hash git already made.

``cacher key "deps/{git-tree:go.sum}.tar.zst"`` names a cache after the committed content of
``go.sum`` without reading it: ``git rev-parse HEAD:./go.sum``. For a directory it is the tree id,
which changes whenever anything below it does. It reads the commit, not the work tree, so an
uncommitted edit does not change the key.
"""

from __future__ import annotations

import os

from cacher.plugin import KeyContext, KeyFunction, UsageError

from cacher_git import _git


class GitTreeKey(KeyFunction):
    """``{git-tree:PATH}``: ``git rev-parse HEAD:PATH``, PATH relative to the current directory."""

    def render(self, arg: str | None, ctx: KeyContext) -> str:
        if not arg:
            raise UsageError("{git-tree:PATH} needs a path: a tracked file or directory, e.g. {git-tree:src}")
        # ``HEAD:./x`` is relative to the current directory, ``HEAD:x`` to the repository's top;
        # users give paths as they see them, like --hash-from, so anchor them to the cwd.
        path = os.path.relpath(arg) if os.path.isabs(arg) else arg
        if path in (".", ".."):
            path += "/"
        elif not path.startswith(("./", "../")):
            path = f"./{path}"
        # Run with the caller's environment: inside a git hook GIT_DIR is the repository meant.
        ok, out = _git.probe(["rev-parse", f"HEAD:{path}"], env=ctx.environ or os.environ)
        if not ok:
            raise UsageError(f"{{git-tree:{arg}}}: {out}", hint=_hint(out))
        return out.strip()


def _hint(reason: str) -> str | None:
    if "not a git repository" in reason:
        return "run cacher key from inside the repository"
    if "exists on disk, but not in" in reason:
        return "{git-tree} reads the HEAD commit: commit the path first"
    if "invalid object name 'HEAD'" in reason or "ambiguous argument 'HEAD" in reason:
        return "the repository has no commit yet"
    return None
