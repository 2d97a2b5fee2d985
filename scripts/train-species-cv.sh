#!/usr/bin/env bash
# The species model v2 of issue 29, from ../shared/data/gems68/train: 5-fold cross-validation, out-of-fold
# calibration, the all-fold model exported, its open-set score fitted, then fold 0's model alone for the
# held-out checks out-of-fold logits cannot give (capture conditions, int8 against fp32, the familiarity
# score on gem photos it never saw).
#
#   scripts/train-species-cv.sh [OUT_BUNDLE]        # default runs/bundle-v2/gemid-species
#   scripts/train-species-cv.sh models/gemid-species  # the shipped bundle (then write its card's sections)
#
# WORKERS (default: all cores) make the augmented views; on a GPU machine the whole run takes ~4 min with
# 15 workers (2026-12-06, H100), on 2 CPU cores about 2 hours for the folds and as long again for fold 0.
set -euo pipefail
cd "$(dirname "$0")/.."
export NO_ALBUMENTATIONS_UPDATE=1
G=.venv/bin/gemid
PHOTOS=${PHOTOS:-../shared/data/gems68/train}
BUNDLE=${1:-runs/bundle-v2/gemid-species}
RUN=${RUN:-runs/gems68-lite0-cv}
WORKERS=${WORKERS:-$(nproc)}
RECIPE=(--model efficientnet_lite0 --freeze 5 --cache-views 16 --epochs 25 --photometric grader --seed 0
        --workers "$WORKERS" --quiet)

[ -f data/gems68-k5.csv ] || $G dataset import "$PHOTOS" --out data/gems68-k5.csv --kfold 5 --fold all --seed 0
$G train --manifest data/gems68-k5.csv --cv --out "$RUN" "${RECIPE[@]}"
$G evaluate --checkpoint "$RUN/last.pt" --oof "$RUN/oof.npz" --out "$RUN/eval"
$G export --checkpoint "$RUN/last.pt" --eval "$RUN/eval" --manifest data/gems68-k5.csv --out "$BUNDLE"
$G openset fit --bundle "$BUNDLE" --manifest data/gems68-k5.csv --nongem ../shared/data/nongem-dev --oof "$RUN/oof.npz"

# fold 0 alone: the same recipe on folds 1-4, measured on fold 0
[ -f data/gems68-k5-f0.csv ] || $G dataset split data/gems68-k5.csv --kfold 5 --fold 0 --out data/gems68-k5-f0.csv
$G train --manifest data/gems68-k5.csv --cv --cv-fold 0 --out "$RUN-fold0" "${RECIPE[@]}"
$G evaluate --checkpoint "$RUN-fold0/fold0.pt" --manifest data/gems68-k5.csv --split fold0 --out "$RUN-fold0/eval"
$G export --checkpoint "$RUN-fold0/fold0.pt" --eval "$RUN-fold0/eval" --manifest data/gems68-k5.csv \
  --out "$RUN-fold0/bundle" --name fold0 --version fold0
.venv/bin/python -m bench.bench_robustness --manifest data/gems68-k5.csv --split fold0 --bundle "$RUN-fold0/bundle"
$G openset fit --bundle "$RUN-fold0/bundle" --manifest data/gems68-k5-f0.csv --nongem ../shared/data/nongem-dev \
  --oof "$RUN/oof.npz"  # folds 1-4's out-of-fold logits: the same recipe, models that did not train on them
