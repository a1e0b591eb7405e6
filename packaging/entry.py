"""Entry script of the single-file build: the same `main` as the `cacher` console script."""

from cacher.cli import main

raise SystemExit(main())
