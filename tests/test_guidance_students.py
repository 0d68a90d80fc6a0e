"""The Guidance tab with a distilled student: its w slider feeds the student's w input over
the distilled range, its steps are the distilled ones, one network pass per step. The
student is distilled here from the bundled mnist-cond (before any registry patch)."""
import pytest

from servers.app_server import app_client
from test_guidance_tab import ARGS


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A consistency student of the bundled mnist-cond with w in [0, 3] as its input (a few
    training steps: the tab's wiring is under test, not its quality)."""
    from trainers.distill import main

    out = tmp_path_factory.mktemp("student")
    main(["--teacher", "mnist-cond", "--method", "consistency", "--intervals", "4", "--sample-steps", "1,2",
          "--guidance-range", "0,3", "--steps", "2", "--batch-size", "4", "--ckpt-every", "2", "--lr-decay", "none",
          "--out", str(out)])
    return out / "release"


@pytest.mark.slow
def test_a_student_samples_at_its_steps_with_the_w_slider_as_its_input(student):
    from ui.guidance_tab import controls_for, sampler_for

    with app_client({"mnist-cond": student}, "ui.guidance_tab") as client:
        w_slider, _ = controls_for("mnist-cond", "none")
        assert (w_slider["minimum"], w_slider["maximum"], w_slider["value"]) == (0.0, 3.0, 2.0)
        solver, steps, spacing = sampler_for("mnist-cond")
        assert solver["interactive"] is False and spacing["interactive"] is False and steps["value"] == 2
        status = client.predict(*{**ARGS, "steps": 2, "guidance": 1.5}.values(), api_name="/guidance_sample")[2]
        assert "consistency student, 2 step(s)" in status and "NFE **2** (2 network passes)" in status
        assert "w = 1.5" in status
        refused = client.predict(*{**ARGS, "steps": 3}.values(), api_name="/guidance_sample")[2]
        assert refused.startswith("⚠") and "distilled for [1, 2] step(s) only" in refused
        refused = client.predict(*{**ARGS, "steps": 2, "guidance": 5.0}.values(), api_name="/guidance_sample")[2]
        assert refused.startswith("⚠") and "distilled for guidance w in [0, 3]" in refused
        sweep = client.predict(*{**ARGS, "steps": 1}.values(), api_name="/guidance_sweep")[1]
        assert sweep == "sweep: 5/5 rows"
    w_slider, _ = controls_for("mnist-cond", "none")  # the teacher again: the full range
    assert (w_slider["minimum"], w_slider["maximum"]) == (-1.0, 20.0)
