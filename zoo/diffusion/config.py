"""The diffusion half of a checkpoint's config: which schedule the net was trained
under and what it predicts. Saved in config.json beside the net config."""
from dataclasses import dataclass


@dataclass
class DiffusionConfig:
    schedule: str = "vp-cosine"        # key of SCHEDULES
    parameterisation: str = "eps"      # eps | x0 | v | flow | score
    t_sampling: str = "uniform"        # uniform | logit-normal (training only)
    sigma_data: float = 1.0            # data std, for the network input scaling c_in
