"""Evaluation: a run's or a folder's images scored by the metrics, the image manifest."""
