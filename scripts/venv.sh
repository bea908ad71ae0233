# Sourced by scripts/demo and scripts/test: make .venv with Python 3.11+ and install the project.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "Python 3.11 or newer is needed (apt-get install python3 python3-venv, or pyenv)." >&2
  return 1
}

ensure_venv() {
  local extras="${1:-}" stamp wanted
  if [ ! -x .venv/bin/python ]; then
    "$(find_python)" -m venv .venv
  fi
  wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)${extras}"
  stamp=.venv/.installed
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".${extras:+[$extras]}"
    echo "$wanted" > "$stamp"
  fi
}
