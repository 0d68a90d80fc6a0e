"""Checkpoint state as safetensors + JSON (no pickle): optimizer state, every RNG state and
module weights, split into tensors and JSON-able metadata and put back together exactly."""
import random

import numpy as np
import torch


def flatten_optimizer(state_dict: dict):
    """Optimizer state -> (tensors for safetensors, JSON-able rest); no pickle needed."""
    tensors, scalars = {}, {}
    for idx, per_param in state_dict["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> tuple[dict, dict]:
    tensors = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(np.random.get_state()[1].copy())}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    _, _, pos, has_gauss, gauss = np.random.get_state()
    return tensors, {"python": random.getstate(), "numpy": [int(pos), int(has_gauss), float(gauss)]}


def set_rng_state(tensors: dict, meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(tensors["cuda"]))
    pos, has_gauss, gauss = meta["numpy"]
    np.random.set_state(("MT19937", tensors["numpy"].numpy(), pos, has_gauss, gauss))
    version, internal, gauss_next = meta["python"]
    random.setstate((version, tuple(internal), gauss_next))


def state_tensors(module: torch.nn.Module) -> dict:
    """A detached CPU copy of a module's state dict, ready for safetensors."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
