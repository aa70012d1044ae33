"""Placeholder: the DAMSM pretraining stage."""
