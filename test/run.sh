#!/usr/bin/env bash
# Run every test: sets up tools/venv on first use, then pytest.
#   test/run.sh                  # the whole suite (~15 min on 2 cores)
#   test/run.sh -k must_c -x     # extra arguments go to pytest
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"${root}/tools/setup.sh"
. "${root}/tools/activate_python.sh"
cd "${root}"
exec python -m pytest test "$@"
