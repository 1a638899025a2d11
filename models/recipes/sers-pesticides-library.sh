#!/usr/bin/env bash
# Rebuilds models/libraries/sers-pesticides, the reference library of the SERS pesticide set (MIT).
# Usage: models/recipes/sers-pesticides-library.sh [DATASETS_DIR]   (default ../shared/datasets)
# One entry per class (five pesticides on spinach and the pesticide-free control); each reference is the mean
# of all the class's spectra (0.5-10 ppm) after the matching preprocessing, which raman-train library chooses
# by leave-one-out top-1 accuracy among SNV, derivative and baseline. The no-match threshold, the unmixing
# decision and the verification rates are calibrated on the same spectra (see the card). 60 replicates per
# entry are stored for verification (seeded, spread over the concentrations); the mixture rates pair the five
# pesticides (the control, spinach alone, is the blank).
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${1:-../shared/datasets}/sersformer_pesticides"
exec .venv/bin/raman-train library "$data/sersformer_pesticides.npz" --out models/libraries/sers-pesticides --force \
  --name sers-pesticides --spread concentration_ppm --blank No_pest_present \
  --description "pesticide residues on spinach by SERS: five pesticides and a pesticide-free control, 0.5-10 ppm; entries are the classes of the SERSFormer set" \
  --data-source "SERSFormer data set: Hajikhani et al. (2024), 'A Machine Learning Approach for Rapid Detection of Pesticides by SERS Coupled with Transformers'; github.com/BioinfoMachineLearning/SERSFormer" \
  --data-licence "MIT" \
  --data-attribution "Copyright (c) 2023 BioinfoMachineLearning; MIT licence, full text in models/LICENSES/SERSFormer-data-MIT.txt"
