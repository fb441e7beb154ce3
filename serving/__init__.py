"""Composition: builds the served components from settings, for the entry points only.

The API, the CLI and the evaluation's entry points import from here; domain packages receive the
built objects as parameters and never import this package.
"""
