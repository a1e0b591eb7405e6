#!/usr/bin/env bash
# CI steps of the distribution, run after ./dev test has set up .venv:
#   1. the generated CLI reference (docs/reference/cli.md) is current;
#   2. the documentation site builds with mkdocs --strict (into site/);
#   3. the wheel and the sdist build (into dist/), and the wheel holds the version of
#      cacher/__init__.py.
# The single-file executable and the wheel installs (uv tool, pipx) are built and tested by
# tests/distribution/test_distribution.py inside ./dev test. Set CACHER_CI_SINGLE_FILE=1 to also build
# dist/cacher here (about a minute), e.g. to publish it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || { echo "error: no .venv; run ./dev test first" >&2; exit 2; }

say() { printf '\n== %s\n' "$*" >&2; }

say "CLI reference is current"
"$PY" scripts/gen_cli_reference.py --check

say "documentation site: mkdocs build --strict"
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir site

say "wheel and sdist"
rm -rf dist/ci_cacher-* dist/ci-cacher-*
.venv/bin/uv build --no-build-isolation --python "$PY" --out-dir dist
version=$("$PY" -c 'import cacher; print(cacher.__version__)')
test -f "dist/ci_cacher-$version-py3-none-any.whl"
test -f "dist/ci_cacher-$version.tar.gz"

if [ "${CACHER_CI_SINGLE_FILE:-0}" = 1 ]; then
    say "single-file executable"
    packaging/build-single-file.sh dist
    env -i HOME="$(mktemp -d)" dist/cacher --version
fi

say "distribution checks passed (cacher $version)"
