"""Versions of a dataset: the immutable store (`store`) with its manifest (`manifest`), content hash
(`content`) and version comparison (`diff`); the whole pipeline into a published version (`build`), export
formats (`formats`) and the Hugging Face Hub (`hub`)."""
