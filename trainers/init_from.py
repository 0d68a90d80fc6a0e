"""Where a fine-tuning run starts (`--init-from FOLDER`): a released checkpoint's weights,
validated as any download is, loaded into a net of the same architecture and net config.
The release records the folder and the steps that made those weights, so a fine-tuned
model states all its training, not only the last run's."""
import dataclasses
import json

import torch

from trainers.published import public_path
from zoo import hub


def init_weights(net: torch.nn.Module, folder: str, arch: str, net_config) -> dict:
    """Load the checkpoint in `folder` into `net`; returns the training facts the release
    adds: {"init_from": its public path, "steps_before": the steps that made it}."""
    loaded, config = hub.load_checkpoint(folder)
    as_json = lambda c: json.loads(json.dumps(dataclasses.asdict(c)))
    # through the config class, so fields newer than the checkpoint take their defaults
    mine, theirs = as_json(net_config), as_json(type(net_config)(**config["net"]))
    differ = sorted(k for k in {*mine, *theirs} if mine.get(k) != theirs.get(k))
    if config["arch"] != arch or differ:
        raise ValueError(f"--init-from {public_path(folder)}: a {config['arch']} checkpoint whose net config differs "
                         f"from this run's {arch} in {differ or ['arch']}; fine-tuning needs the same network")
    net.load_state_dict(loaded.state_dict())
    return {"init_from": public_path(folder), "steps_before": hub.training_steps(config) or 0}

