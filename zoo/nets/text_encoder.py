"""The text encoder of the text-to-image model: open_clip's text transformer (the CLIP
text tower, Radford et al. 2021: causal transformer, pooled at the end-of-text token) and
open_clip's byte-pair tokenizer, sized for a small caption language.

CLIP's BPE has 49,408 tokens; a token embedding that size would be 6.3M parameters (90%
of the model) for a language of a few dozen words. So the config keeps the list of BPE
ids the training captions use (`vocab`); every other BPE id maps to one "unknown" row,
whose embedding the training captions never update. Pooling is at the end-of-text token,
found by its id. Trained jointly
with the diffusion model from scratch, as GLIDE's text transformer (Nichol et al. 2022).
"""
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import torch
from torch import nn

PAD, UNKNOWN = 0, 1  # rows 0 and 1 of the embedding; vocab ids follow from row 2


@lru_cache(maxsize=1)
def bpe_tokenizer():
    """open_clip's CLIP tokenizer (its BPE merges ship inside the package: no download)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def vocab_ids(words) -> tuple:
    """The sorted BPE ids of `words` plus start- and end-of-text: a TextEncoder vocab."""
    tok = bpe_tokenizer()
    ids = {tok.sot_token_id, tok.eot_token_id}
    for word in words:
        ids.update(tok.encode(word))
    return tuple(sorted(ids))


def _encode(prompt: str) -> list:
    """BPE ids of a prompt; the start / end-of-text markers may not be typed in (an end-of-
    text mid-prompt would move the pooling position)."""
    tok = bpe_tokenizer()
    ids = tok.encode(prompt)
    if tok.sot_token_id in ids or tok.eot_token_id in ids:
        raise ValueError("prompt must not contain <start_of_text> or <end_of_text>")
    return ids


class TextEncoder(nn.Module):
    @dataclass
    class Config:
        vocab: tuple = ()  # BPE ids known to the model (vocab_ids); the rest are "unknown"
        context_length: int = 24  # tokens, start- and end-of-text included
        width: int = 128
        heads: int = 4
        layers: int = 3

        # load-time bounds (zoo.hub.validation.check_config); other integers are widths, at
        # most the largest tensor dimension in the weights file; sizes the weights do not fix are capped
        LIMITS: ClassVar[dict] = {"vocab": 49407, "layers": "count"}  # vocab: BPE ids, CLIP has 49,408

        def __post_init__(self):
            self.vocab = tuple(self.vocab)

    def __init__(self, config: "TextEncoder.Config"):
        super().__init__()
        from open_clip.transformer import TextTransformer

        self.config = c = config
        tok = bpe_tokenizer()
        if not {tok.sot_token_id, tok.eot_token_id} <= set(c.vocab):
            raise ValueError("TextEncoder vocab must contain the start- and end-of-text ids (use vocab_ids)")
        # Derived from the config, not the weights, so always built on the CPU: the net can
        # then be built on the meta device (checkpoint validation) with a working tokenizer.
        table = torch.full((tok.vocab_size,), UNKNOWN, dtype=torch.long, device="cpu")
        table[torch.tensor(c.vocab, dtype=torch.long, device="cpu")] = torch.arange(2, 2 + len(c.vocab), device="cpu")
        self.register_buffer("table", table, persistent=False)  # BPE id -> embedding row
        self.transformer = TextTransformer(
            context_length=c.context_length, vocab_size=2 + len(c.vocab), width=c.width, heads=c.heads,
            layers=c.layers, output_dim=c.width, pad_id=PAD, eos_id=int(table[tok.eot_token_id]), pool_type="eos",
            output_tokens=True)

    def tokenize(self, prompts: list) -> torch.Tensor:
        """Prompts -> (n, context_length) embedding rows, padded with PAD. ValueError when a
        prompt has more tokens than the context (never silently cut: the end would be lost)."""
        tok, n_ctx = bpe_tokenizer(), self.config.context_length
        rows = torch.full((len(prompts), n_ctx), PAD, dtype=torch.long, device="cpu")
        for i, prompt in enumerate(prompts):
            ids = [tok.sot_token_id, *_encode(prompt), tok.eot_token_id]
            if len(ids) > n_ctx:
                raise ValueError(f"prompt too long: {len(ids) - 2} tokens, at most {n_ctx - 2} "
                                 f"(prompt {prompt[:60]!r}...)")
            rows[i, :len(ids)] = self.table[torch.tensor(ids)].cpu()
        return rows.to(self.table.device)

    def unknown_pieces(self, prompts: list) -> list:
        """The parts of the prompts (words, punctuation) whose BPE tokens the model has no
        embedding for: they all read as one untrained "unknown" token."""
        tok, known = bpe_tokenizer(), set(self.config.vocab)
        pieces = {tok.decode([i]).strip() for p in prompts for i in _encode(p) if i not in known}
        return sorted(pieces)

    def forward(self, rows: torch.Tensor):
        """(pooled (n, width), token features (n, L, width), mask (n, L): True on real tokens)."""
        pooled, tokens = self.transformer(rows)
        return pooled, tokens, rows != PAD
