# SPDX-License-Identifier: GPL-2.0
#
# KVM-backed IOMMU domains: build and test harness.
#
#   make run          build the x86_64 kernel, boot it in QEMU, run the demo
#   make check        the whole test matrix; last line "N passed, N failed"
#   make bench        the benchmarks, as a table and as JSON
#   make series       write the patch series to $(KVMDOM_CACHE)/series/
#   make shell        boot the x86_64 test VM to a shell
#   make setup        install what is missing (done by run/check anyway)
#   make clean-cache  remove everything the harness keeps outside the checkout
#   make fresh-root-check  setup and x86_64 check in a new minimal bookworm root
#   make iommufd-baseline  record upstream's iommufd selftests on stock 7.3
#   make preflight    check that every tool the harness runs is installed
#
# Everything expensive lives in $(KVMDOM_CACHE), by default
# ~/.cache/kvm-domain; re-runs only rebuild what changed.

KVMDOM_CACHE ?= $(HOME)/.cache/kvm-domain
export KVMDOM_CACHE

.PHONY: all help run check bench series shell setup prepare clean-cache fresh-root-check \
	iommufd-baseline preflight

all: help

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

run:
	@harness/run.sh

check:
	@harness/check.sh

bench:
	@harness/bench.sh

series:
	@harness/setup.sh disk build kernel
	@harness/prepare.sh
	@harness/series.sh

shell:
	@KVMDOM_MODE=shell harness/run.sh

setup:
	@harness/setup.sh check

prepare:
	@harness/setup.sh disk build kernel
	@harness/prepare.sh

clean-cache:
	rm -rf --one-file-system "$(KVMDOM_CACHE)"

fresh-root-check:
	@harness/fresh-root.sh $(FRESH_ROOT_FLAGS)

iommufd-baseline:
	@harness/baseline.sh

preflight:
	@harness/setup.sh --preflight
