"""Interactions, item catalogs, preprocessing, splits and file formats."""
