"""Test-suite settings: offline, CPU-friendly, no analytics. Set before anything imports
huggingface_hub / datasets / gradio, because they read these at import time."""
import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="zoo-hf-home-"))
os.environ.pop("HF_TOKEN", None)

import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("ZOO_TEST_THREADS", "2")))  # 2 cores; 1 beside a training run


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def own_hf_cache(tmp_path_factory, monkeypatch):
    """Each test gets an empty Hugging Face cache: a repo one test downloads or caches
    (google/ddpm-cifar10-32, say) must not make another test's "missing" entry "cached".
    huggingface_hub reads constants.HF_HUB_CACHE at each call."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf-cache")))
