#!/usr/bin/env bash
# Create bench/.venv (separate from the project's .venv) with quantfleet (editable) and the
# peers it is measured against. Idempotent: a stamp keyed on pyproject.toml and this file
# skips the install when nothing changed; delete bench/.venv to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=bench/.venv
# Peer versions: vectorbt 1.2.0 resolves with the project's numpy 2.4.6 / numba 0.68.1 pins,
# so the bench env runs the same numpy/numba as quantfleet itself.
PEERS=("vectorbt==1.2.0" "backtesting==0.6.6" "arch>=7")
HASH=$(cat pyproject.toml bench/setup.sh | sha256sum | cut -c1-12)
STAMP="$VENV/.installed-$HASH"

if [[ -f "$STAMP" && -x "$VENV/bin/python" ]]; then
    exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
echo "bench/setup.sh: installing quantfleet (editable) + ${PEERS[*]} into $VENV" >&2
"$VENV/bin/python" -m pip install -q -e . "${PEERS[@]}"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
for p in ("quantfleet", "numpy", "numba", "pandas", "vectorbt", "backtesting", "arch"):
    print(f"  {p} {md.version(p)}")
PY
rm -f "$VENV"/.installed-*
touch "$STAMP"
