#!/usr/bin/env bash
# One entry point for a fresh machine (Python 3.10-3.13, no conda, only package registries):
#   bash tasks.sh pipeline   set up .venv, fetch data/ (bundled DVC remote), run `dvc repro`
#   bash tasks.sh test       set up .venv, run the test suite (pytest)
#   bash tasks.sh lab        set up .venv, open JupyterLab on notebooks/ with the blobhelpers kernel
#   bash tasks.sh setup      only create/update .venv and register the kernel
# Extra arguments go to the underlying command (dvc repro / pytest / jupyter lab).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV with $($PY --version 2>&1)"
    "$PY" -m venv "$VENV"
  fi
  # Reinstall only when the dependency list changed (stamp = hash of pyproject.toml).
  local stamp="$VENV/.blobhelpers-installed"
  local want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing dependencies into .venv (first time: a few minutes, ~2.5 GB)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -m pip install --quiet -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -c "import blobhelpers, tensorflow, dvc, papermill" \
      || { echo "[setup] installation failed" >&2; exit 1; }
    echo "$want" > "$stamp"
  fi
  # The notebooks run on this kernel (registered inside .venv, nothing written to ~).
  if ! "$VENV/bin/jupyter" kernelspec list 2>/dev/null | grep -q "^ *blobhelpers "; then
    "$VENV/bin/python" -m ipykernel install --sys-prefix --name blobhelpers \
      --display-name "blobhelpers (.venv)" >/dev/null
    echo "[setup] registered Jupyter kernel 'blobhelpers'"
  fi
  export PATH="$VENV/bin:$PATH"
  export DVC_NO_ANALYTICS=1
  export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    setup ;;
  pipeline)
    setup
    dvc pull --quiet data.dvc
    dvc repro "$@"
    echo "[pipeline] reports in reports/, metrics in metrics/ (dvc metrics show)" ;;
  test)
    setup
    dvc pull --quiet data.dvc
    set +e
    python -m pytest "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then echo "[test] pytest collected no tests: failing" >&2; exit 1; fi
    exit "$rc" ;;
  lab)
    setup
    dvc pull --quiet data.dvc
    exec jupyter lab --notebook-dir="$ROOT" "$@" ;;
  *)
    sed -n '2,8p' "$0"; exit 2 ;;
esac
