# mk/robust.mk - reliability builds: the server fuzz target's extra link,
# the allocation-failure sweep and the ThreadSanitizer build.  Included from
# the Makefile after mk/fuzz.mk.
#
#   make allocfail    build-allocfail/allocfail: ASan/LSan build whose
#                     malloc family fails the N-th call (tests/allocfail/)
#   make tsan         build-tsan/smoe: ThreadSanitizer, no OpenMP
#   make test-tsan    tests/test_server.py and the slowloris tests (the receive
#                     deadline's thread) on build-tsan/smoe

# ---------------------------------------------------------------------------
# fuzz_server and fuzz_http: these targets also need the server sources and
# libmicrohttpd (fuzz_server calls the handlers in process; fuzz_http runs
# the whole server on a loopback port; see tests/fuzz/)
# ---------------------------------------------------------------------------

SERVER_FUZZ = server http

$(SERVER_FUZZ:%=$(FUZZ_BUILD)/fuzz_%): $(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o \
        $(FUZZ_BUILD)/tests/fuzz/fuzz_util.o $(SERVER_SRC:%.c=$(FUZZ_BUILD)/%.o) $(FUZZ_BUILD)/libsmoe.a
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) $^ -o $@ -ljansson -lm $(SERVER_LIBS)

$(SERVER_FUZZ:%=$(BUILD)/fuzz_replay_%): $(BUILD)/fuzz_replay_%: $(BUILD)/tests/fuzz/fuzz_%.o \
        $(BUILD)/tests/fuzz/fuzz_util.o $(BUILD)/tests/fuzz/replay_main.o $(SERVER_SRC:%.c=$(BUILD)/%.o) $(BUILD)/libsmoe.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LIBS) $(SERVER_LIBS)

# ---------------------------------------------------------------------------
# Allocation-failure sweep (tests/allocfail/, tests/test_allocfail.py)
# ---------------------------------------------------------------------------
# The library and server sources unchanged, built with ASan + UBSan (LSan
# comes with ASan) and without OpenMP (one thread, so the N-th allocation is
# the same call every run), linked with the allocator functions wrapped.

AF_BUILD  ?= build-allocfail
AF_CFLAGS  = $(CSTD) $(WARN) -Wno-unknown-pragmas -O1 -g -fno-omit-frame-pointer \
             -fsanitize=address,undefined -fno-sanitize-recover=undefined -Iinclude -Isrc -MMD -MP
AF_WRAP    = -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup,--wrap=aligned_alloc
AF_OBJ     = $(LIB_SRC:%.c=$(AF_BUILD)/%.o) $(SERVER_SRC:%.c=$(AF_BUILD)/%.o) \
             $(AF_BUILD)/tests/allocfail/af.o $(AF_BUILD)/tests/allocfail/allocfail.o

$(AF_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(AF_CFLAGS) -c $< -o $@

$(AF_BUILD)/allocfail: $(AF_OBJ)
	$(CC) -fsanitize=address,undefined $(AF_WRAP) $^ -o $@ -ljansson -lm $(SERVER_LIBS)

allocfail: $(AF_BUILD)/allocfail

# ---------------------------------------------------------------------------
# ThreadSanitizer build of smoe (tests/test_server.py runs on it)
# ---------------------------------------------------------------------------
# No OpenMP: libgomp is not built with TSan, so its barriers would be
# reported as races; without -fopenmp the pragmas are ignored and every
# loop runs on the calling thread.  The threads that matter here (MHD's
# connection threads, the engine thread, the main thread) are pthreads.
# libgomp is still linked for the omp_* calls a few CLI commands make
# outside #ifdef _OPENMP (with no parallel region it starts no thread).

TSAN_BUILD  ?= build-tsan
TSAN_CFLAGS  = $(CSTD) $(WARN) -Wno-unknown-pragmas -O1 -g -fno-omit-frame-pointer -fsanitize=thread \
               -Iinclude -Isrc -MMD -MP
TSAN_OBJ     = $(LIB_SRC:%.c=$(TSAN_BUILD)/%.o) $(CLI_OBJ:$(BUILD)/%=$(TSAN_BUILD)/%)

$(TSAN_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) -c $< -o $@

$(TSAN_BUILD)/smoe: $(TSAN_OBJ)
	$(CC) -fsanitize=thread $^ -o $@ -ljansson -lm $(SERVER_LIBS) -lgomp

tsan: $(TSAN_BUILD)/smoe

# Every report (of any smoe process the tests start) goes to a file
# $(TSAN_BUILD)/reports/tsan.PID; the target fails when the tests fail or
# when any report was written.
test-tsan: $(TSAN_BUILD)/smoe
	rm -rf $(TSAN_BUILD)/reports && mkdir -p $(TSAN_BUILD)/reports
	cd tests && TSAN_OPTIONS="log_path=$(abspath $(TSAN_BUILD))/reports/tsan second_deadlock_stack=1 $(TSAN_OPTIONS)" \
	    SMOE_BIN=$(abspath $(TSAN_BUILD))/smoe SMOE_BUILD=$(TSAN_BUILD) $(PYTHON) -m unittest test_server test_hostile.Slowloris
	@if ls $(TSAN_BUILD)/reports/tsan.* >/dev/null 2>&1; then \
	    cat $(TSAN_BUILD)/reports/tsan.* | head -n 200; \
	    echo "test-tsan: ThreadSanitizer reports in $(TSAN_BUILD)/reports/"; exit 1; \
	else echo "test-tsan: no ThreadSanitizer reports"; fi

ifneq ($(filter x86_64%,$(SMOE_CC_MACHINE)),)
$(AF_BUILD)/src/kernels/simd_avx2.o: AF_CFLAGS += $(SIMD_AVX2_FLAGS)
$(AF_BUILD)/src/kernels/simd_avx512.o: AF_CFLAGS += $(SIMD_AVX512_FLAGS)
$(TSAN_BUILD)/src/kernels/simd_avx2.o: TSAN_CFLAGS += $(SIMD_AVX2_FLAGS)
$(TSAN_BUILD)/src/kernels/simd_avx512.o: TSAN_CFLAGS += $(SIMD_AVX512_FLAGS)
endif

.PHONY: allocfail tsan test-tsan
-include $(AF_OBJ:.o=.d) $(TSAN_OBJ:.o=.d) $(SERVER_SRC:%.c=$(FUZZ_BUILD)/%.d)

robust-clean:
	rm -rf $(AF_BUILD) $(TSAN_BUILD)

clean: robust-clean
.PHONY: robust-clean
