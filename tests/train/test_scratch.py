"""Evaluation from scratch (paper step 5): training, export, drop-path, bad input, benchmark rank."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import die_after_save
from wpnas.config import from_dict
from wpnas.errors import ArchitectureError, ConfigError, DataError
from wpnas.io.torchscript import load_torchscript, save_torchscript
from wpnas.nasbench import BenchmarkConfig
from wpnas.spaces import get_space
from wpnas.train.scratch import (
    EvaluationConfig,
    benchmark_entry,
    evaluate_genotype,
    load_final_model,
    prepare_evaluation,
    read_genotype,
)

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
BEST_NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def genotype_of(space, text):
    arch = space.from_string(text)
    return {"space": space.name, "options": space.options(), "arch": text, "choices": list(arch),
            "flops_m": space.cost(arch, (1, 8, 8), 10).flops_m}


def tiny_cfg(**overrides):
    settings = {"epochs": 8, "batch_size": 32, "optim": {"lr": 0.05}, "valid_every": 4,
                "augment": {"crop_padding": 1, "flip": False, "cutout": 0}}
    settings.update(overrides)
    return from_dict(EvaluationConfig, settings)


@pytest.fixture(scope="module")
def trained(tiny_splits):
    """One tiny genotype trained from scratch on the embedded digits (shared by several tests)."""
    space = get_space("nats_tss", C=4, N=1)
    torch.set_num_threads(1)
    result = evaluate_genotype(genotype_of(space, CELL), space, tiny_splits, tiny_cfg(drop_path=0.1), "cpu", seed=0)
    return space, result


def test_defaults_are_the_papers_settings():
    cfg = EvaluationConfig()
    assert cfg.epochs == 600 and cfg.batch_size == 256 and cfg.augment.cutout == 16
    assert (cfg.optim.lr, cfg.optim.lr_min, cfg.optim.nesterov, cfg.optim.weight_decay) == (0.1, 0.0, True, 5e-4)
    assert cfg.export == "torchscript" and cfg.benchmark is None


def test_training_from_scratch_beats_chance(trained, tiny_splits):
    space, result = trained
    m = result.metrics
    assert m["test_accuracy"] > 35.0, m  # 10 classes: chance is 10 %
    assert m["valid_accuracy"] > 35.0, m
    assert m["test_images"] == tiny_splits.test_x.shape[0]
    arch = space.from_string(CELL)
    cost = space.cost(arch, tiny_splits.input_shape, tiny_splits.num_classes)
    assert m["params_m"] == pytest.approx(cost.params_m) and m["flops_m"] == pytest.approx(cost.flops_m)
    assert m["arch"] == CELL and m["space"] == "nats_tss" and m["epochs"] == 8 and m["wall_seconds"] > 0
    assert "benchmark_rank" not in m
    assert [h["epoch"] for h in result.history] == list(range(1, 9))
    assert "valid_acc" in result.history[3] and "valid_acc" not in result.history[2]
    # drop-path rises linearly from 0 (first epoch) to its setting (last epoch)
    drops = [h["drop_path"] for h in result.history]
    assert drops[0] == 0.0 and drops[-1] == pytest.approx(0.1) and drops == sorted(drops)
    json.dumps(m)  # JSON-ready


def test_checkpoint_rebuilds_the_same_network(trained, tiny_splits):
    _, result = trained
    ckpt = result.checkpoint
    assert ckpt["kind"] == "final_model" and ckpt["arch"] == CELL and ckpt["options"] == {"C": 4, "N": 1}
    assert ckpt["input_shape"] == list(tiny_splits.input_shape) and ckpt["classes"] == tiny_splits.classes
    assert len(ckpt["mean"]) == 1 and ckpt["genotype"]["arch"] == CELL
    net = load_final_model(ckpt)
    x = torch.randn(4, *tiny_splits.input_shape)
    with torch.no_grad():
        assert torch.allclose(net(x), result.network(x), atol=1e-6)


def test_torchscript_export_runs_without_wpnas(trained, tiny_splits, tmp_path):
    _, result = trained
    path = tmp_path / "model.pt"
    save_torchscript(result.export, path)
    assert load_torchscript(path).metadata["arch"] == CELL
    x = torch.randn(5, *tiny_splits.input_shape, generator=torch.Generator().manual_seed(1))
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected = result.network(x)
    # Isolated mode (no PYTHONPATH, no cwd on sys.path) and wpnas blocked outright: a venv
    # with wpnas installed (editable or not) still has it on sys.path, and the loaded model
    # must not need it.
    script = (
        "import json, sys\n"
        "sys.modules['wpnas'] = None\n"
        "try:\n    import wpnas\n    sys.exit('wpnas is importable')\nexcept ImportError:\n    pass\n"
        "import torch\n"
        "extra = {'wpnas_model.json': ''}\n"
        f"m = torch.jit.load({str(path)!r}, _extra_files=extra)\n"
        f"torch.save(m(torch.load({str(tmp_path / 'x.pt')!r})), {str(tmp_path / 'y.pt')!r})\n"
        "assert not [k for k in sys.modules if k.startswith('wpnas.')]\n"
        "print(json.loads(extra['wpnas_model.json'])['num_classes'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "10"
    assert torch.allclose(torch.load(tmp_path / "y.pt"), expected, atol=1e-5)


def test_drop_path_only_in_training_mode():
    space = get_space("nats_tss", C=4, N=1)
    torch.manual_seed(0)
    net = space.build_network(space.from_string(CELL), 1, 10)
    x = torch.randn(8, 1, 8, 8)
    net.eval()
    with torch.no_grad():
        reference = net(x)
        net.drop_path_prob = 0.9
        assert torch.equal(net(x), reference)  # eval mode never drops
        net.train()
        torch.manual_seed(1)
        dropped = net(x)
        net.drop_path_prob = 0.0
        torch.manual_seed(1)
        plain = net(x)
    assert not torch.allclose(dropped, plain)


def test_drop_path_leaves_identity_edges_alone():
    """A cell of skips and 'none' only has nothing to drop: training output is unchanged."""
    space = get_space("nats_tss", C=4, N=1)
    net = space.build_network(space.from_string("|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"),
                              1, 10).train()
    x = torch.randn(8, 1, 8, 8)
    with torch.no_grad():
        torch.manual_seed(3)
        plain = net(x)
        net.drop_path_prob = 0.9
        torch.manual_seed(3)
        assert torch.allclose(net(x), plain)


def test_supernet_path_still_matches_the_stand_alone_network():
    space = get_space("nats_tss", C=4, N=1)
    supernet = space.build_supernet(1, 10).eval()
    arch = space.from_string(CELL)
    net = space.build_network(arch, 1, 10)
    net.load_state_dict(supernet.extract(arch))
    net.eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(supernet(x, arch), net(x), atol=1e-6)


def test_bad_genotypes_fail_with_clear_errors(tiny_splits):
    tss = get_space("nats_tss", C=4, N=1)
    sss = get_space("nats_sss", channels=[8, 16, 24, 32])
    good = genotype_of(tss, CELL)
    with pytest.raises(ConfigError, match="from space 'nats_sss' but space.name is 'nats_tss'"):
        read_genotype({"space": "nats_sss", "options": sss.options(), "arch": "8:8:8:8:8", "choices": [0] * 5}, tss)
    with pytest.raises(ConfigError, match="C: genotype 16 vs space 4"):
        read_genotype(dict(good, options={"C": 16, "N": 1}), tss)
    with pytest.raises(ConfigError, match="channels"):
        read_genotype({"space": "nats_sss", "options": {"channels": [8, 16]}, "arch": "8:8:8:8:8", "choices": [0] * 5},
                      sss)
    with pytest.raises(DataError, match=r"missing key\(s\) \['choices'\]"):
        read_genotype({"space": "nats_tss", "arch": CELL}, tss)
    with pytest.raises(DataError, match="expected a JSON object"):
        read_genotype([CELL], tss)
    with pytest.raises(ArchitectureError, match="final_genotype.arch: .*unknown op 'conv_9x9'"):
        read_genotype(dict(good, arch=CELL.replace("nor_conv_1x1", "conv_9x9")), tss)
    with pytest.raises(ArchitectureError, match="disagree with its arch"):
        read_genotype(dict(good, choices=[0] * 6), tss)
    assert read_genotype(good, tss) == tss.from_string(CELL)
    with pytest.raises(ConfigError, match="evaluation.drop_path"):
        from_dict(EvaluationConfig, {"drop_path": 1.0})
    with pytest.raises(ConfigError, match="rank_metric"):
        from_dict(EvaluationConfig, {"rank_metric": "cifar10_test_200ep"})


def test_bad_input_fails_before_training(tiny_splits, monkeypatch):
    import wpnas.train.scratch as scratch

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(scratch, "train_from_scratch", no_training)
    tss = get_space("nats_tss", C=4, N=1)
    with pytest.raises(ConfigError, match="space.name is 'nats_sss'"):
        evaluate_genotype(genotype_of(tss, CELL), get_space("nats_sss"), tiny_splits, tiny_cfg(), "cpu")
    with pytest.raises(DataError, match="does not exist"):
        evaluate_genotype(genotype_of(tss, CELL), tss, tiny_splits,
                          tiny_cfg(benchmark={"path": "/no/such/table.csv", "metric": "x"}), "cpu")


def test_benchmark_rank_in_the_nb201_table(shared_data, tmp_path):
    space = get_space("nats_tss")
    table = shared_data / "nb201" / "nb201_cifar10.csv"
    entry = benchmark_entry(space, space.from_string(BEST_NB201),
                            BenchmarkConfig(path=str(table), metric="cifar10_test_200ep"))
    assert entry["benchmark_rank"] == 1 and entry["benchmark_size"] == 15625
    assert entry["benchmark_accuracy"] == pytest.approx(94.37, abs=0.01)
    assert entry["benchmark_metric"] == "cifar10_test_200ep"
    # A table without the architecture is an error naming it
    lines = table.read_text().splitlines()
    small = tmp_path / "small.csv"
    small.write_text("\n".join([lines[0]] + [l for l in lines[1:50] if BEST_NB201 not in l]) + "\n")
    with pytest.raises(DataError, match="does not contain the found architecture"):
        benchmark_entry(space, space.from_string(BEST_NB201), BenchmarkConfig(path=str(small), metric="cifar10_test_200ep"))


def test_prepare_checks_the_benchmark_metric(shared_data, tiny_splits):
    space = get_space("nats_tss", C=4, N=1)
    cfg = tiny_cfg(benchmark={"path": str(shared_data / "nb201" / "nb201_cifar10.csv"), "metric": "cifar10_valid_200ep"},
                   rank_metric="no_such_column")
    with pytest.raises(ConfigError, match="unknown metric 'no_such_column'"):
        prepare_evaluation(genotype_of(space, CELL), space, tiny_splits, cfg)
    cfg = tiny_cfg(benchmark={"path": str(shared_data / "nb201" / "nb201_cifar10.csv"), "metric": "cifar10_valid_200ep"},
                   rank_metric="cifar10_test_200ep")
    prepared = prepare_evaluation(genotype_of(space, BEST_NB201), space, tiny_splits, cfg)
    assert prepared.benchmark["benchmark_rank"] == 1


def test_parameter_checks_before_the_run():
    from wpnas.pipelines.params import validate_parameters

    params = {"space": {"name": "nats_tss", "options": {"nats_tss": {"C": 4, "N": 1}}},
              "evaluation": {"benchmark": {"kind": "csv", "path": "/no/such/table.csv"}}}
    validate_parameters(params, ["search_architecture"])  # a run without the evaluation does not need its table
    with pytest.raises(DataError, match="evaluation.benchmark.path: table '/no/such/table.csv' does not exist"):
        validate_parameters(params, ["evaluate_final_model"])
    with pytest.raises(ConfigError, match="evaluation.epochs"):
        validate_parameters({"evaluation": {"epochs": 0}}, [])
    validate_parameters({"evaluation": {"benchmark": None, "drop_path": 0.2}}, ["evaluate_final_model"])


def test_drop_path_refused_for_a_network_without_cells(monkeypatch):
    from wpnas.train.scratch import check_drop_path

    space = get_space("nats_sss", channels=[8, 16])
    check_drop_path(space, tiny_cfg(drop_path=0.2))  # the SSS network has (fixed) cells
    monkeypatch.setattr(space, "build_network", lambda arch, c, n: torch.nn.Linear(c, n))
    with pytest.raises(ConfigError, match="has no cells to drop paths in"):
        check_drop_path(space, tiny_cfg(drop_path=0.2))
    check_drop_path(space, tiny_cfg(drop_path=0.0))


def test_killed_and_resumed_evaluation_is_bit_identical(tiny_splits, tmp_path, monkeypatch):
    from wpnas.config import seed_everything
    from wpnas.io.stage_checkpoint import CheckpointPolicy
    from wpnas.train.scratch import train_from_scratch

    space = get_space("nats_tss", C=4, N=1)
    arch = space.from_string(CELL)
    cfg = tiny_cfg(epochs=3, valid_every=1, drop_path=0.1)
    policy = CheckpointPolicy(every=1, folder=str(tmp_path))
    seed_everything(0, deterministic=True)
    straight, straight_history, straight_scores = train_from_scratch(space, arch, tiny_splits, cfg, "cpu", seed=0)
    die_after_save(monkeypatch, when=lambda state: state["epoch"] == 2)
    seed_everything(0, deterministic=True)
    with pytest.raises(KeyboardInterrupt):
        train_from_scratch(space, arch, tiny_splits, cfg, "cpu", seed=0, checkpoint=policy)
    monkeypatch.undo()
    seed_everything(7, deterministic=True)
    resumed, history, scores = train_from_scratch(space, arch, tiny_splits, cfg, "cpu", seed=0, checkpoint=policy)
    assert [h["epoch"] for h in history] == [1, 2, 3] and scores == straight_scores
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert [h["drop_path"] for h in history] == [h["drop_path"] for h in straight_history]
    assert list(tmp_path.iterdir()) == []


def test_evaluation_on_a_streamed_image_folder(tmp_path):
    """``evaluation.data``: an ImageNet-style folder decoded per batch; its classes size the classifier."""
    from tests.data.test_streaming import write_folder
    from wpnas.train.scratch import evaluation_data

    write_folder(tmp_path)
    space = get_space("nats_tss", C=4, N=1)
    cfg = tiny_cfg(epochs=2, batch_size=4, valid_every=0, export="torchscript",
                   data={"root": str(tmp_path), "image_size": 16, "resize": 20, "workers": 0})
    data = evaluation_data(None, cfg)
    result = evaluate_genotype(genotype_of(space, CELL), space, data, cfg, "cpu", seed=0)
    assert result.metrics["test_images"] == 12 and "valid_accuracy" not in result.metrics
    assert result.checkpoint["num_classes"] == 3 and result.checkpoint["input_shape"] == [3, 16, 16]
    assert "centre-cropped to 16" in result.checkpoint["input"]
    assert result.metrics["params_m"] == pytest.approx(space.cost(space.from_string(CELL), (3, 16, 16), 3).params_m)
    net = load_final_model(result.checkpoint)
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 3)
    assert result.export.module(torch.zeros(1, 3, 16, 16)).shape == (1, 3)


def test_evaluation_network_options_are_checked_before_training(tiny_splits):
    from wpnas.pipelines.params import validate_parameters

    space = get_space("nats_tss", C=4, N=1)
    with pytest.raises(ConfigError, match=r"evaluation.network: nats_tss trains the searched network as it is and "
                                          r"takes no options, got \['C'\]"):
        prepare_evaluation(genotype_of(space, CELL), space, tiny_splits, tiny_cfg(network={"C": 36}))
    params = {"space": {"name": "nats_tss", "options": {"nats_tss": {"C": 4, "N": 1}}},
              "evaluation": {"network": {"layers": 20}}}
    with pytest.raises(ConfigError, match="evaluation.network"):
        validate_parameters(params, ["evaluate_final_model"])
    params["evaluation"] = {"data": {"root": "/no/such/imagenet"}}
    with pytest.raises(DataError, match="'/no/such/imagenet/train' is not a folder"):
        validate_parameters(params, ["evaluate_final_model"])
    with pytest.raises(ConfigError, match="evaluation.auxiliary_weight"):
        tiny_cfg(auxiliary_weight=-1.0)


def test_darts_evaluation_network_with_auxiliary_head():
    """DARTS step 5: a bigger network than the searched one, its auxiliary head trained with its
    weight and left out of the reported parameters and of the exported (eval-mode) model."""
    from wpnas.data.sources import DataConfig, build_image_splits
    from wpnas.spaces.darts import GENOTYPES

    splits = build_image_splits(DataConfig(image_size=32, train_limit=48, valid_size=0.25))
    space = get_space("darts", C=4, layers=3)
    text = space.to_string(space.from_string("DARTS_V2"))
    genotype = {"space": "darts", "options": space.options(), "arch": text,
                "choices": list(space.from_string(text))}
    network = {"C": 4, "layers": 3, "auxiliary": True}
    cfg = tiny_cfg(epochs=1, batch_size=16, valid_every=0, drop_path=0.2, network=network, auxiliary_weight=0.4)
    torch.set_num_threads(1)
    result = evaluate_genotype(genotype, space, splits, cfg, "cpu", seed=0)
    arch = space.from_string(text)
    full = space.build_evaluation_network(arch, splits.in_channels, splits.num_classes, network)
    aux = sum(p.numel() for n, p in full.named_parameters() if n.startswith("auxiliary"))
    assert aux > 0
    assert result.metrics["params_m"] == pytest.approx(sum(p.numel() for p in full.parameters()) / 1e6 - aux / 1e6)
    assert any(k.startswith("auxiliary") for k in result.checkpoint["state_dict"])
    net = load_final_model(result.checkpoint)
    images = torch.zeros(2, *splits.input_shape)
    assert net(images).shape == (2, 10)  # eval mode: logits only
    assert result.export.module(images).shape == (2, 10)
    assert "DARTS_V2" in GENOTYPES


def test_mobilenet_transfer_to_a_streamed_imagenet_style_folder(tmp_path):
    """Table 4's path: a MobileNet found on the search data, trained in the ImageNet layout on a
    folder streamed from disk (here 3 classes at 32x32, the ImageNet layout's total stride)."""
    from tests.data.test_streaming import write_folder
    from wpnas.train.scratch import evaluation_data

    write_folder(tmp_path, size=(40, 48))
    space = get_space("mobilenet", width_mult=0.25)
    arch = space.sample(np.random.default_rng(0))
    text = space.to_string(arch)
    genotype = {"space": "mobilenet", "options": space.options(), "arch": text, "choices": list(arch)}
    network = {"layout": "imagenet", "width_mult": 0.25, "dropout": 0.2}
    cfg = tiny_cfg(epochs=1, batch_size=4, valid_every=0, network=network,
                   data={"root": str(tmp_path), "image_size": 32, "resize": 36, "workers": 0})
    torch.set_num_threads(1)
    result = evaluate_genotype(genotype, space, evaluation_data(None, cfg), cfg, "cpu", seed=0)
    assert result.metrics["params_m"] == pytest.approx(space.evaluation_cost(arch, (3, 32, 32), 3, network).params_m)
    assert result.metrics["flops_m"] != pytest.approx(space.cost(arch, (3, 32, 32), 3).flops_m)  # another layout
    assert result.export.module(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
