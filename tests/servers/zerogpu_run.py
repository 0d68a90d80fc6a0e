"""Run in a subprocess by tests/test_zerogpu.py: the app as on a ZeroGPU Space (SPACE_ID
set, the fake `spaces` first on the path), every heavy endpoint called once through
gradio_client; prints JSON: what was decorated, what ran inside a GPU call, and where
zoo.gpu.device() was asked for."""
import json
import os
import sys

os.environ["SPACE_ID"] = "tester/diffusion-zoo"

import spaces  # noqa: E402 - the fake, from tests/servers/fake_spaces

import zoo.gpu  # noqa: E402

outside: list = []
_device = zoo.gpu.device


def device():
    if spaces.ACTIVE[0] == 0:
        outside.append("".join(__import__("traceback").format_stack(limit=4)))
    return _device()


zoo.gpu.device = device  # zoo.gpu.place looks it up at call time

from gradio_client import Client  # noqa: E402

from servers.app_server import running_app  # noqa: E402

CALLS = [
    # not GPU-bound (cards, model lines): they load pipelines, and loading must not touch the GPU
    ("/pixels_info", ("mnist",)),
    ("/guidance_info", ("mnist-cond", "mnist-classifier")),
    ("/t2i_info", ("shapes-t2i",)),
    ("/toy_train", ("moons", "eps", "vp-cosine", 100)),
    ("/toy_sample", ("bundled", "moons", "vp-cosine", "heun", 4, "logsnr", 0, 200, 0.0)),
    ("/toy_field", ("bundled", "moons", "vp-cosine", 0.5, "score")),
    ("/toy_compare", ("exact (gmm only)", "gmm", "vp-cosine", 0)),
    ("/pixels_sample", ("mnist", "ddim", 2, "logsnr", 0.0, 0, 2)),
    ("/guidance_sample", ("mnist-cond", "none", ["3"], 2, 1.0, 0.0, "ddim", 2, "logsnr", 0, 0.0, 1.0)),
    ("/guidance_sweep", ("mnist-cond", "none", ["3"], 1, 1.0, 0.0, "ddim", 2, "logsnr", 0, 0.0, 1.0)),
    ("/t2i_sample", ("shapes-t2i", "a red circle", 2.0, "ddim", 2, "logsnr", 0, 2)),
    ("/t2i_sweep", ("shapes-t2i", "a red circle", 2.0, "ddim", 2, "logsnr", 0, 2)),
]

with running_app() as url:
    client = Client(url, verbose=False)
    for api, args in CALLS:
        list(client.submit(*args, api_name=api))  # streaming endpoints run to the end
print(json.dumps({"decorated": [name for name, _ in spaces.DECORATED],
                  "calls": spaces.CALLS, "device_outside": outside}))
sys.stdout.flush()
