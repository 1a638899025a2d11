"""Training data: labelled data sets and their layouts, splits, the synthetic set and the acquisition model."""
