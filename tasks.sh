#!/usr/bin/env bash
# One entry point for a fresh machine (Python 3.10-3.13, no conda, only package registries):
#   bash tasks.sh pipeline   set up .venv, fetch data/ (bundled DVC remote), run `dvc repro`
#   bash tasks.sh test       set up .venv, run the test suite (pytest)
#   bash tasks.sh lab        set up .venv, open JupyterLab on notebooks/ with the blobhelpers kernel
#   bash tasks.sh setup      only create/update .venv and register the kernel
#   bash tasks.sh plots      `dvc plots show` with the vendored vega template (opens offline)
#   bash tasks.sh lock       regenerate requirements.lock from pyproject.toml (pins = what .venv has)
# Extra arguments go to the underlying command (dvc repro / pytest / jupyter lab / dvc plots show).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY=${PYTHON:-python3}
LOCK=requirements.lock
# The platform requirements.lock was resolved for (the one the committed results were made on).
LOCK_PYTHON=3.11
LOCK_PLATFORM=x86_64-manylinux_2_28

pip_quiet() {  # pip, without the notes about unusable local index folders; fails when pip fails
  local log rc=0
  log=$(mktemp)
  "$VENV/bin/python" -m pip "$@" >"$log" 2>&1 || rc=$?
  grep -v "^WARNING: Location" "$log" || true
  rm -f "$log"
  return "$rc"
}

lock_fits() {  # does requirements.lock describe this interpreter (CPython 3.11 on Linux x86_64)?
  "$VENV/bin/python" -c "import platform, sys; sys.exit(not (sys.version_info[:2] == tuple(map(int, '$LOCK_PYTHON'.split('.'))) \
and sys.platform == 'linux' and platform.machine() == 'x86_64' \
and platform.python_implementation() == 'CPython'))" 2>/dev/null
}

write_if_changed() {  # write stdin to $1 (creating its folder) unless it already holds exactly that
  local text
  text=$(cat)
  if [ ! -f "$1" ] || [ "$(cat "$1")" != "$text" ]; then
    mkdir -p "$(dirname "$1")"
    printf '%s\n' "$text" > "$1"
  fi
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV with $($PY --version 2>&1)"
    "$PY" -m venv "$VENV"
  fi
  # Reinstall only when the dependencies changed (stamp = hash of pyproject.toml + requirements.lock).
  local stamp="$VENV/.blobhelpers-installed"
  local want
  want=$(cat pyproject.toml "$LOCK" | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing dependencies into .venv (first time: a few minutes, ~2.5 GB)"
    if lock_fits; then
      # The exact environment the results were made with: every version pinned, every file hash-checked.
      pip_quiet install --quiet --require-hashes -r "$LOCK"
      pip_quiet install --quiet --no-deps -e .
    else
      echo "[setup] $LOCK is for CPython $LOCK_PYTHON on Linux x86_64; this is $("$VENV/bin/python" -c \
'import platform; print(platform.python_implementation(), platform.python_version(), platform.system(), platform.machine())'):" \
        "installing from the ranges in pyproject.toml (results may differ in the last digits)" >&2
      pip_quiet install --quiet -e ".[test]"
    fi
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
  # JupyterLab settings inside .venv (nothing in ~): notebooks/*.py open as notebooks (jupytext),
  # new notebooks and consoles start on the blobhelpers kernel.
  write_if_changed "$VENV/share/jupyter/lab/settings/overrides.json" <<'JSON'
{
  "@jupyterlab/docmanager-extension:plugin": {
    "defaultViewers": {
      "python": "Jupytext Notebook"
    }
  },
  "@jupyterlab/apputils-extension:notification": {
    "checkForUpdates": false,
    "fetchNews": "false"
  }
}
JSON
  write_if_changed "$VENV/etc/jupyter/jupyter_server_config.json" <<'JSON'
{
  "MappingKernelManager": {
    "default_kernel_name": "blobhelpers"
  }
}
JSON
  export PATH="$VENV/bin:$PATH"
  # Jupyter's per-user state (config, kernel connection files, lab settings you change, workspaces)
  # stays in .venv too: nothing is written to the home folder.
  export JUPYTER_CONFIG_DIR="$VENV/etc/jupyter"
  export JUPYTER_RUNTIME_DIR="$VENV/share/jupyter/runtime"
  export JUPYTERLAB_SETTINGS_DIR="$VENV/share/jupyter/lab/user-settings"
  export JUPYTERLAB_WORKSPACES_DIR="$VENV/share/jupyter/lab/workspaces"
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
    # JupyterLab refuses to start as root (a container) unless told --allow-root.
    extra=()
    if [ "$(id -u)" -eq 0 ]; then extra+=(--allow-root); fi
    exec jupyter lab --notebook-dir="$ROOT" ${extra[@]+"${extra[@]}"} "$@" ;;
  plots)
    setup
    # DVC's own page loads vega from a CDN; this template has vega, vega-lite and vega-embed inlined.
    dvc plots show --html-template vendor/dvc-plots/template.html "$@" ;;
  lock)
    # Re-resolve requirements.lock from pyproject.toml (with hashes), pinning every package to the
    # version installed in .venv (the versions behind the committed results). To move a package on,
    # upgrade it in .venv first (or drop the constraint file) and rerun.
    [ -x "$VENV/bin/python" ] || { echo "[lock] no .venv: run 'bash tasks.sh setup' first" >&2; exit 1; }
    tools=$(mktemp -d)
    trap 'rm -rf "$tools"' EXIT
    "$PY" -m venv "$tools/venv"
    "$tools/venv/bin/python" -m pip install --quiet uv 2>&1 | grep -v "^WARNING: Location" || true
    "$VENV/bin/python" -m pip freeze --all --exclude-editable | grep -v -e "^pip==" -e "^-e " -e " @ " \
      > "$tools/installed.txt"
    "$tools/venv/bin/uv" pip compile pyproject.toml --extra test --generate-hashes --quiet \
      --python-version "$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')" \
      --python-platform "$LOCK_PLATFORM" -c "$tools/installed.txt" \
      --custom-compile-command "bash tasks.sh lock" -o "$LOCK" "$@"
    sed -i "s|^    #   -c $tools/installed.txt|    #   -c (versions installed in .venv)|" "$LOCK"
    echo "[lock] wrote $LOCK ($(grep -c '^[A-Za-z0-9]' "$LOCK") packages)" ;;
  *)
    sed -n '2,10p' "$0"; exit 2 ;;
esac
