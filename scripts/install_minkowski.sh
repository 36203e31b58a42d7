#!/usr/bin/env bash
# Install MinkowskiEngine 0.5.4 (CPU-only) into the active Python environment.
#
# It has no wheel on the package index: the first call builds one from the source distribution
# (about 8 minutes and 3 GB of memory on 2 cores) and caches it outside the clone, keyed by the
# torch and Python versions; later calls install from the cache in seconds. The sequence and
# its traps are in ../shared/notes/minkowski.md. Needs torch installed first, a C++ compiler,
# and OpenBLAS (installed with apt-get when missing and running as root).
#
#   scripts/install_minkowski.sh            # uses `python` on PATH
#   PYTHON=.tox/py3/bin/python scripts/install_minkowski.sh
#   DISTILLBENCH_WHEEL_CACHE=/some/dir ...  # default ~/.cache/distillbench/wheels
set -euo pipefail
shopt -s nocaseglob  # the wheel may be named MinkowskiEngine-... or minkowskiengine-...

PYTHON=${PYTHON:-python}
VERSION=0.5.4
CACHE=${DISTILLBENCH_WHEEL_CACHE:-$HOME/.cache/distillbench/wheels}
KEY=$("$PYTHON" -c 'import sys, torch; v = torch.__version__.split("+")[0]; print(f"torch{v}-py{sys.version_info[0]}{sys.version_info[1]}")')
WHEELS="$CACHE/minkowskiengine-$VERSION-$KEY"

if ! ldconfig -p | grep -q "libopenblas.so"; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq libopenblas-dev >/dev/null
    else
        echo "error: OpenBLAS is missing; install it (Debian: apt-get install libopenblas-dev)" >&2
        exit 1
    fi
fi

if ! compgen -G "$WHEELS/minkowskiengine-$VERSION-*.whl" >/dev/null; then
    echo "building MinkowskiEngine $VERSION for $KEY (about 8 minutes; cached in $WHEELS)"
    SRC=$(mktemp -d)
    trap 'rm -rf "$SRC"' EXIT
    "$PYTHON" -m pip install -q "setuptools>=77.0.3,<81" wheel ninja
    # --no-build-isolation: its setup.py imports torch (else "Pytorch not found")
    "$PYTHON" -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
        "MinkowskiEngine==$VERSION" -d "$SRC"
    tar xzf "$SRC/MinkowskiEngine-$VERSION.tar.gz" -C "$SRC"
    cd "$SRC/MinkowskiEngine-$VERSION"
    # Python 3.10 moved Sequence to collections.abc; one file imports it with namedtuple
    grep -rlE "^from collections import Sequence" --include=*.py . | xargs sed -i -E \
        's/^from collections import Sequence, namedtuple$/from collections import namedtuple\nfrom collections.abc import Sequence/; s/^from collections import Sequence$/from collections.abc import Sequence/'
    mkdir -p "$WHEELS"
    # its setup.py uninstalls any installed copy: build only when nothing is cached
    MAX_JOBS=${MAX_JOBS:-2} "$PYTHON" -m pip wheel -q --no-build-isolation --no-deps -w "$WHEELS" .
    cd - >/dev/null
fi

"$PYTHON" -m pip install -q --no-deps "$WHEELS"/minkowskiengine-$VERSION-*.whl
"$PYTHON" -c "import MinkowskiEngine as ME; print('MinkowskiEngine', ME.__version__, 'installed')"
