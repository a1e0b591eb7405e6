"""cacher-git: the ``git`` kind (repositories as streamed bundles) and ``{git-tree:PATH}`` keys.

The reference third-party plugin for cacher: it touches no core module and registers itself
through the ``cacher.kinds`` and ``cacher.keys`` entry points only.
"""

__version__ = "0.1.0"
