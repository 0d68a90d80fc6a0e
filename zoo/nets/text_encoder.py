"""The text encoder of the text-to-image model: open_clip's text transformer (the CLIP
text tower, Radford et al. 2021: causal transformer, pooled at the end-of-text token) and
open_clip's byte-pair tokenizer, sized for a small caption language.

CLIP's BPE has 49,408 tokens; a token embedding that size would be 6.3M parameters (90%
of the model) for a language of a few dozen words. So the config keeps the list of BPE
ids the training captions use (`vocab`); every other BPE id maps to one "unknown" row,
whose embedding the training captions never update. Pooling is at the end-of-text token,
found by its id. Trained jointly
with the diffusion model from scratch, as GLIDE's text transformer (Nichol et al. 2022).

Or a pretrained open_clip text tower (Config.pretrained = "ARCH/TAG", e.g.
"ViT-B-32/openai"; "ARCH" alone is that architecture randomly initialised): the full CLIP
vocabulary, the architecture's own sizes, context (77 tokens for CLIP) and pooling, the
pooled output in CLIP's joint embedding space. open_clip downloads the weights, and only
when a trainer asks (with_pretrained_weights); a checkpoint rebuilds the architecture
randomly initialised and then loads its own model.safetensors, so loading never downloads.
pretrained_config freezes a pretrained tower by default (`frozen`), as Imagen (Saharia et
al. 2022) keeps its pretrained T5 encoder frozen: the DiT learns to read the features, the
tower keeps the language it learnt from far more text than a caption data set has.
"""
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import torch
from torch import nn

PAD, UNKNOWN = 0, 1  # rows 0 and 1 of the embedding; vocab ids follow from row 2
MAX_SPEC_CHARS = 100  # "ARCH/TAG": open_clip's longest names are about 60 characters
EXAMPLE_TOWERS = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "RN50")  # named in errors; all take CLIP's BPE


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


# ----------------------------------------------------------------------------- open_clip towers


class PretrainedUnavailable(RuntimeError):
    """open_clip could not get a tower's pretrained weights (not cached, Hub unreachable)."""


def split_spec(spec: str) -> tuple:
    """"ARCH/TAG" -> (ARCH, TAG); "ARCH" -> (ARCH, "")."""
    arch, _, tag = spec.partition("/")
    return arch, tag


def _unsupported(text_cfg) -> str:
    """Why this module cannot drive an open_clip text tower config ("" if it can): tokenize
    gives CLIP's BPE ids, and the mask and pooling assume a causal tower pooled at the
    end-of-text token, CLIP's largest id (pool_type "argmax")."""
    if text_cfg.hf_model_name:
        return f"it is the Hugging Face text model {text_cfg.hf_model_name}"
    if text_cfg.hf_tokenizer_name or text_cfg.tokenizer_mode or text_cfg.tokenizer_kwargs:
        return "it reads another tokenizer's ids than CLIP's BPE"
    if text_cfg.vocab_size != bpe_tokenizer().vocab_size:
        return f"its vocabulary has {text_cfg.vocab_size} tokens, CLIP's BPE {bpe_tokenizer().vocab_size}"
    if text_cfg.embed_cls or text_cfg.no_causal_mask or text_cfg.pool_type != "argmax":
        return "it is not a causal tower pooled at the end-of-text token"
    return ""


def _model_config(arch: str) -> dict:
    """open_clip's (local, bundled) config of architecture `arch`; ValueError for a name
    open_clip does not know or a tower this module cannot drive."""
    import open_clip
    from open_clip.model import CLIPTextCfg

    config = open_clip.get_model_config(arch)
    if config is None:
        known = clip_text_architectures()
        shown = [name for name in EXAMPLE_TOWERS if name in known]
        raise ValueError(f"{arch!r} is not an open_clip architecture (open_clip.list_models()); text towers this "
                         f"encoder takes: {', '.join(shown)} and {len(known) - len(shown)} more "
                         "(zoo.nets.text_encoder.clip_text_architectures())")
    why = "a CoCa model" if "multimodal_cfg" in config else _unsupported(CLIPTextCfg(**config["text_cfg"]))
    if why:
        raise ValueError(f"open_clip {arch!r}: its text tower cannot be used here: {why}")
    return config


@lru_cache(maxsize=1)
def clip_text_architectures() -> list:
    """open_clip architectures whose text tower this module can drive (CLIP's BPE, causal,
    pooled at the end-of-text token)."""
    import open_clip
    from open_clip.model import CLIPTextCfg

    return [name for name in open_clip.list_models() if "multimodal_cfg" not in open_clip.get_model_config(name)
            and not _unsupported(CLIPTextCfg(**open_clip.get_model_config(name)["text_cfg"]))]


def _check_spec(spec: str) -> dict:
    """open_clip's config of the architecture in `spec`; ValueError for an unknown
    architecture or a tag open_clip has no weights under."""
    import open_clip

    arch, tag = split_spec(spec)
    config = _model_config(arch)
    if tag and tag not in open_clip.list_pretrained_tags_by_model(arch):
        raise ValueError(f"open_clip has no pretrained weights {tag!r} for {arch!r} (its tags: "
                         f"{', '.join(open_clip.list_pretrained_tags_by_model(arch)) or 'none'})")
    return config


def _tower_sizes(spec: str) -> dict:
    """The Config fields an open_clip architecture fixes."""
    from open_clip.model import CLIPTextCfg

    text = CLIPTextCfg(**_check_spec(spec)["text_cfg"])
    return {"context_length": text.context_length, "width": text.width, "heads": text.heads, "layers": text.layers}


def _quick_gelu(spec: str) -> bool:
    """The tower's activation: QuickGELU where the architecture or the weights' tag says so
    (OpenAI's CLIP weights were trained with it). It has no weights, so the spec must fix
    it for a checkpoint to rebuild the same function."""
    import open_clip

    arch, tag = split_spec(spec)
    tag_quick = bool(tag) and open_clip.get_pretrained_cfg(arch, tag).get("quick_gelu", False)
    return bool(open_clip.get_model_config(arch).get("quick_gelu", False) or tag_quick)


def _build_tower(spec: str) -> nn.Module:
    """open_clip's text tower of `spec`, randomly initialised (built as open_clip builds it
    inside its CLIP models; _build_text_tower is the builder it uses, open_clip 3.3.0)."""
    from open_clip.model import _build_text_tower

    config = _check_spec(spec)
    return _build_text_tower(config["embed_dim"], {**config["text_cfg"], "output_tokens": True},
                             quick_gelu=_quick_gelu(spec))


def _download(arch: str, tag: str) -> str:
    """Path of open_clip's weights file for (arch, tag): the Hugging Face cache, or a
    download by open_clip; PretrainedUnavailable when neither works."""
    import open_clip

    from zoo.hub import hub_offline

    try:
        return open_clip.download_pretrained(open_clip.get_pretrained_cfg(arch, tag))
    except Exception as err:  # whatever the Hub client raises: the weights are not here
        where = ("the Hugging Face Hub is unreachable (HF_HUB_OFFLINE is set)" if hub_offline() else
                 "the download failed (is the Hugging Face Hub unreachable?)")
        raise PretrainedUnavailable(f"open_clip's {arch} weights {tag!r} are not in the local cache and {where}. "
                                    f"{type(err).__name__}: {str(err)[:200]}. Connect and retry, or build the "
                                    f"architecture without weights ({arch!r}, no tag)") from err


def pretrained_weights(spec: str) -> dict:
    """The text tower's tensors of open_clip's pretrained CLIP `spec` ("ARCH/TAG"), keyed as
    TextEncoder.transformer names them. open_clip downloads and loads the whole CLIP model;
    the text tower's tensors are kept."""
    import open_clip

    arch, tag = split_spec(spec)
    if not tag:
        raise ValueError(f"{spec!r} names no pretrained weights: give ARCH/TAG, e.g. {arch}/openai")
    _check_spec(spec)
    clip = open_clip.create_model(arch, pretrained=_download(arch, tag), force_quick_gelu=_quick_gelu(spec))
    source = clip.text.state_dict() if hasattr(clip, "text") else clip.state_dict()  # CustomTextCLIP / CLIP
    with torch.device("meta"):
        names = list(_build_tower(spec).state_dict())
    missing = [name for name in names if name not in source]
    if missing:
        raise RuntimeError(f"open_clip's {spec} checkpoint lacks the text tower tensors {missing[:4]}")
    return {name: source[name] for name in names}


def pretrained_config(spec: str, frozen: bool | None = None) -> "TextEncoder.Config":
    """The Config of open_clip's text tower `spec` ("ARCH" or "ARCH/TAG"), its sizes from
    open_clip's architecture config (nothing is downloaded). frozen: None freezes a tower
    with pretrained weights (a tag) and trains a randomly initialised one."""
    tag = split_spec(spec)[1]
    return TextEncoder.Config(pretrained=spec, frozen=bool(tag) if frozen is None else frozen, **_tower_sizes(spec))


def start_weights(config: "TextEncoder.Config") -> dict | None:
    """The pretrained tower weights a training run starts from: those of the config's tag,
    fetched now (PretrainedUnavailable if they cannot be), or None (no tag: from scratch or
    randomly initialised). A checkpoint never fetches them: it holds the trained tower."""
    return pretrained_weights(config.pretrained) if split_spec(config.pretrained)[1] else None


# ----------------------------------------------------------------------------- the encoder


class TextEncoder(nn.Module):
    @dataclass
    class Config:
        vocab: tuple = ()  # BPE ids known to the model (vocab_ids); the rest are "unknown"
        context_length: int = 24  # tokens, start- and end-of-text included
        width: int = 128
        heads: int = 4
        layers: int = 3
        pretrained: str = ""  # open_clip text tower "ARCH" or "ARCH/TAG" (pretrained_config); "": from scratch
        frozen: bool = False  # the tower is not trained (a pretrained one: module docstring)
        # False: every token attends to every real token (a padding mask, no causal mask), as
        # T5's encoder in Imagen (Saharia et al. 2022). CLIP's causal tower leaves an early noun
        # blind to the words after it ("a red circle | to the left of ..."): a likely cause of
        # failed relations and attribute binding. The from-scratch encoder only.
        causal: bool = True

        # load-time bounds (zoo.hub.validation.check_config); other integers are widths, at
        # most the largest tensor dimension in the weights file; sizes the weights do not fix are capped.
        # pretrained: a length cap there; __post_init__ then admits only open_clip's names (build_on_meta reports it)
        LIMITS: ClassVar[dict] = {"vocab": 49407, "layers": "count",  # vocab: BPE ids, CLIP has 49,408
                                  "pretrained": MAX_SPEC_CHARS}

        def __post_init__(self):
            self.vocab = tuple(self.vocab)
            if self.pretrained:
                self._check_tower()
                if not self.causal:
                    raise ValueError(f"TextEncoder causal=False applies to the from-scratch encoder; open_clip's "
                                     f"{self.pretrained} was trained causal")
            elif self.frozen:
                raise ValueError("TextEncoder frozen applies to an open_clip tower (pretrained); the from-scratch "
                                 "encoder only learns the caption words by training")

        def _check_tower(self):
            """An open_clip tower: a known architecture and tag, the full vocabulary, its sizes."""
            if len(self.pretrained) > MAX_SPEC_CHARS:
                raise ValueError(f"TextEncoder pretrained: at most {MAX_SPEC_CHARS} characters, got "
                                 f"{self.pretrained[:MAX_SPEC_CHARS]!r}...")
            if self.vocab:
                raise ValueError(f"TextEncoder vocab applies to the from-scratch encoder; open_clip's "
                                 f"{self.pretrained} reads the full CLIP vocabulary (leave vocab empty)")
            for name, size in _tower_sizes(self.pretrained).items():
                if getattr(self, name) != size:
                    raise ValueError(f"TextEncoder {name} {getattr(self, name)} differs from open_clip "
                                     f"{self.pretrained}'s {size} (build the config with pretrained_config)")

    def __init__(self, config: "TextEncoder.Config"):
        super().__init__()
        self.config = c = config
        if c.pretrained:
            self._open_clip_tower(c)
        else:
            self._from_scratch(c)
        self.eot_row = int(self.table[bpe_tokenizer().eot_token_id])
        self.transformer.requires_grad_(not c.frozen)

    def _from_scratch(self, c: "TextEncoder.Config"):
        """A small TextTransformer whose embedding rows are PAD, UNKNOWN and the vocab."""
        from open_clip.transformer import TextTransformer

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
            output_tokens=True, no_causal_mask=not c.causal, use_pad_mask=not c.causal)

    def _open_clip_tower(self, c: "TextEncoder.Config"):
        """open_clip's tower of c.pretrained, randomly initialised (load_start_weights puts the
        pretrained ones in); its embedding rows are the BPE ids."""
        # on the CPU whatever the default device, as the from-scratch table (see there)
        self.register_buffer("table", torch.arange(bpe_tokenizer().vocab_size, device="cpu"), persistent=False)
        self.transformer = _build_tower(c.pretrained)

    def load_start_weights(self, weights: dict) -> None:
        """The tower's pretrained weights (start_weights), in place of its random start."""
        self.transformer.load_state_dict(weights, strict=True, assign=True)  # assign: no second copy
        self.transformer.requires_grad_(not self.config.frozen)  # assign replaced the parameters

    @property
    def pooled_width(self) -> int:
        """Width of the pooled output: the text projection's (CLIP's embedding size)."""
        return self.transformer.output_dim

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
        embedding for: they all read as one untrained "unknown" token. Never any for an
        open_clip tower, which embeds the whole vocabulary."""
        if self.config.pretrained:
            return []
        tok, known = bpe_tokenizer(), set(self.config.vocab)
        pieces = {tok.decode([i]).strip() for p in prompts for i in _encode(p) if i not in known}
        return sorted(pieces)

    def real_tokens(self, rows: torch.Tensor) -> torch.Tensor:
        """(n, L) True on the prompt's tokens, start- and end-of-text included. An open_clip
        tower's rows are BPE ids, and CLIP pads with id 0, which is also the token "!": its
        padding is found by position, after the first end-of-text."""
        if not self.config.pretrained:
            return rows != PAD
        eot = (rows == self.eot_row).long()
        return eot.cumsum(dim=1) - eot == 0

    def forward(self, rows: torch.Tensor):
        """(pooled (n, pooled_width), token features (n, L, width), mask (n, L): True on real tokens)."""
        pooled, tokens = self.transformer(rows)
        return pooled, tokens, self.real_tokens(rows)
