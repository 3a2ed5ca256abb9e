# ddpm.c — everything is built from here. `make help` lists the targets.
#
# Two builds of the same library live side by side:
#   build/f32/  float, what the program and the chapters run
#   build/f64/  double (-DDDPM_DOUBLE), what the gradient checks run, so that
#               finite differences are accurate enough to catch a 1% error
# Nothing is downloaded at build or test time.

CC      ?= cc
NATIVE  ?= 0
OPT     ?= -O2 $(if $(filter 1,$(NATIVE)),-march=native)
PKGS     = openblas lapacke libpng zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lopenblas -llapacke -lpng -lz)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck)
# -fno-trapping-math: nothing here reads the floating-point exception flags, and
# without it GCC will not vectorise a loop that compares floats (exp_vec's clamp).
CFLAGS  = -std=c11 -D_GNU_SOURCE -Wall -Wextra $(OPT) -fno-trapping-math -fopenmp -Isrc $(PKG_CFLAGS) -MMD -MP
LDLIBS  = $(PKG_LIBS) -lm -fopenmp

B        = build

# make MPI=1: the same program built with Open MPI's mpicc and -DDDPM_MPI into
# build/mpi/ (mpirun -np N build/mpi/ddpm ...; book/appendix_mpi.md). Without
# it nothing links MPI. make mpi-deps installs Open MPI; make test-mpi and
# make bench-mpi run the two-rank tests and the scaling table.
ifeq ($(MPI),1)
CC      := mpicc
B       := build/mpi
CFLAGS  += -DDDPM_MPI
endif

# make chapterN DATA=path/to/cifar-10-batches-bin uses that data set.
# MINUTES=N is the training time of each model a target trains, in minutes:
# the demo model of make demo / model / chapter7 / chapter8 (default 15) and
# each of chapter 6's two models (default 6).
ifdef DATA
export DDPM_DATA := $(DATA)
endif
ifdef MINUTES
export MINUTES
endif
LIB_SRC := $(filter-out src/ddpm.c,$(wildcard src/*.c))
TEST_SRC:= $(wildcard tests/test_*.c)
SUITES  := $(patsubst tests/test_%.c,%,$(TEST_SRC))
HELPERS := tests/check_main.c tests/gradcheck.c tests/gauss_model.c
NOTEBOOKS := $(patsubst notebooks_c/%.c,%,$(wildcard notebooks_c/ch*.c))

# Debian packages the project needs (make deps installs the missing ones).
DEPS = gcc make check pkg-config libopenblas-dev liblapacke-dev zlib1g-dev libpng-dev \
       gnuplot-nox graphviz pandoc dataset-fashion-mnist

.PHONY: ch09-ladder all deps bench-deps test run-tests book-check book-sync book bench data \
        notebooks clean help debug model demo homework grade homework-test homework-answers \
        classifier classifier-fashion fuzz fuzz-deps fuzz-smoke valgrind paper-model mpi-deps test-mpi \
        bench-mpi reproduce
.DEFAULT_GOAL := all

# The library (float) and the ddpm program.
all: $(B)/ddpm

# Print the targets and what they are for.
help:
	@grep -B1 -E '^[a-z0-9%-]+:' Makefile | grep -E '^#' | sed 's/^# //' | head -40; \
	echo; grep -E '^[a-z0-9%-]+:' Makefile | cut -d: -f1 | tr '\n' ' '; echo

# Install the Debian packages the project needs; quiet when all are present.
deps:
	@$(call install_missing,$(DEPS))

# Only the fuzzers need these (clang's libFuzzer and its OpenMP).
FUZZ_DEPS = clang libfuzzer-14-dev libomp-dev

# Install the Debian packages of the fuzzers (make fuzz, make fuzz-smoke).
fuzz-deps:
	@$(call install_missing,$(FUZZ_DEPS))

# What make bench compares against: Debian's PyTorch (never needed by make test).
BENCH_DEPS = python3-torch python3-numpy
bench-deps:
	@$(call install_missing,$(BENCH_DEPS))

# $(call install_missing,packages): as root, apt-get install the missing ones;
# otherwise print the exact command and fail.
define install_missing
missing=""; for p in $(1); do \
  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' \
    || missing="$$missing $$p"; done; \
if [ -z "$$missing" ]; then exit 0; fi; \
if [ "$$(id -u)" != 0 ]; then \
  echo "missing Debian packages:$$missing"; \
  echo "run:  sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; fi; \
echo "make: installing$$missing"; \
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null \
  && echo "make: done"
endef

# Open MPI from Debian, for make MPI=1 (never installed by make deps).
MPI_DEPS = libopenmpi-dev openmpi-bin
mpi-deps:
	@$(call install_missing,$(MPI_DEPS))

# Two ranks against one process: training (weights, Adam, EMA), bpd, sample.
test-mpi: mpi-deps build/ddpm build/st_compare
	@$(MAKE) --no-print-directory MPI=1 build/mpi/ddpm
	@bash tests/mpi.sh build/ddpm build/mpi/ddpm build/st_compare
build/st_compare: tests/st_compare.c build/f32/libddpm.a
	$(CC) $(CFLAGS) $< -o $@ build/f32/libddpm.a $(LDLIBS)

# The scaling table of book/appendix_mpi.md: steps/s and images/s on 1 and 2
# ranks, the allreduce time, and the estimate across machines (a measurement).
bench-mpi: mpi-deps
	@$(MAKE) --no-print-directory MPI=1 build/mpi/ddpm build/mpi/mpi_allreduce
	@bash tests/bench_mpi.sh build/mpi/ddpm build/mpi/mpi_allreduce
$(B)/mpi_allreduce: tests/mpi_allreduce.c $(B)/f32/libddpm.a
	$(CC) $(CFLAGS) $< -o $@ $(B)/f32/libddpm.a $(LDLIBS)

# Build and run every Check suite, float then double; ends on Check's summary.
test:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory run-tests

run-tests: $(B)/f32/run_tests $(B)/f64/run_tests $(B)/bookcheck $(B)/ddpm $(B)/repro
	@sh tools/bookcheck_test.sh > $(B)/bookcheck_test.log 2>&1 || { cat $(B)/bookcheck_test.log; exit 1; }
	@tail -n 1 $(B)/bookcheck_test.log
	@$(if $(wildcard book/0*.md),$(B)/bookcheck book/*.md,echo "no book chapters here: excerpt check skipped")
	@$(if $(wildcard tools/homework_mutations.txt),$(MAKE) --no-print-directory homework-test)
	@echo "== the ddpm program: bad input (tests/cli_robust.sh), kill -9 (tests/kill9.sh), make reproduce on a toy run (tests/reproduce_test.sh) =="
	@bash tests/cli_robust.sh $(B)/ddpm
	@bash tests/kill9.sh $(B)/ddpm
	@sh tests/reproduce_test.sh $(B)/ddpm $(B)/repro
	@echo "== released PyTorch checkpoints, imported (tests/import_weights.sh) =="
	@bash tests/import_weights.sh $(B)/ddpm
	@echo "== float build (core and golden tests) =="
	@$(B)/f32/run_tests
	@echo "== double build (core and gradient checks) =="
	@$(B)/f64/run_tests

# Fail when a chapter's quoted code differs from src/.
book-check: $(B)/bookcheck
	$(B)/bookcheck book/*.md

# Rewrite every quoted excerpt in book/ from src/ (never edit excerpts by hand).
book-sync: $(B)/bookcheck
	$(B)/bookcheck --fix book/*.md

# Render the book to HTML (pandoc, MathML) into build/book/.
book: book-check
	sh tools/book.sh $(B)/book

# Speed: every tests/bench_*.c program (GEMM, layers, the U-Net against
# PyTorch, installed first), as measurements, never asserted.
bench: deps bench-deps $(patsubst tests/%.c,$(B)/%,$(wildcard tests/bench_*.c))
	@for b in $(filter $(B)/bench_%,$^); do echo "== $$b"; $$b || exit 1; done

# Address and undefined-behaviour sanitizers over the whole test suite.
debug:
	$(MAKE) --no-print-directory B=build/debug OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" run-tests

# Memcheck over a short train -> resume -> sample -> bpd -> rd pipeline (minutes).
valgrind: $(B)/ddpm
	@$(call install_missing,valgrind)
	@bash tests/valgrind.sh $(B)/ddpm

# ---- fuzzing: a libFuzzer harness per untrusted input (tests/fuzz/) ----------
# make fuzz FUZZ_SECONDS=N runs each harness N seconds (60), new inputs kept in
# build/fuzz/corpus/, crashes in build/fuzz/crashes/; make fuzz-smoke replays the
# committed corpora and fuzzes each harness FUZZ_SMOKE seconds (3).
FUZZ_SECONDS ?= 60
FUZZ_SMOKE ?= 3
FUZZ_CC ?= clang
FZ = $(B)/fuzz
FUZZ_FLAGS = -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-function -Wno-pass-failed -Wno-for-loop-analysis -fopenmp -Isrc $(PKG_CFLAGS) $(FUZZ_FLAGS)
HARNESSES := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_OBJ := $(patsubst src/%.c,$(FZ)/obj/%.o,$(LIB_SRC))

# Build every harness, then fuzz each for FUZZ_SECONDS.
fuzz: fuzz-deps $(addprefix $(FZ)/,$(HARNESSES))
	@mkdir -p $(FZ)/crashes
	@for h in $(HARNESSES); do mkdir -p $(FZ)/corpus/$$h; echo "== $$h ($(FUZZ_SECONDS) s)"; \
	  $(FZ)/$$h -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=$(FZ)/crashes/$$h- $(FZ)/corpus/$$h tests/fuzz/corpus/$$h \
	    2> $(FZ)/$$h.log || { tail -n 40 $(FZ)/$$h.log; exit 1; }; \
	  grep -E '^stat::number_of_executed_units' $(FZ)/$$h.log; done

# Every harness on its committed corpus (the regression inputs), then briefly fuzzed.
fuzz-smoke: fuzz-deps $(addprefix $(FZ)/,$(HARNESSES))
	@mkdir -p $(FZ)/crashes
	@for h in $(HARNESSES); do mkdir -p $(FZ)/smoke/$$h; \
	  $(FZ)/$$h -max_total_time=$(FUZZ_SMOKE) -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=$(FZ)/crashes/$$h- $(FZ)/smoke/$$h tests/fuzz/corpus/$$h \
	    2> $(FZ)/$$h.smoke.log || { tail -n 40 $(FZ)/$$h.smoke.log; exit 1; }; \
	  echo "fuzz-smoke $$h: $$(grep -E '^stat::number_of_executed_units' $(FZ)/$$h.smoke.log \
	    | awk '{print $$2}') inputs, no crash"; done

$(FZ)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	@echo "CC  $< (fuzz)"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
# The CIFAR-10 harness compiles data.c itself (3 records per batch); the CLI one includes ddpm.c.
$(FZ)/fuzz_cifar: tests/fuzz/fuzz_cifar.c tests/fuzz/fuzz.h src/data.c $(FUZZ_OBJ)
	@echo "LD  $@ (fuzz)"; $(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< -o $@ $(filter-out $(FZ)/obj/data.o,$(FUZZ_OBJ)) $(LDLIBS)
$(FZ)/fuzz_checkpoint: tests/fuzz/fuzz_checkpoint.c tests/fuzz/fuzz.h $(FUZZ_OBJ)
	@echo "LD  $@ (fuzz)"; $(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< -o $@ $(FUZZ_OBJ) $(LDLIBS) -Wl,--wrap=arena_init
$(FZ)/fuzz_cli: tests/fuzz/fuzz_cli.c tests/fuzz/fuzz.h src/ddpm.c $(FUZZ_OBJ)
	@echo "LD  $@ (fuzz)"; $(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< -o $@ $(FUZZ_OBJ) $(LDLIBS)
$(FZ)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJ)
	@echo "LD  $@ (fuzz)"; $(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< -o $@ $(FUZZ_OBJ) $(LDLIBS)

# Run every chapter's notebook, in order.
CHAPTERS := $(sort $(foreach n,$(NOTEBOOKS),$(patsubst ch0%,%,$(firstword $(subst _, ,$(n))))))
notebooks: $(addprefix chapter,$(CHAPTERS))

# make chapterN: build and run notebooks_c/ch0N_*.c, which write figures/.
chapter%: deps
	@nb=$$(ls notebooks_c/ch0$*_*.c 2>/dev/null | head -n 1); \
	  [ -n "$$nb" ] || { echo "no notebook notebooks_c/ch0$*_*.c for chapter $*"; exit 1; }; \
	  nb=$$(basename $$nb .c); mkdir -p figures/data && \
	  $(MAKE) --no-print-directory $(B)/nb/$$nb && echo "running $(B)/nb/$$nb" && $(B)/nb/$$nb
	@for s in figures/data/ch0$*_*.gp; do [ -e "$$s" ] || continue; gnuplot "$$s" || exit 1; done
	@for d in figures/data/ch0$*_*.dot; do [ -e "$$d" ] || continue; \
	  n=$$(basename $$d .dot); dot -Tpng -Gdpi=110 $$d -o figures/$$n.png && dot -Tsvg $$d -o figures/$$n.svg || exit 1; done
	@echo "figures written:"; ls -1 figures/ch0$*_* 2>/dev/null | sed 's/^/  /'

# ---- the trained model of chapters 07 and 08 and of the demo ---------------
# CKPT=path uses that checkpoint. Otherwise the one `make demo` trains,
# build/demo/ckpt.safetensors, which is trained first if it is not there yet
# (the tiny U-Net, MINUTES minutes (15), on the default data set).
DEMO := $(B)/demo
CKPT ?= $(DEMO)/ckpt.safetensors
export CKPT
chapter7 chapter8: model

# Make sure $(CKPT) exists: train the demo model when it is the one missing.
model: $(B)/ddpm
	@if [ -f "$(CKPT)" ]; then echo "model: $(CKPT)"; \
	elif [ "$(CKPT)" != "$(DEMO)/ckpt.safetensors" ]; then \
	  echo "CKPT=$(CKPT): no such file"; exit 1; \
	else echo "no trained model yet: training the tiny U-Net for $${MINUTES:-15} minutes into $(DEMO)/"; \
	  echo "(MINUTES=N to change the budget, CKPT=path to use another checkpoint; Ctrl-C stops early and keeps it)"; \
	  mkdir -p $(DEMO) && $(B)/ddpm train --config tiny --minutes $${MINUTES:-15} --ema 0.995 --out $(DEMO); fi

# The main job: train the tiny model (MINUTES, default 15, on the default data:
# CIFAR-10 if present, else Fashion-MNIST), sample a grid, draw chapter 7's
# curves. About 25 minutes on two cores; a second run reuses the model.
demo: deps model
	@echo "== sampling 36 images (Algorithm 2, T = 1000 steps; about 4 minutes)"
	@$(B)/ddpm sample --ckpt $(CKPT) --n 36 --seed 1 --out figures/demo_samples.png \
	  --progressive figures/demo_progressive.png
	@echo "== the rate-distortion curves of chapter 7"
	@$(MAKE) --no-print-directory chapter7
	@echo; echo "== make demo: outputs"; \
	echo "  model          $(CKPT)  (log: $(dir $(CKPT))log.csv)"; \
	echo "  samples        figures/demo_samples.png (+ .npy)"; \
	echo "  x0-hat by step figures/demo_progressive.png"; \
	echo "  Figure 5       figures/ch07_*.png, table figures/data/ch07_table.txt"; \
	echo "  next: make chapter8 (more pictures of sampling), make book (the book as HTML)"

# ---- the reference classifiers of chapter 09's scores -------------------------
# The committed models/classifier_*.safetensors came from these commands (fixed
# seed and steps, so the same file every time on the same build; `ddpm score`
# prints the file's SHA-256). CIFAR-10 from DATA (default
# build/data/cifar-10-batches-bin); chapter 09 gives their accuracy and time.
classifier: $(B)/ddpm
	$(B)/ddpm classifier train --data $${DDPM_DATA:-build/data/cifar-10-batches-bin} \
	  --out models/classifier_cifar10.safetensors --width 24,48,96,192 --steps 4600 --seed 1

# The same for Fashion-MNIST (the scores of 1-channel samples).
classifier-fashion: $(B)/ddpm
	$(B)/ddpm classifier train --data /usr/share/datasets/fashion-mnist \
	  --out models/classifier_fashion_mnist.safetensors --width 16,32,64,128 --steps 7000 --seed 1

# ---- chapter 09's checkpoint ladder -------------------------------------------
# One run of the tiny U-Net on the default data (the demo's settings, with a
# fixed warm-up), stopped and resumed at each of LADDER_STEPS (a resumed run
# continues exactly), the checkpoint kept at each, and LADDER_SAMPLES images
# drawn from each with Algorithm 2 (seed 1). Each file is written once; an
# interrupted make chapter9 continues where it stopped.
LADDER_DIR     ?= $(B)/ch09_ladder$(if $(DATA),-$(notdir $(patsubst %/,%,$(DATA))))
LADDER_STEPS   ?= 250 750 1500
LADDER_SAMPLES ?= 150
export LADDER_DIR LADDER_STEPS
chapter9: ch09-ladder
ch09-ladder: $(B)/ddpm
	@mkdir -p $(LADDER_DIR); for s in $(LADDER_STEPS); do \
	  c=$(LADDER_DIR)/step$$s.safetensors; [ -f $$c ] && continue; \
	  r=; [ -f $(LADDER_DIR)/run/ckpt.safetensors ] && r="--resume $(LADDER_DIR)/run/ckpt.safetensors"; \
	  echo "== chapter 9 ladder: training to step $$s"; \
	  $(B)/ddpm train --config tiny --ema 0.995 --warmup 100 --steps $$s --out $(LADDER_DIR)/run $$r \
	    || exit 1; \
	  got=$$(tail -n 1 $(LADDER_DIR)/run/log.csv | cut -d, -f1); [ "$$got" = "$$s" ] || { \
	    echo "ch09-ladder: the run stopped at step $$got, not $$s (interrupted?); make chapter9 continues it"; \
	    exit 1; }; \
	  cp $(LADDER_DIR)/run/ckpt.safetensors $$c.tmp && mv $$c.tmp $$c || exit 1; done; \
	for s in $(LADDER_STEPS); do [ -f $(LADDER_DIR)/step$$s.npy ] && continue; \
	  echo "== chapter 9 ladder: $(LADDER_SAMPLES) samples of step $$s"; \
	  $(B)/ddpm sample --ckpt $(LADDER_DIR)/step$$s.safetensors --n $(LADDER_SAMPLES) --seed 1 \
	    --out $(LADDER_DIR)/step$$s.png || exit 1; done

# The paper's released CIFAR-10 model: CKPT=path to pytorch_diffusion's
# model-790000.ckpt (or its EMA variant) or diffusers' google/ddpm-cifar10-32
# weights. Converts it into build/paper/, times the network here, and prints
# the commands of the paper's numbers with their cost (appendix_paper_model.md).
paper-model: bench-deps $(B)/ddpm
	@[ "$(CKPT)" != "$(DEMO)/ckpt.safetensors" ] || { echo "usage: make paper-model CKPT=path/to/model-790000.ckpt [DATA=path]"; exit 2; }
	@[ -f "$(CKPT)" ] || { echo "CKPT=$(CKPT): no such file"; exit 1; }
	@bash tools/paper_model.sh $(B)/ddpm "$(CKPT)" $(B)/paper $(DATA)

# The paper's Tables 1, 2, 4 and Figures 5-8 in one resumable run of about
# HOURS hours (2) on two cores, ending in book/results.md (tools/reproduce.sh
# says how the budget is split); DATA=path, SEED=N; TOY=1 tests the harness.
reproduce: $(B)/ddpm $(B)/repro
	@HOURS="$(HOURS)" SEED="$(SEED)" TOY="$(TOY)" DATA="$(DATA)" sh tools/reproduce.sh
$(B)/repro: tools/repro.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra $< -o $@ -lm

# Download CIFAR-10 into build/data (when this machine can reach it), else say how.
data:
	@sh tools/get_cifar10.sh build/data

# ---- homework (book/homework/) ----------------------------------------------
# make homework HW=N [DIR=path]: a student copy with assignment N's functions
# stubbed (default homework/hwN/). make grade: grade this copy (HW is read from
# .homework in a student copy); make grade HW=N SUBMISSION=path: grade a
# student's copy, taking only the files of assignment N from it.
HW ?= $(shell cat .homework 2>/dev/null)
DIR ?= homework/hw$(HW)
homework: $(B)/stub
	@[ -n "$(HW)" ] || { echo "make homework HW=N [DIR=path]"; exit 2; }
	@sh tools/homework.sh copy $(HW) $(DIR)

# Build and run the assignment's graded tests; a table, the total last.
grade: $(B)/stub
	@[ -n "$(HW)" ] || { echo "make grade HW=N [SUBMISSION=path]"; exit 2; }
	@sh tools/homework.sh grade $(HW) $(SUBMISSION)

# The grader's own test (part of make test): reference 100%, stubs 0,
# every mutation of tools/homework_mutations.txt loses points.
homework-test: $(B)/stub $(B)/f64/run_tests
	@sh tools/homework.sh selftest > $(B)/homework_test.log 2>&1 || { cat $(B)/homework_test.log; exit 1; }
	@tail -n 1 $(B)/homework_test.log

# Print the numbers the homework's write-up questions ask for (the key in
# book/homework/answers.md), computed by the reference code.
homework-answers: $(B)/homework_answers
	@$(B)/homework_answers
$(B)/homework_answers: tools/homework_answers.c $(B)/f64/libddpm.a
	$(CC) $(CFLAGS) -DDDPM_DOUBLE $< -o $@ $(B)/f64/libddpm.a $(LDLIBS)

# Remove everything built (build/); figures/ and the sources stay.
clean:
	rm -rf build

# ---- objects, libraries, programs ----------------------------------------

$(B)/f32/%.o: src/%.c
	@mkdir -p $(@D)
	@echo "CC  $< (float)"
	@$(CC) $(CFLAGS) -c $< -o $@
$(B)/f64/%.o: src/%.c
	@mkdir -p $(@D)
	@echo "CC  $< (double)"
	@$(CC) $(CFLAGS) -DDDPM_DOUBLE -c $< -o $@

$(B)/f32/libddpm.a: $(patsubst src/%.c,$(B)/f32/%.o,$(LIB_SRC))
	$(AR) rcs $@ $^
$(B)/f64/libddpm.a: $(patsubst src/%.c,$(B)/f64/%.o,$(LIB_SRC))
	$(AR) rcs $@ $^

$(B)/ddpm: src/ddpm.c $(B)/f32/libddpm.a
	$(CC) $(CFLAGS) $< -o $@ $(B)/f32/libddpm.a $(LDLIBS)

# The runner calls suite_NN_name() for every tests/test_NN_name.c.
$(B)/suites.h: $(TEST_SRC) Makefile
	@mkdir -p $(@D)
	@printf '%s\n' $(foreach s,$(SUITES),"SUITE(suite_$(s))") > $@

# Test objects are built one file at a time, so that a changed library file
# (a homework submission, a mutation) relinks the runner without recompiling
# every suite.
TEST_OBJ = $(patsubst tests/%.c,%.o,$(HELPERS) $(TEST_SRC))
$(B)/f32/tests/%.o: tests/%.c $(B)/suites.h
	@mkdir -p $(@D)
	@$(CC) $(CFLAGS) $(CHECK_CFLAGS) -I$(B) -Itests -c $< -o $@
$(B)/f64/tests/%.o: tests/%.c $(B)/suites.h
	@mkdir -p $(@D)
	@$(CC) $(CFLAGS) -DDDPM_DOUBLE $(CHECK_CFLAGS) -I$(B) -Itests -c $< -o $@
$(B)/f32/run_tests: $(addprefix $(B)/f32/tests/,$(TEST_OBJ)) $(B)/f32/libddpm.a
	$(CC) $(CFLAGS) $(filter %.o %.a,$^) -o $@ $(CHECK_LIBS) $(LDLIBS)
$(B)/f64/run_tests: $(addprefix $(B)/f64/tests/,$(TEST_OBJ)) $(B)/f64/libddpm.a
	$(CC) $(CFLAGS) -DDDPM_DOUBLE $(filter %.o %.a,$^) -o $@ $(CHECK_LIBS) $(LDLIBS)

$(B)/bookcheck: tools/bookcheck.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra $< -o $@

# The homework stubber shares the checker's function finder.
$(B)/stub: tools/stub.c tools/bookcheck.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Itools $< -o $@

$(B)/bench_%: tests/bench_%.c tests/bench.h $(B)/f32/libddpm.a
	$(CC) $(CFLAGS) -Itests $< -o $@ $(B)/f32/libddpm.a $(LDLIBS)

# Notebooks link the float library; ch01 also shows gradient checks, which
# need the double build and the checker from tests/.
$(B)/nb/ch01%: notebooks_c/ch01%.c tests/gradcheck.c $(B)/f64/libddpm.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DDDPM_DOUBLE -Itests $< tests/gradcheck.c -o $@ $(B)/f64/libddpm.a $(LDLIBS)
$(B)/nb/ch%: notebooks_c/ch%.c $(B)/f32/libddpm.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests $< -o $@ $(B)/f32/libddpm.a $(LDLIBS)

-include $(wildcard $(B)/f32/*.d $(B)/f64/*.d $(B)/f32/tests/*.d $(B)/f64/tests/*.d)
