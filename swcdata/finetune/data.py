"""Records -> training sequences: prompt rendering, response-only labels, and the length report.

Each record becomes `prompt_ids + response_ids`, where the response ends with EOS and the labels
are -100 on every prompt token, so the loss covers exactly the response and its EOS. Prompt and
response are tokenized separately, so the boundary is exact whatever the tokenizer merges.

An example longer than `max_length` is never cut on the response side: with `truncate_prompt`
its prompt loses tokens from the left (BOS kept), with `drop` it is dropped; an example whose
response alone leaves fewer than `min_prompt_tokens` for the prompt is always dropped. The
`LengthReport` says how many examples exceeded the limit and what was done to each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

    from swcdata.finetune.recipe import DataSection

IGNORE_INDEX = -100
INSTRUCTION_TEMPLATE = "Instruction:\n{instruction}\n\nResponse:\n"


class LengthBin(BaseModel):
    """Examples whose length (prompt + response + EOS, in tokens) is in [low, high]; high None: above max_length."""

    low: int
    high: int | None
    examples: int


def length_histogram(lengths: list[int], max_length: int, bins: int = 8) -> list[LengthBin]:
    """`bins` equal bins up to `max_length`, then one bin for longer examples."""
    width = max(1, -(-max_length // bins))
    counts = [0] * (bins + 1)
    for n in lengths:
        counts[bins if n > max_length else min((max(n, 1) - 1) // width, bins - 1)] += 1
    out = [LengthBin(low=i * width + 1, high=min((i + 1) * width, max_length), examples=counts[i])
           for i in range(bins)]
    return [*out, LengthBin(low=max_length + 1, high=None, examples=counts[bins])]


class LengthReport(BaseModel):
    """What happened to examples longer than `max_length` in one split."""

    split: str
    max_length: int
    policy: Literal["truncate_prompt", "drop"]
    prompt_format: Literal["chat", "instruction"]
    examples: int = Field(description="Records in the split (after max_*_examples).")
    kept: int = Field(description="Examples that become training sequences.")
    over_max_length: int = Field(description="Examples whose prompt + response + EOS exceeded max_length.")
    truncated_prompt: int = Field(description="Over-long examples kept by cutting the prompt from the left.")
    prompt_tokens_cut: int = Field(description="Prompt tokens removed by truncation, in total.")
    dropped_policy: int = Field(description="Over-long examples dropped because the policy is `drop`.")
    dropped_response_too_long: int = Field(description="Examples dropped because the response alone does not fit.")
    dropped_ids: list[str] = Field(default_factory=list, description="Ids of dropped records (first 50).")
    tokens: int = Field(description="Tokens in the kept sequences.")
    loss_tokens: int = Field(description="Tokens that carry a loss (response + EOS).")
    longest: int = Field(description="Longest sequence before any truncation.")
    mean_length: float
    p95_length: int
    histogram: list[LengthBin] = Field(default_factory=list, description="Examples per token-length bin (before "
                                       "truncation): eight bins of max_length/8, then one for the over-long.")
    notes: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.split}: {self.kept}/{self.examples} examples kept, {self.over_max_length} over "
                 f"{self.max_length} tokens"]
        if self.truncated_prompt:
            parts.append(f"{self.truncated_prompt} prompt-truncated ({self.prompt_tokens_cut} tokens cut)")
        if self.dropped_policy:
            parts.append(f"{self.dropped_policy} dropped (policy drop)")
        if self.dropped_response_too_long:
            parts.append(f"{self.dropped_response_too_long} dropped (response alone too long)")
        return "; ".join(parts)


def resolve_prompt_format(tokenizer: PreTrainedTokenizerBase, fmt: str) -> Literal["chat", "instruction"]:
    if fmt == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "instruction"
    if fmt == "chat" and not getattr(tokenizer, "chat_template", None):
        from swcdata.core.errors import ConfigError

        raise ConfigError(["data.prompt_format: `chat` but the tokenizer has no chat template (use `instruction` "
                           "or `auto`)"])
    return "chat" if fmt == "chat" else "instruction"


def render(tokenizer: PreTrainedTokenizerBase, instruction: str, response: str, fmt: Literal["chat", "instruction"],
           system_prompt: str | None = None, notes: set[str] | None = None) -> tuple[str, str]:
    """(prompt text, response text) of one record; the prompt ends where the model starts answering."""
    if fmt == "instruction":
        bos = tokenizer.bos_token or ""
        return bos + INSTRUCTION_TEMPLATE.format(instruction=instruction), response
    user = {"role": "user", "content": instruction}
    messages: list[dict[str, str]] = [user]
    if system_prompt:
        messages = [{"role": "system", "content": system_prompt}, user]
    try:
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception:  # a template without a system role raises (e.g. Gemma's)
        if not system_prompt:
            raise
        if notes is not None:
            notes.add("the chat template has no system role: the system prompt was prepended to the user turn")
        messages = [{"role": "user", "content": f"{system_prompt}\n\n{instruction}"}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": response}], tokenize=False)
    if full.startswith(prompt):
        return prompt, full[len(prompt):]
    # templates that rewrite earlier turns: split at the response itself
    at = full.rfind(response)
    if at < 0:
        raise ValueError("the chat template does not reproduce the response text")
    return full[:at], full[at:]


def encode(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str) -> tuple[list[int], list[int]]:
    """Token ids of prompt and response (response ends with EOS)."""
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r = tokenizer(response, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if eos is not None and (not r or r[-1] != eos):
        r = [*r, eos]
    return list(p), list(r)


def fit(prompt: list[int], response: list[int], cfg: DataSection, bos_id: int | None
        ) -> tuple[list[int] | None, str]:
    """The prompt that fits `max_length` next to the full response, or None with the reason it is dropped."""
    limit = cfg.max_length
    if len(prompt) + len(response) <= limit:
        return prompt, "ok"
    room = limit - len(response)
    if room < cfg.min_prompt_tokens:
        return None, "response"
    if cfg.overlong == "drop":
        return None, "policy"
    if bos_id is not None and prompt and prompt[0] == bos_id:
        return [bos_id, *prompt[len(prompt) - (room - 1):]], "truncated"
    return prompt[len(prompt) - room:], "truncated"


def build_split(records: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, cfg: DataSection, split: str,
                limit: int | None = None) -> tuple[datasets.Dataset, LengthReport]:
    """Tokenize one split into `input_ids` / `labels` columns, with its length report."""
    import datasets as hfd
    import numpy as np

    if limit is not None:
        records = records.select(range(min(limit, len(records))))
    fmt = resolve_prompt_format(tokenizer, cfg.prompt_format)
    notes: set[str] = set()
    ids_out: list[list[int]] = []
    labels_out: list[list[int]] = []
    lengths: list[int] = []
    counts = {"truncated": 0, "policy": 0, "response": 0, "cut": 0, "over": 0}
    dropped: list[str] = []
    bos_id = tokenizer.bos_token_id
    for row in records:
        prompt_text, response_text = render(tokenizer, row["instruction"], row["response"], fmt,
                                            cfg.system_prompt, notes)
        p, r = encode(tokenizer, prompt_text, response_text)
        lengths.append(len(p) + len(r))
        if len(p) + len(r) > cfg.max_length:
            counts["over"] += 1
        kept, why = fit(p, r, cfg, bos_id)
        if kept is None:
            counts[why] += 1
            if len(dropped) < 50:
                dropped.append(str(row.get("id", "")))
            continue
        if why == "truncated":
            counts["truncated"] += 1
            counts["cut"] += len(p) - len(kept)
        ids_out.append(kept + r)
        labels_out.append([IGNORE_INDEX] * len(kept) + r)
    arr = np.array(lengths or [0])
    report = LengthReport(
        split=split, max_length=cfg.max_length, policy=cfg.overlong, prompt_format=fmt, examples=len(records),
        kept=len(ids_out), over_max_length=counts["over"], truncated_prompt=counts["truncated"],
        prompt_tokens_cut=counts["cut"], dropped_policy=counts["policy"],
        dropped_response_too_long=counts["response"], dropped_ids=dropped,
        tokens=sum(map(len, ids_out)), loss_tokens=sum(sum(1 for x in lab if x != IGNORE_INDEX) for lab in labels_out),
        longest=int(arr.max()), mean_length=round(float(arr.mean()), 1), p95_length=int(np.percentile(arr, 95)),
        histogram=length_histogram(lengths, cfg.max_length), notes=sorted(notes),
    )
    ds = hfd.Dataset.from_dict({"input_ids": ids_out, "labels": labels_out})
    return ds, report
