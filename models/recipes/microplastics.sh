#!/usr/bin/env bash
# Rebuilds models/microplastics from the RaMPP microplastics data set (CC BY 4.0).
# Usage: models/recipes/microplastics.sh [DATASETS_DIR]   (default ../shared/datasets)
# The card's metrics: trained on the pristine and fresh-water spectra, tested on the sea-water ones
# (biofilm-covered particles); the shipped model is then fitted on all 129. The model kind is
# raman-train fit's default. The data set has no per-spectrum files (data-raw holds one table per
# condition), so fit ships as examples the training spectra the model gets right with the highest
# confidence, up to three per polymer. The axis leaves out the laser line and filter edge below
# 100 cm-1 (fit's advice; the data run from -27 to 3681 cm-1, 1,600 points) at the data's own step.
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${1:-../shared/datasets}/rampp_microplastics"
exec .venv/bin/raman-train fit "$data/rampp_microplastics.npz" --out models/microplastics --force \
  --name microplastics --holdout condition=SW --axis 100:3679.54:1566 \
  --description "microplastic particles by Raman: 11 polymers (ABS, PA, PC, PE, PET, POM, PP, PS, PU, PVC, SAN), pristine and incubated in fresh and sea water; the metrics train on pristine and fresh-water particles and test on sea-water ones (the example spectra are training spectra: a self-test, not an accuracy claim)" \
  --data-source "RaMPP data set (Raman spectra of Microplastic Particles' Plastisphere): pristine particles and particles incubated in fresh and sea water; github.com/Maki-science/RaMPP" \
  --data-licence "CC BY 4.0" \
  --data-attribution "RaMPP by Marvin Kiene (Maki-science), introduced in Kumar, Ramsperger, Kiene, Brehm, Löder and Laforsch (2022), 'Spatio-chemical analysis of the plastisphere using Raman spectroscopy'; CC BY 4.0 (creativecommons.org/licenses/by/4.0), notice and full text in models/LICENSES/RaMPP-data-CC-BY-4.0.txt"
