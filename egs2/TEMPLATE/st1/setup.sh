#!/usr/bin/env bash
# A new recipe for your own corpus (ESPnet's convention), from the repository root:
#   egs2/TEMPLATE/st1/setup.sh egs2/<name>/st1 --src_lang en --tgt_lang de \
#       [--train_set train --valid_set dev --test_sets "test" --manifest_dir DIR]
# The recipe reads one manifest per split (python -m espnet_mtl.bin.setup_recipe --help).
set -euo pipefail
MAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
"${MAIN_ROOT}/tools/setup.sh" >&2
. "${MAIN_ROOT}/tools/activate_python.sh"
exec python -m espnet_mtl.bin.setup_recipe "$@"
