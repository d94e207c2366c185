"""Training: the fitted state, the epoch loop, the blocked rating layout and the guards."""
