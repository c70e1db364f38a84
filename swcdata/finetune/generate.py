"""Batched greedy generation for evaluation: load a run's model (base + adapter, or the base alone) and
answer many prompts at once.

Prompts are tokenized once, sorted by length (longest first, so an out-of-memory batch fails at
the start and batches hold prompts of similar length) and padded on the left, so every row's
answer starts at the same position; the new tokens are decoded without special tokens. A prompt
longer than the model's context minus `max_new_tokens` loses tokens from the left (BOS kept).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swcdata.core.errors import DataError, InputError
from swcdata.finetune.runs import ADAPTER_DIR, BASE_DIR

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from swcdata.finetune.recipe import Recipe
    from swcdata.finetune.runs import RunInfo


@dataclass
class Answer:
    index: int  # position in the prompt list
    text: str
    new_tokens: int
    prompt_tokens: int
    truncated: bool
    seconds: float  # the batch's wall time divided by its size


def load_model(run_dir: Path, info: RunInfo, recipe: Recipe, *, base_only: bool = False
               ) -> tuple[Any, PreTrainedTokenizerBase]:
    """(model in eval mode, left-padding tokenizer): the run's base model loaded as in training (4-bit NF4 when
    the recipe says so), with the run's LoRA adapter on top unless `base_only`."""
    from swcdata.finetune import bnb_cpu
    from swcdata.finetune import model as M

    bnb_cpu.quiet_hub_kernel()  # before transformers imports bitsandbytes
    from transformers import AutoTokenizer

    adapter = run_dir / ADAPTER_DIR
    if recipe.model.source == "tiny":
        base = run_dir / BASE_DIR
        if not (base / "config.json").is_file():
            raise InputError(f"run {info.run_id} has no base model in {base}",
                             hint="the tiny recipe saves its base model there; was the run interrupted?")
        base_name = str(base)
    else:
        base_name = info.base_model
    if not base_only and not (adapter / "adapter_config.json").is_file():
        raise InputError(f"run {info.run_id} has no adapter in {adapter} (status: {info.status})",
                         hint="finish or resume the run first, or score the base model with --base-only")
    tok_dir = adapter if (adapter / "tokenizer_config.json").is_file() else base_name
    kwargs: dict[str, Any] = {"trust_remote_code": recipe.model.trust_remote_code}
    if recipe.model.source == "hub" and recipe.model.revision and tok_dir == base_name:
        kwargs["revision"] = recipe.model.revision
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the evaluation has its own progress bar
    tok = AutoTokenizer.from_pretrained(tok_dir, **kwargs)
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token or tok.eos_token
    tok.padding_side = "left"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = M.load_base_model(base_name, recipe, attn=M.pick_attention(recipe.model.attn_implementation))
        model.config.use_cache = True
        if not base_only:
            from peft import PeftModel

            try:
                model = PeftModel.from_pretrained(model, str(adapter))
            except Exception as e:  # a damaged adapter file: a data problem of the run, not a crash
                raise DataError(f"run {info.run_id}: cannot load the adapter in {adapter}: {type(e).__name__}: {e}",
                                hint="the run's adapter files are damaged; train the run again") from None
    if next(model.parameters()).device.type == "cpu":
        # the packed AVX-512 BF16 kernel only for bf16 compute and shapes it accepts (see bnb_cpu)
        bnb_cpu.configure(model, training=False, compute_dtype=M.resolve_dtype(recipe.quantization.compute_dtype))
    return model.eval(), tok


def context_limit(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "max_position_embeddings", None)


def generate(model: Any, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], *, batch_size: int,
             max_new_tokens: int, min_new_tokens: int = 0, on_batch: Callable[[list[Answer]], None] | None = None
             ) -> list[Answer]:
    """Greedy answers to `prompts` (already rendered, BOS included), `batch_size` at a time, left-padded.

    `on_batch` is called after every batch with its answers (to save partial results); the return value
    holds every answer in prompt order.
    """
    import torch

    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError("batch_size and max_new_tokens must be >= 1")
    device = next(model.parameters()).device
    limit = context_limit(model)
    room = None if limit is None else max(limit - max_new_tokens, 1)
    bos = tokenizer.bos_token_id
    encoded: list[tuple[list[int], bool]] = []
    for p in prompts:
        ids = list(tokenizer(p, add_special_tokens=False)["input_ids"])
        cut = room is not None and len(ids) > room
        if cut:
            assert room is not None
            ids = [bos, *ids[len(ids) - room + 1:]] if bos is not None and ids[0] == bos else ids[len(ids) - room:]
        encoded.append((ids, cut))
    order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i][0]), i))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
    answers: list[Answer | None] = [None] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(encoded[i][0]) for i in idx)
        input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids = encoded[i][0]
            input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            mask[row, width - len(ids):] = 1
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                 num_beams=1, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens or None,
                                 pad_token_id=pad, eos_token_id=eos, temperature=None, top_p=None, top_k=None)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - t0) / len(idx)
        new = out[:, width:].tolist()
        batch: list[Answer] = []
        for row, i in enumerate(idx):
            toks = new[row]
            n = next((k + 1 for k, t in enumerate(toks) if t in eos_ids), len(toks))
            text = tokenizer.decode(toks[:n], skip_special_tokens=True)
            a = Answer(index=i, text=text, new_tokens=n, prompt_tokens=len(encoded[i][0]), truncated=encoded[i][1],
                       seconds=seconds)
            answers[i] = a
            batch.append(a)
        if on_batch is not None:
            on_batch(batch)
    return [a for a in answers if a is not None]


_PLACEHOLDER = "\u2063swcdata-response\u2063"


def render_prompts(tokenizer: PreTrainedTokenizerBase, instructions: Sequence[str], recipe: Recipe) -> list[str]:
    """Each instruction rendered exactly as in training (chat template or Instruction/Response), up to the point
    where the model starts answering."""
    from swcdata.finetune.data import render, resolve_prompt_format

    fmt = resolve_prompt_format(tokenizer, recipe.data.prompt_format)
    return [render(tokenizer, text, _PLACEHOLDER, fmt, recipe.data.system_prompt)[0] for text in instructions]
