"""The model kinds the trainer fits: candidates, linear models, projections, the compact and convolutional networks, the classical comparison models."""
