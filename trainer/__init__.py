"""raman-edge trainer: data loading, training, evaluation and export of model bundles (workstation side)."""
