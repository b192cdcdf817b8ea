# smoe - build and test.
#
#   make              build/smoe and the unit tests
#   make SAN=1        the same with AddressSanitizer + UBSan, in build-san/
#   make test         run the whole suite on the plain and the sanitizer build

CC      ?= cc
PYTHON  ?= /usr/bin/python3
SAN     ?=
CSTD     = -std=c11 -D_POSIX_C_SOURCE=200809L
WARN     = -Wall -Wextra -Werror -Wshadow -Wvla
CFLAGS  ?= -O2 -g
ifeq ($(SAN),1)
BUILD   ?= build-san
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
BUILD   ?= build
endif
ALL_CFLAGS = $(CSTD) $(WARN) $(CFLAGS) -fopenmp -Iinclude -Isrc -MMD -MP
LIBS       = -fopenmp -ljansson -lm

LIB_SRC  = $(wildcard src/*.c src/format/*.c src/kernels/*.c src/model/*.c src/tokenizer/*.c src/chat/*.c src/engine/*.c)
CLI_SRC  = $(wildcard src/cli/*.c)
UNIT_SRC = $(wildcard tests/unit/test_*.c)

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/%)

all: $(BUILD)/smoe $(UNIT_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libsmoe.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/smoe: $(CLI_OBJ) $(BUILD)/libsmoe.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LIBS)

$(BUILD)/test_%: $(BUILD)/tests/unit/test_%.o $(BUILD)/libsmoe.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LIBS) -lcmocka

test: all
	$(MAKE) SAN=1 all
	$(PYTHON) tests/run.py build build-san

test-plain: all
	$(PYTHON) tests/run.py build

clean:
	rm -rf build build-san

.PHONY: all test test-plain clean
.SECONDARY:
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
