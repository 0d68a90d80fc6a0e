"""The diffusion half of a checkpoint's config: which schedule the net was trained
under and what it predicts. Saved in config.json beside the net config."""
from dataclasses import dataclass, field


@dataclass
class DiffusionConfig:
    schedule: str = "vp-cosine"        # key of SCHEDULES
    parameterisation: str = "eps"      # eps | x0 | v | flow | score
    t_sampling: str = "uniform"        # uniform | logit-normal (training only)
    sigma_data: float = 1.0            # data std, for the network input scaling c_in

    def denoiser(self, net):
        """The denoiser D(x, t) of a net trained under this config: the one place a
        checkpoint's diffusion section becomes a Denoiser (zoo.diffusion.denoiser)."""
        from zoo.diffusion.denoiser import Denoiser

        return Denoiser(net, self.schedule, self.parameterisation, self.sigma_data)


@dataclass
class SamplingConfig:
    """The optional 'sampling' section of config.json: sampling times optimised for this
    model (zoo.diffusion.optimize_steps; python -m trainers.optimize_steps writes it).
    optimized_times: {solver: {"steps": [t_0 = t_max > ... > t_{steps-1}]}}, checked by
    spacing.check_optimized_times on load; optimized_info: how they were found and the
    criterion they reached (informational, never read by samplers)."""
    optimized_times: dict = field(default_factory=dict)
    optimized_info: dict = field(default_factory=dict)


def optimized_times_of(config: dict) -> dict:
    """A checkpoint config's stored times, checked and parsed: {solver: {steps: times}}
    ({} when it has none). ValueError naming the bad entry otherwise."""
    from zoo.diffusion.solvers import DETERMINISTIC
    from zoo.diffusion.spacing import check_optimized_times

    section = config.get("sampling", {})
    if not isinstance(section, dict):
        raise ValueError(f"the sampling section must be a JSON object, got {type(section).__name__}")
    unknown = sorted(set(section) - set(SamplingConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"sampling.{unknown[0]}: unknown field (known: {sorted(SamplingConfig.__dataclass_fields__)})")
    if not isinstance(section.get("optimized_info", {}), dict):
        raise ValueError("sampling.optimized_info must be a JSON object")
    schedule = config.get("diffusion", {}).get("schedule", DiffusionConfig.schedule)
    return check_optimized_times(section.get("optimized_times", {}), schedule, DETERMINISTIC)
