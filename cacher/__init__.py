"""cacher: a CI cache helper over any fsspec object store.

The Python API mirrors the command line: build a `Store`, pick a kind and a codec from the
`Registry`, and hand them to `cacher.engine`.
"""

__version__ = "0.2.0"

__all__ = ["__version__"]
