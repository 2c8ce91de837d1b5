# gptd: `make` builds bin/, `make test` runs the test suite (under ASan/UBSan), `make run` serves.
CC       ?= cc
ARCH     ?= -march=x86-64-v3
CFLAGS   ?= -O3 $(ARCH) -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -pthread -MMD -MP
LDLIBS   += -lopenblas -lcjson -lm -pthread
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

MODEL_SRC := $(wildcard model/*.c)
TOOLS_LIB := tools/cli.c
BUILD     := build

obj = $(patsubst %.c,$(BUILD)/$(1)/%.o,$(2))

BINS := bin/gpt-train bin/gpt-sample
all: $(BINS)

bin/gpt-sample: $(call obj,rel,$(MODEL_SRC) $(TOOLS_LIB) tools/gpt_sample.c)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

bin/gpt-train: $(call obj,rel,$(MODEL_SRC) $(TOOLS_LIB) tools/gpt_train.c)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/rel/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# Sanitizer build of the same sources, for the tests.
$(BUILD)/san/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -O1 -c -o $@ $<

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/san/test_%,$(wildcard tests/unit/test_*.c))
$(BUILD)/san/test_%: $(call obj,san,$(MODEL_SRC)) $(BUILD)/san/tests/unit/test_%.o
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS) -lcmocka

bin/gpt-train-san: $(call obj,san,$(MODEL_SRC) $(TOOLS_LIB) tools/gpt_train.c)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

test: $(UNIT_TESTS) bin/gpt-train-san
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done
	bash tests/cli/test_train_cli.sh bin/gpt-train-san

DATA_URL := https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
data: data/tinyshakespeare.txt
data/tinyshakespeare.txt:
	@mkdir -p data
	curl -fsSL -o $@ $(DATA_URL)

format:
	clang-format -i model/*.[ch] tools/*.[ch] tests/unit/*.[ch]

clean:
	rm -rf $(BUILD) bin

.PHONY: all test data format clean
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
