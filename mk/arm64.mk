# mk/arm64.mk - the aarch64 (ARM64) cross build, tested under qemu-user.
# Included from the Makefile.
#
#   make arm64        build-arm64/smoe and build-arm64/test_* with Debian's
#                     aarch64-linux-gnu-gcc and the project's warning flags
#   make test-arm64   run every build-arm64/test_* unit binary under
#                     qemu-aarch64, then the end-to-end check: the arm64 smoe
#                     synthesises the tiny model and computes its logits, which
#                     must match the x86 build's (tests/run.py does both)
#
# The code targets baseline ARMv8-A, of which NEON is part, so the binaries
# run on any 64-bit ARM Linux; the kernels that use the dot-product
# extension (SDOT) are chosen at run time from getauxval(AT_HWCAP)
# (src/kernels/simd_neon.c).  The unit tests run under qemu's `-cpu max`,
# which has SDOT, and test_kernels (every kernel against the scalar path)
# and the end-to-end check again under `-cpu cortex-a72`, which lacks it:
# the other binaries do not depend on the CPU model, and emulation is slow.
#
# What it needs: the cross compiler and qemu (Debian packages
# gcc-aarch64-linux-gnu and qemu-user), and apt knowing the arm64
# architecture (dpkg --add-architecture arm64; apt-get update): .ci/run does
# both, as root.  The arm64 builds of the libraries smoe links (jansson,
# cmocka, microhttpd) and the C runtime they run on are not installed on
# the machine: `apt-get download` fetches them with their dependencies and
# `dpkg -x` unpacks them into build-arm64/sysroot, which needs no root and
# leaves the installed amd64 packages alone (installing multiarch :arm64
# -dev packages would force the amd64 ones to the same version).  Programs
# link against the cross toolchain's libc and libgomp and run, under qemu
# -L build-arm64/sysroot, on the sysroot's dynamic loader, libc, libgomp and
# libraries.
#
# The build directory gets a file `runner`: the command prefixes that run
# its binaries, one a line, optionally followed by `|` and the only unit
# binaries to run under that one.  tests/run.py reads it: a build directory
# with a runner gets its unit binaries (under each prefix) and the
# end-to-end check, not the Python suite.  `make test` builds arm64 when the
# toolchain is installed and otherwise removes build-arm64, whose binaries
# cannot run here, so that tests/run.py reports it as skipped.

ARM64_CC      ?= aarch64-linux-gnu-gcc
ARM64_BUILD   ?= build-arm64
ARM64_CFLAGS  ?= -O2 -g -march=armv8-a
ARM64_SYSROOT  = $(ARM64_BUILD)/sysroot
ARM64_QEMU    ?= $(firstword $(shell command -v qemu-aarch64 qemu-aarch64-static 2>/dev/null))
# Libraries to fetch: the -dev packages give the headers and libX.so; the
# runtime ones are fetched with all their dependencies.  A new -lX in the
# Makefile needs its arm64 packages here.
ARM64_DEV_DEBS = libjansson-dev libcmocka-dev libmicrohttpd-dev
ARM64_RUN_DEBS = libc6 libgomp1 libjansson4 libcmocka0 libmicrohttpd12
ARM64_LIBDIRS  = $(abspath $(ARM64_SYSROOT))/usr/lib/aarch64-linux-gnu $(abspath $(ARM64_SYSROOT))/lib/aarch64-linux-gnu
# OpenMP threads that wait by spinning cost emulated instructions: under
# qemu, test_forward takes four times the CPU time without this.
ARM64_QEMU_RUN = $(ARM64_QEMU) -L $(abspath $(ARM64_SYSROOT)) -E OMP_WAIT_POLICY=passive
ARM64_EMPTY    =
ARM64_RPATH    = $(subst $(ARM64_EMPTY) $(ARM64_EMPTY),:,$(ARM64_LIBDIRS))

ARM64_HAVE     = $(and $(shell command -v $(ARM64_CC) 2>/dev/null),$(ARM64_QEMU),\
                   $(filter arm64,$(shell dpkg --print-foreign-architectures 2>/dev/null)))
ARM64_MISSING  = arm64: no cross toolchain (packages gcc-aarch64-linux-gnu and qemu-user, and \
                 dpkg --add-architecture arm64; apt-get update: see .ci/run)

arm64:
ifeq ($(ARM64_HAVE),)
	@echo "$(ARM64_MISSING)"; exit 1
else
	@$(MAKE) --no-print-directory $(ARM64_SYSROOT)/.done
	@$(MAKE) --no-print-directory BUILD=$(ARM64_BUILD) CC=$(ARM64_CC) SAN= \
	    CFLAGS="$(ARM64_CFLAGS) -isystem $(ARM64_SYSROOT)/usr/include" \
	    LDFLAGS="$(ARM64_LIBDIRS:%=-L%) -Wl,-rpath-link,$(ARM64_RPATH)" all
	@printf '%s\n' "$(ARM64_QEMU_RUN) -cpu max" "$(ARM64_QEMU_RUN) -cpu cortex-a72 | test_kernels" \
	    > $(ARM64_BUILD)/runner
endif

# The package list is resolved by apt from its current lists, so the
# sysroot matches what apt would install; rebuilt when this file changes.
$(ARM64_SYSROOT)/.done: mk/arm64.mk
	rm -rf $(ARM64_SYSROOT) $(ARM64_BUILD)/debs
	mkdir -p $(ARM64_BUILD)/debs
	cd $(ARM64_BUILD)/debs && pkgs="$(ARM64_DEV_DEBS:%=%:arm64) $$(apt-cache depends --recurse \
	        --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
	        $(ARM64_RUN_DEBS:%=%:arm64) | grep '^[a-z0-9]' | sort -u)" && \
	    echo "arm64 sysroot:" $$pkgs && \
	    apt-get download -q $$pkgs >../apt-download.log 2>&1 || { cat ../apt-download.log; exit 1; }
	for d in $(ARM64_BUILD)/debs/*.deb; do dpkg -x $$d $(ARM64_SYSROOT) || exit 1; done
	rm -rf $(ARM64_BUILD)/debs
	touch $@

# For `make test`: build when the toolchain is there; otherwise remove an
# old arm64 build (without qemu its binaries cannot run) so that
# tests/run.py reports it as skipped.
arm64-if-installed:
ifeq ($(ARM64_HAVE),)
	@echo "$(ARM64_MISSING); its tests are skipped"
	@rm -rf $(ARM64_BUILD)
else
	@$(MAKE) --no-print-directory arm64
endif

test-arm64: all arm64
	$(PYTHON) tests/run.py $(ARM64_BUILD)

clean: clean-arm64
clean-arm64:
	rm -rf $(ARM64_BUILD)

.PHONY: arm64 arm64-if-installed test-arm64 clean-arm64
