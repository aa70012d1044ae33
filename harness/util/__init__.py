"""Small helpers every part may use: errors, hashing, the version."""
