"""Pure nn.Modules. They know nothing about schedules: every diffusion net is called as
`net(x, t, **cond)` with t in [0, 1] (continuous diffusion time, shape (batch,)) and
returns a tensor shaped like x (the VAE has encode / decode instead). Each architecture is a module exposing a config
dataclass and a class taking that config; checkpoints name the architecture by key,
never by import path (a config file must not be able to import arbitrary code)."""
import dataclasses
import importlib
from zoo.checks import check_choice

# key -> (module, class name). The class has a `Config` dataclass attribute.
ARCHITECTURES = {
    "mlp": ("zoo.nets.mlp", "MLP"),
    "unet": ("zoo.nets.unet", "UNet"),
    "classifier": ("zoo.nets.classifier", "Classifier"),
    "vae": ("zoo.nets.vae", "VAE"),
    "dit": ("zoo.nets.dit", "DiT"),
}


def net_class(arch: str):
    check_choice(arch, sorted(ARCHITECTURES), "arch")
    module, name = ARCHITECTURES[arch]
    return getattr(importlib.import_module(module), name)


def build_net(arch: str, config: dict):
    """Instantiate architecture `arch` from a plain dict (as stored in config.json)."""
    cls = net_class(arch)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = set(config) - fields
    if unknown:
        raise ValueError(f"unknown {arch} config fields {sorted(unknown)}; allowed: {sorted(fields)}")
    return cls(cls.Config(**config))
