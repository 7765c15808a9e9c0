# defectkit — set-up, tests and per-dataset targets. Every target installs what it needs first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# labelme for the LabelMe oracle test only: its wheel is pure Python, but its dependencies (PyQt5, osam,
# onnxruntime) are not needed by labelme/utils/shape.py, so it cannot be a dev extra; --no-deps takes seconds.
LABELME := labelme==6.3.1

.PHONY: install test lint format bench bench-smoke clean demo demo-anomaly mvtec-leather neu-seg synthetic-neu-seg car-damages

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,deploy]'
	touch $(STAMP)

ORACLES := $(VENV)/.oracles
$(ORACLES): $(STAMP) Makefile
	$(BIN)/pip install --quiet --no-deps '$(LABELME)'
	touch $(ORACLES)

test: install $(ORACLES)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf build runs .pytest_cache .ruff_cache

# ----------------------------------------------------------------------------------------------- datasets
# Each dataset target: build (convert -> split -> augment -> verify) -> train -> evaluate -> infer -> report.
# BUILD and RUNS choose where data and runs go; TRAIN_SET passes extra `--set section.key=value` overrides
# (e.g. TRAIN_SET="--set train.epochs=5"); WORKERS sets the worker processes of the data steps.
DK        := $(BIN)/defectkit
BUILD     ?= build
RUNS      ?= runs
WORKERS   ?= $(shell nproc 2>/dev/null || echo 2)
TRAIN_SET ?=

# $(1) = recipe name in manifests/, $(2) = source path ('' = the recipe's path / environment variable)
define pipeline
	$(DK) build manifests/$(1).toml --out $(BUILD)/$(1) --overwrite --workers $(WORKERS) $(if $(2),--source "$(2)")
	$(DK) export $(BUILD)/$(1)/dataset $(BUILD)/$(1)/folders --overwrite
	$(DK) train manifests/$(1).train.toml --overwrite --set data.dataset=$(BUILD)/$(1)/dataset --set train.output_dir=$(RUNS)/$(1) $(TRAIN_SET)
	$(DK) evaluate manifests/$(1).train.toml --set data.dataset=$(BUILD)/$(1)/dataset --set train.output_dir=$(RUNS)/$(1) $(TRAIN_SET)
	$(DK) infer manifests/$(1).train.toml $(BUILD)/$(1)/folders/test/images $(RUNS)/$(1)/infer --overwrite --set data.dataset=$(BUILD)/$(1)/dataset --set train.output_dir=$(RUNS)/$(1) $(TRAIN_SET)
	$(DK) report $(RUNS)/$(1) --infer $(RUNS)/$(1)/infer --overwrite
	@echo "Report: $(RUNS)/$(1)/report/report.html"
endef

demo: install
	$(DK) demo-data $(BUILD)/demo-data --size 128 --per-defect 60 --overwrite
	$(call pipeline,demo,$(BUILD)/demo-data/mvtec/textile)

# The two anomaly detectors (SSIM autoencoder, CAM classifier) on a one-texture demo category (brick),
# as a real MVTec AD category is one surface; each trains a few minutes on two CPU cores.
# $(1) = config name in manifests/
define anomaly
	$(DK) train manifests/$(1).toml --overwrite --set data.dataset=$(BUILD)/demo-anomaly --set train.output_dir=$(RUNS)/$(1) $(TRAIN_SET)
	$(DK) evaluate manifests/$(1).toml --set data.dataset=$(BUILD)/demo-anomaly --set train.output_dir=$(RUNS)/$(1) $(TRAIN_SET)
	$(DK) infer manifests/$(1).toml $(BUILD)/demo-anomaly-folders/test/images $(RUNS)/$(1)/infer --overwrite --set data.dataset=$(BUILD)/demo-anomaly --set train.output_dir=$(RUNS)/$(1) $(TRAIN_SET)
endef

demo-anomaly: install
	$(DK) demo-data $(BUILD)/demo-anomaly-data --size 128 --textures brick --overwrite
	$(DK) convert mvtec $(BUILD)/demo-anomaly-data/mvtec/textile $(BUILD)/demo-anomaly --good all --overwrite --workers $(WORKERS)
	$(DK) split $(BUILD)/demo-anomaly --seed 137
	$(DK) export $(BUILD)/demo-anomaly $(BUILD)/demo-anomaly-folders --overwrite
	$(call anomaly,demo-ssim-ae)
	$(call anomaly,demo-cam)
	@echo "Evaluation: $(RUNS)/demo-ssim-ae/evaluation.json $(RUNS)/demo-cam/evaluation.json"
	@echo "Heatmaps, masks, overlays: $(RUNS)/demo-ssim-ae/infer $(RUNS)/demo-cam/infer"

mvtec-leather: install
	$(call pipeline,mvtec-leather,$(if $(MVTEC_ROOT),$(MVTEC_ROOT)/leather))

neu-seg: install
	$(call pipeline,neu-seg,$(NEU_ROOT))

synthetic-neu-seg: install
	$(call pipeline,synthetic-neu-seg,$(SYNTHETIC_NEU_ROOT))

car-damages: install
	$(call pipeline,car-damages,$(SLY_ROOT))

bench: install
	$(BIN)/pip install --quiet -e '.[dev,deploy,bench]'
	$(BIN)/python bench/convert.py
	$(BIN)/python bench/augment.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/infer.py

# The benches on small inputs, so CI proves they run (figures from these sizes mean nothing; `make bench`).
bench-smoke: install
	$(BIN)/python bench/convert.py --images 4 --polygons 5 --sdk-images 2
	$(BIN)/python bench/infer.py --images 2 --size 512 --train-steps 60 --repeats 1
	$(BIN)/python bench/train.py --stage precision --precision-steps 2

# Supervisely SDK oracle: the SDK pins its own numpy/opencv, so it lives in its own venv (never in $(VENV)).
ORACLE_VENV := .oracle-venv
SUPERVISELY := supervisely==6.74.51

$(ORACLE_VENV)/.installed:
	test -d $(ORACLE_VENV) || $(PYTHON) -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/pip install --quiet '$(SUPERVISELY)'
	touch $@

oracle: install $(ORACLE_VENV)/.installed
	$(BIN)/python -m pytest -q -m oracle tests/datatools/test_oracle_supervisely.py
