#!/bin/bash
# Checks of contrib/ that need no Docker engine, systemd or cluster (none
# runs on the test machines): tests/check.sh runs this.  Prints one line
# per check, "PASS name", "FAIL name: why" or "SKIP name: reason", and
# exits 1 if anything failed.
#
#   systemd units   systemd-analyze verify, with the installed chunkfs on
#                   /usr/local/bin (in a private mount namespace)
#   YAML            parsed with python3-yaml; the settings FUSE needs in a
#                   container are checked (device, capability, propagation)
#   Dockerfile      its stages, files it copies, exec-form commands, and
#                   that it builds with the README's commands
#   entrypoint.sh   sh -n; the mount tests run it for real (check_ops.c)
#   chunkfs(1)      names every -o option of --help and every environment
#                   variable the sources read
set -u
cd "$(dirname "$0")/../.." || exit 1
failed=0
pass() { echo "PASS contrib/$1"; }
fail() { echo "FAIL contrib/$1: $2"; failed=1; }
skip() { echo "SKIP contrib/$1: $2"; }

# --- systemd -------------------------------------------------------------
if ! command -v systemd-analyze >/dev/null; then
	skip systemd "systemd-analyze is not installed (Debian package systemd)"
else
	tmp=$(mktemp -d /tmp/chunkfs-contrib.XXXXXX)
	trap 'rm -rf "$tmp"' EXIT
	if ! make -s install DESTDIR="$tmp/inst" PREFIX=/usr/local >/dev/null 2>&1; then
		fail systemd "make install failed"
	else
		for unit in contrib/systemd/*.mount contrib/systemd/*.automount \
			contrib/systemd/*.service; do
			name=$(basename "$unit")
			# verify checks that ExecStart= binaries exist: show it the
			# installed chunkfs, privately.
			out=$(unshare -m --propagation private sh -c \
				'mount --bind "$1/inst/usr/local/bin" /usr/local/bin &&
				 cd "$(dirname "$2")" &&
				 MANPATH="$1/inst/usr/local/share/man" systemd-analyze verify "./$(basename "$2")"' \
				sh "$tmp" "$unit" 2>&1)
			rc=$?
			if [ $rc -ne 0 ] || grep -qiE "unknown|refusing|bad|invalid|not executable" <<<"$out"; then
				fail "systemd/$name" "systemd-analyze verify: $out"
			else
				pass "systemd/$name"
			fi
		done
	fi
fi
# The mount unit and the fstab line of the README agree.
if grep -q '^What=s3://weights/models' contrib/systemd/mnt-models.mount &&
	grep -q '^Type=fuse.chunkfs' contrib/systemd/mnt-models.mount &&
	grep -q '^Where=/mnt/models' contrib/systemd/mnt-models.mount; then
	pass systemd/mount-unit-fields
else
	fail systemd/mount-unit-fields "What=/Where=/Type= are not the README's"
fi

# --- YAML: compose and Kubernetes ----------------------------------------
py=/usr/bin/python3
if ! [ -x "$py" ] || ! "$py" -c 'import yaml' 2>/dev/null; then
	skip yaml "/usr/bin/python3 with yaml (Debian package python3-yaml) is not installed"
else
	if out=$("$py" - contrib/docker/compose.yaml <<'PY' 2>&1
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
s = doc["services"]
m = s["chunkfs"]
assert "/dev/fuse" in m["devices"], "chunkfs service lacks /dev/fuse"
assert "SYS_ADMIN" in m["cap_add"], "chunkfs service lacks SYS_ADMIN"
assert m["build"]["dockerfile"] == "contrib/docker/Dockerfile"
prop = {v["target"]: v["bind"]["propagation"] for v in m["volumes"] if isinstance(v, dict)}
assert prop.get("/mnt/chunks") == "rshared", "the mount must propagate out (rshared)"
r = s["reader"]
rv = [v for v in r["volumes"] if isinstance(v, dict)]
assert rv[0]["source"] == m["volumes"][0]["source"], "reader binds another directory"
assert rv[0]["bind"]["propagation"] in ("rslave", "rshared"), "reader does not see mounts"
assert r["depends_on"]["chunkfs"]["condition"] == "service_healthy"
assert m["healthcheck"]["test"][2:4] == ["stats", "/mnt/chunks"]
PY
); then pass docker/compose.yaml; else fail docker/compose.yaml "$out"; fi

	if out=$("$py" - contrib/kubernetes/pod-sidecar.yaml <<'PY' 2>&1
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = {d["kind"]: d for d in docs}
assert set(kinds) == {"Pod", "Secret", "ServiceAccount"}, kinds.keys()
for d in docs:
    assert d["apiVersion"] == "v1" and d["metadata"]["name"]
pod = kinds["Pod"]["spec"]
side = pod["initContainers"][0]
assert side["restartPolicy"] == "Always", "not a native sidecar"
assert side["securityContext"]["privileged"] is True, "Bidirectional needs privileged"
mp = {v["name"]: v.get("mountPropagation") for v in side["volumeMounts"]}
assert mp["models"] == "Bidirectional"
main = pod["containers"][0]
mm = {v["name"]: v.get("mountPropagation") for v in main["volumeMounts"]}
assert mm["models"] == "HostToContainer"
env = {e["name"]: e.get("value") for e in side["env"]}
assert env["CHUNKFS_SOURCE"].startswith("s3://")
assert side["envFrom"][0]["secretRef"]["name"] == kinds["Secret"]["metadata"]["name"]
assert pod["serviceAccountName"] == kinds["ServiceAccount"]["metadata"]["name"]
assert "eks.amazonaws.com/role-arn" in kinds["ServiceAccount"]["metadata"]["annotations"]
assert side["startupProbe"]["exec"]["command"][1:] == ["stats", env["CHUNKFS_MOUNTPOINT"]]
assert pod["terminationGracePeriodSeconds"] >= 60, "shorter than shutdown_timeout"
PY
); then pass kubernetes/pod-sidecar.yaml; else fail kubernetes/pod-sidecar.yaml "$out"; fi
fi

# --- Dockerfile ------------------------------------------------------------
df=contrib/docker/Dockerfile
problems=""
grep -q '^FROM debian:12 AS build$' "$df" || problems+="no debian:12 build stage; "
grep -q '^FROM debian:12-slim$' "$df" || problems+="no debian:12-slim run stage; "
# It builds with the README's commands.
grep -q 'scripts/install-deps.sh build' README.md || problems+="README lost install-deps.sh build; "
grep -q '^RUN scripts/install-deps.sh build && make clean && make && make install' "$df" ||
	problems+="the build stage does not use the README's commands; "
# Every COPY from the context exists; exec-form lines are JSON arrays.
while read -r src; do
	[ -e "$src" ] || problems+="COPY source $src is missing; "
done < <(awk '$1 == "COPY" && $2 !~ /^--from/ && $2 != "." {print $2}' "$df")
while read -r line; do
	"$py" -c 'import json,sys; a=json.loads(sys.argv[1]); assert isinstance(a,list)' "$line" \
		2>/dev/null || problems+="not a JSON array: $line; "
done < <(sed -n 's/^\(ENTRYPOINT\|CMD\) \(\[.*\]\)$/\2/p; s/^    CMD \(\[.*\]\)$/\1/p' "$df")
# The run stage has every library chunkfs links (Debian 12 package names).
for lib in libfuse3-3 libcurl4 libssl3 libxml2 libjansson4 libinih1 libxxhash0 fuse3; do
	grep -q "$lib" "$df" || problems+="run stage lacks $lib; "
done
for so in $(ldd ./chunkfs | awk '$1 ~ /^lib(fuse3|curl|ssl|xml2|jansson|inih|xxhash)\./ {print $1}'); do
	pkg=$(dpkg -S "$(ldd ./chunkfs | awk -v s="$so" '$1 == s {print $3}')" 2>/dev/null |
		head -1 | cut -d: -f1)
	[ -z "$pkg" ] || grep -q "$pkg" "$df" || problems+="$so comes from $pkg, not installed; "
done
if [ -z "$problems" ]; then pass docker/Dockerfile; else fail docker/Dockerfile "$problems"; fi

if sh -n contrib/docker/entrypoint.sh; then
	pass docker/entrypoint.sh
else
	fail docker/entrypoint.sh "sh -n found a syntax error"
fi
# --- the man page documents every option and environment variable --------
missing=""
for opt in $(./chunkfs --help | grep -oE -- '-o [a-z_]+' | awk '{print $2}' | sort -u); do
	grep -q -- "$opt" docs/chunkfs.1 || missing+="-o $opt; "
done
for var in $(grep -rhoE '(getenv|env|env_true)\("[A-Z_0-9]+"\)' backends lib fuse |
	grep -oE '"[A-Z_0-9]+"' | tr -d '"' | sort -u); do
	grep -q "$var" docs/chunkfs.1 || missing+="$var; "
done
if [ -z "$missing" ]; then
	pass docs/chunkfs.1
else
	fail docs/chunkfs.1 "not in the man page: $missing"
fi
exit $failed
