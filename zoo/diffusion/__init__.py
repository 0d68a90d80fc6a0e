"""The diffusion math, model-agnostic: schedules, spacings, parameterisations, the
denoiser wrapper, losses, solvers, guidance, likelihoods and the Gaussian-mixture oracle.
Knows nothing about networks, images or Gradio."""
from zoo.diffusion.config import DiffusionConfig
from zoo.diffusion.denoiser import Denoiser
from zoo.diffusion.discrete import DiscreteSchedule
from zoo.diffusion.gmm import GaussianMixture, isotropic_gaussian
from zoo.diffusion.guidance import NoisyClassifier
from zoo.diffusion.losses import T_SAMPLINGS, diffuse, diffusion_loss, sample_t
from zoo.diffusion.params import PARAMETERISATIONS
from zoo.diffusion.sampling import SOLVER_OPTIONS, SampleOutput, sample, sample_info
from zoo.diffusion.schedules import SCHEDULES, ddpm_discretisation, get_schedule
from zoo.diffusion.solvers import DETERMINISTIC, SOLVERS
from zoo.diffusion.spacing import FIXED_SPACINGS, SPACINGS, grid_from_times, make_grid

__all__ = [
    "DiffusionConfig", "Denoiser", "DiscreteSchedule", "GaussianMixture", "isotropic_gaussian", "T_SAMPLINGS",
    "diffuse", "diffusion_loss", "sample_t", "NoisyClassifier", "PARAMETERISATIONS", "SOLVER_OPTIONS", "SampleOutput",
    "sample", "sample_info", "SCHEDULES", "ddpm_discretisation", "get_schedule",
    "DETERMINISTIC", "SOLVERS", "FIXED_SPACINGS", "SPACINGS", "grid_from_times", "make_grid",
]
