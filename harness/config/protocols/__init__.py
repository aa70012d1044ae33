"""Protocol presets of the built-in data sets (``<data set>.yaml``; see ``harness.config.protocol``)."""
