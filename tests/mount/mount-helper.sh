#!/bin/bash
# Mount through mount(8) and an fstab file with the installed chunkfs, as
# a user of `make install` would.  check_ops.c runs this inside a private
# mount namespace (unshare -m), so the bind mount over /usr/local/bin and
# the mounts below are seen by nobody else.
#
#   tests/mount/mount-helper.sh ROOT SRC MNT
#
# ROOT is a scratch directory, SRC a source directory holding hello.txt,
# MNT an empty directory.  Prints what failed and exits 1, else 0.
set -eu
root=$1 src=$2 mnt=$3
fail() { echo "mount-helper: $*" >&2; exit 1; }

make -s install DESTDIR="$root/inst" PREFIX=/usr/local >/dev/null || fail "make install failed"
[ -x "$root/inst/usr/local/bin/chunkfs" ] || fail "no chunkfs in BINDIR"
[ -f "$root/inst/usr/local/share/man/man1/chunkfs.1" ] || fail "no man page in MANDIR"
man -l "$root/inst/usr/local/share/man/man1/chunkfs.1" 2>/dev/null | grep -q x-systemd.automount ||
	fail "the installed man page does not render or lacks the fstab options"

# mount(8) gives mount.fuse3 no PATH: /bin/sh's default path finds
# /usr/local/bin/chunkfs, where `make install` puts it.
mount --bind "$root/inst/usr/local/bin" /usr/local/bin

# 1. mount -t fuse.chunkfs with what fstab and systemd add.
mount -t fuse.chunkfs "$src" "$mnt" \
	-o "rw,nosuid,nodev,_netdev,nofail,allow_other,x-systemd.automount,x-systemd.mount-timeout=30,comment=test,staging_dir=$root/staging" ||
	fail "mount -t fuse.chunkfs failed"
[ "$(findmnt -n -o FSTYPE "$mnt")" = fuse.chunkfs ] || fail "findmnt does not show fuse.chunkfs"
findmnt -n -o OPTIONS "$mnt" | grep -q allow_other || fail "allow_other did not reach the kernel"
cmp -s "$src/hello.txt" "$mnt/hello.txt" || fail "hello.txt reads back different"
echo "through mount(8)" >"$mnt/written.txt" || fail "cannot write through the mount"
umount "$mnt" || fail "umount failed"
[ "$(cat "$src/written.txt")" = "through mount(8)" ] || fail "the write did not land"

# 2. an fstab file, as /etc/fstab would hold it (README, chunkfs(1)).
printf '%s %s fuse.chunkfs _netdev,nofail,ro,allow_other,uid=nobody,x-systemd.automount,staging_dir=%s 0 0\n' \
	"$src" "$mnt" "$root/staging" >"$root/fstab"
mount -T "$root/fstab" -a || fail "mount -T fstab -a failed"
findmnt -n "$mnt" >/dev/null || fail "the fstab entry was not mounted"
cmp -s "$src/hello.txt" "$mnt/hello.txt" || fail "hello.txt reads back different (fstab)"
[ "$(stat -c %U "$mnt/hello.txt")" = nobody ] || fail "uid=nobody not applied"
if touch "$mnt/nope" 2>/dev/null; then fail "an ro fstab mount accepted a write"; fi
umount "$mnt" || fail "umount (fstab) failed"

# 3. a bad option fails the mount with chunkfs's sentence, through mount(8).
if out=$(mount -t fuse.chunkfs "$src" "$mnt" -o uid=no-such-user-here 2>&1); then
	umount "$mnt"
	fail "a bad uid= mounted"
fi
grep -q "neither a number nor a known user" <<<"$out" || fail "unclear error through mount(8): $out"
echo "mount-helper: ok"
