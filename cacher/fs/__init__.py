"""Filesystem safety: whole-or-nothing files and trees, locks, scratch space, trusted files, globs."""
