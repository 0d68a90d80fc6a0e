"""The model families: each module turns a checkpoint folder into a pipeline that samples.

    toy2d        2D point clouds: an MLP (or a Gaussian mixture's exact denoiser)
    toy2d_views  what the Toy 2D tab shows of a toy model: trajectories, fields, noise floor
    pixels       unconditional image UNets (MNIST, CIFAR-10)
    conditional  class-conditional UNets with classifier-free and classifier guidance
    text2image   a latent DiT with an open_clip text encoder, decoded by a KL-VAE
    distill      few-step students distilled from a toy teacher
    diffusers_format  published diffusers UNet2DModel repos, on this project's solvers

The infrastructure they share sits beside this folder: zoo.registry and zoo.repos (which
family a name or repo opens), zoo.hub (checkpoints, cards, Hub I/O), zoo.gpu and zoo.cpu
(devices and threads), zoo.diffusion (schedules, denoisers, solvers: the math).
"""
