# mk/fuzz.mk - libFuzzer targets (tests/fuzz/fuzz_<name>.c); see
# tests/fuzz/README.md.  Included from the Makefile.
#
#   make fuzz            every target, built with clang + libFuzzer + ASan +
#                        UBSan, into build-fuzz/fuzz_<name>
#   make fuzz-ci         build them, then run each for FUZZ_TIME seconds
#                        (default 60) on its committed corpus; any crash,
#                        leak, timeout or failed property fails (with -jN the
#                        targets run side by side)
#   make fuzz-run-NAME   one target until stopped (or FUZZ_TIME seconds)
#
# The same target sources are also built by `make` with the project's own
# compiler and flags as $(BUILD)/fuzz_replay_<name> (a plain main() that
# feeds files to LLVMFuzzerTestOneInput), so that `make test` replays the
# corpora and every regression input on the plain and sanitizer builds
# without needing clang (tests/test_fuzz_regressions.py).

FUZZ_CC     ?= clang
FUZZ_BUILD  ?= build-fuzz
FUZZ_TIME   ?= 60
FUZZ_NAMES   = $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_util.c,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=undefined
# No OpenMP: one thread per fuzzer, deterministic, and no libomp needed.
FUZZ_CFLAGS  = $(CSTD) -Wall -Wextra -Wno-unknown-pragmas -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) \
               -Iinclude -Isrc -MMD -MP
FUZZ_LIB_OBJ = $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BIN     = $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
# -timeout: an input that takes this long is a finding (a hang).
FUZZ_FLAGS  ?= -timeout=25 -rss_limit_mb=2560 -print_final_stats=1

$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/libsmoe.a: $(FUZZ_LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/tests/fuzz/fuzz_util.o $(FUZZ_BUILD)/libsmoe.a
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) $^ -o $@ -ljansson -lm

fuzz: $(FUZZ_BIN)

# One target for FUZZ_TIME seconds: new inputs go to a scratch corpus in
# build-fuzz/, the committed corpus and regression inputs are read only;
# a crashing input is saved as build-fuzz/crash-NAME-*.
fuzz-run-%: $(FUZZ_BUILD)/fuzz_%
	@mkdir -p $(FUZZ_BUILD)/corpus/$*
	$< $(FUZZ_FLAGS) -max_total_time=$(FUZZ_TIME) -artifact_prefix=$(FUZZ_BUILD)/crash-$*- \
	    $(if $(wildcard tests/fuzz/dict/$*.dict),-dict=tests/fuzz/dict/$*.dict) \
	    $(FUZZ_BUILD)/corpus/$* tests/fuzz/corpus/$* $(wildcard tests/fuzz/regressions/$*)

# CI: the log of each run goes to build-fuzz/NAME.log; its tail is shown.
fuzz-ci-%: $(FUZZ_BUILD)/fuzz_%
	@echo "fuzz $*: $(FUZZ_TIME) s"
	@if $(MAKE) --no-print-directory fuzz-run-$* >$(FUZZ_BUILD)/$*.log 2>&1; then \
	    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)|cov:.*DONE' $(FUZZ_BUILD)/$*.log \
	        | sed 's/^/fuzz $*: /'; \
	else \
	    tail -n 60 $(FUZZ_BUILD)/$*.log; echo "fuzz $*: FAILED (input saved as $(FUZZ_BUILD)/crash-$*-*)"; exit 1; \
	fi

fuzz-ci: $(FUZZ_NAMES:%=fuzz-ci-%)

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

clean: fuzz-clean

# Replay drivers for `make test` (see above): part of the default build.
FUZZ_REPLAY_BIN = $(FUZZ_NAMES:%=$(BUILD)/fuzz_replay_%)

$(BUILD)/fuzz_replay_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/fuzz_util.o \
                        $(BUILD)/tests/fuzz/replay_main.o $(BUILD)/libsmoe.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LIBS)

all: $(FUZZ_REPLAY_BIN)

.PHONY: fuzz fuzz-ci fuzz-clean
-include $(FUZZ_LIB_OBJ:.o=.d) $(wildcard $(FUZZ_BUILD)/tests/fuzz/*.d) $(wildcard $(BUILD)/tests/fuzz/*.d)
