# chunkfs - see README.md.
#
#   make              build ./chunkfs (objects under build/)
#   make check        unit tests (normal and ASan+UBSan builds), then mount tests
#   make unit         unit tests only, in $(BUILD)
#   make bench        benchmarks under bench/ (prints a table)
#   make install      PREFIX=/usr/local DESTDIR=
#   make format       apply .clang-format
#
# Sources are picked up by pattern: lib/*.c and backends/**.c form the core
# library, fuse/*.c the daemon, tests/unit/check_*.c and
# tests/mount/check_*.c one test program each, tests/support/*.c helpers
# linked into every test program.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BUILD ?= build
CC ?= cc

PKGS := fuse3 libcurl openssl libxml-2.0 jansson inih libxxhash
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))
CHECK_CFLAGS := $(shell pkg-config --cflags check)
CHECK_LIBS := $(shell pkg-config --libs check)

CFLAGS ?= -O2 -g
SAN ?=
ifeq ($(SAN),1)
  CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ALL_CFLAGS := -std=gnu11 $(WARN) $(CFLAGS) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DFUSE_USE_VERSION=314 \
	-I. -Ilib -Ibackends -Ifuse -Itests/support $(PKG_CFLAGS) -MMD -MP
LIBS := $(PKG_LIBS) -lpthread

CORE_SRC := $(wildcard lib/*.c backends/*.c backends/*/*.c)
FUSE_SRC := $(wildcard fuse/*.c)
SUPPORT_SRC := $(wildcard tests/support/*.c)
UNIT_SRC := $(wildcard tests/unit/check_*.c)
MOUNT_SRC := $(wildcard tests/mount/check_*.c)

CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
FUSE_OBJ := $(FUSE_SRC:%.c=$(BUILD)/%.o)
# The driver without main(), so unit tests can link its modules.
DRIVER_LIB := $(BUILD)/libchunkfs-fuse.a
DRIVER_OBJ := $(filter-out $(BUILD)/fuse/main.o,$(FUSE_OBJ))
SUPPORT_OBJ := $(SUPPORT_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
MOUNT_BIN := $(MOUNT_SRC:tests/mount/%.c=$(BUILD)/tests/%)
CORE_LIB := $(BUILD)/libchunkfs.a

.PHONY: all check unit mount-tests bench install uninstall format format-check clean
all: chunkfs

chunkfs: $(BUILD)/chunkfs
	cp $< $@.tmp && mv -f $@.tmp $@  # a running binary cannot be overwritten

$(BUILD)/chunkfs: $(FUSE_OBJ) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(CORE_LIB): $(CORE_OBJ)
	rm -f $@
	ar rcs $@ $^

$(DRIVER_LIB): $(DRIVER_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(if $(filter tests/%,$<),$(CHECK_CFLAGS) -Wno-format-truncation) -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(SUPPORT_OBJ) $(DRIVER_LIB) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/mount/%.o $(SUPPORT_OBJ) $(DRIVER_LIB) $(CORE_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LIBS)

unit: $(UNIT_BIN)
	tests/run-tests.sh $(UNIT_BIN)

mount-tests: chunkfs $(MOUNT_BIN)
	tests/run-tests.sh $(MOUNT_BIN)

# The whole suite: unit tests in a normal and a sanitizer build, then the
# mount tests against the real daemon.  tests/check.sh starts the servers
# the tests need and sums up the results.
check:
	tests/check.sh

bench: chunkfs
	bench/run.sh

# chunkfs in BINDIR is all mount(8) needs: `mount -t fuse.chunkfs` runs
# mount.fuse3 (package fuse3), which runs `chunkfs SOURCE MOUNTPOINT -o ...`
# found through /bin/sh's default PATH (/usr/local/bin and /usr/bin are on
# it; mount(8) passes no PATH of its own).
install: chunkfs
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 chunkfs $(DESTDIR)$(BINDIR)/chunkfs
	install -m 0644 docs/chunkfs.1 $(DESTDIR)$(MANDIR)/man1/chunkfs.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/chunkfs $(DESTDIR)$(MANDIR)/man1/chunkfs.1

FORMAT_SRC = $(wildcard lib/*.[ch] backends/*.[ch] backends/*/*.[ch] fuse/*.[ch] tests/*/*.[ch])
format:
	clang-format -i $(FORMAT_SRC)

format-check:
	clang-format --dry-run -Werror $(FORMAT_SRC)

clean:
	rm -rf build build-asan chunkfs

.SECONDARY:
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
