"""Developer tools run from a checkout, never installed on a board: the demo and the fault soak."""
