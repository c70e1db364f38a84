"""Measuring: a model on a published version (`evaluate`, `metrics`, `compare`) and a dataset (`stats`),
drawn by `plots`."""
