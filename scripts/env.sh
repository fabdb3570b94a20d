# Sourced by demo.sh and test.sh: make ./.venv (isolated from system packages), install the
# requirements file given as $1 into it, and the kit itself, editable (the `ecg-kit` command;
# `import team_code` from any folder). Re-running only installs what changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
stamp=".venv/.installed-$(basename "$1")"
if [ ! -f "$stamp" ] || [ "$1" -nt "$stamp" ] || [ requirements.txt -nt "$stamp" ] \
    || [ pyproject.toml -nt "$stamp" ] || [ ! -x .venv/bin/ecg-kit ]; then
    python -m pip install --quiet --upgrade pip
    # torch==2.13.0 resolves to the CPU build on machines whose pip finds it (see README).
    python -m pip install --quiet -r "$1"
    # The kit, built with the setuptools of .venv (no download); its requirements are above.
    python -m pip install --quiet "setuptools>=64"
    python -m pip install --quiet --no-deps --no-build-isolation -e .
    touch "$stamp"
fi
