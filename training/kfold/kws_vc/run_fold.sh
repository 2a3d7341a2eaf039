#!/bin/bash
# One fold of the k-fold check of the VTLP + confusable-words keyword recipe (VC: the default keyword recipe with
# kws_data.freq_warp=0.1 and kws_data.confusable_prob=0.6; training/EXPERIMENTS.md, rule 12 of the forty-fourth
# session; decided in the forty-seventh: VC does not win). The steps, options and folders: ../kws_recipe_fold.sh.
#
#   bash training/kfold/kws_vc/run_fold.sh K [WORK]
CHECK=kws_vc; TAG=VC; RECIPE=(--set kws_data.freq_warp=0.1 --set kws_data.confusable_prob=0.6)
source "$(dirname "$0")/../kws_recipe_fold.sh" "$@"
