"""``MetricDepthModule`` training the paper's metric head, ZoeDepth's metric bins (``ZoeDepthMetric``): the core
(DINOv2 + DPT) at the encoder rate and the bins head at the decoder's (official ``get_lr_params``), the core from a
relative checkpoint, ZoeDepth's SILog scale, the NYUv2 overlay recipe for a few steps, and its checkpoint read back
as a ``ZoeDepthMetric`` with equal outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from anydepth import DepthAnything
from anydepth.checkpoints import CheckpointError
from anydepth.cli.main import main
from anydepth.losses import silog_loss
from anydepth.models.zoedepth import ZoeDepthMetric
from anydepth.training import MetricDepthModule

from helpers import REPO_ROOT, TINY
from helpers.lightning_modules import trainer
from helpers.metric_training import Record, metric_data, metric_model, metric_shards, relative_checkpoint

RELATIVE = "--model.init_args.model.init_args.relative.init_args."
TINY_CORE = [
    *(f"{RELATIVE}encoder", "custom", f"{RELATIVE}embed_dim", "32", f"{RELATIVE}depth", "4"),
    *(f"{RELATIVE}num_heads", "2", f"{RELATIVE}features", "16", f"{RELATIVE}out_channels", "[8,16,32,32]"),
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return metric_shards(tmp_path_factory.mktemp("metric"))


def zoedepth_model(seed: int = 0, **head: Any) -> ZoeDepthMetric:
    torch.manual_seed(seed)
    return ZoeDepthMetric(DepthAnything(**TINY, version="v1"), **{"max_depth": 80.0, **head})


def test_the_core_trains_at_the_encoder_rate_and_the_bins_at_the_decoder_rate(
    shards: dict[str, Path],
    tmp_path: Path,
) -> None:
    """Official ``ZoeDepth.get_lr_params``: ``core`` (encoder and DPT) at ``lr / 50``, the rest at ``lr``."""
    module = MetricDepthModule(zoedepth_model(), encoder_lr=1e-4, decoder_lr_multiplier=50.0, schedule="linear")
    record = Record()
    trainer(tmp_path, max_steps=3, callbacks=[record], limit_val_batches=0).fit(module, metric_data(shards))
    assert len(record.losses) == 3 and all(torch.isfinite(torch.tensor(record.losses)))
    encoder, decoder = module.trainer.optimizers[0].param_groups
    core = {id(p) for p in module.model.core.parameters() if p.requires_grad}
    head = {id(p) for name, p in module.model.named_parameters() if not name.startswith("core.")}
    assert {id(p) for p in encoder["params"]} == core and {id(p) for p in decoder["params"]} == head
    assert decoder["initial_lr"] == pytest.approx(50 * encoder["initial_lr"]) == pytest.approx(5e-3)
    assert not module.model.relative.pretrained.mask_token.requires_grad  # unused by the depth forward


def test_silog_scale_multiplies_the_loss(shards: dict[str, Path]) -> None:
    """ZoeDepth's ``10 * sqrt(var(g) + 0.15 mean(g)^2)`` is ``silog_lambda=0.85, silog_scale=10``."""
    module = MetricDepthModule(zoedepth_model(), silog_lambda=0.85, silog_scale=10.0)
    batch = module.unit_images(next(iter(metric_data(shards).train_dataloader())))
    module.log_losses = lambda losses, batch_size: None  # no trainer attached
    with torch.no_grad():
        loss = float(module.training_step(batch, 0))
        mask = module.supervised(batch["label"], batch["mask"])
        pred = module(batch["image"])
        g = (torch.log(pred) - torch.log(batch["label"]))[mask]
        assert loss == pytest.approx(float(10 * silog_loss(pred, batch["label"], mask, lambd=0.85)), rel=1e-5)
        assert loss == pytest.approx(float(10 * torch.sqrt(g.var(unbiased=False) + 0.15 * g.mean() ** 2)), rel=1e-4)
    with pytest.raises(ValueError, match="silog_scale must be > 0"):
        MetricDepthModule(zoedepth_model(), silog_scale=0.0)


def test_init_encoder_from_loads_the_whole_relative_core(tmp_path: Path) -> None:
    """Official ``DepthAnythingCore.build``: the relative model (encoder and DPT) starts the core; the bins stay."""
    source = relative_checkpoint(tmp_path / "relative.ckpt", version="v1").state_dict()
    fresh = zoedepth_model().state_dict()
    module = MetricDepthModule(zoedepth_model(), init_encoder_from=str(tmp_path / "relative.ckpt"))
    loaded = module.model.state_dict()
    core = [k for k in loaded if k.startswith("core.core.")]
    assert core and all(torch.equal(loaded[k], source[k.removeprefix("core.core.")]) for k in core)
    assert all(torch.equal(v, fresh[k]) for k, v in loaded.items() if k not in core)


def test_init_encoder_from_refuses_a_metric_or_other_core(tmp_path: Path) -> None:
    metric_model(version="v1").save_checkpoint(tmp_path / "metric.ckpt", format="anydepth")
    with pytest.raises(CheckpointError, match="'metric' model: a ZoeDepthMetric's core starts from a relative"):
        MetricDepthModule(zoedepth_model(), init_encoder_from=str(tmp_path / "metric.ckpt"))
    relative_checkpoint(tmp_path / "v2.ckpt", version="v2")
    with pytest.raises(CheckpointError, match="version: v2 \\(checkpoint\\) vs v1 \\(model\\)"):
        MetricDepthModule(zoedepth_model(), init_encoder_from=str(tmp_path / "v2.ckpt"))


def test_the_nyu_zoedepth_recipe_trains_and_reads_back(shards: dict[str, Path], tmp_path: Path) -> None:
    """nyu.yaml + the zoedepth/nyu.yaml overlay, shrunk to the test scenes, from a relative checkpoint: two steps,
    then the checkpoint loads as a ``ZoeDepthMetric`` (``from_checkpoint``, ``init_checkpoint``) with equal outputs."""
    relative_checkpoint(tmp_path / "relative.ckpt", version="v1")
    data = "--data.init_args."
    code = main(
        [
            *("fit", "--config", str(REPO_ROOT / "configs/trainer/cpu.yaml")),
            *("--config", str(REPO_ROOT / "configs/recipes/metric/nyu.yaml")),
            *("--config", str(REPO_ROOT / "configs/recipes/metric/zoedepth/nyu.yaml"), *TINY_CORE),
            *(f"{data}train_shards", f"[{shards['train']}]", f"{data}val_shards", f"[{shards['val']}]"),
            *(f"{data}crop", "[28,42]", f"{data}batch_size", "2", f"{data}num_workers", "0"),
            *("--model.init_args.init_encoder_from", str(tmp_path / "relative.ckpt")),
            *("--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.logger", "false"),
            *("--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "run")),
            *("--trainer.callbacks.init_args.dirpath", str(tmp_path / "run" / "checkpoints")),
        ]
    )
    assert code == 0
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, weights_only=False)
    assert ckpt["global_step"] == 2
    model = DepthAnything.from_checkpoint(path)
    assert isinstance(model, ZoeDepthMetric) and model.config.max_depth == 10.0
    assert model.relative.config.version == "v1" and model.relative.config.embed_dim == 32
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    module = MetricDepthModule(zoedepth_model(max_depth=10.0), init_checkpoint=str(path))
    images = torch.rand(2, 3, 28, 42)
    with torch.no_grad():
        assert torch.equal(module.model.eval()(images), model.eval()(images))
    with pytest.raises(CheckpointError, match="metric_bins.max_depth: 10.0 \\(checkpoint\\) vs 80.0 \\(model\\)"):
        MetricDepthModule(zoedepth_model(), init_checkpoint=str(path))
    with pytest.raises(CheckpointError, match="holds a ZoeDepthMetric, but model.init_args.model is a DepthAnything"):
        MetricDepthModule(metric_model(version="v1"), init_checkpoint=str(path))
