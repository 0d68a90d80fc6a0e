"""Checkpoints laid out like Hugging Face Hub model repos, and where to find them.

A checkpoint folder is exactly what a Hub model repo holds:

    config.json        {"arch": key of zoo.nets.ARCHITECTURES, "net": {...}, "diffusion": {...}, + extra sections}
    model.safetensors  the weights (float32, or fp16/bf16 storage cast back to float32 on load)
    README.md          a model card (huggingface_hub.ModelCard) with YAML metadata and how it was trained
    samples.png        optional sample grid shown in the card

So a bundled folder, a folder in the local HF cache and a fresh Hub download all load
through one function, `load_checkpoint`. Modules: card (model cards), files (atomic
writes), checkpoint (save / load), validation (every checkpoint file is untrusted input),
network (time budgets of every Hub call), remote (resolution, bounded downloads, push).
"""
from zoo.hub.card import CARD_NAME, LIBRARY_NAME, CardInfo, make_card, read_card
from zoo.hub.checkpoint import (CONFIG_NAME, SAMPLES_NAME, WEIGHTS_NAME, is_checkpoint, load_checkpoint, load_config,
                                load_weights, record_evaluation, save_checkpoint, training_steps, weights_sha256)
from zoo.hub.files import atomic_write_text, clean_orphans, recover_dir, replace_dir, temp_sibling
from zoo.hub.network import BUDGET, HubTimeout
from zoo.hub.validation import (CheckpointError, build_on_meta, check_config, load_validated_weights, read_header,
                                read_json)
from zoo.hub.remote import (MAX_DOWNLOAD_BYTES, HubError, Plan, RepoMetadata, WeightsNotFound, cached_snapshot,
                            check_repo_id, check_revision, checkpoint_plan, fetch, hub_endpoint, hub_offline, locate,
                            metadata, probe_hub, push_folder, refuse_pickles, resolve)

__all__ = [
    "CARD_NAME", "LIBRARY_NAME", "CardInfo", "make_card", "read_card", "CONFIG_NAME", "SAMPLES_NAME", "WEIGHTS_NAME",
    "is_checkpoint", "load_checkpoint", "load_config", "load_weights", "record_evaluation", "save_checkpoint",
    "training_steps", "weights_sha256", "atomic_write_text", "clean_orphans", "recover_dir", "replace_dir",
    "temp_sibling",
    "WeightsNotFound",
    "cached_snapshot", "hub_endpoint", "hub_offline", "locate", "probe_hub", "push_folder", "resolve", "BUDGET",
    "HubTimeout", "MAX_DOWNLOAD_BYTES", "HubError", "Plan", "RepoMetadata", "check_repo_id", "check_revision",
    "checkpoint_plan", "fetch", "metadata", "refuse_pickles", "CheckpointError", "build_on_meta", "check_config",
    "load_validated_weights", "read_header", "read_json",
]
