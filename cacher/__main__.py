"""`python -m cacher`."""

from cacher.cli import main

raise SystemExit(main())
