#!/usr/bin/env bash
# Build the single-file `cacher` executable for Linux x86_64 with PyInstaller (one-file mode),
# or with --onedir the one-directory bundle, as a tarball (the CI install: no unpacking on start).
#
#   packaging/build-single-file.sh [OUT_DIR]            (default: dist/ in the repository)
#   packaging/build-single-file.sh --onedir [OUT_DIR]   OUT_DIR/cacher-VERSION-linux-x86_64.tar.gz
#
# The result, OUT_DIR/cacher, carries its own Python 3.11 and every dependency: it needs no
# Python, virtual environment or pip on the machine that runs it (glibc 2.36 or newer; see
# docs/install.md). It holds cacher and its built-in plugins only: third-party plugins need
# the wheel install.
#
# Python environment used for the build, first match wins:
#   $CACHER_BUILD_PYTHON              an interpreter whose environment has PyInstaller and cacher;
#   .venv/bin/python                  the dev environment (./dev test installs PyInstaller in it);
#   build/single-file/venv            made here from requirements.lock (hash-checked) when the
#                                     dev environment lacks PyInstaller.
# Work files go to $CACHER_BUILD_DIR (default build/single-file). On success: exit 0, the
# executable's path on stdout, its version, size, build time and sha256 on stderr.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=onefile
if [ "${1:-}" = "--onedir" ]; then MODE=onedir; shift; fi
OUT=${1:-$ROOT/dist}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$ROOT"
WORK=${CACHER_BUILD_DIR:-$ROOT/build/single-file}
mkdir -p "$WORK"

say() { printf '== %s\n' "$*" >&2; }

has_pyinstaller() { "$1" -c 'import PyInstaller, cacher' >/dev/null 2>&1; }

build_venv() {
    local venv=$WORK/venv
    if [ ! -x "$venv/bin/python" ] || ! has_pyinstaller "$venv/bin/python"; then
        say "creating the build environment $venv from requirements.lock"
        rm -rf "$venv"
        if command -v uv >/dev/null; then
            uv venv -q -p python3.11 "$venv" >&2
            uv pip install -q --python "$venv/bin/python" --require-hashes -r requirements.lock >&2
            uv pip install -q --python "$venv/bin/python" --no-deps --no-build-isolation . >&2
        else
            python3.11 -m venv "$venv"
            "$venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r requirements.lock >&2
            "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation . >&2
        fi
    fi
    echo "$venv/bin/python"
}

if [ -n "${CACHER_BUILD_PYTHON:-}" ]; then
    PY=$CACHER_BUILD_PYTHON
    has_pyinstaller "$PY" || { echo "error: $PY has no PyInstaller or no cacher" >&2; exit 2; }
elif [ -x .venv/bin/python ] && has_pyinstaller .venv/bin/python; then
    PY=.venv/bin/python
else
    PY=$(build_venv)
fi

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) say "warning: building on $(uname -s)-$(uname -m); the documented target is Linux x86_64" ;;
esac

say "building with $("$PY" -c 'import sys, PyInstaller; print(f"PyInstaller {PyInstaller.__version__}, Python {sys.version.split()[0]}")')"
start=$(date +%s)
# PYTHONDONTWRITEBYTECODE must not leak into the build: PyInstaller compiles the bytecode it
# bundles itself, and the bundle has no writable place for any.
env -u PYTHONDONTWRITEBYTECODE CACHER_BUNDLE=$MODE "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$WORK/dist" --workpath "$WORK/work" packaging/cacher.spec >&2
elapsed=$(( $(date +%s) - start ))
if [ "$MODE" = onedir ]; then
    # cacher/cacher beside cacher/_internal, in a tarball with stable names and times.
    version=$(env -i HOME="$WORK" "$WORK/dist/cacher/cacher" --version | head -1 | awk '{print $2}')
    tarball="$OUT/cacher-$version-linux-x86_64.tar.gz"
    tar -C "$WORK/dist" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -czf "$tarball" cacher
    say "cacher $version bundle: $tarball, $(stat -c %s "$tarball") bytes, built in ${elapsed}s"
    say "sha256 $(sha256sum "$tarball" | cut -d' ' -f1)"
    echo "$tarball"
    exit 0
fi
mv -f "$WORK/dist/cacher" "$OUT/cacher"

# A build that cannot start is no build.
version=$(env -i HOME="$WORK" "$OUT/cacher" --version | head -1)
size=$(stat -c %s "$OUT/cacher")
say "$version: $OUT/cacher, $size bytes ($(( size / 1048576 )) MiB), built in ${elapsed}s"
say "sha256 $(sha256sum "$OUT/cacher" | cut -d' ' -f1)"
echo "$OUT/cacher"
