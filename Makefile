# smoe - build and test.
#
#   make              build/smoe and the unit tests
#   make SAN=1        the same with AddressSanitizer + UBSan, in build-san/
#   make test         run the whole suite on the plain and the sanitizer build,
#                     and the arm64 build under qemu when installed (mk/arm64.mk)

CC      ?= cc
PYTHON  ?= /usr/bin/python3
SAN     ?=
CSTD     = -std=c11 -D_POSIX_C_SOURCE=200809L
WARN     = -Wall -Wextra -Werror -Wshadow -Wvla
CFLAGS  ?= -O2 -g
# loops with a run-time trip count vectorised too (GCC 12 at -O2 keeps to the
# "very cheap" model); float reductions are never reordered without -ffast-math
VECT    ?= -fvect-cost-model=cheap
ifeq ($(SAN),1)
BUILD   ?= build-san
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
BUILD   ?= build
endif
ALL_CFLAGS = $(CSTD) $(WARN) $(CFLAGS) $(VECT) -fopenmp -Iinclude -Isrc -MMD -MP
LIBS       = -fopenmp -ljansson -lm

LIB_SRC  = $(wildcard src/*.c src/base/*.c src/json/*.c src/format/*.c src/kernels/*.c src/model/*.c src/tokenizer/*.c src/chat/*.c src/engine/*.c src/grammar/*.c src/api/*.c)
CLI_SRC  = $(wildcard src/cli/*.c)
# the HTTP server (`smoe serve`): linked into the smoe binary only
SERVER_SRC  = $(wildcard src/server/*.c)
SERVER_LIBS = -lmicrohttpd -lpthread
UNIT_SRC = $(wildcard tests/unit/test_*.c)
# programs that embed smoe (examples/): built against the public headers only
EXAMPLE_SRC = $(wildcard examples/*.c)

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o) $(SERVER_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/%)
EXAMPLE_BIN = $(EXAMPLE_SRC:%.c=$(BUILD)/%)

all: $(BUILD)/smoe $(UNIT_BIN) $(EXAMPLE_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# SIMD kernels: instruction-set flags for these files alone (also in the
# fuzz build), on x86-64 only: for other targets the files compile to
# nothing.  Which of them runs is decided from the CPU at run time.
SIMD_AVX2_FLAGS   = -mavx2 -mfma -mf16c
SIMD_AVX512_FLAGS = $(SIMD_AVX2_FLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16
SMOE_CC_MACHINE  := $(shell $(CC) -dumpmachine)
ifneq ($(filter x86_64%,$(SMOE_CC_MACHINE)),)
%/src/kernels/simd_avx2.o: ALL_CFLAGS += $(SIMD_AVX2_FLAGS)
%/src/kernels/simd_avx2.o: FUZZ_CFLAGS += $(SIMD_AVX2_FLAGS)
%/src/kernels/simd_avx512.o: ALL_CFLAGS += $(SIMD_AVX512_FLAGS)
%/src/kernels/simd_avx512.o: FUZZ_CFLAGS += $(SIMD_AVX512_FLAGS)
endif

$(BUILD)/libsmoe.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/smoe: $(CLI_OBJ) $(BUILD)/libsmoe.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LIBS) $(SERVER_LIBS)

$(BUILD)/test_%: $(BUILD)/tests/unit/test_%.o $(BUILD)/libsmoe.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LIBS) -lcmocka

# -Iinclude and not -Isrc: an example sees what an embedding program sees
$(BUILD)/examples/%: examples/%.c $(wildcard include/*.h) $(BUILD)/libsmoe.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS) -Iinclude $< -o $@ $(LDFLAGS) $(BUILD)/libsmoe.a $(LIBS)

test: all
	$(MAKE) SAN=1 all
	$(MAKE) --no-print-directory arm64-if-installed
	$(PYTHON) tests/run.py build build-san $(ARM64_BUILD)

test-plain: all
	$(PYTHON) tests/run.py $(BUILD)

clean:
	rm -rf build build-san

.PHONY: all test test-plain clean
.SECONDARY:
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
include mk/fuzz.mk
include mk/arm64.mk
include mk/robust.mk
