"""The benchmark suite of cacher: inputs, peers, measurements and the report (see ../README.md)."""
