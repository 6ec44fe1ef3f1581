# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv and install the project with the pinned constraints first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := demo_out
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install test demo demo-features demo-migrate demo-pose demo-look demo-dpc demo-islr demo-llava clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

test: install
	$(BIN)/python -m pytest -q

# The main job end to end on the embedded mock data and the bundled sample video.
demo: install demo-features demo-migrate demo-pose demo-look demo-dpc demo-islr demo-llava
	@echo "demo finished: outputs under $(DEMO)/"

demo-features: install
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	cd $(DEMO) && ../$(BIN)/sldata mock --quiet
	cd $(DEMO) && ../$(BIN)/sldata mock --layout v2 --quiet
	cd $(DEMO) && ../$(BIN)/sldata validate mock_data/
	cd $(DEMO) && ../$(BIN)/sldata validate mock_data_multi/

demo-migrate: install
	cd $(DEMO) && ../$(BIN)/sldata upgrade-annotations mock_data/annotation.train.json -o annotation.train.v2.json --overwrite
	cd $(DEMO) && ../$(BIN)/sldata shard mock_data mock_data_sharded --size 2 --dry-run
	cd $(DEMO) && ../$(BIN)/sldata shard mock_data mock_data_sharded --size 2 --overwrite
	cd $(DEMO) && ../$(BIN)/sldata validate mock_data_sharded/
	cd $(DEMO) && ../$(BIN)/sldata shard mock_data_sharded mock_data_resharded --size 4 --overwrite --quiet
	cd $(DEMO) && ../$(BIN)/sldata validate mock_data_resharded/

demo-pose: install
	cd $(DEMO) && ../$(BIN)/sldata extract-pose ../tests/data/astronaut.mp4 -o poses --h5 poses.h5 --quiet
	cd $(DEMO) && ../$(BIN)/sldata validate poses.h5

demo-look: install
	cd $(DEMO) && ../$(BIN)/sldata stats mock_data_multi/ --plots plots
	cd $(DEMO) && ../$(BIN)/sldata stats poses.h5 --deep --plots plots_pose
	cd $(DEMO) && ../$(BIN)/sldata render poses.h5 astronaut -o astronaut.png --video ../tests/data/astronaut.mp4 --sheet 6
	cd $(DEMO) && ../$(BIN)/sldata render poses.h5 astronaut -o astronaut.gif

demo-dpc: install
	cd $(DEMO) && ../$(BIN)/sltrain pretrain ../configs/dpc_smoke_cpu.yaml --set data.path=poses.h5 --set trainer.out_dir=runs/dpc_smoke

demo-islr: install
	$(BIN)/python -m cli.synthetic_pose $(DEMO)/signs
	$(BIN)/sldata validate $(DEMO)/signs/poses.h5 --labels $(DEMO)/signs/labels.train.csv --labels $(DEMO)/signs/labels.dev.csv --labels $(DEMO)/signs/labels.test.csv
	$(BIN)/sltrain finetune configs/islr_smoke_cpu.yaml --set model.checkpoint=$$(ls -1 $(DEMO)/runs/dpc_smoke/checkpoints/step_*.pt | tail -n 1)
	$(BIN)/sltrain evaluate configs/islr_smoke_cpu.yaml --checkpoint $(DEMO)/runs/islr_smoke/checkpoints/best.pt --split test

demo-llava: install
	cd $(DEMO) && ../$(BIN)/sltrain pretrain ../configs/sign_llava_smoke_cpu.yaml --set trainer.out_dir=runs/sign_llava_smoke
	cd $(DEMO) && ../$(BIN)/sltrain evaluate ../configs/sign_llava_smoke_cpu.yaml --set trainer.out_dir=runs/sign_llava_smoke --checkpoint runs/sign_llava_smoke/checkpoints/step_00000030.pt --split dev

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
