"""Distillation (zoo.diffusion.distill, zoo.pipelines.distill, trainers/distill.py): each method does
what its paper says on a tiny problem, students are ordinary validated checkpoints that
sample only at their steps, and bad teachers / resumes are refused."""
import json

import pytest
import torch

from trainers.resume import RunChanged
from zoo.diffusion import Denoiser, GaussianMixture, sample_info
from zoo.diffusion import distill as dm
from zoo.diffusion.metrics import sliced_wasserstein
from zoo.hub import CheckpointError, load_checkpoint
from zoo.nets.mlp import MLP
from zoo.pipelines.toy2d import gmm, load_pipeline

TINY = ["--batch-size", "32", "--ckpt-every", "4", "--lr-decay", "none"]


def _fit(loss_fn, net, steps: int, lr: float = 2e-3, seed: int = 0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def _teacher():
    import zoo

    return zoo.load("toy-gmm")


def _mixture_paths(d, steps, n=2000, dtype=torch.float64):
    return dm.sample_on_times(d, (n, 2), "vp-cosine", dm.nested_times("vp-cosine", steps), seed=0,
                              dtype=dtype).x0.float()


def test_progressive_round_student_at_half_the_steps_matches_the_teacher():
    """Salimans & Ho 2022: after one round, 2 student DDIM steps land where 4 teacher steps
    do, from the same noise (far closer than the teacher itself at 2 steps). Teacher: the
    exact mixture denoiser; student: a small MLP."""
    teacher, data = gmm().denoiser("vp-cosine"), gmm()
    torch.manual_seed(0)
    student = Denoiser(MLP(MLP.Config(hidden=64, depth=2)), "vp-cosine", "v")
    t64 = lambda d: lambda x, t: d(x.double(), t.double()).float()
    _fit(lambda: dm.progressive_loss(student, t64(teacher), data.sample(256).float(), 2, "vp-cosine"),
         student.net, 600, lr=3e-3)
    target = _mixture_paths(teacher, 4)
    gap_student = float((_mixture_paths(student, 2, dtype=torch.float32) - target).norm(dim=1).mean())
    gap_teacher = float((_mixture_paths(teacher, 2) - target).norm(dim=1).mean())
    assert gap_student < 0.4 * gap_teacher, (gap_student, gap_teacher)


def test_progressive_target_of_an_exact_denoiser_is_its_own_two_step_ddim():
    """The target x~ makes one student DDIM step reproduce two teacher steps exactly."""
    d, x = gmm().denoiser("vp-cosine"), torch.randn(64, 2, dtype=torch.float64)
    t = torch.full((64,), 0.6, dtype=torch.float64)
    goal = dm.progressive_target(d, x, t, 0.3, "vp-cosine")
    (a, s), (a2, s2) = dm.alpha_sigma("vp-cosine", t, x), dm.alpha_sigma("vp-cosine", t - 0.3, x)
    (a1, s1) = dm.alpha_sigma("vp-cosine", t - 0.15, x)
    x1 = dm.ddim_step(x, d(x, t), a, s, a1, s1)
    two = dm.ddim_step(x1, d(x1, t - 0.15), a1, s1, a2, s2)
    assert torch.allclose(dm.ddim_step(x, goal, a, s, a2, s2), two, atol=1e-10)


@pytest.mark.slow
def test_consistency_function_meets_its_boundary_and_distillation_improves_one_step_samples():
    """Song et al. 2023: f(x, t_min) = x~ exactly, and CD makes the one-step map sample the data."""
    torch.manual_seed(0)
    f = dm.ConsistencyFunction(MLP(MLP.Config(hidden=32, depth=1)), "vp-cosine")
    for p in f.parameters():
        torch.nn.init.normal_(p)
    x, t_min = torch.randn(16, 2), torch.full((16,), f.schedule.t_min)
    a = float(f.schedule.alpha(torch.tensor(f.schedule.t_min, dtype=torch.float64)))
    assert torch.allclose(f(x, t_min), x / a, atol=1e-6)

    from trainers.distill import TargetEMA, WithParams

    teacher, data = gmm().denoiser("vp-cosine"), gmm()
    torch.manual_seed(0)
    net = MLP(MLP.Config(hidden=64, depth=2))
    student, times = dm.ConsistencyFunction(net, "vp-cosine"), dm.consistency_times("vp-cosine", 16)
    one_step = lambda: dm.consistency_sample(student, (2000, 2), "vp-cosine", dm.consistency_sample_times(
        "vp-cosine", 1), seed=0).x0
    truth = data.sample(2000, torch.Generator().manual_seed(1)).float()
    before = sliced_wasserstein(one_step(), truth)
    opt = TargetEMA(net.parameters(), 0.9, lr=3e-3)
    t64 = lambda x, t: teacher(x.double(), t.double()).float()
    for _ in range(600):
        target = dm.ConsistencyFunction(WithParams(net, opt.target_params(net)), "vp-cosine")
        loss = dm.consistency_loss(student, target, t64, data.sample(256).float(), times, "vp-cosine")
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = sliced_wasserstein(one_step(), truth)
    assert after < 0.5 * before and after < 0.2, (before, after)


def test_reflow_straightens_the_paths():
    """Liu et al. 2022: a flow fitted to the couplings of an exact, curved PF-ODE has
    straighter paths, and one Euler step of it lands near the teacher's ODE solution, where
    one Euler step of the teacher does not."""
    teacher = GaussianMixture([0.5, 0.5], [[-1.5, 0.0], [1.5, 0.0]],
                              torch.eye(2).expand(2, 2, 2) * 0.05).denoiser("flow")
    z = torch.randn(4096, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kw = dict(schedule="flow", spacing="uniform", dtype=torch.float64)
    x0 = sample_info(teacher, (4096, 2), steps=64, solver="heun", x_init=0.999 * z, **kw).x0
    torch.manual_seed(0)
    student = Denoiser(MLP(MLP.Config(hidden=64, depth=2)), "flow", "flow")
    gen = torch.Generator().manual_seed(1)

    def batch_loss():
        idx = torch.randint(4096, (256,), generator=gen)
        return dm.coupled_loss(student, x0[idx].float(), z[idx].float())

    _fit(batch_loss, student.net, 800, lr=3e-3)

    def as_float64(d):  # the paths are float64 (the exact teacher's); the MLP computes in float32
        return lambda x, t: d(x.float(), t.float()).double()

    def curvature_and_one_step(d):
        states, times = [], []
        out = sample_info(d, (1000, 2), steps=16, solver="euler", x_init=0.999 * z[:1000], callback=lambda i, t, x, _:
                          (states.append(x.double()), times.append(t)), **kw).x0
        curv = dm.path_curvature(torch.stack([*states, out.double()]), [*times, 0.0])
        one = sample_info(d, (1000, 2), steps=1, solver="euler", x_init=0.999 * z[:1000], **kw).x0
        return curv, float((one.double() - x0[:1000]).norm(dim=1).mean())

    (c_teacher, miss_teacher), (c_student, miss_student) = (curvature_and_one_step(teacher),
                                                            curvature_and_one_step(as_float64(student)))
    assert c_student < 0.5 * c_teacher, (c_teacher, c_student)
    assert miss_student < 0.5 * miss_teacher, (miss_teacher, miss_student)


def test_path_curvature_is_zero_on_straight_lines_and_positive_on_bent_ones():
    t = torch.linspace(1, 0, 9, dtype=torch.float64)
    start, end = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    line = start + (1 - t)[:, None, None] * (end - start)
    assert dm.path_curvature(line, t) < 1e-20
    bent = line + torch.sin(torch.pi * t)[:, None, None] * torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert dm.path_curvature(bent, t) > 0.1


# ----------------------------------------------------------------------------- the trainer and the checkpoints


@pytest.fixture(scope="module")
def cd_run(tmp_path_factory):
    """A 4-step consistency run of the bundled toy-gmm: an ordinary, validated student folder."""
    from trainers.distill import main

    out = tmp_path_factory.mktemp("cd")
    main(["--teacher", "toy-gmm", "--method", "consistency", "--steps", "4", "--intervals", "8", *TINY,
          "--out", str(out)])
    return out


def test_a_student_is_a_validated_checkpoint_that_samples_only_at_its_steps(cd_run):
    net, config = load_checkpoint(cd_run / "release")
    assert config["distill"]["teacher"] == "toy-gmm" and config["distill"]["method"] == "consistency"
    assert config["distill"]["steps"] == [1, 2, 4] and config["distill"]["guidance_input"] is False
    card = (cd_run / "release" / "README.md").read_text()
    assert "Teacher: toy-gmm" in card and "method: consistency" in card and "wall time" in card
    pipe = load_pipeline(cd_run / "release")
    assert pipe(n=10, steps=2).nfe == 2
    with pytest.raises(ValueError, match=r"distilled for \[1, 2, 4\] step\(s\) only; got steps=3"):
        pipe(n=10, steps=3)


@pytest.mark.parametrize("field, value, what", [
    ("method", "magic", "one of ['progressive', 'consistency', 'reflow']"),
    ("steps", [4, 2], "ascending"),
    ("steps", [0, 1], "ascending"),
    ("rounds", 10**6, "from 0 to 16"),
    ("teacher", 5, "a string"),
    ("guidance_input", "yes", "true or false"),
    ("guidance_input", True, "the same as net.guidance_input"),
    ("guidance_min", 2.0, "guidance_min <= guidance_max"),
    ("steps", [], "the step counts the student was distilled for"),
    ("temperature", 1.0, "an unknown field"),
])
def test_a_bad_distill_section_is_refused_at_load(cd_run, tmp_path, field, value, what):
    import shutil

    folder = shutil.copytree(cd_run / "release", tmp_path / "student")
    config = json.loads((folder / "config.json").read_text())
    config["distill"][field] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"distill.{field}") as refused:
        load_checkpoint(folder)
    assert what in str(refused.value)


def test_resuming_with_another_teacher_is_refused_before_anything_loads(cd_run):
    from trainers.distill import main

    before = (cd_run / "checkpoint" / "state.json").read_text()
    with pytest.raises(RunChanged, match="--teacher: toy-gmm -> toy-moons"):
        main(["--teacher", "toy-moons", "--method", "consistency", "--steps", "8", "--intervals", "8", *TINY,
              "--out", str(cd_run), "--resume"])
    assert (cd_run / "checkpoint" / "state.json").read_text() == before


def test_consistency_resume_is_exact_with_its_target_network(tmp_path):
    """The EMA target lives in the optimizer state: 2 + 2 resumed steps equal 4 straight."""
    from safetensors.torch import load_file

    from trainers.distill import main

    args = ["--teacher", "toy-gmm", "--method", "consistency", "--intervals", "8", *TINY[:2], "--lr-decay", "none",
            "--ckpt-every", "2"]
    main([*args, "--steps", "4", "--out", str(tmp_path / "plain")])
    main([*args, "--steps", "2", "--out", str(tmp_path / "split")])
    main([*args, "--steps", "4", "--out", str(tmp_path / "split"), "--resume"])
    for name in ("model", "optimizer", "ema"):
        a = load_file(str(tmp_path / "plain" / "checkpoint" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "split" / "checkpoint" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert any(k.endswith(".target") for k in load_file(str(tmp_path / "plain/checkpoint/optimizer.safetensors")))


def test_progressive_rounds_halve_the_steps_and_chain_their_teachers(tmp_path):
    from trainers.distill import main

    main(["--teacher", "toy-gmm", "--method", "progressive", "--teacher-steps", "8", "--rounds", "2", "--steps", "2",
          *TINY, "--out", str(tmp_path), "--release", str(tmp_path / "pd{steps}"), "--release-steps", "2"])
    first, second = (json.loads((f / "config.json").read_text())["distill"]
                     for f in (tmp_path / "round-1" / "release", tmp_path / "pd2"))
    assert (first["steps"], first["rounds"], second["steps"], second["rounds"]) == ([4], 1, [2], 2)
    assert not (tmp_path / "pd4").exists() and load_pipeline(tmp_path / "pd2")(n=5, steps=2).nfe == 2


@pytest.mark.parametrize("teacher, method, why", [
    ("mnist", "progressive", "unconditional model; this teacher must be a toy2d or a class-conditional model"),
    ("scenes-t2i", "consistency", "text-to-image models are not supported"),
    ("toy-gmm", "reflow", "needs a toy 2D flow-schedule teacher"),
    ("mnist-cond", "reflow", "needs a toy 2D flow-schedule teacher"),
])
def test_unsupported_teachers_are_refused_with_the_reason(teacher, method, why):
    from trainers.distill_teachers import TeacherRefused, load_teacher

    with pytest.raises(TeacherRefused, match=why):
        load_teacher(teacher, method)


def test_the_toy_tab_offers_a_student_only_its_distilled_steps():
    from ui.toy_tab import on_sample, on_source

    slider, radio, solver, spacing = on_source("toy-gmm-cd")
    assert slider["visible"] is False and radio["choices"] == [1, 2, 4] and radio["visible"] is True
    assert solver["interactive"] is False and spacing["interactive"] is False
    assert on_source("bundled")[0]["visible"] is True
    numbers = on_sample("toy-gmm-pd2", "moons", "vp-cosine", None, "heun", 20, "logsnr", 0, 200, 0.0, 3)[2]
    assert "distilled for [2] step(s) only; got steps=3" in numbers
    numbers = on_sample("toy-gmm-pd2", "moons", "vp-cosine", None, "heun", 20, "logsnr", 0, 200, 0.0, 2)[2]
    assert "NFE **2**" in numbers and "mean path curvature" in numbers


# ----------------------------------------------------------------------------- guided image teachers


def test_a_guided_students_w_input_starts_at_zero_so_it_starts_as_its_teacher():
    from trainers.distill_teachers import load_teacher

    teacher = load_teacher("mnist-cond", "consistency", guidance=(0.0, 4.0))
    student = teacher.student_net().eval()
    assert student.config.guidance_input and not teacher.net.config.guidance_input
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([0.9, 0.5, 0.1]), torch.tensor([1, 5, 9])
    with torch.no_grad():
        for w in (0.0, 3.5):
            assert torch.equal(student(x, t, y=y, w=torch.full((3,), w)), teacher.net(x, t, y=y))
    with pytest.raises(TypeError, match="pass w"):
        student(x, t, y=y)
    student.train()  # no label dropout while distilling: each target is for the sample's own label
    assert student.config.label_dropout == 0.0 and teacher.net.config.label_dropout > 0
    with torch.no_grad():
        assert torch.equal(student(x, t, y=y, w=torch.ones(3)), student(x, t, y=y, w=torch.ones(3)))


def test_per_sample_guidance_is_cfg_at_each_samples_w():
    from zoo.diffusion.guidance import classifier_free_guidance, per_sample_guidance

    torch.manual_seed(0)
    a, b = torch.randn(2, 3), torch.randn(2, 3)

    def d(x, t, y=None):
        return x * (a if y is not None else b)

    x, w = torch.randn(2, 3), torch.tensor([0.0, 2.5])
    got = per_sample_guidance(d, w, {"y": 1}, {})(x, 0.5)
    for i, wi in enumerate(w.tolist()):
        assert torch.allclose(got[i], classifier_free_guidance(d, wi, {"y": 1}, {})(x, 0.5)[i])


def test_a_guided_teacher_gives_progressive_students_with_w_as_input_over_two_rounds(tmp_path):
    from trainers.distill import main
    from zoo.pipelines.conditional import load_pipeline as load_guided

    main(["--teacher", "mnist-cond", "--method", "progressive", "--teacher-steps", "4", "--rounds", "2",
          "--guidance-range", "0,3", "--steps", "2", "--batch-size", "4", "--ckpt-every", "2", "--lr-decay", "none",
          "--out", str(tmp_path), "--release", str(tmp_path / "pd{steps}"), "--release-steps", "1"])
    net, config = load_checkpoint(tmp_path / "pd1")
    d = config["distill"]
    assert (d["guidance_input"], d["guidance_min"], d["guidance_max"], d["steps"], d["rounds"]) == (True, 0, 3, [1], 2)
    assert net.config.guidance_input and net.config.num_classes == 10
    assert "w in [0, 3]" in (tmp_path / "pd1" / "README.md").read_text()
    pipe = load_guided(tmp_path / "pd1")
    out = pipe([3, 7], steps=1, guidance=2.0, seed=0)
    assert out.images.shape == (2, 28, 28, 1) and out.nfe == 1 and out.network_calls == 1
    with pytest.raises(ValueError, match=r"distilled for \[1\] step\(s\) only; got steps=2"):
        pipe([3], steps=2)
    with pytest.raises(ValueError, match=r"distilled for guidance w in \[0, 3\]; got w = 5"):
        pipe([3], steps=1, guidance=5.0)
    with pytest.raises(ValueError, match="classifier guidance and a guidance interval do not apply"):
        pipe([3], steps=1, interval=(0.1, 0.9))
    assert pipe([3], steps=1, classifier=object(), classifier_scale=0.0).nfe == 1  # a judge only: allowed
    from trainers.optimize_steps import model_of

    with pytest.raises(ValueError, match="progressive students are not searched"):
        model_of(pipe)


def test_a_bad_guidance_range_is_refused_before_any_work(tmp_path):
    from trainers.distill import main

    with pytest.raises(SystemExit, match="low <= high"):
        main(["--teacher", "mnist-cond", "--method", "consistency", "--guidance-range", "3,1", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="must be in"):
        main(["--teacher", "mnist-cond", "--method", "consistency", "--guidance-range", "0,99", "--out",
              str(tmp_path)])
