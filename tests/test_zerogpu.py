"""ZeroGPU: on a Space (SPACE_ID set) every GPU-bound handler runs inside spaces.GPU, with a
duration estimated from the request, and the networks move to the device inside that call
(zoo.gpu.device() is never asked outside one). Run in a subprocess with a fake `spaces`."""
import pytest
import json
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent
HEAVY = {"on_train", "on_sample", "on_field", "on_compare", "on_sweep", "preview_grid"}


@pytest.mark.slow
def test_every_heavy_handler_runs_inside_spaces_gpu():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS / "servers" / "fake_spaces"), str(TESTS),
                                                        str(TESTS.parent)])}
    out = subprocess.run([sys.executable, str(TESTS / "servers" / "zerogpu_run.py")], env=env, capture_output=True,
                         text=True, timeout=300, cwd=TESTS.parent)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    decorated = {name.rsplit(".", 1)[-1] for name in result["decorated"]}
    assert HEAVY <= decorated, f"not decorated: {HEAVY - decorated}"
    modules = {name.rsplit(".", 1)[0] for name in result["decorated"]}
    assert {"ui.toy_tab", "ui.pixels_tab", "ui.guidance_tab", "ui.text2image_tab", "ui.zoo_tab"} <= modules
    called = {name for name, _ in result["calls"]}
    assert len(called) >= 9, called  # every endpoint the runner called went through spaces.GPU
    assert all(isinstance(seconds, int) and 10 <= seconds <= 300 for _, seconds in result["calls"]), result["calls"]
    assert result["device_outside"] == [], "zoo.gpu.device() asked outside a GPU call:\n" + "\n".join(
        result["device_outside"][:3])
