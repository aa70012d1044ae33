"""Placeholder: replaced by the module that registers the built-in entries."""
