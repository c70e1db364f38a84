"""`augment`: train-only variants with lineage.

The step (`step`: its config, report and `augment`) makes each variant with one code transform, each in
its own module (`rename`, `layout`, `comments`), on the per-record state of `record`, and assembles the
variant's text in `framing`; request templates (`templates`), typed name pools (`namepools`) and the
variants' quality (`quality`) complete it."""
