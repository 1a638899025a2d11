#!/usr/bin/env bash
# Rebuilds models/libraries/microplastics, the reference library of 11 polymers from the RaMPP data set (CC BY 4.0).
# Usage: models/recipes/microplastics-library.sh [DATASETS_DIR]   (default ../shared/datasets)
# Each entry's reference is its polymer's pristine particle (--references condition=pristine); the particles
# incubated in fresh and sea water are the entry's replicates, so the no-match threshold and the top-1/top-3
# rates in the card say how weathered particles match pristine references (leave-one-out). The axis leaves
# out the laser line and filter edge below 100 cm-1, as the microplastics model does.
set -euo pipefail
cd "$(dirname "$0")/../.."
data="${1:-../shared/datasets}/rampp_microplastics"
exec .venv/bin/raman-train library "$data/rampp_microplastics.npz" --out models/libraries/microplastics --force \
  --name microplastics --axis 100:3679.54:1566 --references condition=pristine \
  --description "microplastic particles by Raman: 11 polymers (ABS, PA, PC, PE, PET, POM, PP, PS, PU, PVC, SAN); references are pristine particles, replicates also particles incubated in fresh and sea water" \
  --data-source "RaMPP data set (Raman spectra of Microplastic Particles' Plastisphere): pristine particles and particles incubated in fresh and sea water; github.com/Maki-science/RaMPP" \
  --data-licence "CC BY 4.0" \
  --data-attribution "RaMPP by Marvin Kiene (Maki-science), introduced in Kumar, Ramsperger, Kiene, Brehm, Löder and Laforsch (2022), 'Spatio-chemical analysis of the plastisphere using Raman spectroscopy'; CC BY 4.0 (creativecommons.org/licenses/by/4.0), notice and full text in models/LICENSES/RaMPP-data-CC-BY-4.0.txt"
