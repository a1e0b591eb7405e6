"""The targets: which cacher row is compared with which peer, and against what.

``COMPARISONS`` are ratios of medians (cacher / peer); ``ABSOLUTE`` rows have a target in
seconds. Every cacher command's peak RSS is held to ``RSS_TARGET_MIB`` (report.rss_table).
"""

from __future__ import annotations

RSS_TARGET_MIB = 256

# (row label, cacher's (workload, tool), the peer's (workload, tool), target ratio or None).
# Issue 17: every transfer at most 1.0x its s5cmd pipeline (the directory upload keeps the
# earlier, stricter 0.9x); the aws targets are the first round's.
COMPARISONS: list[tuple[str, tuple[str, str], tuple[str, str], float | None]] = [
    ("dir upload", ("dir upload", "cacher"), ("dir upload", "s5cmd"), 0.9),
    ("dir upload", ("dir upload", "cacher"), ("dir upload", "aws"), 0.5),
    ("dir download", ("dir download", "cacher"), ("dir download", "s5cmd"), 1.0),
    ("dir download", ("dir download", "cacher"), ("dir download", "aws"), None),
    ("dir upload, medium tree", ("dir upload medium", "cacher"), ("dir upload medium", "s5cmd"), 1.0),
    ("dir upload, medium tree", ("dir upload medium", "cacher"), ("dir upload medium", "aws"), None),
    ("dir download, medium tree", ("dir download medium", "cacher"), ("dir download medium", "s5cmd"), 1.0),
    ("dir download, medium tree", ("dir download medium", "cacher"), ("dir download medium", "aws"), None),
    ("restore onto disk", ("restore disk", "cacher"), ("restore disk", "s5cmd"), 0.8),
    (
        "restore onto disk, medium tree",
        ("restore disk medium", "cacher"),
        ("restore disk medium", "s5cmd"),
        0.8,
    ),
    ("large file upload", ("file upload", "cacher"), ("file upload", "s5cmd"), 1.0),
    ("large file upload", ("file upload", "cacher"), ("file upload", "aws"), 0.5),
    ("large file download", ("file download", "cacher"), ("file download", "s5cmd"), 1.0),
    ("large file download", ("file download", "cacher"), ("file download", "aws"), 0.5),
    ("`cacher key`, tree", ("key", "cacher"), ("key", "shell"), 1.0),
    ("`cacher --version`", ("startup", "cacher --version"), ("startup", "aws --version"), 0.35),
    ("`cacher key`, one file", ("startup", "cacher key"), ("startup", "aws --version"), 0.35),
    (
        "`cacher key`, one file, cold entry-point cache",
        ("startup", "cacher key (cold entry-point cache)"),
        ("startup", "aws --version"),
        None,
    ),
    ("`cacher exists` (hit)", ("startup", "cacher exists"), ("startup", "aws s3api head-object"), 1.0),
    ("`cacher exists` (hit)", ("startup", "cacher exists"), ("startup", "s5cmd ls"), 1.5),
    ("docker upload", ("docker upload", "cacher"), ("docker upload", "s5cmd"), 1.0),
    ("docker download", ("docker download", "cacher"), ("docker download", "s5cmd"), 1.0),
    (
        "dir download, warm local tier vs S3",
        ("tier download", "cacher, warm tier"),
        ("tier download", "cacher, S3"),
        None,
    ),
    (
        "dir download, warm local tier vs `tar -x` of a local file",
        ("tier download", "cacher, warm tier"),
        ("tier download", "zstd -d | tar -x, local file"),
        None,
    ),
]
# Issue 29: every command that lists, at N = 1k, 10k, 50k objects, at most 1.5x `s5cmd ls`.
from cacherbench.listing import comparisons as _listing_rows  # noqa: E402

COMPARISONS += _listing_rows()
# Issue 30: incremental saves in the content-addressed format against the plain tar.zst.
from cacherbench.incremental import comparisons as _incremental_rows  # noqa: E402

COMPARISONS += _incremental_rows()
# Rows with a target in seconds, not a ratio: (row label, cacher's (workload, tool), target
# seconds or None, a peer shown beside it or None).
ABSOLUTE: list[tuple[str, tuple[str, str], float | None, tuple[str, str] | None]] = [
    (
        "first request after exec: `cacher exists` (hit)",
        ("first request", "cacher exists"),
        0.15,
        ("first request", "s5cmd ls"),
    ),
    (
        "first request after exec: `cacher download`",
        ("first request", "cacher download"),
        0.15,
        ("first request", "s5cmd cat"),
    ),
    (
        "first request after exec: `cacher dir download`",
        ("first request", "cacher dir download"),
        0.15,
        ("first request", "s5cmd cat"),
    ),
    ("bundle: `cacher --version`, warm", ("bundle", "cacher --version"), 0.15, None),
    ("bundle: `cacher key x --hash-from FILE`, warm", ("bundle", "cacher key"), 0.2, None),
    ("bundle: unpacking it, `tar -xzf`", ("bundle", "tar -xzf"), None, None),
    (
        "bundle: first `cacher --version` right after unpacking",
        ("bundle", "cacher --version, first run"),
        None,
        None,
    ),
]
