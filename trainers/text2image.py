"""Train the text-to-image model: a DiT with its open_clip text encoder on the latents of
a trained KL-VAE (latent diffusion's second stage; train the VAE first with trainers.vae).

    python -m trainers.text2image --vae shapes-vae --fp16-weights --steps 12000 --release weights/shapes-t2i
    python -m trainers.text2image --dataset scenes --vae scenes-vae --fp16-weights --steps 16000 \
        --release weights/scenes-t2i

The captioned images are generated (zoo.data.shapes or zoo.data.scenes), encoded once by the VAE
(posterior means) and normalised to unit variance; the scale and shift are saved in
config.json 'latent' with the VAE's reference. Captions are dropped to "" with
probability --caption-dropout for classifier-free guidance. After training, the share of
prompts the samples follow (the data set's judge) goes into the checkpoint.

--vae: a zoo entry name or Hub repo id (a local folder trains too, with --vae-name saying
where that VAE is published: a checkpoint never names local paths);
the DiT records the VAE's weights' SHA-256 and refuses to load with other weights.

--caption-contrast W (scenes and shapes): captions with a hard negative (their direction words
mirrored) must denoise better than it, a term of weight W on the batch's error gap
(zoo.diffusion.caption_contrast); with --mixture position_template / position_opposite (relation
scenes whose caption decides more of the layout) it is the relation curriculum of the README.

--text-encoder ARCH/TAG (e.g. ViT-B-32/openai): a pretrained open_clip text tower instead of
the from-scratch encoder, its weights downloaded by open_clip and frozen unless
--no-freeze-text-encoder (as Imagen, Saharia et al. 2022, freezes its T5); ARCH alone is that
architecture randomly initialised. The checkpoint records ARCH/TAG and holds the tower's
weights, so loading it downloads nothing.
"""
import argparse
import math
from pathlib import Path

import torch

from trainers.common import Release, add_loop_args, command_line, image_grid, loop_config, public_path, train
from zoo.data.captioned import CAPTIONED, captioned
from zoo.diffusion import PARAMETERISATIONS, SCHEDULES, T_SAMPLINGS, DiffusionConfig, diffusion_loss
from zoo.diffusion.caption_contrast import caption_contrast_loss
from zoo.hub import CardInfo
from zoo.nets.dit import DiT
from zoo.nets.text_encoder import (
    PretrainedUnavailable,
    TextEncoder,
    pretrained_config,
    vocab_ids,
    start_weights,
)
from zoo.pipelines.pixels import from_uint8
from zoo.pipelines.text2image import LatentSpace, TextToImagePipeline, check_latent, load_latent_space, resolve_vae

EVAL_SEED = 20_000  # captions of fresh shapes for the evaluation: another seed of the generator
PREVIEW_PROMPTS = {"shapes": ["a red circle", "a blue square", "a green triangle",
                              "a small yellow circle in the top left", "a large purple square on the right",
                              "a cyan triangle at the bottom"],
                   "scenes": ["a red circle", "three yellow circles", "a circle and a square",
                              "a red circle to the left of a blue square", "a red triangle and a blue circle",
                              "a purple triangle"]}
EVAL_GUIDANCE = (0.0, 1.0, 3.0)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vae", default="shapes-vae",
                    help="VAE to train on: a zoo entry, Hub repo id or checkpoint folder")
    ap.add_argument("--vae-name", help="how the release names its VAE: a zoo entry or Hub repo id (default: --vae; "
                                       "required when --vae is a folder, since a checkpoint never names local paths)")
    ap.add_argument("--dataset", choices=sorted(CAPTIONED), default="shapes", help="the captioned images")
    ap.add_argument("--num-images", type=int, default=20_000, help="size of the generated training set")
    ap.add_argument("--width", type=int, default=DiT.Config.width)
    ap.add_argument("--depth", type=int, default=DiT.Config.depth)
    ap.add_argument("--heads", type=int, default=DiT.Config.heads)
    ap.add_argument("--text-width", type=int, default=TextEncoder.Config.width)
    ap.add_argument("--text-layers", type=int, default=TextEncoder.Config.layers)
    ap.add_argument("--text-attention", choices=("causal", "bidirectional"), default="causal",
                    help="the from-scratch encoder's self-attention: causal as CLIP's, or bidirectional as T5's "
                         "(every word sees the whole prompt: relations and binding)")
    ap.add_argument("--text-encoder", default="", metavar="ARCH[/TAG]",
                    help="a pretrained open_clip text tower instead of the from-scratch encoder: ARCH/TAG (e.g. "
                         "ViT-B-32/openai; open_clip downloads the weights), or ARCH alone, randomly initialised; "
                         "it has its architecture's sizes (no --text-width / --text-layers)")
    ap.add_argument("--freeze-text-encoder", action=argparse.BooleanOptionalAction, default=None,
                    help="keep the --text-encoder tower fixed (default: frozen with pretrained weights, as Imagen "
                         "freezes its T5; trained when randomly initialised)")
    ap.add_argument("--caption-dropout", type=float, default=DiT.Config.caption_dropout)
    ap.add_argument("--mixture", type=mixture_arg, metavar="CATEGORY=WEIGHT,...",
                    help="scenes only: the share of training scenes per category (unnamed ones get 0; default "
                         "zoo.data.scenes.MIXTURE), e.g. to weigh the spatial captions up when fine-tuning; "
                         "position_template / position_opposite are relation scenes with a fixed or axis-end layout")
    ap.add_argument("--caption-contrast", type=float, default=0.0, metavar="WEIGHT",
                    help="weight of the caption-contrast term (zoo.diffusion.caption_contrast): captions with a hard "
                         "negative ('left of' -> 'right of') must denoise better than it; 0 (default) is off")
    ap.add_argument("--contrast-beta", type=float, default=100.0,
                    help="the contrast term stops pushing once the error gap exceeds a few 1 / BETA")
    ap.add_argument("--objective", choices=PARAMETERISATIONS, default="v")
    ap.add_argument("--schedule", choices=sorted(SCHEDULES), default="vp-cosine")
    ap.add_argument("--t-sampling", choices=T_SAMPLINGS, default="uniform")
    ap.add_argument("--eval-samples", type=int, default=300, help="captions of fresh shapes for the evaluation")
    ap.add_argument("--fp16-weights", action="store_true", help="store the released weights in float16")
    add_loop_args(ap, steps=10000, batch_size=64, lr=5e-4, warmup=300, lr_decay="cosine", ema_decay=0.999,
                  ckpt_every=1000, log_every=50, out="runs/t2i-shapes")
    return ap.parse_args(argv)


def mixture_arg(text: str) -> dict:
    """'position=0.35,color_attr=0.15' -> shares of the scenes categories (checked, normalised)."""
    from zoo.data.scenes import check_mixture

    try:
        pairs = dict(item.split("=", 1) for item in text.split(","))
        return check_mixture({k.strip(): float(v) for k, v in pairs.items()})
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err} (expected CATEGORY=WEIGHT,...)") from None


def load_data(args, seed: int):
    """(ImageData, captions) of the generated training set, of --mixture when given."""
    if args.mixture is None:
        return captioned(args.dataset).load(args.num_images, seed)
    return captioned(args.dataset).load(args.num_images, seed, mixture=args.mixture)


def net_config(args) -> DiT.Config:
    if not 0.0 < args.caption_dropout < 1.0:
        raise ValueError(f"--caption-dropout must be in (0, 1), got {args.caption_dropout}")
    input_size = latent_size(args)  # the cheap check first: text_config may download a tower's weights
    return DiT.Config(width=args.width, depth=args.depth, heads=args.heads, text=text_config(args),
                      caption_dropout=args.caption_dropout, input_size=input_size)


def text_config(args) -> TextEncoder.Config:
    """The from-scratch encoder on the data set's words, or the --text-encoder open_clip tower."""
    if not args.text_encoder:
        if args.freeze_text_encoder:
            raise ValueError("--freeze-text-encoder needs --text-encoder: the from-scratch encoder only learns the "
                             "caption words by training")
        return TextEncoder.Config(vocab=vocab_ids(captioned(args.dataset).vocabulary()), width=args.text_width,
                                  layers=args.text_layers, causal=args.text_attention == "causal")
    if (args.text_width, args.text_layers) != (TextEncoder.Config.width, TextEncoder.Config.layers):
        raise ValueError(f"--text-width / --text-layers size the from-scratch encoder; the open_clip tower "
                         f"{args.text_encoder} has its architecture's sizes")
    if args.text_attention != "causal":
        raise ValueError(f"--text-attention bidirectional applies to the from-scratch encoder; the open_clip tower "
                         f"{args.text_encoder} was trained causal")
    return pretrained_config(args.text_encoder, frozen=args.freeze_text_encoder)


def tower_start(args, text: TextEncoder.Config) -> dict | None:
    """The --text-encoder tower's pretrained weights (None without a tag), fetched before any
    other work: SystemExit saying why when they cannot be."""
    try:
        return start_weights(text)
    except PretrainedUnavailable as err:
        raise SystemExit(f"--text-encoder {args.text_encoder}: {err}") from None


def latent_size(args) -> int:
    """The side of the VAE's latents; the VAE must take the data set's images."""
    vae = load_latent_space({"vae": args.vae}, "cpu", "--vae", allow_local=True).vae.config
    size = captioned(args.dataset).image_size
    if vae.image_size != size:
        raise ValueError(f"--vae {public_path(args.vae)} takes {vae.image_size}x{vae.image_size} images, "
                         f"the {args.dataset} data set has {size}x{size}: train its VAE with "
                         f"python -m trainers.vae --dataset {args.dataset}")
    return vae.latent_shape[1]


def prepare_latents(vae: str, data):
    """(LatentSpace with the normalisation, normalised latents (N, C, h, w)): the images
    encoded once (posterior means), scaled to zero mean and unit variance."""
    raw = load_latent_space({"vae": vae}, "cpu", "--vae", allow_local=True)  # the command line may name a folder
    latents = raw.encode_uint8(data.images.permute(0, 2, 3, 1)).cpu()  # encode_uint8 takes (N, H, W, C)
    shift, scale = float(latents.mean()), float(1.0 / latents.std())
    return LatentSpace(raw.vae, scale, shift), (latents - shift) * scale


def batches(latents: torch.Tensor, rows: torch.Tensor, batch_size: int, negatives: torch.Tensor | None = None):
    """batch_fn for the loop: random (latent, caption tokens[, hard negative tokens]), drawn
    from its generator."""
    def draw(step, generator):
        idx = torch.randint(len(latents), (batch_size,), generator=generator)
        return (latents[idx], rows[idx]) + (() if negatives is None else (negatives[idx],))
    return draw


def contrast_settings(args) -> dict:
    """The caption-contrast term's settings the release records ({} when off)."""
    weight, beta = args.caption_contrast, args.contrast_beta
    if not (math.isfinite(weight) and weight >= 0 and math.isfinite(beta) and beta > 0):
        raise ValueError(f"--caption-contrast must be finite and >= 0 and --contrast-beta finite and > 0, got "
                         f"{weight} and {beta}")
    return {"caption_contrast": weight, "contrast_beta": beta} if weight > 0 else {}


def evaluation(pipe_for, prompts: list, data):
    """Release.evaluate: share of fresh captions the samples follow, by guidance w."""
    def evaluate(net):
        pipe, results = pipe_for(net), {}
        for w in EVAL_GUIDANCE:
            scores = data.score(pipe.generate(prompts, guidance=w), prompts)
            results[str(w)] = {k: round(v, 4) for k, v in scores.items()}
            print(f"w = {w}: {results[str(w)]}")
        attrs = list(next(iter(results.values())))
        rows = "\n".join(f"| {w} | " + " | ".join(f"{r[a]:.3f}" for a in attrs) + " |" for w, r in results.items())
        return {"prompt_following_by_guidance": results}, (
            f"Share of {len(prompts)} fresh captions (of new random {data.name}, drawn as the training captions "
            f"are) whose samples show what the caption names (read back from the pixels by the {data.name} judge; "
            f"'overall': the mean), DPM-Solver++ 2M, 20 steps, by classifier-free guidance w:\n\n| w | "
            f"{' | '.join(attrs)} "
            f"|\n|---|" + "---|" * len(attrs) + "\n" + rows + "\n")
    return evaluate


def vae_name(args) -> str:
    """The VAE reference the release records: a zoo entry or Hub repo id that others can
    resolve (check_latent refuses anything else when the checkpoint is loaded)."""
    if args.vae_name is None and Path(args.vae).is_dir():
        raise ValueError(f"--vae {public_path(args.vae)} is a local folder: give --vae-name, the zoo entry or Hub repo "
                         "id under which that VAE is published (push it with `python -m trainers.vae ... "
                         "--push-to-hub USER/NAME`)")
    name = args.vae_name or args.vae
    check_latent({"vae": name}, "--vae-name")  # a zoo entry or a Hub repo id, as a loader will demand
    return name


def make_release(args, cfg, config, diffusion, space, n_params: int, pipe_for, argv) -> Release:
    """What the release folder records: config with the latent space, card, evaluation."""
    from zoo.hub import weights_sha256

    latent_shape = "x".join(map(str, space.vae.config.latent_shape))
    data = captioned(args.dataset)
    card = CardInfo(title=f"Text-to-image latent DiT on the {data.name} data set", pipeline_tag="text-to-image",
                    tags=["dit", "latent-diffusion", "open_clip", "classifier-free-guidance", args.objective,
                          args.schedule],
                    description=(f"Latent DiT ({n_params / 1e6:.2f}M parameters, its open_clip text transformer "
                                 f"included) on {latent_shape} latents of the VAE {vae_name(args)}, {args.objective} "
                                 f"objective, {args.schedule} schedule, captions dropped with probability "
                                 f"{args.caption_dropout}; from the diffusion model zoo."),
                    data=f"{args.num_images} generated captioned images: {data.description}, seed {cfg.seed}")
    latent = {"vae": vae_name(args), "vae_sha256": weights_sha256(resolve_vae(args.vae, allow_local=True)),
              "scale": space.scale, "shift": space.shift}
    prompts = data.captions(args.eval_samples, EVAL_SEED)
    return Release("dit", config, diffusion, card,
                   extra={"latent": latent, "training": contrast_settings(args),
                          "data": {"dataset": data.name, "size": args.num_images,
                                   **({"mixture": args.mixture} if args.mixture else {})}},
                   dtype=torch.float16 if args.fp16_weights else torch.float32,
                   command=command_line("trainers.text2image", argv), evaluate=evaluation(pipe_for, prompts, data))


def main(argv=None):
    args = parse_args(argv)
    vae_name(args)  # before any work: a release must name its VAE publicly
    if args.mixture is not None and args.dataset != "scenes":
        raise ValueError(f"--mixture weighs the scenes data set's categories; {args.dataset} has none")
    cfg = loop_config(args, may_change=("fp16_weights", "eval_samples", "vae_name"))
    config = net_config(args)
    tower = tower_start(args, config.text)
    data, captions = load_data(args, cfg.seed)
    space, latents = prepare_latents(args.vae, data)
    if tuple(latents.shape[1:]) != (config.in_channels, config.input_size, config.input_size):
        raise ValueError(f"the VAE's latents are {tuple(latents.shape[1:])}, the DiT takes "
                         f"{(config.in_channels, config.input_size, config.input_size)}")
    torch.manual_seed(cfg.seed)
    net = DiT(config)
    if tower is not None:
        net.text_encoder.load_start_weights(tower)
    rows = net.text_encoder.tokenize(captions)
    diffusion = DiffusionConfig(schedule=args.schedule, parameterisation=args.objective, t_sampling=args.t_sampling)

    def pipe_for(ema_net):
        space.vae.to(next(ema_net.parameters()).device)
        return TextToImagePipeline(diffusion.denoiser(ema_net), space, latents.shape[1:], dataset=args.dataset)

    def sample_fn(ema_net):  # a row of 6 seeds per preview prompt, w = 3
        images = pipe_for(ema_net).generate([p for p in PREVIEW_PROMPTS[args.dataset] for _ in range(6)],
                                            guidance=3.0)
        return image_grid(from_uint8(images), nrow=6)

    contrast = contrast_settings(args)
    negative = captioned(args.dataset).negative
    negatives = net.text_encoder.tokenize([negative(c) or c for c in captions]) if contrast else None

    def loss_fn(model, batch):
        if contrast:
            return caption_contrast_loss(diffusion.denoiser(model), *batch, contrast["caption_contrast"],
                                         contrast["contrast_beta"], diffusion.t_sampling)
        z, text = batch
        return diffusion_loss(diffusion.denoiser(model), z, diffusion.t_sampling, text=text)

    release = make_release(args, cfg, config, diffusion, space, sum(p.numel() for p in net.parameters()), pipe_for,
                           argv)
    result = train(net, loss_fn, batches(latents, rows, cfg.batch_size, negatives), cfg, release, sample_fn=sample_fn)
    print(f"released {result.release_dir} after {result.step} steps, loss {result.final_loss:.4f}")
    return result


if __name__ == "__main__":
    main()
