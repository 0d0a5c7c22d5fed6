# anydepth: every workflow starts here. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# infer: CKPT (official .pth, transformers dir or anydepth .ckpt), INPUT (image, dir or list.txt), OUTPUT
CKPT ?=
INPUT ?=
OUTPUT ?= outputs/depth
INPUT_SIZE ?= 518
# shards: SOURCE (reader kind), ROOT (dataset root), NAME (-> $(SHARDS_DIR)/NAME); optional SPLIT, MAX_SIDE,
# WORKERS (default: all cores), RESUME=1 (continue an interrupted build), PARTS=N (build in N parts one after another,
# as the SLURM array configs/slurm/shards.sbatch runs them on N nodes, then merge them)
SHARDS_DIR ?= data_shards
SOURCE ?=
ROOT ?=
NAME ?=
SPLIT ?=
MAX_SIDE ?=
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
RESUME ?=
PARTS ?=
SHARD_OPTS = $(if $(SPLIT),--split $(SPLIT)) $(if $(MAX_SIDE),--max-side $(MAX_SIDE)) --workers $(WORKERS) \
	$(if $(RESUME),--resume)
# eval: CKPT, DATA_ROOT (one shard directory per benchmark, e.g. data_shards/nyuv2); optional BENCHMARKS (comma list;
# default: the paper's Table 2 benchmarks, as `anydepth eval` itself defaults), METRICS (JSON output), DEVICES,
# EVAL_OPTS (more `anydepth eval` options, e.g. --protocols my.yaml --num-workers 8)
DATA_ROOT ?= $(SHARDS_DIR)
BENCHMARKS ?=
METRICS ?= outputs/eval/metrics.json
DEVICES ?= 1
EVAL_OPTS ?=
DEMO_SHARDS := $(SHARDS_DIR)/demo
DEMO_SHARD_SIZE ?= 64
# training (teacher, pseudo-label, student, finetune): RECIPE (configs/recipes/RECIPE/: v1 = the paper, v2 = Depth
# Anything V2), ENCODER (the model preset configs/model/ENCODER.yaml: vits, vitb, vitl, vitg), TRAINER (a
# configs/trainer/*.yaml: cpu, ddp, fsdp), DEVICES and NODES per job; data: LABELED and VAL (comma lists of shard dirs;
# default: the recipe's), UNLABELED (shards to pseudo-label), PSEUDO (pseudo-labeled shards), DINOV2 (local
# dinov2_vit?14_pretrain.pth), TEACHER_CKPT (for pseudo-label; default the teacher's best checkpoint by validation
# AbsRel, the paper's "best-performed" teacher), CKPT (finetune: the released model); FIT_OPTS: more LightningCLI options
RECIPE ?= v1
ENCODER ?= vits
TRAINER ?= ddp
NODES ?= 1
LABELED ?=
VAL ?=
UNLABELED ?= $(SHARDS_DIR)/unlabeled
PSEUDO ?= $(SHARDS_DIR)/pseudo
DINOV2 ?=
# a run's name: STAGE-ENCODER for the paper's recipe, STAGE-ENCODER-RECIPE for the others
run-name = $(1)-$(ENCODER)$(if $(filter-out v1 finetune,$(RECIPE)),-$(RECIPE))
TEACHER_CKPT ?= $(firstword $(wildcard outputs/$(call run-name,teacher)/checkpoints/best-*.ckpt))
FIT_OPTS ?=
# $(call run-dirs,RUN): the run name RUN and its directory outputs/RUN (run dir, wandb save_dir, checkpoints/: the
# stage's ModelCheckpoint, its last callback) in place of the stage config's size-neutral outputs/STAGE
run-dirs = --trainer.default_root_dir outputs/$(1) --trainer.logger.init_args.name $(1) \
	--trainer.logger.init_args.save_dir outputs/$(1) --trainer.callbacks.init_args.dirpath outputs/$(1)/checkpoints
# $(call fit,STAGE,SHARDS_ARGS): anydepth fit with the hardware config, the recipe configs/recipes/$(RECIPE)/STAGE.yaml,
# the model preset configs/model/$(ENCODER).yaml and the run outputs/$(call run-name,STAGE), then overrides
fit = $(BIN)/anydepth fit --config configs/trainer/$(TRAINER).yaml --config configs/recipes/$(RECIPE)/$(1).yaml \
	--config configs/model/$(ENCODER).yaml $(call run-dirs,$(call run-name,$(1))) \
	--trainer.devices $(DEVICES) --trainer.num_nodes $(NODES) $(2) $(if $(VAL),--data.init_args.val_shards [$(VAL)]) \
	$(if $(DINOV2),--model.init_args.pretrained $(DINOV2)) --ckpt_path last $(FIT_OPTS)
# metric (-> outputs/DATASET-ENCODER-metric): DATASET (the recipe configs/recipes/metric/DATASET.yaml: hypersim, vkitti2
# = Depth Anything V2's metric models; nyu, kitti = the paper's Sec. 4.3 fine-tuning), INIT (the relative model whose
# encoder starts the run: official V1/V2 .pth, transformers dir or anydepth .ckpt; default the official release of
# ENCODER, V1 for nyu/kitti (the paper), V2 for hypersim/vkitti2 (V2's dist_train.sh pretrained_from); INIT= starts
# from the preset's DINOv2), LABELED and VAL as for teacher
DATASET ?= hypersim
metric-init = $(if $(filter undefined,$(origin INIT)),checkpoints/depth_anything_$(if $(filter nyu kitti,$(DATASET)),$(ENCODER)14,v2_$(ENCODER)).pth,$(INIT))
# the demo writes everything under outputs/demo (paths fixed in configs/demo/*.yaml); its models train at 182 px
DEMO_OUT := outputs/demo
DEMO_SIZE := 182
DEMO_BEST = $$(ls $(DEMO_OUT)/$(1)/checkpoints/best-*.ckpt)

.DEFAULT_GOAL := help
.PHONY: help install test lint format benchmark benchmark-infer benchmark-train infer eval clean demo demo-metric demo-seg shards-demo-seg seg teacher pseudo-label student finetune metric shards shards-demo shards-blendedmvs shards-diml shards-hrwsi \
	shards-hypersim shards-irs shards-megadepth shards-tartanair shards-vkitti2 shards-images

help:  ## list every target
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(STAMP)  ## create .venv and install anydepth editable with dev extras (instant when up to date)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: install lint  ## lint, then the test suite (offline, CPU; gpu-marked tests skip without CUDA)
	WANDB_MODE=offline $(BIN)/python -m pytest -q

lint: install  ## ruff check + ruff format --check of the package, tests and benchmarks (changes nothing)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: install  ## ruff format the package, tests and benchmarks, then ruff check --fix (rewrites files)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

benchmark: install  ## speed ratios as JSON: model vs transformers, batched losses vs a per-sample loop
	$(BIN)/python benchmarks/model_speed.py
	$(BIN)/python benchmarks/loss_speed.py

benchmark-infer: install  ## inference images/s + batch-1 latency as JSON: torch eager, torch.compile, onnxruntime (CPU/CUDA/TensorRT)
	$(BIN)/python benchmarks/inference_speed.py

benchmark-train: install  ## student training images/s and data-wait share as JSON (GPU: ViT-S 518 px, 4 + 8 images/step)
	$(BIN)/python benchmarks/train_step.py

infer: install  ## depth maps: make infer CKPT=depth_anything_v2_vits.pth INPUT=photos/ [OUTPUT=outputs/depth]
	@test -n "$(CKPT)" -a -n "$(INPUT)" || { echo "usage: make infer CKPT=<checkpoint> INPUT=<image|dir|list.txt> [OUTPUT=dir]"; exit 2; }
	$(BIN)/anydepth infer --checkpoint $(CKPT) --input $(INPUT) --output $(OUTPUT) --input-size $(INPUT_SIZE)

eval: install  ## zero-shot metrics: make eval CKPT=ckpt.pth DATA_ROOT=data_shards [BENCHMARKS=a,b; default: the paper's Table 2 benchmarks]
	@test -n "$(CKPT)" || { echo "usage: make eval CKPT=<checkpoint> [DATA_ROOT=$(SHARDS_DIR)] [BENCHMARKS=comma list; default: the paper's Table 2 benchmarks] [METRICS=json] [DEVICES=N] [EVAL_OPTS=...]"; exit 2; }
	$(BIN)/anydepth eval --checkpoint $(CKPT) $(if $(BENCHMARKS),--benchmarks $(BENCHMARKS)) --data-root $(DATA_ROOT) \
		--input-size $(INPUT_SIZE) --devices $(DEVICES) --output $(METRICS) $(EVAL_OPTS)

# $(call build-shards,KIND,DEFAULT_NAME): ROOT read by the KIND reader into $(SHARDS_DIR)/NAME
# (NAME defaults to DEFAULT_NAME, plus -SPLIT when SPLIT is set); with PARTS=N, parts 0..N-1 and their merge
shards-out = $(SHARDS_DIR)/$(or $(NAME),$(1)$(if $(SPLIT),-$(SPLIT)))
define build-shards
@test -n "$(ROOT)" || { echo "usage: make $@ ROOT=<dataset root> [NAME=$(2)] [SPLIT=] [MAX_SIDE=] [WORKERS=] [RESUME=1] [PARTS=N]"; exit 2; }
for part in $(if $(PARTS),$$(seq 0 $$(($(PARTS) - 1))),0); do \
	$(BIN)/anydepth shards build --source $(1) --root $(ROOT) --out $(call shards-out,$(2)) $(SHARD_OPTS) \
		$(if $(PARTS),--num-parts $(PARTS) --part $$part) || exit; \
done
$(if $(PARTS),$(BIN)/anydepth shards merge $(call shards-out,$(2)))
endef

shards: install  ## WebDataset shards: make shards SOURCE=kind ROOT=dir NAME=name [SPLIT= MAX_SIDE= WORKERS= RESUME=1 PARTS=N]
	@test -n "$(SOURCE)" -a -n "$(NAME)" || { echo "usage: make shards SOURCE=<kind> ROOT=<dir> NAME=<name> [SPLIT=] [MAX_SIDE=] [WORKERS=] [RESUME=1] [PARTS=N]"; exit 2; }
	$(call build-shards,$(SOURCE),$(NAME))

shards-blendedmvs: install  ## BlendedMVS: ROOT=BlendedMVS/ (<PID>/blended_images/*.jpg + rendered_depth_maps/*.pfm)
	$(call build-shards,blendedmvs,blendedmvs)

shards-diml: install  ## DIML/CVL RGB-D: ROOT=unpacked folder (indoor col/ + up_png/, or outdoor left/ + depth/ + conf/)
	$(call build-shards,diml,diml)

shards-hrwsi: install  ## HR-WSI: ROOT=dir with {train,val}/imgs/*.jpg + gts/*.png (+ valid_masks/)
	$(call build-shards,hrwsi,hrwsi)

shards-hypersim: install  ## Hypersim: ROOT=<scene>/images/scene_cam_NN_{final_preview/*.tonemap.jpg,geometry_hdf5/*.depth_meters.hdf5}
	$(call build-shards,hypersim,hypersim)

shards-irs: install  ## IRS: ROOT=<Category>/<Scene>/l_<N>.png + d_<N>.exr (or converted d_<N>.npy/.pfm)
	$(call build-shards,irs,irs)

shards-megadepth: install  ## MegaDepth v1: ROOT=MegaDepth_v1/ (<scene>/dense<k>/imgs/*.jpg + depths/*.h5 or .npy)
	$(call build-shards,megadepth,megadepth)

shards-tartanair: install  ## TartanAir: ROOT=<env>/<Easy|Hard>/<P000>/image_left/*.png + depth_left/*_depth.npy
	$(call build-shards,tartanair,tartanair)

shards-vkitti2: install  ## Virtual KITTI 2: ROOT=Scene<NN>/<variant>/frames/rgb/Camera_<K>/*.jpg + frames/depth/ (cm PNG)
	$(call build-shards,vkitti2,vkitti2)

shards-images: install  ## unlabeled images: ROOT=folder of images (searched recursively) or a .txt list; NAME=...
	$(call build-shards,images,images)

shards-demo: install  ## offline demo shards in data_shards/demo/{unlabeled,eval,train} (synthetic train), verified
	$(BIN)/anydepth shards build --source demo-unlabeled --root $(DEMO_SHARDS)/unlabeled \
		--out $(DEMO_SHARDS)/unlabeled --samples-per-shard $(DEMO_SHARD_SIZE) --workers $(WORKERS) --resume
	$(BIN)/anydepth shards build --source demo-eval --root $(DEMO_SHARDS)/eval \
		--out $(DEMO_SHARDS)/eval --samples-per-shard $(DEMO_SHARD_SIZE) --workers $(WORKERS) --resume
	$(BIN)/anydepth shards build --source demo-train --root $(DEMO_SHARDS)/train \
		--out $(DEMO_SHARDS)/train --samples-per-shard $(DEMO_SHARD_SIZE) --workers $(WORKERS) --resume
	$(BIN)/anydepth shards verify $(DEMO_SHARDS)/unlabeled
	$(BIN)/anydepth shards verify $(DEMO_SHARDS)/eval
	$(BIN)/anydepth shards verify $(DEMO_SHARDS)/train

demo: shards-demo  ## THE MAIN JOB, offline on CPU (<15 min): demo shards -> teacher -> pseudo labels -> student -> metrics + depth maps
	rm -rf $(DEMO_OUT)
	$(BIN)/anydepth fit --config configs/trainer/cpu.yaml --config configs/demo/teacher.yaml
	$(BIN)/anydepth pseudo-label --checkpoint $(call DEMO_BEST,teacher) --input $(DEMO_SHARDS)/unlabeled \
		--out $(DEMO_OUT)/pseudo --input-size $(DEMO_SIZE) --accelerator cpu --devices 1
	$(BIN)/anydepth fit --config configs/trainer/cpu.yaml --config configs/demo/student.yaml
	$(BIN)/python -c "from anydepth.sources.demo import bundled_photos; print(*bundled_photos().values(), sep='\n')" \
		> $(DEMO_OUT)/photos.txt
	$(BIN)/anydepth infer --checkpoint $(call DEMO_BEST,student) --input $(DEMO_OUT)/photos.txt \
		--output $(DEMO_OUT)/depth --input-size $(DEMO_SIZE) --side-by-side
	$(BIN)/anydepth eval --checkpoint $(call DEMO_BEST,teacher) --checkpoint $(call DEMO_BEST,student) \
		--name teacher --name student --benchmarks demo \
		--data-root $(SHARDS_DIR) --input-size $(DEMO_SIZE) --accelerator cpu --output $(DEMO_OUT)/metrics.json
	@echo "demo done: metrics above and in $(DEMO_OUT)/metrics.json, depth maps of the demo photos in $(DEMO_OUT)/depth"

demo-metric: shards-demo  ## offline on CPU (<10 min): a small model fine-tuned to metres on the demo scenes, scored on held-out ones [INIT=demo teacher .ckpt]
	$(BIN)/anydepth shards build --source demo-train --split val --root $(DEMO_SHARDS)/metric-val \
		--out $(DEMO_SHARDS)/metric-val --samples-per-shard $(DEMO_SHARD_SIZE) --workers $(WORKERS) --resume
	$(BIN)/anydepth shards verify $(DEMO_SHARDS)/metric-val
	rm -rf $(DEMO_OUT)/metric
	$(BIN)/anydepth fit --config configs/trainer/cpu.yaml --config configs/demo/metric.yaml \
		$(if $(INIT),--model.init_args.init_encoder_from $(INIT))
	$(BIN)/anydepth validate --config configs/trainer/cpu.yaml --config configs/demo/metric.yaml --trainer.logger false \
		--trainer.default_root_dir $(DEMO_OUT)/metric/validate --model.init_args.init_checkpoint $(DEMO_OUT)/metric/checkpoints/last.ckpt
	@echo "demo-metric done: metric depth (metres, no alignment) of the last checkpoint on held-out scenes above; model in $(DEMO_OUT)/metric/checkpoints"

teacher: install  ## stage 1 (-> outputs/teacher-ENCODER[-RECIPE]): make teacher [RECIPE=v2] ENCODER=vitl DEVICES=8 NODES=2 DINOV2=... [LABELED=a,b VAL=c]
	$(call fit,teacher,$(if $(LABELED),--data.init_args.train_shards [$(LABELED)]))

pseudo-label: install  ## stage 2: the best teacher's pseudo labels, make pseudo-label [RECIPE=v2 TEACHER_CKPT=...] UNLABELED=dir PSEUDO=dir
	@test -n "$(TEACHER_CKPT)" || { echo "make pseudo-label: no outputs/$(call run-name,teacher)/checkpoints/best-*.ckpt; set TEACHER_CKPT" >&2; exit 2; }
	$(BIN)/anydepth pseudo-label --checkpoint $(TEACHER_CKPT) --input $(UNLABELED) --out $(PSEUDO) \
		--devices $(DEVICES) --num-nodes $(NODES)

student: install  ## stage 3 (-> outputs/student-ENCODER[-RECIPE]): make student [RECIPE=v2] ENCODER=vitl DEVICES=8 DINOV2=... [LABELED=a,b PSEUDO=dir VAL=c]
	$(call fit,student,$(if $(filter v2,$(RECIPE)),--data.init_args.train_shards [$(PSEUDO)],$(if $(LABELED),--data.init_args.labeled_shards [$(LABELED)]) --data.init_args.pseudo_shards [$(PSEUDO)]))

finetune: RECIPE := finetune
finetune: install  ## fine-tune a released model (-> outputs/finetune-ENCODER): make finetune CKPT=depth_anything_v2_vits.pth ENCODER=vits LABELED=a VAL=b
	@test -n "$(CKPT)" || { echo "make finetune: set CKPT to the released model (official .pth, transformers dir or .ckpt)" >&2; exit 2; }
	$(call fit,finetune,--model.init_args.init_checkpoint $(CKPT) $(if $(LABELED),--data.init_args.train_shards [$(LABELED)]))

metric: RECIPE := metric
metric: install  ## metric depth (-> outputs/DATASET-ENCODER-metric): make metric DATASET=hypersim|vkitti2|nyu|kitti ENCODER=vits [INIT=relative.pth LABELED=a VAL=b]
	$(call fit,$(DATASET),$(if $(metric-init),--model.init_args.init_encoder_from $(metric-init)) $(if $(LABELED),--data.init_args.train_shards [$(LABELED)]))

# seg (-> outputs/seg-DATASET-ENCODER[-depth]): SEG_DATASET or DATASET given on the command line
# (configs/recipes/seg/<it>.yaml: ade20k, cityscapes; default ade20k),
# INIT (a depth checkpoint whose encoder starts the run; none: the preset's DINOv2, the paper's baseline)
SEG_DATASET ?= $(if $(filter command line,$(origin DATASET)),$(DATASET),ade20k)
DEMO_SEG_SHARDS := $(DEMO_SHARDS)/seg
seg: install  ## segmentation (Sec. 4.4): make seg DATASET=ade20k|cityscapes ENCODER=vitl INIT=checkpoints/depth_anything_vitl14.pth
	$(BIN)/anydepth fit --config configs/trainer/$(TRAINER).yaml --config configs/recipes/seg/$(SEG_DATASET).yaml \
		--config configs/model/$(ENCODER).yaml $(call run-dirs,seg-$(SEG_DATASET)-$(ENCODER)$(if $(INIT),-depth)) \
		--trainer.devices $(DEVICES) --trainer.num_nodes $(NODES) $(if $(INIT),--model.init_args.init_encoder_from $(INIT)) \
		$(if $(LABELED),--data.init_args.train_shards [$(LABELED)]) $(if $(VAL),--data.init_args.val_shards [$(VAL)]) \
		$(if $(DINOV2),--model.init_args.pretrained $(DINOV2)) --ckpt_path last $(FIT_OPTS)

shards-demo-seg: install  ## synthetic scenes with class ids in data_shards/demo/seg/{train,val}
	$(BIN)/anydepth shards build --source demo-seg --out $(DEMO_SEG_SHARDS)/train --samples-per-shard $(DEMO_SHARD_SIZE) --workers $(WORKERS) --resume
	$(BIN)/anydepth shards build --source demo-seg --split val --out $(DEMO_SEG_SHARDS)/val --samples-per-shard $(DEMO_SHARD_SIZE) --workers $(WORKERS) --resume

demo-seg: shards-demo-seg  ## Sec. 4.4 in miniature (CPU): the demo depth encoder fine-tuned to segment, mIoU on held-out scenes
	rm -rf $(DEMO_OUT)/seg
	$(BIN)/anydepth fit --config configs/trainer/cpu.yaml --config configs/demo/seg.yaml \
		$(if $(wildcard $(DEMO_OUT)/student/checkpoints/best-*.ckpt),--model.init_args.init_encoder_from $(call DEMO_BEST,student))
	$(BIN)/anydepth eval --task seg --checkpoint $(call DEMO_BEST,seg) --data-root $(DEMO_SEG_SHARDS) --benchmarks val \
		--input-size $(DEMO_SIZE) --num-workers 1 --accelerator cpu --output $(DEMO_OUT)/seg/miou.json

clean:  ## remove the virtual environment, caches and outputs
	rm -rf $(VENV) .pytest_cache .ruff_cache build src/*.egg-info outputs
