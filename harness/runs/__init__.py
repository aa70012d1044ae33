"""Runs: what creates or describes a run (run.json and row labels, sample sheets, imported checkpoints, image runs,
parameter counts, the environment)."""
