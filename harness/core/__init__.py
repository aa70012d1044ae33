"""What every part needs to run networks and keep results: the run directory, checkpoints, seeds, distributed setup,
device and precision, weight files, caches, image sheets."""
