"""QLoRA fine-tuning on a published dataset version.

Modules (one concept each; only `recipe` and `runs` import without torch):

- `recipe`: the pydantic recipe schema, YAML loading and `key=value` overrides (no torch).
- `runs`: listing `runs/<run-id>/` folders (no torch).
- `tokenizer`: the tiny BPE tokenizer trained on the dataset itself (tokenizers).
- `data`: rendering records through the prompt format, response-only labels, the length report.
- `model`: building the tiny base model, loading a base model in 4-bit NF4, attention choice,
  LoRA target-module resolution.
- `train`: `finetune(dataset, ref, recipe, output)`, the whole run.
- `generate`: loading a run's model for evaluation and batched, left-padded greedy generation.

Nothing here is imported by `swcdata --help`; the training commands import it inside their bodies.
"""
