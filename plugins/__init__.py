"""The built-in method plugins (each registers through the entry-point group `harness`)."""
