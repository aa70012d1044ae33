"""Evaluation metrics: the built-in registry (``registry.py``), the loop ↔ metric interface (``interface.py``),
shared feature streams with cached real-image features (``features.py``), the IS/FID/KID statistics
(``frechet.py``), Inception metrics (``inception.py``), R-precision (``r_precision.py``), CLIP metrics
(``clip_score.py``) and the shapes probe (``shapes_probe.py``)."""
