# Sourced by st.sh: the project environment (created on first use).
MAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
"${MAIN_ROOT}/tools/setup.sh" >&2
. "${MAIN_ROOT}/tools/activate_python.sh"
export PYTHONIOENCODING=UTF-8
