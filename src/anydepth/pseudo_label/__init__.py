"""Pseudo labels, the "data engine" step of Depth Anything (Sec. 3.2): a teacher's relative disparity for every image
of unlabeled shards, written as new shards for student training (``MixedDataModule(pseudo_shards=...)``).

``pseudo_label(checkpoint, inputs, out)`` (``anydepth pseudo-label``) runs ``lightning.Trainer.predict`` with
:class:`PseudoLabelDataModule` (the input shards still to do, read once), :class:`PseudoLabeler` (the teacher) and
:class:`PseudoLabelWriter` (the output shards). The teacher sees clean images, preprocessed as for evaluation
(:class:`~anydepth.data.transforms.EvalTransform`: aspect kept, shorter side >= ``input_size``, sides multiples of
14), ImageNet-normalised on the device; with ``flip_tta`` the prediction is averaged with the un-flipped prediction
of the flipped image. The prediction is upsampled (:func:`~anydepth.models.preprocess.upsample_prediction`) to the
image as stored in the shard. Images of different sizes cannot share a batch: keep ``batch_size=1`` (the default)
unless every input image has one size.

Output directory ``out``:

- ``pseudo.json``, written first: the settings (teacher checkpoint path and sha256, ``flip_tta``, ``input_size``,
  the resolved input shards and their sample counts).
- ``shard-NNNNNN.tar``: the pseudo labels of input shard NNNNNN, i.e. position NNNNNN in
  ``resolve_shards(inputs)``. Every sample keeps its key and the ORIGINAL bytes of its image (same field,
  ``image.jpg`` or ``image.png``: no re-encoding) and of its ``sky.png`` if any, and gets ``label.npy`` (float16, the
  teacher's disparity min-max normalised to [0, 1] per map: float16 keeps ~3 significant digits and overflows above
  65504, so a [0, 1] map keeps its relative precision; the training transforms normalise per map anyway),
  ``mask.png`` (valid = finite: a teacher disparity of exactly 0 is the farthest point, not a missing value, which
  the schema's default mask ``label > 0`` would drop) and ``meta.json`` (the input's, with ``label_kind``
  ``relative_disparity``).
- ``shard-NNNNNN.json``: the shard's completion record (``samples``, ``bytes``, ``sha256``, ``skipped``), written
  after the shard (:class:`~anydepth.shards.writer.ShardWriter`: ``.tmp`` file, fsync, rename).
- ``manifest.json``, written last: every non-empty shard, ``label_kind`` ``relative_disparity``, source
  ``pseudo-label``, the skipped samples, and ``extra`` = the settings of ``pseudo.json``.

A shard is finished as soon as it holds as many samples as its input shard's manifest count. Samples that cannot be
decoded are skipped (and logged) by the data pipeline, so shards still open when the predict loop ends are finished
with what they got and their record lists the shortfall; an input shard of which nothing was readable gets a
0-sample record. Such shards count as done.

Resume. A run into a directory that holds ``pseudo.json`` continues it (``resume=True``, the default): a shard whose
``.tar`` and ``.json`` record exist with matching size is kept, everything else is redone; ``.tmp`` leftovers are
removed. Resuming with another teacher (by sha256, not path), ``flip_tta``, ``input_size`` or input list is refused
with a :class:`PseudoLabelError`, as is a directory holding shards not written by this tool.

DDP (``devices``/``num_nodes``/``strategy``, e.g. SLURM). Global rank 0 checks the directory, writes ``pseudo.json``
and lists the pending input shards in ``PseudoLabelDataModule.setup``; the list is broadcast
(``trainer.strategy.broadcast``) so every rank agrees. Rank ``r`` of ``R`` reads pending shards ``r, r + R, ...``
and its DataLoader workers split those (:class:`~anydepth.data.datamodules.ShardDataset`, non-resampled, no
shuffle), so every input sample is read once and each output shard is written by exactly one rank, without
coordination. At the end every rank sends rank 0 the completion records it wrote (a synchronisation point, like a
barrier; rank 0 need not see other ranks' files promptly, as on NFS) and rank 0 writes ``manifest.json``. ``out``
must be on a file system every rank sees.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from anydepth import __version__
from anydepth.data.datamodules import check_prediction_settings
from anydepth.data.transforms import EvalTransform, normalize_per_map
from anydepth.files import atomic_write_json, tree_digest
from anydepth.models.depth_anything import DepthAnything
from anydepth.models.preprocess import normalize, upsample_prediction
from anydepth.shards.manifest import MANIFEST_NAME, Manifest, ShardRecord
from anydepth.shards.reader import ShardDataset, ShardList, ShardLoader, resolve_shards
from anydepth.shards.schema import Sample, relabel_record
from anydepth.shards.writer import ShardWriter, completed_shard, shard_name

__all__ = [
    "LABEL_DTYPE",
    "LABEL_KIND",
    "SOURCE",
    "STATE_NAME",
    "PseudoLabelDataModule",
    "PseudoLabelError",
    "PseudoLabelWriter",
    "PseudoLabeler",
    "check_output",
    "prepare_output",
    "pseudo_label",
    "pseudo_label_record",
    "write_manifest",
]

logger = logging.getLogger(__name__)

STATE_NAME = "pseudo.json"
SOURCE = "pseudo-label"
LABEL_KIND = "relative_disparity"
LABEL_DTYPE = "float16"
_IDENTITY = ("teacher_sha256", "flip_tta", "input_size", "inputs", "input_samples")
"""The ``pseudo.json`` settings a resumed run must share (the teacher's path may change, its sha256 may not)."""


class PseudoLabelError(ValueError):
    """Inputs or an output directory that cannot be pseudo-labelled as asked; the message names the path."""


def _input_shards(inputs: Sequence[str | os.PathLike]) -> ShardList:
    """``resolve_shards(inputs)``, every shard with a manifest sample count and listed once."""
    try:
        shards = resolve_shards([str(spec) for spec in inputs])
    except (OSError, ValueError) as err:  # FileNotFoundError, ManifestError, "no shards given"
        raise PseudoLabelError(f"cannot read the input shards: {err}") from err
    uncounted = [url for url, count in zip(shards.urls, shards.counts) if count is None]
    if uncounted:
        raise PseudoLabelError(
            f"input shards {', '.join(uncounted[:3])}{' ...' if len(uncounted) > 3 else ''} have no sample count (no "
            f"{MANIFEST_NAME} beside them lists them): pass shard directories built by anydepth shards build"
        )
    repeated = sorted(url for url, times in Counter(shards.urls).items() if times > 1)
    if repeated:
        raise PseudoLabelError(f"input shards listed more than once: {', '.join(repeated[:3])}")
    return shards


def _difference(name: str, old: Any, new: Any) -> str:
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        i = next(i for i, (a, b) in enumerate(zip(old, new)) if a != b)
        return f"{name}[{i}]: {old[i]!r} -> {new[i]!r}"
    if isinstance(old, list) and isinstance(new, list):
        return f"{name}: {len(old)} -> {len(new)} entries"
    return f"{name}: {old!r} -> {new!r}"


def check_output(out: Path, state: Mapping[str, Any], resume: bool) -> None:
    """Raise :class:`PseudoLabelError` unless ``out`` is absent, holds no shards, or (with ``resume``) is a
    pseudo-label directory whose ``pseudo.json`` has the same teacher sha256, ``flip_tta``, ``input_size`` and inputs
    as ``state``. Reads only."""
    if out.exists() and not out.is_dir():
        raise PseudoLabelError(f"output {out} exists and is not a directory")
    state_path = out / STATE_NAME
    if not state_path.is_file():
        foreign = sorted(p.name for p in out.glob("*") if p.name == MANIFEST_NAME or p.name.startswith("shard-"))
        if foreign:
            raise PseudoLabelError(
                f"output {out} holds shards not written by anydepth pseudo-label ({', '.join(foreign[:3])}, no "
                f"{STATE_NAME}): write the pseudo labels into a new directory"
            )
        return
    if not resume:
        raise PseudoLabelError(f"output {out} already holds pseudo labels: resume it, or write into a new directory")
    try:
        old = json.loads(state_path.read_text())
    except (OSError, ValueError) as err:
        raise PseudoLabelError(f"cannot resume {out}: unreadable {STATE_NAME} ({err}); delete {out} and rerun") from err
    changed = [_difference(k, old.get(k), state.get(k)) for k in _IDENTITY if old.get(k) != state.get(k)]
    if changed:
        raise PseudoLabelError(
            f"cannot resume {out}: it holds pseudo labels made with other settings ({'; '.join(changed)}); rerun with "
            f"the same teacher and settings, or write into a new --out directory (or delete {out})"
        )


def prepare_output(out: Path, state: Mapping[str, Any], resume: bool = True) -> list[int]:
    """Rank 0 before predicting: :func:`check_output`, write ``pseudo.json``, remove ``.tmp`` leftovers and a stale
    ``manifest.json``; return the indices of the input shards without a finished output shard."""
    check_output(out, state, resume)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / STATE_NAME, dict(state))
    for leftover in out.glob("*.tmp"):
        logger.info("removing leftover %s", leftover.name)
        leftover.unlink()
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    return [i for i in range(len(state["inputs"])) if completed_shard(out, i, check_sha256=False) is None]


def write_manifest(out: Path, written: Sequence[Mapping[str, Any]] = ()) -> Manifest:
    """Rank 0 after every rank finished: ``manifest.json`` over all shards (settings and inputs from ``pseudo.json``),
    taking the completion records ``written`` in this run as given (other ranks' files may not be visible to rank 0
    yet on NFS-like file systems) and reading the others; an input shard without any record yielded nothing and gets
    a 0-sample record. Returns the manifest."""
    state = json.loads((out / STATE_NAME).read_text())
    given = {record["index"]: record for record in written}
    records = []
    for index, (url, count) in enumerate(zip(state["inputs"], state["input_samples"])):
        record = given.get(index) or completed_shard(out, index, check_sha256=False)
        if record is None:  # pending, read, and not one sample of it was readable
            skipped = [{"input": url, "reason": f"none of its {count} samples was readable (see the log)"}]
            record = ShardWriter(out, index).finish(count, skipped)
        records.append(record)
    manifest = Manifest(
        source=SOURCE,
        builder_version=__version__,
        shards=[ShardRecord(r["name"], r["samples"], r["bytes"], r["sha256"]) for r in records if r["samples"]],
        label_kind=LABEL_KIND,
        settings={"input_size": state["input_size"], "flip_tta": state["flip_tta"], "label_dtype": LABEL_DTYPE},
        skipped=[s for r in records for s in r["skipped"]],
        extra=state,
    )
    manifest.save(out)
    return manifest


# ---------------------------------------------------------------- data


class _PseudoLabelInput:
    """:class:`EvalTransform` of a sample plus what the writer needs: ``shard`` (the input shard's index),
    ``shard_samples`` (its manifest count) and ``record`` (the raw record, whose bytes are copied)."""

    def __init__(self, size: int, shards: ShardList) -> None:
        self.transform = EvalTransform(size)
        self.index = {url: i for i, url in enumerate(shards.urls)}
        self.counts = shards.counts

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> dict[str, Any]:
        out = self.transform(sample)
        out.pop("label", None)  # a labeled input's own label is replaced, not read
        out.pop("mask", None)
        assert sample.record is not None, "decode_sample keeps the raw record"
        index = self.index[sample.record["__url__"]]
        out.update(shard=index, shard_samples=self.counts[index], record=sample.record)
        return out


class PseudoLabelDataModule(pl.LightningDataModule):
    """The input shards of ``out`` still to pseudo-label, each sample read once (see the module docstring).

    ``setup`` (every rank): global rank 0 runs :func:`prepare_output` and the pending shard indices (or its error) are
    broadcast, so all ranks agree; ``predict_dataloader`` then reads this rank's share. Batches: ``image`` B x 3 x h x w
    in [0, 1] (sides multiples of 14), ``original_size`` B x 2, ``key``, ``shard``, ``shard_samples``, ``record``.

    Args:
        inputs: input shard specs (directories with ``manifest.json``, or shard paths / patterns that one lists).
        out: the output directory.
        teacher: the teacher's identity (:meth:`PseudoLabeler.teacher_settings`), recorded in ``pseudo.json``.
        input_size: shorter network input side, rounded to a multiple of 14 (518 in the paper).
        batch_size: images per batch; > 1 only when all input images share one size.
        num_workers: DataLoader workers per rank.
        resume: continue a directory made with the same settings (else refuse any existing pseudo labels).
        pin_memory: pin host memory (default: when CUDA is available).
    """

    def __init__(
        self,
        inputs: Sequence[str | os.PathLike],
        out: str | os.PathLike,
        teacher: Mapping[str, Any],
        input_size: int = 518,
        batch_size: int = 1,
        num_workers: int = 2,
        resume: bool = True,
        pin_memory: bool | None = None,
    ) -> None:
        super().__init__()
        self.shards = _input_shards(inputs)
        self.out = Path(out)
        self.state: dict[str, Any] = {
            **teacher, "input_size": input_size, "inputs": list(self.shards.urls),
            "input_samples": list(self.shards.counts),
        }  # fmt: skip
        self.input_size, self.batch_size, self.num_workers, self.resume = input_size, batch_size, num_workers, resume
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.pending: list[int] | None = None
        self.allow_zero_length_dataloader_with_multiple_devices = True  # more ranks than pending shards

    def setup(self, stage: str) -> None:
        strategy = None if self.trainer is None else self.trainer.strategy
        plan: list[int] | str = []
        if strategy is None or strategy.is_global_zero:
            try:
                plan = prepare_output(self.out, self.state, self.resume)
            except PseudoLabelError as err:  # raised on every rank below, so none waits for the others
                plan = str(err)
        if strategy is not None:
            plan = strategy.broadcast(plan, src=0)
        if isinstance(plan, str):
            raise PseudoLabelError(plan)
        self.pending = plan

    def predict_dataloader(self) -> ShardLoader:
        if self.pending is None:
            raise RuntimeError("PseudoLabelDataModule.setup() must run before predict_dataloader()")
        rank, world_size = (0, 1) if self.trainer is None else (self.trainer.global_rank, self.trainer.world_size)
        pending = ShardList(
            tuple(self.shards.urls[i] for i in self.pending), tuple(self.shards.counts[i] for i in self.pending)
        )
        dataset = ShardDataset(
            pending, _PseudoLabelInput(self.input_size, self.shards), self.batch_size, resampled=False, shuffle=False,
            rank=rank, world_size=world_size, name="pseudo-label",
        )  # fmt: skip
        return ShardLoader(dataset, num_workers=self.num_workers, pin_memory=self.pin_memory)


# ---------------------------------------------------------------- teacher


class PseudoLabeler(pl.LightningModule):
    """The teacher: ``predict_step`` maps a :class:`PseudoLabelDataModule` batch to a list of B float32 CPU tensors,
    the relative disparity of each image at its stored resolution (``original_size``).

    Args:
        checkpoint: any checkpoint :meth:`DepthAnything.from_checkpoint` reads (a teacher's Lightning / anydepth
            checkpoint, an official ``.pth``, a transformers directory); a bad one raises ``CheckpointError``.
        flip_tta: average the prediction with the un-flipped prediction of the horizontally flipped image.
        encoder: expected encoder, checked against the checkpoint.
        version: Depth Anything version, for checkpoints that do not say.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        flip_tta: bool = False,
        encoder: str | None = None,
        version: str | None = None,
    ) -> None:
        super().__init__()
        self.model = DepthAnything.from_checkpoint(checkpoint, encoder=encoder, version=version).eval()
        self.checkpoint, self.flip_tta = Path(checkpoint), flip_tta

    def teacher_settings(self) -> dict[str, Any]:
        """``{"teacher": path, "teacher_sha256": ..., "flip_tta": ...}``: what identifies the labels (hashing reads the
        whole checkpoint)."""
        return {"teacher": str(self.checkpoint), "teacher_sha256": tree_digest(self.checkpoint),
                "flip_tta": self.flip_tta}  # fmt: skip

    def forward(self, images: Tensor) -> Tensor:
        """``B x 3 x h x w`` images in [0, 1] (sides multiples of 14) -> ``B x h x w`` relative disparity."""
        x = normalize(images)
        disparity = self.model(x)
        if self.flip_tta:
            disparity = (disparity + self.model(x.flip(-1)).flip(-1)) / 2
        return disparity

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[Tensor]:
        disparity = self(batch["image"])
        sizes = batch["original_size"].tolist()
        return [upsample_prediction(d[None], size)[0].cpu() for d, size in zip(disparity, sizes)]


# ---------------------------------------------------------------- writer


@dataclass
class _OpenShard:
    writer: ShardWriter
    url: str
    expected: int


def pseudo_label_record(record: dict[str, Any], disparity: np.ndarray) -> dict[str, Any]:
    """The output record of one input ``record``: its bytes, plus the teacher's ``disparity`` normalised to [0, 1]
    over its finite pixels as float16 ``label.npy``, ``mask.png`` = finite, and ``label_kind`` relative_disparity."""
    valid = np.isfinite(disparity)
    return relabel_record(record, normalize_per_map(disparity, valid), LABEL_KIND, valid, LABEL_DTYPE)


class PseudoLabelWriter(BasePredictionWriter):
    """Writes this rank's predictions into ``out/shard-NNNNNN.tar`` (NNNNNN: the input shard's index), finishing each
    shard as soon as it holds its input shard's sample count. At ``teardown`` (reached by every rank, including one
    without any batch) the shards still open are finished, the completion records of all ranks are gathered on
    rank 0 (object broadcasts: a synchronisation point, like a barrier), which writes ``manifest.json``
    (:func:`write_manifest`); every rank then holds the manifest as :attr:`manifest`. On an exception, open shards
    are deleted (a resumed run redoes them)."""

    def __init__(self, out: str | os.PathLike) -> None:
        super().__init__("batch")
        self.out = Path(out)
        self.manifest: Manifest | None = None
        self._open: dict[int, _OpenShard] = {}
        self._written: list[dict[str, Any]] = []
        self._rank = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._rank = trainer.global_rank
        self._written, self.manifest = [], None

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: list[Tensor],
        batch_indices: Sequence[int] | None,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        for disparity, record, index, expected in zip(
            prediction, batch["record"], batch["shard"], batch["shard_samples"]
        ):
            if index not in self._open:
                self._open[index] = _OpenShard(ShardWriter(self.out, index), record["__url__"], expected)
            shard = self._open[index]
            shard.writer.write(pseudo_label_record(record, disparity.numpy()))
            if shard.writer.samples == shard.expected:
                self._finish(index)

    def _finish(self, index: int) -> None:
        shard = self._open.pop(index)
        missing = shard.expected - shard.writer.samples
        reason = f"{missing} of its {shard.expected} samples unreadable (see the log)"
        record = shard.writer.finish(shard.expected, [{"input": shard.url, "reason": reason}] if missing else [])
        self._written.append(record)
        logger.info("rank %d: wrote %s (samples: %d)", self._rank, shard_name(index), shard.writer.samples)
        if missing:
            logger.warning("%s: %s", shard.url, reason)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        for shard in self._open.values():
            shard.writer.abort()
        self._open.clear()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "predict":
            return
        for index in list(self._open):
            self._finish(index)
        strategy = trainer.strategy
        written = [record for src in range(trainer.world_size) for record in strategy.broadcast(self._written, src)]
        self.manifest = strategy.broadcast(write_manifest(self.out, written) if trainer.is_global_zero else None, 0)


# ---------------------------------------------------------------- entry points


def _silence_expected_warnings() -> None:
    """Lightning warnings that this design triggers on purpose."""
    warnings.filterwarnings("ignore", message=".*IterableDataset.*has `__len__` defined")  # exact per worker
    warnings.filterwarnings("ignore", message=".*across ranks is zero")  # nothing pending, or a rank without shards
    warnings.filterwarnings("ignore", message="Couldn't infer the batch indices")  # the writer does not need them


def pseudo_label(
    checkpoint: str | os.PathLike,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    input_size: int = 518,
    flip_tta: bool = False,
    batch_size: int = 1,
    num_workers: int = 2,
    accelerator: str = "auto",
    devices: int | str | Sequence[int] = "auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    precision: str = "32-true",
    resume: bool = True,
    encoder: str | None = None,
    version: str | None = None,
    **trainer_kwargs: Any,
) -> Manifest:
    """Pseudo-label the shards ``inputs`` with the teacher ``checkpoint`` into ``out`` (see the module docstring).

    Every process of a DDP run calls this (Lightning's launcher or SLURM starts them). ``accelerator``, ``devices``,
    ``num_nodes``, ``strategy``, ``precision`` and ``trainer_kwargs`` go to ``lightning.Trainer``; ``encoder`` /
    ``version`` are the checkpoint hints of :meth:`DepthAnything.from_checkpoint`. Returns the written manifest (on
    every rank). Raises ``CheckpointError`` for a bad checkpoint and :class:`PseudoLabelError` for bad settings,
    missing inputs or inputs without manifest counts, and an ``out`` that cannot be resumed.
    """
    check_prediction_settings(input_size, batch_size, num_workers, PseudoLabelError)
    specs = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    _input_shards(specs)  # fail on missing inputs before loading the teacher
    labeler = PseudoLabeler(checkpoint, flip_tta, encoder, version)
    data = PseudoLabelDataModule(specs, out, labeler.teacher_settings(), input_size, batch_size, num_workers, resume)
    check_output(data.out, data.state, resume)  # once here, before any DDP process starts
    writer = PseudoLabelWriter(out)
    callbacks = [writer, *(trainer_kwargs.pop("callbacks", None) or [])]
    settings: dict[str, Any] = dict(
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, precision=precision,
        logger=False, enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    trainer = pl.Trainer(**{**settings, **trainer_kwargs}, callbacks=callbacks)
    with warnings.catch_warnings():
        _silence_expected_warnings()
        trainer.predict(labeler, datamodule=data, return_predictions=False)
    return writer.manifest or Manifest.load(out)  # spawn-based strategies set the manifest in child processes only
