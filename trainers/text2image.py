"""Train the text-to-image model: a DiT with its open_clip text encoder on the latents of
a trained KL-VAE (latent diffusion's second stage; train the VAE first with trainers.vae).

    python -m trainers.text2image --vae weights/shapes-vae --fp16-weights --release weights/shapes-t2i

The captioned shapes images are generated (zoo.data.shapes), encoded once by the VAE
(posterior means) and normalised to unit variance; the scale and shift are saved in
config.json 'latent' with the VAE's reference. Captions are dropped to "" with
probability --caption-dropout for classifier-free guidance. After training, the share of
prompts the samples follow (zoo.data.shapes.judge) goes into the checkpoint.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from trainers.common import Release, add_loop_args, command_line, image_grid, loop_config, train  # noqa: E402
from zoo.data import shapes  # noqa: E402
from zoo.diffusion import (PARAMETERISATIONS, SCHEDULES, T_SAMPLINGS, Denoiser, DiffusionConfig,  # noqa: E402
                           diffusion_loss)
from zoo.hub import CardInfo  # noqa: E402
from zoo.nets.dit import DiT  # noqa: E402
from zoo.nets.text_encoder import TextEncoder, vocab_ids  # noqa: E402
from zoo.text2image import LatentSpace, TextToImagePipeline, load_latent_space  # noqa: E402

TEST_SEED = 20_000  # held-out captions for the evaluation: another seed of the generator
PREVIEW_PROMPTS = ["a red circle", "a blue square", "a green triangle", "a small yellow circle in the top left",
                   "a large purple square on the right", "a cyan triangle at the bottom"]
EVAL_GUIDANCE = (0.0, 1.0, 3.0)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vae", default="shapes-vae", help="VAE: a checkpoint folder, zoo entry or Hub repo id")
    ap.add_argument("--num-images", type=int, default=20_000, help="size of the generated training set")
    ap.add_argument("--width", type=int, default=DiT.Config.width)
    ap.add_argument("--depth", type=int, default=DiT.Config.depth)
    ap.add_argument("--heads", type=int, default=DiT.Config.heads)
    ap.add_argument("--text-width", type=int, default=TextEncoder.Config.width)
    ap.add_argument("--text-layers", type=int, default=TextEncoder.Config.layers)
    ap.add_argument("--caption-dropout", type=float, default=DiT.Config.caption_dropout)
    ap.add_argument("--objective", choices=PARAMETERISATIONS, default="v")
    ap.add_argument("--schedule", choices=sorted(SCHEDULES), default="vp-cosine")
    ap.add_argument("--t-sampling", choices=T_SAMPLINGS, default="uniform")
    ap.add_argument("--eval-samples", type=int, default=300, help="held-out prompts sampled for the evaluation")
    ap.add_argument("--fp16-weights", action="store_true", help="store the released weights in float16")
    add_loop_args(ap, steps=10000, batch_size=64, lr=5e-4, warmup=300, lr_decay="cosine", ema_decay=0.999,
                  ckpt_every=1000, log_every=50, out="runs/t2i-shapes")
    return ap.parse_args(argv)


def net_config(args) -> DiT.Config:
    if not 0.0 < args.caption_dropout < 1.0:
        raise ValueError(f"--caption-dropout must be in (0, 1), got {args.caption_dropout}")
    text = TextEncoder.Config(vocab=vocab_ids(shapes.vocabulary()), width=args.text_width, layers=args.text_layers)
    return DiT.Config(width=args.width, depth=args.depth, heads=args.heads, text=text,
                      caption_dropout=args.caption_dropout)


def encode_data(space: LatentSpace, data) -> torch.Tensor:
    """uint8 (N, 3, H, W) images -> their VAE latents (unnormalised: scale 1, shift 0)."""
    raw = LatentSpace(space.vae, 1.0, 0.0)
    return raw.encode_uint8(data.images.permute(0, 2, 3, 1)).cpu()


def evaluation(pipe_for, prompts: list):
    """Release.evaluate: share of held-out prompts the samples follow, by guidance w."""
    def evaluate(net):
        pipe, results = pipe_for(net), {}
        for w in EVAL_GUIDANCE:
            images = [pipe(prompts[i:i + 50], n=len(prompts[i:i + 50]), guidance=w, seed=i).images
                      for i in range(0, len(prompts), 50)]
            results[str(w)] = {k: round(v, 4) for k, v in shapes.judge(np.concatenate(images), prompts).items()}
            print(f"w = {w}: {results[str(w)]}")
        attrs = list(next(iter(results.values())))
        rows = "\n".join(f"| {w} | " + " | ".join(f"{r[a]:.3f}" for a in attrs) + " |" for w, r in results.items())
        return {"prompt_following_by_guidance": results}, (
            f"Share of {len(prompts)} held-out captions whose samples show each attribute the caption names (read "
            f"back from the pixels by zoo.data.shapes.judge; 'all': every named attribute), DPM-Solver++ 2M, 20 "
            f"steps, by classifier-free guidance w:\n\n| w | {' | '.join(attrs)} |\n|---|"
            + "---|" * len(attrs) + "\n" + rows + "\n")
    return evaluate


def main(argv=None):
    args = parse_args(argv)
    cfg = loop_config(args)
    config = net_config(args)
    data, captions = shapes.load_shapes(args.num_images, seed=cfg.seed)
    space = load_latent_space(args.vae, 1.0, 0.0, "cpu")
    latents = encode_data(space, data)
    shift, scale = float(latents.mean()), float(1.0 / latents.std())
    latents = (latents - shift) * scale
    space = LatentSpace(space.vae, scale, shift)
    torch.manual_seed(cfg.seed)
    net = DiT(config)
    rows = net.text_encoder.tokenize(captions)
    diffusion = DiffusionConfig(schedule=args.schedule, parameterisation=args.objective, t_sampling=args.t_sampling)
    if tuple(latents.shape[1:]) != (config.in_channels, config.input_size, config.input_size):
        raise ValueError(f"the VAE's latents are {tuple(latents.shape[1:])}, the DiT takes "
                         f"{(config.in_channels, config.input_size, config.input_size)}")

    def pipe_for(ema_net):
        space.vae.to(next(ema_net.parameters()).device)
        return TextToImagePipeline(Denoiser(ema_net, diffusion.schedule, diffusion.parameterisation), space,
                                   latents.shape[1:])

    def sample_fn(ema_net):  # a row of 6 seeds per preview prompt, w = 3
        pipe = pipe_for(ema_net)
        prompts = [p for p in PREVIEW_PROMPTS for _ in range(6)]
        return image_grid(torch.from_numpy(pipe(prompts, n=len(prompts), guidance=3.0).images).permute(0, 3, 1, 2)
                          .float() / 127.5 - 1, nrow=6)

    test_prompts = [c for _, c in shapes.sample_shapes(args.eval_samples, seed=TEST_SEED)]
    n_params = sum(p.numel() for p in net.parameters())
    card = CardInfo(title="Text-to-image latent DiT on the shapes data set", pipeline_tag="text-to-image",
                    tags=["dit", "latent-diffusion", "open_clip", "classifier-free-guidance", args.objective,
                          args.schedule],
                    description=(f"Latent DiT ({n_params / 1e6:.2f}M parameters, its open_clip text transformer "
                                 f"included) on {'x'.join(map(str, latents.shape[1:]))} latents of the VAE "
                                 f"{args.vae}, {args.objective} objective, {args.schedule} schedule, captions dropped "
                                 f"with probability {args.caption_dropout}; from the diffusion model zoo."),
                    data=f"{args.num_images} generated captioned shapes images (zoo.data.shapes, seed {cfg.seed})")
    release = Release("dit", config, diffusion, card,
                      extra={"latent": {"vae": args.vae, "scale": scale, "shift": shift},
                             "data": {"dataset": "shapes", "size": args.num_images,
                                      "vocabulary": shapes.vocabulary()}},
                      dtype=torch.float16 if args.fp16_weights else torch.float32,
                      command=command_line("trainers.text2image", argv), evaluate=evaluation(pipe_for, test_prompts))

    def batch_fn(step, g):
        idx = torch.randint(len(latents), (cfg.batch_size,), generator=g)
        return latents[idx], rows[idx]

    def loss_fn(model, batch):
        z, text = batch
        return diffusion_loss(Denoiser(model, diffusion.schedule, diffusion.parameterisation), z,
                              diffusion.t_sampling, text=text)

    result = train(net, loss_fn, batch_fn, cfg, release, sample_fn=sample_fn)
    print(f"released {result.release_dir} after {result.step} steps, loss {result.final_loss:.4f}")
    return result


if __name__ == "__main__":
    main()
