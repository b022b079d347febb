#!/usr/bin/env bash
# Queue a small hyperparameter grid over this project's model (blobnet) as DVC experiments.
#
#   scripts/exp_grid.sh [--lr LIST] [--width LIST] [--noise LIST] [--name PREFIX] [--dry-run]
#
# LIST is comma-separated; the grid is every combination (a Hydra sweep of `dvc exp run -S`):
#   --lr     train.models.blobnet.learning_rate   default 0.0005,0.001,0.002
#   --width  train.models.blobnet.width           default 8,16        (16 = the architecture's default)
#   --noise  train.models.blobnet.noise_sigma     default 0.1,0.2,0.4 (augmentation noise)
# 3 x 2 x 3 = 18 experiments, named PREFIX-1 ... PREFIX-18 (default prefix: grid-<date>-<time>).
#
# Each experiment runs the pipeline up to stage `train` only: its metric (metrics/02_train.json) is
# measured on the VALIDATION subframes, and hyperparameters must be chosen there. Stage `evaluate`
# reads the test set, which is looked at once, for the configuration chosen here.
# Experiments run in temporary copies of the repository: build/ products that are in place
# (stage data_prep's datasets, the training checkpoints) are copied in (`-C`), so an up-to-date
# data_prep is not rerun and unchanged models resume from their finished checkpoints.
# Nothing runs until the queue is started (the script prints how). See docs/parameters.md, "Hyperparameter search".
set -euo pipefail
cd "$(dirname "$0")/.."

LR="0.0005,0.001,0.002"
WIDTH="8,16"
NOISE="0.1,0.2,0.4"
NAME="grid-$(date +%Y%m%d-%H%M%S)"
DRY=0
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --lr) LR="$2"; shift 2 ;;
    --width) WIDTH="$2"; shift 2 ;;
    --noise) NOISE="$2"; shift 2 ;;
    --name) NAME="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "exp_grid.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for v in "$LR" "$WIDTH" "$NOISE"; do
  if ! [[ "$v" =~ ^[0-9.eE+-]+(,[0-9.eE+-]+)*$ ]]; then
    echo "exp_grid.sh: '$v' is not a comma-separated list of numbers" >&2; exit 2
  fi
done

if [ -n "${DVC:-}" ]; then read -r -a DVC_CMD <<< "$DVC"
elif [ -x .venv/bin/dvc ]; then DVC_CMD=(.venv/bin/dvc)
else DVC_CMD=(dvc); fi

COPY=()
for p in build/campaign build/diffs build/datasets build/checkpoints; do
  if [ -e "$p" ]; then COPY+=(-C "$p"); fi
done

n=1
for list in "$LR" "$WIDTH" "$NOISE"; do
  IFS=, read -r -a items <<< "$list"; n=$((n * ${#items[@]}))
done

CMD=("${DVC_CMD[@]}" exp run --queue --name "$NAME"
     -S "train.models.blobnet.learning_rate=$LR"
     -S "++train.models.blobnet.width=$WIDTH"
     -S "train.models.blobnet.noise_sigma=$NOISE"
     "${COPY[@]}" train)
if [ "$n" -gt 1 ]; then names="$NAME-1 ... $NAME-$n"; else names="$NAME"; fi
echo "[exp-grid] $n experiment(s) ($names): learning_rate {$LR} x width {$WIDTH} x noise_sigma {$NOISE}"
echo "[exp-grid] ${CMD[*]}"
if [ "$DRY" = 1 ]; then exit 0; fi
"${CMD[@]}"

D="${DVC_CMD[*]}"
cat <<MSG

[exp-grid] queued. Run them (one at a time: the machine has few cores; -j N runs N at once):
  $D queue start            # in the background; or \`$D exp run --run-all\` to follow them here
  $D queue status           # queued / running / done / failed
  $D queue logs <name> -f   # the log of one experiment
Compare them on the validation metric (stage 02's, never the test set):
  $D exp show --drop '.*' --keep 'Experiment|train\.models\.blobnet\.(learning_rate|width|noise_sigma)\$|blobnet_val_(auc|tpr)' \\
      --sort-by metrics/02_train.json:blobnet_val_auc --sort-order desc      # add --csv for a file
Then take the chosen values into params.yaml (\`$D exp apply <name>\`) and run \`$D repro\`:
the test-set numbers of stage evaluate are measured once, for that choice.
Remove the grid: \`$D exp remove --queue\` (queued ones), \`$D exp remove <names>\`.
MSG
