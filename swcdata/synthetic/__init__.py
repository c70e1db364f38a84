"""Synthetic data for tests and benchmarks, derived from the seed corpus (read from its folder, never
copied): a large corpus of varied records (`corpus`) and near-duplicates planted among real records
(`planted`). Nothing else in the package imports it."""
