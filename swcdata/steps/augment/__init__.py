"""`augment`: train-only variants with lineage (see `step`), request templates (`templates`), typed
name pools (`namepools`) and the variants' quality (`quality`)."""
