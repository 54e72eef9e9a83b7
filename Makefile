# tunery: one binary, one `make`.
#   make            build ./tunery (-O3 -march=native, OpenMP)
#   make test       install what is missing, build, run every test (unit + SDK end-to-end)
#   make check      unit tests only (no installs)
#   make integration  tests/*/integration.sh (SDK end-to-end, tokenizer parity, crash tests)
#   make asan       unit tests under AddressSanitizer + UBSan
#   make fuzz       build the libFuzzer targets in tests/fuzz (clang)
#   make demo       install, build, and run the whole fine-tuning workflow end to end
#   make bench      the benchmark figures (JSON lines)
# Every src/<dir>/*.c is part of the program; every tests/<dir>/test_*.c is a
# unit-test binary linked against the same objects, so adding a file needs no
# Makefile edit.

CC      ?= gcc
OPT     ?= -O3 -march=native
CFLAGS  ?= $(OPT) -g
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation
CFLAGS  += -std=c11 -D_GNU_SOURCE -fopenmp $(WARN) -Isrc -MMD -MP
LDLIBS  := -fopenmp -ljansson -lsqlite3 -lmicrohttpd -lcurl -lpcre2-8 -lutf8proc -ldnnl -lm -lpthread
BUILD   ?= build

SRCS     := $(sort $(wildcard src/*/*.c))
OBJS     := $(SRCS:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/*/test_*.c))
TEST_BIN := $(TEST_SRC:%.c=$(BUILD)/%)

.PHONY: all test check asan fuzz demo bench clean deps integration check-asan
all: tunery

tunery: $(BUILD)/tunery
	@rm -f $@ && cp $< $@

# --whole-archive: subcommands are reached only through weak references in
# main.c (src/cmds.h), which would not pull their objects out of the archive.
$(BUILD)/tunery: $(BUILD)/src/main.o $(BUILD)/libtunery.a
	$(CC) $(CFLAGS) -o $@ $(BUILD)/src/main.o -Wl,--whole-archive $(BUILD)/libtunery.a -Wl,--no-whole-archive $(LDLIBS)

$(BUILD)/libtunery.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c $(BUILD)/libtunery.a tests/test.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libtunery.a $(LDLIBS)

deps:
	@scripts/install-deps.sh test

check: tunery $(TEST_BIN)
	@tests/run.sh $(BUILD) $(TEST_BIN)

# Integration suites: every tests/<dir>/integration.sh (SDK end-to-end, tokenizer
# parity against tiktoken, kill -9 tests...). Each prints "<name>: N passed, N failed".
INTEG := $(sort $(wildcard tests/*/integration.sh))
integration: tunery
	@tests/run-integration.sh $(INTEG)

test: deps
	@$(MAKE) --no-print-directory check
	@$(MAKE) --no-print-directory integration

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan CC=gcc \
	  OPT="-O1 -g -fno-omit-frame-pointer -march=native -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS_EXTRA= check-asan

check-asan: $(TEST_BIN)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 TUNERY_ASAN=1 tests/run.sh $(BUILD) $(TEST_BIN)

# libFuzzer targets: tests/fuzz/fuzz_<name>.c, each defines LLVMFuzzerTestOneInput.
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_LIB_SRCS := $(filter-out src/main.c,$(SRCS))
fuzz:
	@mkdir -p build-fuzz
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  echo "clang $$n"; \
	  clang -std=c11 -D_GNU_SOURCE -O1 -g -march=native -fsanitize=fuzzer,address,undefined -fopenmp -Isrc \
	    -o build-fuzz/$$n $$f $(FUZZ_LIB_SRCS) $(LDLIBS) || exit 1; done

demo: deps tunery
	@scripts/demo.sh

bench: tunery
	./tunery bench train --config gpt2-124M --batch 4 --seq 64

clean:
	rm -rf build build-asan build-fuzz tunery

-include $(OBJS:.o=.d)
