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

# pip's own output, cut to one growing line of package names, so a first install that takes a
# minute or two is never silent for long and never floods the screen.
show_progress() {
  awk '/^Collecting / { printf " %s", $2; fflush() } END { print "" }'
}

# Notes that say nothing to a newcomer: some machines' pip configuration names package folders
# that do not exist (pip says so for every package), and setuptools frames a warning about every
# editable install of a flat layout. Only those exact lines go; real errors and warnings show.
quiet_pip_notes() {
  grep -vE -e "^WARNING: Location '.*' is ignored: it is neither a file nor a directory\.$" \
    -e "BuildBackendWarning: Editable installation\.$" -e '^  !!$' -e '^ +\*+$' \
    -e 'Please be careful with folders in your working directory with the same$' \
    -e 'name as your package as they may take precedence during imports\.$' \
    -e '^    with strategy, WheelFile\(wheel_path, "w"\) as wheel_obj:$' || true
}

ensure_venv() {
  local extras="${1:-}" stamp=.venv/.installed hash python
  # The two README commands started at once share one .venv: the second waits for the first.
  if command -v flock >/dev/null 2>&1; then
    exec 9>.venv.lock
    flock 9
  fi
  # A venv left half-made (an interrupted first run) has no working pip: make it again.
  if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    python="$(find_python)"
    echo "==> making .venv with $("$python" --version)"
    rm -rf .venv
    "$python" -m venv .venv
  fi
  hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  # The dev extra includes every other one, so a venv made for the tests also runs the demo.
  if ! grep -qxE "$hash:(${extras}|dev)" "$stamp" 2>/dev/null; then
    echo "==> installing cs-playbooks${extras:+[$extras]} and its dependencies into .venv (first run: a minute or two)"
    .venv/bin/python -m pip install --quiet --upgrade pip 2> >(quiet_pip_notes >&2)
    .venv/bin/python -m pip install --progress-bar off -e ".${extras:+[$extras]}" \
      2> >(quiet_pip_notes >&2) | show_progress
    echo "$hash:$extras" >> "$stamp"
  fi
  if command -v flock >/dev/null 2>&1; then
    exec 9>&-
  fi
}
