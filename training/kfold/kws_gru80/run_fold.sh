#!/bin/bash
# One fold of the k-fold check of the wider keyword model (G80: the default keyword recipe with 80 GRU units per layer
# instead of 64, the widest whose int8 model stays under the 300 KB target; training/EXPERIMENTS.md, rule 13 of the
# forty-eighth session). The steps, options and folders: ../kws_recipe_fold.sh.
#
#   bash training/kfold/kws_gru80/run_fold.sh K [WORK]
CHECK=kws_gru80; TAG=G80; RECIPE=(--set kws.gru_units=80)
source "$(dirname "$0")/../kws_recipe_fold.sh" "$@"
