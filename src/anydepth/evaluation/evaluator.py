"""The evaluator (zero-shot relative depth, Depth Anything Table 2; metric depth, Tables 3-4) as a LightningModule,
and its progress bar.

Per image (paper, supplementary Sec. 1; see :mod:`anydepth.evaluation`):

1. the image is resized (aspect kept, shorter side >= ``input_size``, sides multiples of 14: the data pipeline's
   :class:`~anydepth.data.transforms.EvalTransform`), ImageNet-normalised on the device, and run through the model;
2. the predicted relative disparity is upsampled bilinearly to the ground-truth resolution as the official code of
   the model's version does (V1 ``run.py``: ``align_corners=False``; V2 ``infer_image``: ``True``);
3. ground truth stored as disparity becomes depth up to scale (median 1, :func:`~anydepth.metrics.depth_from_label`);
   valid pixels = the sample's mask (finite, positive depth, plus any validity mask the dataset ships) AND the
   protocol's depth range ``min_depth < d < max_depth`` AND the protocol's crop (Eigen / Garg, as fractions of the
   ground-truth size);
4. the prediction is aligned to ``1 / depth`` over the valid pixels by least-squares scale and shift (MiDaS,
   disparity space), inverted to depth, clamped to the range, and scored (AbsRel, delta_1, ...), see
   :mod:`anydepth.metrics`; each image counts once and the benchmark score is the mean over images. A metric
   protocol (``align: none``, paper Sec. 4.3) skips the alignment: a metric model's depth in metres is clamped to
   the range and scored as it is. A metric model under a relative protocol is aligned like any model, its depth
   first inverted to disparity (:meth:`Protocol.as_disparity`); under ``align: depth`` (least squares on depth,
   Marigold's ``least_square``) its metres are aligned as they are. A relative model has no metres for a metric
   protocol, nor depth for ``align: depth`` (an :class:`EvaluationError` before any work).

The metrics are torchmetrics states reduced by sum across ranks, and each rank reads a disjoint set of shards, so
``devices=N`` (DDP) gives the single-device result exactly (up to float summation order).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from torch import Tensor, nn

from anydepth.evaluation.data import BenchmarkDataModule
from anydepth.evaluation.protocols import DEFAULT_BENCHMARKS, PROTOCOLS, EvaluationError, Protocol, load_protocols
from anydepth.evaluation.report import IMAGES, format_markdown_table, write_report
from anydepth.inference import model_head
from anydepth.metrics import depth_from_label
from anydepth.models.depth_anything import DepthAnything
from anydepth.models.preprocess import normalize, upsample_prediction
from anydepth.prediction import expected_warnings_ignored

__all__ = ["EVALUATION_WARNINGS", "DepthEvaluator", "EvalProgressBar"]

logger = logging.getLogger(__name__)

EVALUATION_WARNINGS = (
    "It is recommended to use `self.log\\(",  # the logged values are already synchronised by torchmetrics
    "The ``compute`` method of metric RelativeDepthMetrics was called",  # a rank without shards of a benchmark
)
"""The evaluator's expected warnings, beyond :data:`~anydepth.prediction.EXPECTED_WARNINGS`."""


class DepthEvaluator(pl.LightningModule):
    """Evaluation of a :class:`DepthAnything` (relative or metric) as a LightningModule for ``Trainer.test``
    (``anydepth test``).

    ``test_step`` takes :class:`~anydepth.data.transforms.EvalTransform` batches of dataloader ``i`` =
    ``benchmarks[i]`` (``image`` in [0, 1], ImageNet-normalised here on the device; ``label`` (depth, or disparity
    turned into depth up to scale by :func:`~anydepth.metrics.depth_from_label`) and ``mask`` at ``original_size``,
    the ground-truth resolution), upsamples the prediction to that size, builds the protocol's valid mask
    (:meth:`Protocol.valid_mask`) and updates that benchmark's :class:`RelativeDepthMetrics`.
    ``on_test_epoch_end`` computes every benchmark (synchronised across ranks), logs ``<benchmark>/<metric>``, stores
    the values in :attr:`results` (``{benchmark: {metric: float, "images": int}}``) and resets the metrics;
    at the end of ``test`` (``teardown``), rank 0 prints them as a Markdown table (:func:`format_markdown_table`)
    and writes ``output``.

    The constructor takes what a LightningCLI config can hold (``configs/eval/test.yaml``); :meth:`from_model` wraps
    a model already in memory. With a :class:`BenchmarkDataModule`, benchmarks and protocols left unset here are
    taken from it at ``setup``, and ones set on both must agree (dataloader ``i`` is scored as ``benchmarks[i]``).

    Args:
        checkpoint: any checkpoint :meth:`DepthAnything.from_checkpoint` reads (official ``.pth``, transformers
            directory, anydepth / Lightning checkpoint).
        benchmarks: the benchmark of each test dataloader, in order (default: the data module's, else
            :data:`DEFAULT_BENCHMARKS`).
        protocols: a protocols YAML merged over the registry (:func:`load_protocols`); default: the data module's
            protocols if it has some, else :data:`PROTOCOLS`.
        encoder: expected encoder, checked against the checkpoint.
        version: Depth Anything version, for checkpoints that do not say.
        output: also write the metrics, protocols, checkpoint and input size as JSON to this file (rank 0), as
            ``anydepth eval --output``.
        print_table: print the Markdown table on stdout at the end of ``test`` (rank 0).
    """

    def __init__(
        self,
        checkpoint: str,
        benchmarks: list[str] | None = None,
        protocols: str | None = None,
        encoder: str | None = None,
        version: str | None = None,
        output: str | None = None,
        print_table: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        model = DepthAnything.from_checkpoint(checkpoint, encoder=encoder, version=version)
        self._build(model, None if protocols is None else load_protocols(protocols), benchmarks, output, print_table)
        self.checkpoint: str | None = str(checkpoint)

    @classmethod
    def from_model(
        cls,
        model: DepthAnything,
        protocols: Mapping[str, Protocol] | Iterable[Protocol] | None = None,
        benchmarks: Sequence[str] | None = None,
        output: str | os.PathLike | None = None,
        print_table: bool = False,
    ) -> DepthEvaluator:
        """An evaluator of ``model`` (no checkpoint is read): ``protocols`` ``{name: Protocol}`` or an iterable of
        protocols (default: the data module's, else :data:`PROTOCOLS`), ``benchmarks`` in dataloader order (default:
        the data module's, else every protocol given, else :data:`DEFAULT_BENCHMARKS`); ``output`` and
        ``print_table`` as in the constructor."""
        self = cls.__new__(cls)
        pl.LightningModule.__init__(self)
        self._build(model, protocols, benchmarks, output, print_table)
        self.checkpoint = None
        return self

    def _build(
        self,
        model: DepthAnything,
        protocols: Mapping[str, Protocol] | Iterable[Protocol] | None,
        benchmarks: Sequence[str] | None,
        output: str | os.PathLike | None,
        print_table: bool,
    ) -> None:
        if protocols is not None and not isinstance(protocols, Mapping):
            protocols = {p.name: p for p in protocols}
        self.model = model.eval()
        self.head = model_head(model)
        # DDP: a rank may hold no shard of some benchmark (the data module gives every rank at least one batch)
        self.allow_zero_length_dataloader_with_multiple_devices = True
        self.output = None if output is None else Path(output)
        self.print_table = print_table
        self._given = (None if protocols is None else dict(protocols), None if benchmarks is None else list(benchmarks))
        self.benchmarks: list[str] = []
        self.protocols: dict[str, Protocol] = {}
        self.metrics = nn.ModuleDict()
        self.results: dict[str, dict[str, float]] = {}
        self._quiet: AbstractContextManager[None] | None = None
        if benchmarks is not None:  # unknown or repeated names fail here, before any Trainer starts
            self._configure(list(benchmarks), PROTOCOLS if protocols is None else protocols)
        elif protocols is not None:
            self._configure(list(protocols), protocols)

    def _configure(self, benchmarks: list[str], protocols: Mapping[str, Protocol]) -> None:
        """Score ``benchmarks`` (dataloader order) with ``protocols``: one fresh metric per benchmark."""
        unknown = [b for b in benchmarks if b not in protocols]
        if unknown:
            raise EvaluationError(f"no protocol for benchmark(s) {', '.join(unknown)}; known: {', '.join(protocols)}")
        if len(set(benchmarks)) != len(benchmarks):
            raise EvaluationError(f"benchmarks listed twice: {benchmarks}")
        chosen = {name: protocols[name] for name in benchmarks}
        metric = [name for name, protocol in chosen.items() if protocol.mode == "metric"]
        if metric and self.head != "metric":
            raise EvaluationError(
                f"benchmark(s) {', '.join(metric)} score metric depth (align: none), but the model is relative (it "
                "predicts disparity up to scale and shift): evaluate a metric checkpoint, or relative benchmarks"
            )
        depth = [name for name, protocol in chosen.items() if protocol.align == "depth"]
        if depth and self.head != "metric":
            raise EvaluationError(
                f"benchmark(s) {', '.join(depth)} align depth (align: depth, a depth predictor's protocol), but the "
                "model predicts disparity up to scale and shift: use align: disparity (e.g. a protocols YAML "
                f"'{depth[0]}: {{align: disparity}}')"
            )
        if benchmarks == self.benchmarks and chosen == self.protocols:
            return
        self.benchmarks, self.protocols = benchmarks, chosen
        self.metrics = nn.ModuleDict({name: protocol.metric() for name, protocol in chosen.items()})

    def setup(self, stage: str) -> None:
        """Take the benchmarks and protocols left unset from a :class:`BenchmarkDataModule`; check the ones set."""
        if stage == "test" and self._quiet is None:
            # The shard datasets' __len__ is exact per worker; a rank without shards of a benchmark is expected (see
            # BenchmarkDataModule: its metric is then computed, i.e. synchronised, without a local update); the
            # logged values are already synchronised by torchmetrics. The filters are undone in teardown.
            self._quiet = expected_warnings_ignored(*EVALUATION_WARNINGS)
            self._quiet.__enter__()
        given_protocols, given_benchmarks = self._given
        data = self.trainer.datamodule
        if not isinstance(data, BenchmarkDataModule):
            if given_benchmarks is None and given_protocols is None:
                self._configure(list(DEFAULT_BENCHMARKS), PROTOCOLS)
            return
        protocols = given_protocols or data.protocols or PROTOCOLS
        benchmarks = data.benchmarks if given_benchmarks is None else given_benchmarks
        if benchmarks != data.benchmarks:
            raise EvaluationError(
                f"the model scores benchmarks {benchmarks} but the data module reads {data.benchmarks} (test "
                "dataloader i is scored as benchmarks[i]): list the same benchmarks in the same order, or leave the "
                "model's benchmarks unset to take the data module's"
            )
        if given_protocols is not None and data.protocols is not None:
            differ = [b for b in benchmarks if given_protocols.get(b) != data.protocols.get(b)]
            if differ:
                raise EvaluationError(
                    f"the model's and the data module's protocols differ for {', '.join(differ)}: give the protocols "
                    "YAML to the data module only (the model then scores with it), or the same file to both"
                )
        self._configure(list(benchmarks), protocols)

    def teardown(self, stage: str) -> None:
        """After ``test`` (and after Lightning's own results table), rank 0 prints the Markdown table
        (``print_table``) and writes ``output``; every rank holds the same, synchronised results."""
        if self._quiet is not None:
            self._quiet.__exit__(None, None, None)
            self._quiet = None
        if stage != "test" or not self.results or not self.trainer.is_global_zero:
            return
        if self.print_table:
            metric = all(p.mode == "metric" for p in self.protocols.values())
            print(format_markdown_table(self.results, metric=metric), flush=True)
        if self.output is not None:
            write_report(
                self.output,
                self.results,
                self.protocols,
                self.checkpoint,
                getattr(self.trainer.datamodule, "input_size", None),
            )
            print(f"wrote metrics of {len(self.results)} benchmark(s) to {self.output}", file=sys.stderr)

    def train(self, mode: bool = True) -> DepthEvaluator:
        """The wrapped model never leaves eval mode (no dropout / drop-path at evaluation)."""
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        """``B x 3 x h x w`` images in [0, 1] (sides multiples of 14) -> ``B x h x w`` relative disparity (metric
        model: depth in metres)."""
        return self.model(normalize(images))

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.benchmarks[dataloader_idx]
        keys = batch.get("key")
        if "label" not in batch:
            raise EvaluationError(f"{name}: samples {keys} have no depth label; benchmark shards need labels")
        mask = batch["mask"]
        try:
            depth = depth_from_label(batch["label"], mask, batch.get("label_kind") or ["depth"] * len(mask))
        except ValueError as err:
            raise EvaluationError(f"{name}: samples {keys}: {err}") from err
        size = tuple(int(s) for s in batch["original_size"][0]) if "original_size" in batch else depth.shape[-2:]
        if tuple(depth.shape[-2:]) != tuple(size):
            raise EvaluationError(f"{name}: samples {keys}: label {tuple(depth.shape[-2:])} != original_size {size}")
        pred = upsample_prediction(self(batch["image"]), size, self.model.config.version)
        protocol = self.protocols[name]
        if self.head == "metric" and protocol.align == "disparity":  # align: depth fits the metres themselves
            pred = protocol.as_disparity(pred)
        self.metrics[name].update(pred, depth, protocol.valid_mask(depth, mask))

    def on_test_start(self) -> None:
        loaders = self.trainer.test_dataloaders
        count = len(loaders) if isinstance(loaders, list | tuple) else 1
        if count != len(self.benchmarks):
            raise EvaluationError(
                f"{count} test dataloader(s) for {len(self.benchmarks)} benchmark(s) {self.benchmarks}: the "
                "evaluator scores test dataloader i as benchmarks[i]"
            )

    def on_test_epoch_start(self) -> None:
        self.results = {}
        for metric in self.metrics.values():
            metric.reset()

    def on_test_epoch_end(self) -> None:
        for name in self.benchmarks:  # same order on every rank: compute() is a collective under DDP
            metric = self.metrics[name]
            values = {key: float(value) for key, value in metric.compute().items()}
            with metric.sync_context():
                values[IMAGES] = int(metric.count)
            if values[IMAGES] == 0:
                logger.warning("%s: no image had a valid ground-truth pixel; its metrics are NaN", name)
            self.results[name] = values
            self.log_dict({f"{name}/{key}": value for key, value in values.items()}, sync_dist=False)
            metric.reset()


class EvalProgressBar(TQDMProgressBar):
    """Lightning's progress bar on stderr (stdout carries the results table), labelled with the benchmark
    (``anydepth eval`` uses it; add it to ``trainer.callbacks`` of a LightningCLI config)."""

    def init_test_tqdm(self) -> Tqdm:
        return Tqdm(
            desc="eval",
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stderr,
            bar_format=self.BAR_FORMAT,
        )

    def on_test_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        super().on_test_batch_start(trainer, pl_module, batch, batch_idx, dataloader_idx)
        names = getattr(pl_module, "benchmarks", None)
        if batch_idx == 0 and names and dataloader_idx < len(names):
            self.test_progress_bar.set_description(f"eval {names[dataloader_idx]}")
