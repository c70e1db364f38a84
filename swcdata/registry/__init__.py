"""Versions of a dataset: the immutable store (`store`), the whole pipeline into a published version
(`build`), export formats (`formats`) and the Hugging Face Hub (`hub`)."""
