#!/usr/bin/env bash
# Creates benches/peers/venv: Python 3.10 with the OpenFHE 1.6.1 PyPI wheel (the wheel is tagged
# py3-none-any but ships only a CPython 3.10 extension). Set PY310=/path/to/python3.10 to choose
# the interpreter; otherwise pyenv's 3.10.x or a system python3.10 is used.
set -euo pipefail
cd "$(dirname "$0")"
pick_py310() {
  local c
  for c in ${PY310:-} "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.10*/bin/python3.10 \
           /usr/bin/python3.10 python3.10; do
    if [ -n "$c" ] && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  echo "no Python 3.10 found (set PY310)" >&2; return 1
}
if [ ! -x venv/bin/python ]; then
  "$(pick_py310)" -m venv venv
fi
./venv/bin/python -m pip install -q --upgrade pip
./venv/bin/python -m pip install -q "openfhe==1.6.1.0.22.4" numpy
./venv/bin/python -c "import openfhe; print('openfhe', openfhe.__version__)"
