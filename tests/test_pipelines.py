"""zoo.pipelines.base: every model family shares one pipeline base (device, schedule, the
optimized times of its checkpoint, and the sampler call that places and counts)."""
from zoo.pipelines.base import Pipeline
from zoo.pipelines.conditional import GuidedPipeline
from zoo.pipelines.pixels import PixelPipeline
from zoo.pipelines.text2image import TextToImagePipeline
from zoo.pipelines.toy2d import ToyPipeline, exact_pipeline


def test_every_family_samples_through_the_base():
    assert all(issubclass(cls, Pipeline) for cls in (ToyPipeline, PixelPipeline, TextToImagePipeline))
    assert "sample" not in GuidedPipeline.__dict__  # it guides its base pipeline's sampler call


def test_the_base_counts_network_passes_and_wraps_the_guide():
    pipe = exact_pipeline()
    out, passes = pipe.sample((64, 2), steps=4, solver="heun")
    assert passes == out.nfe == 7 and str(pipe.device) == "cpu"  # an exact denoiser has no network: the CPU
    doubled, passes = pipe.sample((64, 2), guide=lambda net: lambda x, t: (net(x, t) + net(x, t)) / 2, steps=4,
                                  solver="heun")
    assert passes == 2 * doubled.nfe and (doubled.x0 - out.x0).abs().max() < 1e-5
