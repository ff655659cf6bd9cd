#!/usr/bin/env bash
# Self-test of the S3 test server: starts it with start.sh, drives it with the
# Debian aws CLI (/usr/bin/aws, an independent correct SigV4 signer) and curl
# (--aws-sigv4, a second one), checks strict signature verification, odd key
# names, payload hashes, anonymous access, latency, faults and counters, then
# stops it with stop.sh. Prints "N passed, N failed"; exit status 1 on failure.
#
#   tests/s3/selftest.sh            (needs node, npm registry on first run,
#                                    awscli, curl; installs awscli if root)

set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AWS=/usr/bin/aws

pass=0
fail=0
ok()  { pass=$((pass + 1)); printf 'ok   %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf 'FAIL %s\n' "$*"; }
check() { # check DESCRIPTION COMMAND...   (passes when the command succeeds)
    local d=$1; shift
    if "$@" >"$work/check.out"; then ok "$d"; else bad "$d"; cat "$work/check.out"; fi
}
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit $?
}

# ---------------------------------------------------------------- prerequisites
if [ ! -x "$AWS" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing awscli (apt-get install -y awscli)..."
        DEBIAN_FRONTEND=noninteractive apt-get install -y awscli >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y awscli >/dev/null 2>&1; }
    fi
    if [ ! -x "$AWS" ]; then
        echo "selftest: /usr/bin/aws missing; install it with: apt-get install -y awscli"
        bad "awscli available"
        finish
    fi
fi
for tool in curl node; do
    if ! command -v $tool >/dev/null; then
        echo "selftest: $tool missing (apt-get install -y curl nodejs npm)"
        bad "$tool available"
        finish
    fi
done

# A clean, predictable aws CLI environment (AWS_CA_BUNDLE is harmless on http).
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
export AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export AWS_PAGER= AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=3
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ENDPOINT_URL

work=$(mktemp -d "${TMPDIR:-/tmp}/chunkfs-s3-selftest.XXXXXX")
S3_PID= S3_DIR=
cleanup() {
    "$here/stop.sh" "${S3_PID:-}" "${S3_DIR:-}" >/dev/null 2>&1
    [ -n "${S2_PID:-}" ] && "$here/stop.sh" "$S2_PID" "$S2_DIR" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- unit: vectors
check "official SigV4 test-suite vectors verify (header and presigned forms)" \
    node "$here/sigv4-vectors.js"

# ---------------------------------------------------------------- start
if ! out=$("$here/start.sh" --bucket data --bucket other --public-bucket pub); then
    bad "start.sh starts the server"
    finish
fi
eval "$out"
ok "start.sh starts the server (port $S3_PORT, control $S3_CONTROL_PORT, pid $S3_PID)"
check "ready file is JSON with port/control_port/pid" \
    node -e 'const j=require(process.argv[1]); if(!(j.port>0&&j.control_port>0&&j.pid>0)) process.exit(1)' "$S3_DIR/ready.json"

aws() { "$AWS" --endpoint-url "$S3_ENDPOINT" "$@"; }
ctl() { # ctl METHOD PATH [JSON]
    if [ $# -ge 3 ]; then
        curl -sS -X "$1" -H 'Content-Type: application/json' --data "$3" "$S3_CONTROL$2"
    else
        curl -sS -X "$1" "$S3_CONTROL$2"
    fi
}
# jq-less JSON field access: json_get EXPR  (stdin: JSON, EXPR uses j)
# alive PID: running (a zombie waiting for init to reap it counts as gone)
alive() { [ -r "/proc/$1/cmdline" ] && [ -n "$(tr -d '\0' <"/proc/$1/cmdline" 2>/dev/null)" ]; }
gone() { ! alive "$1" && { [ -z "${2:-}" ] || [ ! -e "$2" ]; }; }
json_get() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);const v=eval(process.argv[1]);console.log(typeof v==="object"?JSON.stringify(v):v)})' "$1"; }
counter() { ctl GET /counters | json_get "$1"; }
# curl signing with SigV4 (second independent signer); body hash header is
# required by S3 for header auth, so it is always sent.
scurl() { # scurl SHA256 ARGS...
    local h=$1; shift
    curl -sS --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER \
        -H "x-amz-content-sha256: $h" "$@"
}
EMPTY=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

head -c 3000000 /dev/urandom >"$work/obj"
: >"$work/empty"
head -c 20000000 /dev/urandom >"$work/big"

# ---------------------------------------------------------------- basic ops
check "put-object" aws s3api put-object --bucket data --key plain/obj.bin --body "$work/obj" --output text --query ETag
aws s3api get-object --bucket data --key plain/obj.bin "$work/got" >/dev/null 2>"$work/err"
check "get-object returns the same bytes" cmp -s "$work/obj" "$work/got"
size=$(aws s3api head-object --bucket data --key plain/obj.bin --query ContentLength --output text 2>/dev/null)
check "head-object reports the size ($size)" test "$size" = 3000000
aws s3api get-object --bucket data --key plain/obj.bin --range bytes=1000-1999 "$work/range" >/dev/null 2>&1
dd if="$work/obj" of="$work/range.want" bs=1000 skip=1 count=1 status=none
check "ranged get returns bytes 1000-1999" cmp -s "$work/range" "$work/range.want"
scurl "$EMPTY" -H 'Range: bytes=-10' -o "$work/suffix" "$S3_ENDPOINT/data/plain/obj.bin"
tail -c 10 "$work/obj" >"$work/suffix.want"
check "suffix range bytes=-10 returns the last 10 bytes" cmp -s "$work/suffix" "$work/suffix.want"
for i in 1 2 3 4 5; do aws s3api put-object --bucket data --key "list/k$i" --body "$work/empty" >/dev/null 2>&1; done
ctl POST /counters/reset >/dev/null
keys=$(aws s3api list-objects-v2 --bucket data --prefix list/ --page-size 2 --query 'Contents[].Key' --output text 2>&1 | tr -s '\t\n' '  ')
check "list-objects-v2 with continuation tokens lists all 5 keys ($keys)" \
    test "$keys" = "list/k1 list/k2 list/k3 list/k4 list/k5 "
check "that listing took 3 ListObjectsV2 requests" test "$(counter j.ListObjectsV2)" = 3

aws s3 cp "$work/big" s3://data/big/multipart.bin --only-show-errors >/dev/null 2>&1
aws s3 cp s3://data/big/multipart.bin "$work/big.got" --only-show-errors >/dev/null 2>&1
check "20 MB multipart upload + download round trip" cmp -s "$work/big" "$work/big.got"
check "multipart upload used CreateMultipartUpload/UploadPart/Complete" \
    node -e 'const o=JSON.parse(process.argv[1]).ops; if(!(o.CreateMultipartUpload>=1&&o.UploadPart>=3&&o.CompleteMultipartUpload>=1)) process.exit(1)' "$(ctl GET /counters)"

# CompleteMultipartUpload as S3 checks it, and S3's multipart ETag
head -c $((5 * 1024 * 1024)) /dev/urandom >"$work/p1"
head -c 1000 /dev/urandom >"$work/p2"
mpu() { # mpu KEY: start an upload of KEY with parts p1 then p2; prints the id
    local id
    id=$(aws s3api create-multipart-upload --bucket data --key "$1" --query UploadId --output text 2>/dev/null)
    aws s3api upload-part --bucket data --key "$1" --upload-id "$id" --part-number 1 --body "$work/${2:-p1}" >/dev/null 2>&1
    aws s3api upload-part --bucket data --key "$1" --upload-id "$id" --part-number 2 --body "$work/p2" >/dev/null 2>&1
    echo "$id"
}
parts() { # parts ETAG1 ETAG2
    echo "{\"Parts\":[{\"PartNumber\":1,\"ETag\":\"$1\"},{\"PartNumber\":2,\"ETag\":\"$2\"}]}"
}
e1=$(md5sum <"$work/p1" | cut -d' ' -f1) e2=$(md5sum <"$work/p2" | cut -d' ' -f1)
id=$(mpu mp/ok)
aws s3api complete-multipart-upload --bucket data --key mp/ok --upload-id "$id" \
    --multipart-upload "$(parts "$e1" "$e2")" >/dev/null 2>&1
want=$(node -e 'const c = require("crypto"), fs = require("fs");
  const d = process.argv.slice(1).map(f => c.createHash("md5").update(fs.readFileSync(f)).digest());
  console.log(c.createHash("md5").update(Buffer.concat(d)).digest("hex") + "-" + d.length);' \
  "$work/p1" "$work/p2")
got=$(aws s3api head-object --bucket data --key mp/ok --query ETag --output text 2>&1 | tr -d '"')
check "multipart ETag is the MD5 of the parts' MD5s, then -2 ($got)" test "$got" = "$want"
aws s3api get-object --bucket data --key mp/ok "$work/got" >/dev/null 2>&1
check "...and the object is the parts in order" cmp -s "$work/got" <(cat "$work/p1" "$work/p2")
id=$(mpu mp/badtag)
out=$(aws s3api complete-multipart-upload --bucket data --key mp/badtag --upload-id "$id" \
    --multipart-upload "$(parts "$e1" 0123456789abcdef0123456789abcdef)" 2>&1)
check "a listed ETag that is not the part's -> InvalidPart" grep -q InvalidPart <<<"$out"
id=$(mpu mp/small p2)
out=$(aws s3api complete-multipart-upload --bucket data --key mp/small --upload-id "$id" \
    --multipart-upload "$(parts "$e2" "$e2")" 2>&1)
check "a part under 5 MiB before the last -> EntityTooSmall" grep -q EntityTooSmall <<<"$out"
check "...and no object was made" bash -c "! aws s3api head-object --bucket data --key mp/small >/dev/null 2>&1"

# Parts of one size (but the last) are completed in place, with no copy,
# whatever order they arrive in; any other layout is copied, and right.
head -c $((6 * 1024 * 1024)) /dev/urandom >"$work/p6"
head -c $((5 * 1024 * 1024)) /dev/urandom >"$work/p1b"
mpu_parts() { # mpu_parts KEY N:FILE... : upload those parts in that order; prints the id
    local key=$1 id np
    shift
    id=$(aws s3api create-multipart-upload --bucket data --key "$key" --query UploadId --output text 2>/dev/null)
    for np in "$@"; do
        aws s3api upload-part --bucket data --key "$key" --upload-id "$id" \
            --part-number "${np%%:*}" --body "$work/${np#*:}" >/dev/null 2>&1
    done
    echo "$id"
}
complete_parts() { # complete_parts KEY ID N:FILE... (the parts to list)
    local key=$1 id=$2 np list=""
    shift 2
    for np in "$@"; do
        list="$list${list:+,}{\"PartNumber\":${np%%:*},\"ETag\":\"$(md5sum <"$work/${np#*:}" | cut -d' ' -f1)\"}"
    done
    aws s3api complete-multipart-upload --bucket data --key "$key" --upload-id "$id" \
        --multipart-upload "{\"Parts\":[$list]}" >/dev/null 2>&1
}
layout_case() { # layout_case KEY WANT(in_place|copied) LISTED -- UPLOADED...
    local key=$1 want=$2 listed=() np
    shift 2
    while [ "$1" != -- ]; do listed+=("$1"); shift; done
    shift
    ctl POST /counters/reset >/dev/null
    id=$(mpu_parts "$key" "$@")
    complete_parts "$key" "$id" "${listed[@]}"
    aws s3api get-object --bucket data --key "$key" "$work/got" >/dev/null 2>&1
    for np in "${listed[@]}"; do cat "$work/${np#*:}"; done >"$work/want"
    check "multipart $key: the listed parts in order" cmp -s "$work/got" "$work/want"
    check "...completed $want" test "$(counter "j.completions.$want")" = 1
}
layout_case mp/order in_place 1:p1 2:p1b 3:p2 -- 2:p1b 3:p2 1:p1
layout_case mp/lastfirst copied 1:p1 2:p1b 3:p2 -- 3:p2 1:p1 2:p1b
layout_case mp/bigger copied 1:p1 2:p6 3:p2 -- 1:p1 2:p6 3:p2
layout_case mp/gap copied 1:p1 3:p2 -- 1:p1 2:p1b 3:p2
layout_case mp/again in_place 1:p1 2:p1 3:p2 -- 1:p1 2:p1b 3:p2 2:p1

aws s3api copy-object --bucket data --copy-source data/plain/obj.bin --key plain/copy.bin >/dev/null 2>&1
aws s3api get-object --bucket data --key plain/copy.bin "$work/got" >/dev/null 2>&1
check "copy-object" cmp -s "$work/obj" "$work/got"
# read-after-write: each GET right after its PUT sees the whole new object
# (s3rver alone answered a PUT before its file was complete)
raw_ok=0
for i in $(seq 40); do
    head -c $((200000 + i * 1000)) /dev/urandom >"$work/raw.$i"
    h=$(sha256sum "$work/raw.$i" | cut -d' ' -f1)
    scurl "$h" -T "$work/raw.$i" -o /dev/null "$S3_ENDPOINT/data/raw/obj" &&
        scurl "$EMPTY" -o "$work/raw.got" "$S3_ENDPOINT/data/raw/obj" &&
        cmp -s "$work/raw.$i" "$work/raw.got" && raw_ok=$((raw_ok + 1))
    rm -f "$work/raw.$i"
done
check "40 PUTs each read back whole at once ($raw_ok)" test "$raw_ok" = 40
aws s3api delete-objects --bucket data --delete 'Objects=[{Key=list/k1},{Key=list/k2},{Key=list/k3},{Key=list/k4},{Key=list/k5}]' >/dev/null 2>&1
n=$(aws s3api list-objects-v2 --bucket data --prefix list/ --query 'length(Contents || `[]`)' --output text 2>&1)
check "DeleteObjects removes all 5 keys (left: $n)" test "$n" = 0
check "create-bucket / delete-bucket" bash -c '"$1" --endpoint-url "$2" s3 mb s3://newbucket >/dev/null && "$1" --endpoint-url "$2" s3 rb s3://newbucket >/dev/null' _ "$AWS" "$S3_ENDPOINT"

# ---------------------------------------------------------------- ListObjectsV2
# Answered by the front end with S3's semantics (s3rver's own listing prunes
# deep prefixes, lists in walk order, puts all CommonPrefixes on page 1...).
# bulk_put BUCKET < KEYS: empty objects, 32 PUTs in flight (curl --parallel,
# signed by curl). Prints "COUNT STATUS" pairs, e.g. "10000 200".
bulk_put() {
    node -e '
const fs = require("fs"); const [ep, b, body] = process.argv.slice(1);
const enc = k => k.split("/").map(s => encodeURIComponent(s)
  .replace(/[!'"'"'()*]/g, c => "%" + c.charCodeAt(0).toString(16).toUpperCase())).join("/");
for (const k of fs.readFileSync(0, "utf8").split("\n").filter(Boolean))
  process.stdout.write(`url = "${ep}/${b}/${enc(k)}"\nupload-file = "${body}"\noutput = "/dev/null"\n`);' \
        "$S3_ENDPOINT" "$1" "$work/empty" >"$work/bulk.cfg"
    curl -sS --parallel --parallel-max 32 --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER \
        -H "x-amz-content-sha256: $EMPTY" -w '%{http_code}\n' -K "$work/bulk.cfg" 2>/dev/null |
        sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? " " : ""), $1, $2}'
}
# list_pages OUT ARGS...: one aws call per page (--no-paginate), following
# NextContinuationToken; pages land in OUT.01, OUT.02, ...
list_pages() {
    local out=$1 tok= n=0 f; shift
    rm -f "$out".*
    while [ $n -lt 40 ]; do
        n=$((n + 1)); f=$(printf '%s.%02d' "$out" $n)
        aws s3api list-objects-v2 --no-paginate --output json "$@" ${tok:+--continuation-token "$tok"} \
            >"$f" 2>"$work/err" || { cat "$work/err"; return 1; }
        tok=$(json_get 'j.NextContinuationToken || ""' <"$f")
        [ -n "$tok" ] || break
    done
}
# check_pages KEYS_FILE PREFIX DELIMITER START_AFTER MAX_KEYS PAGE_FILES...:
# the pages, in order, hold exactly what S3 would list (reference model
# below: byte order, roll-up at the delimiter, each prefix once, items after
# START_AFTER), full pages of MAX_KEYS, KeyCount = keys + prefixes,
# IsTruncated/NextContinuationToken on all pages but the last.
cat >"$work/pages.js" <<'EOF'
const fs = require('fs');
const [keysFile, prefix, delim, after, maxKeysArg, ...files] = process.argv.slice(2);
const maxKeys = Number(maxKeysArg);
const cmp = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));
const keys = fs.readFileSync(keysFile, 'utf8').split('\n').filter(Boolean);
const want = new Set();
for (const k of keys) {
  if (!k.startsWith(prefix)) continue;
  const i = delim ? k.indexOf(delim, prefix.length) : -1;
  const item = i >= 0 ? k.slice(0, i + delim.length) : k;
  if (!after || cmp(item, after) > 0) want.add(item);
}
const expected = [...want].sort(cmp);
const got = [];
const sizes = [];
const errs = [];
files.forEach((f, n) => {
  const p = JSON.parse(fs.readFileSync(f, 'utf8'));
  const items = [...(p.Contents || []).map(c => c.Key), ...(p.CommonPrefixes || []).map(c => c.Prefix)];
  const last = n === files.length - 1;
  sizes.push(items.length);
  if (p.KeyCount !== items.length) errs.push(`page ${n + 1}: KeyCount ${p.KeyCount} for ${items.length} items`);
  if (last ? items.length > maxKeys : items.length !== maxKeys) errs.push(`page ${n + 1}: ${items.length} items`);
  if (p.IsTruncated !== !last || !p.NextContinuationToken !== last) errs.push(`page ${n + 1}: IsTruncated ${p.IsTruncated}`);
  got.push(...items.sort(cmp));
});
if (JSON.stringify(got) !== JSON.stringify(expected)) {
  errs.push(`got      ${JSON.stringify(got)}`, `expected ${JSON.stringify(expected)}`);
}
console.log(`pages ${sizes.join('+')} = ${got.length} items`);
if (errs.length) { console.log(errs.join('\n')); process.exit(1); }
EOF

# deep implicit prefixes (s3rver alone loses anything 2+ levels below the prefix)
printf '%s\n' px/n1/n2/n3/leaf px/top px/n9/x/y/z px/n1/n2/n3b >"$work/px.keys"
check "put the px/ keys" test "$(bulk_put data <"$work/px.keys")" = "4 200"
list_pages "$work/pages-px" --bucket data --prefix px/ --delimiter /
check "prefix px/ delimiter /: deep keys roll up into px/n1/ and px/n9/" \
    node "$work/pages.js" "$work/px.keys" px/ / '' 1000 "$work"/pages-px.*
check "...the exact answer: Contents [px/top], CommonPrefixes [px/n1/, px/n9/]" node -e '
const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const c = JSON.stringify([p.Contents.map(o => o.Key), p.CommonPrefixes.map(o => o.Prefix), p.KeyCount]);
if (c !== JSON.stringify([["px/top"], ["px/n1/", "px/n9/"], 3])) { console.log(c); process.exit(1); }' "$work/pages-px.01"
list_pages "$work/pages-px2" --bucket data --prefix px/n1/n2/ --delimiter /
check "prefix px/n1/n2/: key px/n1/n2/n3b and prefix px/n1/n2/n3/" \
    node "$work/pages.js" "$work/px.keys" px/n1/n2/ / '' 1000 "$work"/pages-px2.*

# UTF-8 byte order ('-' < '/' < '0' < 'B' < 'a'; U+FF61 before U+1F600,
# the reverse of UTF-16 order)
printf '%s\n' ord/a ord/a-b ord/a/c ord/a0 ord/B ord/ä ord/｡ ord/😀 "ord/it's (x)*!" >"$work/ord.keys"
check "put the ord/ keys" test "$(bulk_put data <"$work/ord.keys")" = "9 200"
got=$(aws s3api list-objects-v2 --bucket data --prefix ord/ --query 'Contents[].Key' --output text | tr '\t' ' ')
check "keys in UTF-8 byte order ($got)" test "$got" = "ord/B ord/a ord/a-b ord/a/c ord/a0 ord/it's (x)*! ord/ä ord/｡ ord/😀"
list_pages "$work/pages-ord" --bucket data --prefix ord/ --delimiter / --max-keys 2
check "...with delimiter, 2 per page, ord/a/ between ord/a-b and ord/a0" \
    node "$work/pages.js" "$work/ord.keys" ord/ / '' 2 "$work"/pages-ord.*

# paging through 25 keys and 5 prefixes (some deep) with max-keys 7
{
    for i in $(seq -w 0 24); do echo "pg/k$i"; done
    printf '%s\n' pg/k02x/a pg/k02x/b pg/k07x/a/b/c pg/k07x/z pg/k13x/m/n pg/k20x/q pg/k24x/r/s/t/u
} >"$work/pg.keys"
check "put the pg/ keys" test "$(bulk_put data <"$work/pg.keys")" = "32 200"
list_pages "$work/pages-pg" --bucket data --prefix pg/ --delimiter / --max-keys 7
check "25 keys + 5 prefixes, max-keys 7: each once, in order, pages 7+7+7+7+2" \
    node "$work/pages.js" "$work/pg.keys" pg/ / '' 7 "$work"/pages-pg.*
check "...5 pages" test "$(ls "$work"/pages-pg.* | wc -l)" = 5
list_pages "$work/pages-pgall" --bucket data --prefix pg/ --max-keys 10
check "same keys without delimiter, max-keys 10" \
    node "$work/pages.js" "$work/pg.keys" pg/ '' '' 10 "$work"/pages-pgall.*
list_pages "$work/pages-sa1" --bucket data --prefix pg/ --delimiter / --max-keys 4 --start-after pg/k02x/
check "start-after pg/k02x/ (a prefix) skips that prefix" \
    node "$work/pages.js" "$work/pg.keys" pg/ / pg/k02x/ 4 "$work"/pages-sa1.*
first=$(json_get 'j.Contents[0].Key + " " + j.StartAfter' <"$work/pages-sa1.01")
check "...first item pg/k03, StartAfter echoed ($first)" test "$first" = "pg/k03 pg/k02x/"
list_pages "$work/pages-sa2" --bucket data --prefix pg/ --delimiter / --max-keys 4 --start-after pg/k07x/a/b
check "start-after inside a prefix (pg/k07x/a/b) skips that prefix" \
    node "$work/pages.js" "$work/pg.keys" pg/ / pg/k07x/a/b 4 "$work"/pages-sa2.*
list_pages "$work/pages-sa3" --bucket data --prefix pg/ --delimiter / --max-keys 4 --start-after pg/k02
check "start-after pg/k02 lists pg/k02x/ first" \
    node "$work/pages.js" "$work/pg.keys" pg/ / pg/k02 4 "$work"/pages-sa3.*
aws s3api list-objects-v2 --no-paginate --bucket data --prefix pg/ --max-keys 0 --output json >"$work/mk0"
check "max-keys 0: KeyCount 0, nothing listed, not truncated" node -e '
const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
if (p.KeyCount !== 0 || p.IsTruncated !== false || p.Contents || p.CommonPrefixes) { console.log(p); process.exit(1); }' "$work/mk0"
aws s3api list-objects-v2 --no-paginate --bucket data --prefix pg/ --max-keys 3 --continuation-token bm90LWEtdG9rZW4= >/dev/null 2>"$work/err"
check "bad continuation token -> 400 InvalidArgument" grep -q InvalidArgument "$work/err"
aws s3api list-objects-v2 --bucket nosuchbucket >/dev/null 2>"$work/err"
check "missing bucket -> NoSuchBucket" grep -q NoSuchBucket "$work/err"
n=$(aws s3api list-objects --bucket data --prefix pg/ --delimiter / --query 'length(Contents)' --output text 2>&1)
check "ListObjects v1 (left to s3rver) still answers ($n keys)" test "$n" = 25

# the key index follows writes: overwrite, delete, create, DeleteObjects
aws s3api put-object --bucket data --key pg/k06 --body "$work/obj" >/dev/null 2>&1
aws s3api delete-object --bucket data --key pg/k05 >/dev/null 2>&1
aws s3api put-object --bucket data --key pg/k05b --body "$work/empty" >/dev/null 2>&1
got=$(aws s3api list-objects-v2 --bucket data --prefix pg/k0 --delimiter / --query 'Contents[?starts_with(Key, `pg/k0`)].[Key,Size]' --output text | tr '\t\n' ': ')
check "listing sees overwrite/delete/create at once ($got)" \
    bash -c '[[ "$1" == *"pg/k04:0 pg/k05b:0 pg/k06:3000000 pg/k07:0 "* ]]' _ "$got"
aws s3api delete-objects --bucket data --delete 'Objects=[{Key=pg/k05b},{Key=pg/k06}]' >/dev/null 2>&1
got=$(aws s3api list-objects-v2 --bucket data --prefix pg/k0 --query 'Contents[].Key' --output text | tr '\t' ' ')
check "...and DeleteObjects ($got)" bash -c '[[ "$1" == *"pg/k04 pg/k07 "* ]]' _ "$got"

# virtual-host style (Host: BUCKET.s3.amazonaws.com)
scurl "$EMPTY" -H 'Host: data.s3.amazonaws.com' -o "$work/x" "$S3_ENDPOINT/?delimiter=%2F&list-type=2&prefix=px%2F"
check "virtual-host style ListObjectsV2 answered the same way" \
    grep -q '<KeyCount>3</KeyCount>.*<CommonPrefixes><Prefix>px/n1/</Prefix></CommonPrefixes>' "$work/x"

# phantom keys (control API): listed by ListObjectsV2 but not objects; names
# s3rver cannot store (a 300-byte segment, "//", "./", "../")
long=p/$(printf 'L%.0s' $(seq 300))
printf '%s\n' "$long" p//x p/./y p/../z >"$work/ph.keys"
aws s3api put-object --bucket data --key p/x --body "$work/obj" >/dev/null 2>&1
res=$(ctl POST /phantom "$(node -e 'console.log(JSON.stringify({bucket:"data",size:5,
  keys:require("fs").readFileSync(process.argv[1],"utf8").split("\n").filter(Boolean)}))' "$work/ph.keys")")
check "POST /phantom adds 4 keys" test "$(json_get '[j.added, j.count, j.buckets.data.length].join()' <<<"$res")" = "4,4,4"
echo p/x >>"$work/ph.keys"
list_pages "$work/pages-ph" --bucket data --prefix p/ --delimiter /
check "prefix p/ delimiter /: Contents [p/<300 L>, p/x], CommonPrefixes [p/../, p/./, p//]" node -e '
const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const c = JSON.stringify([p.Contents.map(o => o.Key), p.CommonPrefixes.map(o => o.Prefix), p.KeyCount]);
if (c !== JSON.stringify([[process.argv[2], "p/x"], ["p/../", "p/./", "p//"], 5])) { console.log(c); process.exit(1); }' \
    "$work/pages-ph.01" "$long"
check "...the phantom entry: Size 5, fixed ETag and LastModified" node -e '
const o = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).Contents[0];
const c = [o.Size, o.ETag, o.LastModified].join();
if (c !== "5,\"d41d8cd98f00b204e9800998ecf8427e\",2000-01-01T00:00:00+00:00" &&
    c !== "5,\"d41d8cd98f00b204e9800998ecf8427e\",2000-01-01T00:00:00.000Z") { console.log(c); process.exit(1); }' "$work/pages-ph.01"
list_pages "$work/pages-ph2" --bucket data --prefix p/ --delimiter / --max-keys 2
check "...2 per page: pages 2+2+1, each item once, in byte order" \
    node "$work/pages.js" "$work/ph.keys" p/ / '' 2 "$work"/pages-ph2.*
list_pages "$work/pages-ph3" --bucket data --prefix p/ --max-keys 3
check "...no delimiter, 3 per page: all 5 keys as Contents, in byte order" \
    node "$work/pages.js" "$work/ph.keys" p/ '' '' 3 "$work"/pages-ph3.*
list_pages "$work/pages-ph4" --bucket data --prefix p/ --delimiter / --max-keys 2 --start-after p/./
check "...start-after p/./ lists p//, then the long key and p/x" \
    node "$work/pages.js" "$work/ph.keys" p/ / p/./ 2 "$work"/pages-ph4.*
aws s3api get-object --bucket data --key p//x "$work/x" >/dev/null 2>"$work/err"
check "GET of phantom p//x -> NoSuchKey (though p/x, where s3rver would look, exists)" grep -q NoSuchKey "$work/err"
aws s3api get-object --bucket data --key p/x "$work/got" >/dev/null 2>&1
check "...GET of the real p/x still works" cmp -s "$work/obj" "$work/got"
code=$(scurl "$EMPTY" -I -o /dev/null -w '%{http_code}' "$S3_ENDPOINT/data/$long")
check "HEAD of the phantom 300-byte-segment key -> 404 ($code)" test "$code" = 404
for k in p/./y p/../z; do
    code=$(scurl "$EMPTY" --path-as-is -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/$k")
    check "GET of phantom $k (curl --path-as-is) -> 404 NoSuchKey ($code)" \
        bash -c 'test "$1" = 404 && grep -q "<Code>NoSuchKey</Code><Message>[^<]*</Message><Key>$2</Key>" "$3"' _ "$code" "$k" "$work/x"
done
check "GET /phantom?bucket=data lists the 4 keys in byte order" test \
    "$(ctl GET '/phantom?bucket=data' | json_get 'j.buckets.data.map(e => e.key + ":" + e.size).join(" ")')" \
    "=" "p/../z:5 p/./y:5 p//x:5 $long:5"
ctl POST /list-index/clear >/dev/null
aws s3api delete-objects --bucket data --delete 'Objects=[{Key=p/nothing}]' >/dev/null 2>&1
n=$(aws s3api list-objects-v2 --bucket data --prefix p/ --query 'length(Contents)' --output text 2>&1)
check "phantom keys survive index drops and rebuilds ($n Contents without delimiter)" test "$n" = 5
check "POST /phantom without bucket -> 400" test "$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{"keys":["a"]}' "$S3_CONTROL/phantom")" = 400
check "POST /phantom to a missing bucket -> 404" test "$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{"bucket":"nosuch","keys":["a"]}' "$S3_CONTROL/phantom")" = 404
check "DELETE /phantom {bucket, keys:[p//x]} removes just that one" \
    test "$(ctl DELETE /phantom '{"bucket":"data","keys":["p//x"]}' | json_get '[j.removed, j.count].join()')" = "1,3"
check "DELETE /phantom?bucket=data removes the rest" \
    test "$(ctl DELETE '/phantom?bucket=data' | json_get '[j.removed, j.count].join()')" = "3,0"
got=$(aws s3api list-objects-v2 --bucket data --prefix p/ --delimiter / --output json | json_get '[(j.Contents || []).map(o => o.Key), j.CommonPrefixes || []].join("|")')
check "...listing p/ shows only the real p/x again ($got)" test "$got" = "p/x|"
check "GET /phantom: none left" test "$(ctl GET /phantom | json_get j.count)" = 0

# subject to faults and counted like any request
ctl POST /counters/reset >/dev/null
ctl POST /faults '{"count":1,"kinds":"503","methods":"ListObjectsV2"}' >/dev/null
code=$(scurl "$EMPTY" -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data?list-type=2&max-keys=1")
check "ListObjectsV2 fault 503 ($code)" grep -q SlowDown "$work/x"
code=$(scurl "$EMPTY" -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data?list-type=2&max-keys=1")
check "...next one 200 ($code)" test "$code" = 200
ctl POST /faults '{"count":1,"kinds":"reset","methods":"ListObjectsV2","reset_mode":"fin"}' >/dev/null
scurl "$EMPTY" -o "$work/x" "$S3_ENDPOINT/data?list-type=2&prefix=pg%2F" 2>/dev/null
rc=$?
check "ListObjectsV2 reset fault cuts the XML body (curl rc=$rc)" test $rc -ne 0
ctl DELETE /faults >/dev/null
check "counted as ListObjectsV2 (3), not GET" test "$(counter '[j.ListObjectsV2, j.GET, j.ops.ListObjectsV2].join()')" = "3,0,3"

# hostile mode (control API): answers a client must survive (query
# parameters in sorted order: curl's signer does not sort them)
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST -d '{"modes":"bogus"}' "$S3_CONTROL/hostile")
check "POST /hostile with an unknown mode -> 400 ($code)" test "$code" = 400
ctl POST /hostile '{"modes":"same_token,outside,slash,ctl,constant_etag","prefix":"plain/"}' >/dev/null
scurl "$EMPTY" -o "$work/x" "$S3_ENDPOINT/data?delimiter=%2F&list-type=2&prefix=plain%2F"
check "same_token: truncated, token hostile-same" \
    bash -c 'grep -q "<IsTruncated>true</IsTruncated>" "$1" && grep -q "<NextContinuationToken>hostile-same<" "$1"' _ "$work/x"
scurl "$EMPTY" -o "$work/y" "$S3_ENDPOINT/data?continuation-token=hostile-same&delimiter=%2F&list-type=2&prefix=plain%2F"
check "...which lists the first page again" cmp -s <(grep -o '<Contents>.*' "$work/x") <(grep -o '<Contents>.*' "$work/y")
check "outside, slash, ctl: ~outside, plain, plain/sl/ash/, plain/tab<TAB>here, plain/del&#x7F;/ listed" \
    bash -c 'for k in "<Key>~outside<" "<Key>plain<" "<Prefix>plain/sl/ash/<" "<Key>plain/tab	here<" "<Prefix>plain/del&#x7F;/<"; do grep -q "$k" "$1" || exit 1; done' _ "$work/x"
check "constant_etag: one ETag for every listed object" \
    test "$(grep -o '<ETag>[^<]*</ETag>' "$work/x" | sort -u)" = '<ETag>&quot;00000000000000000000000000000000&quot;</ETag>'
ctl POST /hostile '{"modes":"endless","prefix":"plain/"}' >/dev/null
n=$(scurl "$EMPTY" -H 'Range: bytes=0-9' -o /dev/null --max-time 2 -w '%{http_code} %{size_download}' "$S3_ENDPOINT/data/plain/obj.bin" 2>/dev/null)
check "endless: a 206 for 10 bytes goes on past them ($n)" test "${n%% *}" = 206 -a "${n##* }" -gt 10
ctl POST /hostile '{"modes":"trickle","prefix":"plain/","trickle_bps":10}' >/dev/null
n=$(scurl "$EMPTY" -H 'Range: bytes=0-99' -o /dev/null --max-time 2 -w '%{size_download}' "$S3_ENDPOINT/data/plain/obj.bin" 2>/dev/null)
check "trickle at 10 B/s: at most ~20 of 100 bytes in 2 s ($n)" test "$n" -le 25
check "GET /hostile counts what each mode changed" test "$(ctl GET /hostile | json_get 'j.applied.trickle')" = 1
ctl DELETE /hostile >/dev/null
check "DELETE /hostile: no modes left" test "$(ctl GET /hostile | json_get 'j.modes.length')" = 0

# any range on an empty object: 416 InvalidRange, as on S3
aws s3api put-object --bucket data --key empty/zero --body "$work/empty" >/dev/null 2>&1
aws s3api get-object --bucket data --key empty/zero --range bytes=0-0 "$work/x" >/dev/null 2>"$work/err"
check "ranged get-object of an empty object -> InvalidRange" grep -q InvalidRange "$work/err"
for r in 0-0 0- 5-10 -1; do
    code=$(scurl "$EMPTY" -H "Range: bytes=$r" -D "$work/hdr" -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/empty/zero")
    check "Range bytes=$r on an empty object -> 416, Content-Range bytes */0 ($code)" \
        bash -c 'grep -q InvalidRange "$1" && grep -qi "^content-range: bytes \*/0" "$2"' _ "$work/x" "$work/hdr"
done
code=$(scurl "$EMPTY" -o "$work/x" -w '%{http_code} %{size_download}' "$S3_ENDPOINT/data/empty/zero")
check "GET of the empty object without Range -> 200, 0 bytes ($code)" test "$code" = "200 0"
code=$(scurl "$EMPTY" -H 'Range: bytes=0-0' -o "$work/x" -w '%{http_code} %{size_download}' "$S3_ENDPOINT/data/plain/obj.bin")
check "Range bytes=0-0 on a non-empty object -> 206, 1 byte ($code) (s3rver alone: all of it)" test "$code" = "206 1"
code=$(scurl "$EMPTY" -H 'Range: bytes=5-2' -o "$work/x" -w '%{http_code} %{size_download}' "$S3_ENDPOINT/data/plain/obj.bin")
check "invalid Range bytes=5-2 is ignored -> 200, whole object ($code)" test "$code" = "200 3000000"

# ---------------------------------------------------------------- signatures
AWS_SECRET_ACCESS_KEY=wrong-secret aws s3api get-object --bucket data --key plain/obj.bin "$work/x" >/dev/null 2>"$work/err"
check "wrong secret -> 403 SignatureDoesNotMatch" grep -q 'SignatureDoesNotMatch' "$work/err"
AWS_SECRET_ACCESS_KEY=wrong-secret aws s3api put-object --bucket data --key plain/evil --body "$work/obj" >/dev/null 2>"$work/err"
check "wrong secret on PUT -> SignatureDoesNotMatch" grep -q 'SignatureDoesNotMatch' "$work/err"
aws s3api head-object --bucket data --key plain/evil >/dev/null 2>&1
check "...and nothing was stored" test $? -ne 0
AWS_ACCESS_KEY_ID=NOSUCHKEY aws s3api list-objects-v2 --bucket data >/dev/null 2>"$work/err"
check "unknown access key -> InvalidAccessKeyId" grep -q 'InvalidAccessKeyId' "$work/err"
code=$(scurl "$EMPTY" -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/plain/obj.bin")
check "curl --aws-sigv4 GET passes (HTTP $code)" test "$code" = 200
code=$(curl -sS --aws-sigv4 aws:amz:us-east-1:s3 --user S3RVER:S3RVER -H "x-amz-content-sha256: $EMPTY" \
    -H 'x-amz-date: 20200101T000000Z' -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/plain/obj.bin")
check "request dated 2020 -> 403 (RequestTimeTooSkewed) ($code)" grep -q RequestTimeTooSkewed "$work/x"

# Keys that stress canonical URI / query encoding. The aws CLI signs them
# correctly, so they must all pass.
keys_file="$work/keys"
cat >"$keys_file" <<'EOF'
with space.bin
plus+sign.bin
eq=and&amp.bin
a b+c=d&e/nested dir/x y.bin
ütf8-ключ-日本語.bin
tilde~star*paren(1)!quote'.bin
percent%20literal%.bin
semi;colon,comma:colon@at$dollar.bin
hash#and?question.bin
dir with spaces/
EOF
while IFS= read -r -u 3 key; do
    aws s3api put-object --bucket data --key "odd/$key" --body "$work/obj" >/dev/null 2>"$work/err"
    st=$?
    aws s3api get-object --bucket data --key "odd/$key" "$work/got" >/dev/null 2>>"$work/err"
    if [ $st -eq 0 ] && cmp -s "$work/obj" "$work/got"; then
        ok "key '$key': signed put+get pass and bytes match"
    else
        bad "key '$key': $(tr '\n' ' ' <"$work/err" | cut -c1-300)"
    fi
done 3<"$keys_file"
aws s3api list-objects-v2 --bucket data --prefix odd/ --query 'Contents[].Key' --output json >"$work/listed" 2>&1
check "list-objects-v2 (encoding-type=url) returns every odd key exactly" node -e '
const fs=require("fs"); const want=fs.readFileSync(process.argv[1],"utf8").split("\n").filter(Boolean).map(k=>"odd/"+k).sort();
const got=JSON.parse(fs.readFileSync(process.argv[2],"utf8")).sort();
if (JSON.stringify(want)!==JSON.stringify(got)) { console.error(got); process.exit(1); }' "$keys_file" "$work/listed"
aws s3api list-objects-v2 --bucket data --prefix 'odd/a b+c=d&e/' --delimiter / --query 'CommonPrefixes[].Prefix' --output text >"$work/cp" 2>&1
check "list with prefix+delimiter using '+', '=', '&', ' '" grep -qx 'odd/a b+c=d&e/nested dir/' "$work/cp"
aws s3 cp "$work/obj" "s3://data/odd/high level +=& ü.bin" --only-show-errors >/dev/null 2>&1 &&
    aws s3 cp "s3://data/odd/high level +=& ü.bin" "$work/got" --only-show-errors >/dev/null 2>&1
check "aws s3 cp up/down with odd key" cmp -s "$work/obj" "$work/got"
check "delete-object with odd key" aws s3api delete-object --bucket data --key "odd/plus+sign.bin"
aws s3api head-object --bucket data --key "odd/plus+sign.bin" >/dev/null 2>&1
check "...and it is gone" test $? -ne 0
aws s3api head-object --bucket data --key "odd/with space.bin" >/dev/null 2>&1
check "...while 'with space.bin' is still there ('+' is not ' ')" test $? -eq 0

# presigned URLs
url=$(aws s3 presign "s3://data/odd/a b+c=d&e/nested dir/x y.bin" --expires-in 300)
code=$(curl -sS -o "$work/got" -w '%{http_code}' "$url")
check "presigned GET (aws s3 presign) -> 200 and right bytes" test "$code" = 200 -a "$(cmp -s "$work/obj" "$work/got" && echo y)" = y
code=$(curl -sS -o "$work/x" -w '%{http_code}' "${url/X-Amz-Signature=/X-Amz-Signature=0}")
check "tampered presigned URL -> 403 SignatureDoesNotMatch" grep -q SignatureDoesNotMatch "$work/x"
code=$(curl -sS -o "$work/x" -w '%{http_code}' "${url/X-Amz-Expires=300/X-Amz-Expires=301}")
check "presigned URL with altered X-Amz-Expires -> 403" test "$code" = 403

# payload hash and Content-MD5
h=$(sha256sum "$work/obj" | cut -c1-64)
code=$(scurl "$h" -X PUT --data-binary @"$work/obj" -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/hash/good")
check "PUT with correct x-amz-content-sha256 -> 200 ($code)" test "$code" = 200
code=$(scurl "$EMPTY" -X PUT --data-binary @"$work/obj" -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/hash/bad")
check "PUT with wrong x-amz-content-sha256 -> 400 XAmzContentSHA256Mismatch ($code)" grep -q XAmzContentSHA256Mismatch "$work/x"
aws s3api head-object --bucket data --key hash/bad >/dev/null 2>&1
check "...and nothing was stored" test $? -ne 0
code=$(scurl UNSIGNED-PAYLOAD -X PUT -H 'Content-MD5: AAAAAAAAAAAAAAAAAAAAAA==' --data-binary @"$work/obj" -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/hash/md5")
check "PUT with wrong Content-MD5 -> 400 BadDigest ($code)" grep -q BadDigest "$work/x"
code=$(scurl STREAMING-AWS4-HMAC-SHA256-PAYLOAD -X PUT --data-binary @"$work/obj" -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/hash/chunked")
check "aws-chunked upload refused loudly (501 NotImplemented) ($code)" test "$code" = 501
code=$(scurl "$EMPTY" -H 'If-Match: "0123"' -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/plain/obj.bin")
check "GET with stale If-Match -> 412 ($code)" test "$code" = 412
etag=$(aws s3api head-object --bucket data --key plain/obj.bin --query ETag --output text)
code=$(scurl "$EMPTY" -H "If-Match: $etag" -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/plain/obj.bin")
check "GET with matching If-Match -> 200 ($code)" test "$code" = 200

# an upload the client aborts must leave the previous object untouched
# (s3rver alone truncates the object file in place and keeps the old ETag)
head -c 3000000 /dev/urandom >"$work/obj2"
aws s3api put-object --bucket data --key abort/obj --body "$work/obj" >/dev/null 2>&1
scurl UNSIGNED-PAYLOAD -X PUT --limit-rate 1000K -m 1 --data-binary @"$work/obj2" -o /dev/null "$S3_ENDPOINT/data/abort/obj" 2>/dev/null
aws s3api get-object --bucket data --key abort/obj "$work/got" >/dev/null 2>&1
check "a PUT aborted by the client leaves the old object intact" cmp -s "$work/obj" "$work/got"

# anonymous access
code=$(curl -sS -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/plain/obj.bin")
check "anonymous GET on a private bucket -> 403 AccessDenied ($code)" grep -q AccessDenied "$work/x"
aws s3api put-object --bucket pub --key hello.txt --body "$work/obj" >/dev/null 2>&1
code=$(curl -sS -o "$work/got" -w '%{http_code}' "$S3_ENDPOINT/pub/hello.txt")
check "anonymous GET on a --public-bucket -> 200 ($code)" cmp -s "$work/obj" "$work/got"
code=$(curl -sS -X PUT --data-binary @"$work/obj" -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/pub/evil")
check "anonymous PUT on a public bucket -> 403 ($code)" test "$code" = 403

# ---------------------------------------------------------------- counters
ctl POST /counters/reset >/dev/null
aws s3api put-object --bucket data --key cnt/a --body "$work/obj" >/dev/null 2>&1
aws s3api get-object --bucket data --key cnt/a "$work/x" >/dev/null 2>&1
aws s3api get-object --bucket data --key cnt/a --range bytes=0-9 "$work/x" >/dev/null 2>&1
aws s3api head-object --bucket data --key cnt/a >/dev/null 2>&1
aws s3api list-objects-v2 --bucket data --prefix cnt/ >/dev/null 2>&1
aws s3api delete-object --bucket data --key cnt/a >/dev/null 2>&1
c=$(ctl GET '/counters?keys=1')
check "counters: PUT=1 GET=2 HEAD=1 ListObjectsV2=1 DELETE=1 POST=0 total=6, bytes, per key" node -e '
const j=JSON.parse(process.argv[1]);
const want={PUT:1,GET:2,HEAD:1,ListObjectsV2:1,DELETE:1,POST:0,total:6};
for (const k in want) if (j[k]!==want[k]) { console.error(k, j[k]); process.exit(1); }
if (j.bytes_out < 3000010 || j.bytes_in !== 3000000) { console.error(j.bytes_in, j.bytes_out); process.exit(1); }
if (j.keys["data/cnt/a"].GET!==2) process.exit(1);' "$c"
check "counters reset over HTTP" test "$(ctl POST /counters/reset >/dev/null; counter j.total)" = 0

# ---------------------------------------------------------------- latency
ctl POST /latency '{"ms":300}' >/dev/null
t=$(curl -sS -o /dev/null -w '%{time_total}' "$S3_ENDPOINT/pub/hello.txt")
check "latency 300 ms applied (took ${t}s)" node -e 'process.exit(+process.argv[1] >= 0.3 ? 0 : 1)' "$t"
ctl POST '/latency?ms=0' >/dev/null
t=$(curl -sS -o /dev/null -w '%{time_total}' "$S3_ENDPOINT/pub/hello.txt")
check "latency back to 0 (took ${t}s)" node -e 'process.exit(+process.argv[1] < 0.25 ? 0 : 1)' "$t"

# ---------------------------------------------------------------- faults
ctl POST /faults '{"rate":1.0,"kinds":"503"}' >/dev/null
code=$(curl -sS -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/pub/hello.txt")
check "fault rate 1.0 kind 503 -> 503 SlowDown ($code)" grep -q SlowDown "$work/x"
aws s3api get-object --bucket data --key plain/obj.bin "$work/x" >/dev/null 2>"$work/err"
check "aws cli gives up with SlowDown under rate 1.0" grep -q SlowDown "$work/err"
ctl DELETE /faults >/dev/null
aws s3api get-object --bucket data --key plain/obj.bin "$work/got" >/dev/null 2>&1
check "after clearing faults GET works again" cmp -s "$work/obj" "$work/got"
check "injected faults were counted" test "$(counter 'j.faults["503"]')" -ge 2

ctl POST /counters/reset >/dev/null
ctl POST /faults '{"count":2,"kinds":"500","methods":"GET"}' >/dev/null
aws s3api get-object --bucket data --key plain/obj.bin "$work/got" >/dev/null 2>&1
check "fault count=2 (500): aws cli retries and gets the right bytes" cmp -s "$work/obj" "$work/got"
check "...after exactly 3 GETs with 2 faults" test "$(counter '[j.GET, j.faults["500"]].join()')" = "3,2"

ctl POST /faults '{"count":1,"kinds":"reset","methods":"GetObject"}' >/dev/null
curl -sS -o "$work/x" "$S3_ENDPOINT/pub/hello.txt" 2>/dev/null
rc=$?
sz=$(stat -c %s "$work/x")
check "reset fault cuts a GET body halfway (curl rc=$rc, got $sz of 3000000)" test $rc -ne 0 -a "$sz" -gt 0 -a "$sz" -lt 3000000
aws s3api get-object --bucket data --key plain/obj.bin "$work/got" >/dev/null 2>&1
check "the next GET after a reset gets the right bytes" cmp -s "$work/obj" "$work/got"
# botocore/s3transfer 1.29 retries a body cut short by a FIN (IncompleteRead)
# but not one cut by an RST (ConnectionResetError), so use reset_mode fin here.
ctl POST /faults '{"count":1,"kinds":"reset","methods":"GetObject","reset_mode":"fin"}' >/dev/null
rm -f "$work/got"
aws s3 cp s3://data/plain/obj.bin "$work/got" --only-show-errors >/dev/null 2>&1
check "aws s3 cp retries a body cut short (reset_mode fin) and gets the right bytes" cmp -s "$work/obj" "$work/got"
check "...the cut was counted as an incomplete response" test "$(counter j.incomplete_responses)" -ge 2

ctl POST /faults '{"count":1,"kinds":"stall","stall_ms":3000}' >/dev/null
curl -sS -m 1 -o /dev/null "$S3_ENDPOINT/pub/hello.txt" 2>/dev/null
rc=$?
check "stall fault outlasts a 1 s client timeout (curl rc=$rc, 28 = timeout)" test $rc -eq 28
ctl DELETE /faults >/dev/null

ctl POST /faults '{"count":1,"kinds":"reset_before","methods":"GetObject"}' >/dev/null
rm -f "$work/x"
curl -sS -o "$work/x" "$S3_ENDPOINT/pub/hello.txt" 2>/dev/null
rc=$?
check "reset_before fault: a GET gets no answer at all (curl rc=$rc)" test $rc -ne 0 -a ! -s "$work/x"
ctl POST /counters/reset >/dev/null
ctl POST /faults '{"count":1,"kinds":"reset_body","methods":"PutObject"}' >/dev/null
scurl UNSIGNED-PAYLOAD -X PUT --data-binary @"$work/obj" -o /dev/null "$S3_ENDPOINT/data/cut/obj" 2>/dev/null
rc=$?
in=$(counter j.bytes_in)
check "reset_body fault: a PUT is cut while its body comes in (curl rc=$rc, $in bytes in)" test $rc -ne 0 -a "$in" -gt 0 -a "$in" -lt 3000000
code=$(scurl "$EMPTY" -o /dev/null -w '%{http_code}' -I "$S3_ENDPOINT/data/cut/obj" 2>/dev/null)
check "...and stores nothing (HEAD $code)" test "$code" = 404
ctl DELETE /faults >/dev/null

ctl POST /faults '{"rate":1,"kinds":"503","prefix":"fail/"}' >/dev/null
aws s3api put-object --bucket data --key fail/x --body "$work/empty" >/dev/null 2>"$work/err"
check "prefix filter: key under fail/ gets 503" grep -q SlowDown "$work/err"
check "prefix filter: other keys unaffected" aws s3api put-object --bucket data --key ok/x --body "$work/empty" --output text --query ETag
ctl DELETE /faults >/dev/null

seq_run() {
    ctl POST /faults '{"rate":0.5,"kinds":"500,503","seed":42,"methods":"HEAD"}' >/dev/null
    local s=""
    for _ in $(seq 1 16); do
        s+=$(scurl "$EMPTY" -I -o /dev/null -w '%{http_code} ' "$S3_ENDPOINT/data/plain/obj.bin")
    done
    echo "$s"
}
s1=$(seq_run); s2=$(seq_run)
ctl DELETE /faults >/dev/null
check "seeded faults are deterministic ($s1)" test "$s1" = "$s2"
check "rate 0.5 gave a mix of 200, 500 and 503" bash -c '[[ "$1" == *200* && "$1" == *500* && "$1" == *503* ]]' _ "$s1"

# faults configured on the command line, second server
if out2=$("$here/start.sh" --bucket b --fault-rate 1 --fault-kinds 503 --fault-methods PUT --seed 7); then
    S2_PID=$(printf '%s\n' "$out2" | sed -n 's/^S3_PID=//p')
    S2_DIR=$(printf '%s\n' "$out2" | sed -n 's/^S3_DIR=//p')
    P2=$(printf '%s\n' "$out2" | sed -n 's/^S3_PORT=//p')
    "$AWS" --endpoint-url "http://127.0.0.1:$P2" s3api put-object --bucket b --key k --body "$work/empty" >/dev/null 2>"$work/err"
    check "--fault-rate/--fault-kinds/--fault-methods on the command line" grep -q SlowDown "$work/err"
    check "...GETs are not affected (404 NoSuchKey, not 503)" bash -c \
        '"$1" --endpoint-url "$2" s3api get-object --bucket b --key k /dev/null 2>&1 | grep -q NoSuchKey' _ "$AWS" "http://127.0.0.1:$P2"
    "$here/stop.sh" "$S2_PID" "$S2_DIR"
    check "stop.sh stops the server (SIGTERM)" gone "$S2_PID"
    check "stop.sh removes the data dir" test ! -e "$S2_DIR"
    "$here/stop.sh" "$S2_PID" "$S2_DIR"
    check "stop.sh is idempotent (exit $?)" test $? -eq 0
    S2_PID=
else
    bad "second server with command-line faults starts"
fi

# ---------------------------------------------------------------- S3 option headers
# chunkfs -o storage_class, acl, requester_pays, expected_bucket_owner: the
# server stores the class, refuses a wrong owner and notes each header.
ctl POST /counters/reset >/dev/null
code=$(scurl "$EMPTY" -X PUT -H 'x-amz-storage-class: GLACIER_IR' -H 'x-amz-acl: bucket-owner-full-control' \
    -H 'x-amz-request-payer: requester' -H 'x-amz-expected-bucket-owner: 123456789012' \
    --data-binary @"$work/empty" -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/opts/a")
check "PUT with GLACIER_IR, an ACL, requester pays and the right owner -> 200 ($code)" test "$code" = 200
scurl "$EMPTY" -I "$S3_ENDPOINT/data/opts/a" | tr -d '\r' >"$work/hdr"
check "HEAD returns x-amz-storage-class: GLACIER_IR" grep -qix 'x-amz-storage-class: GLACIER_IR' "$work/hdr"
scurl "$EMPTY" -X PUT -H 'x-amz-copy-source: /data/opts/a' -H 'x-amz-storage-class: STANDARD_IA' -o /dev/null "$S3_ENDPOINT/data/opts/b"
scurl "$EMPTY" -I "$S3_ENDPOINT/data/opts/b" | tr -d '\r' >"$work/hdr"
check "CopyObject takes the storage class of its request" grep -qix 'x-amz-storage-class: STANDARD_IA' "$work/hdr"
scurl "$EMPTY" -X PUT -H 'x-amz-copy-source: /data/opts/a' -o /dev/null "$S3_ENDPOINT/data/opts/c"
scurl "$EMPTY" -I "$S3_ENDPOINT/data/opts/c" | tr -d '\r' >"$work/hdr"
check "CopyObject naming no class makes a STANDARD copy" test "$(grep -ci 'x-amz-storage-class' "$work/hdr")" = 0
code=$(scurl "$EMPTY" -H 'x-amz-expected-bucket-owner: 111111111111' -o "$work/x" -w '%{http_code}' "$S3_ENDPOINT/data/opts/a")
check "GET expecting another bucket owner -> 403 AccessDenied ($code)" grep -q AccessDenied "$work/x"
check "GET /amz-headers: the last PutObject's ACL" \
    test "$(ctl GET /amz-headers | json_get 'j.by_op.PutObject["x-amz-acl"]')" = bucket-owner-full-control
check "GET /amz-headers?header=...: one PutObject with requester pays, no other" \
    test "$(ctl GET '/amz-headers?header=x-amz-request-payer&value=requester' | json_get '[j.PutObject.with, j.all.with]')" = '[1,1]'

# ---------------------------------------------------------------- 10,000 keys
# Listing speed: 10 pages of 1000 from one "directory" of 10,000 keys, first
# with the key index cold (metadata read from disk), then warm.
seq -f 'big10k/k%05g' 0 9999 >"$work/big10k.keys"
t0=$(date +%s.%N)
res=$(bulk_put data <"$work/big10k.keys")
t1=$(date +%s.%N)
check "10,000 PUTs, 32 in parallel ($res, $(node -p "($t1 - $t0).toFixed(1)") s)" test "$res" = "10000 200"
list10k() { # prints "KEYS REQUESTS WALL_S SERVER_MS"
    ctl POST /counters/reset >/dev/null
    local t0 t1 n
    t0=$(date +%s.%N)
    n=$(aws s3api "$1" --bucket data --prefix big10k/ --page-size 1000 --query 'Contents[].Key' --output text | wc -w)
    t1=$(date +%s.%N)
    ctl GET '/log?n=100' | node -e '
let s = ""; const [n, t0, t1] = process.argv.slice(1);
process.stdin.on("data", d => s += d).on("end", () => { const j = JSON.parse(s);
  console.log(n, j.length, (t1 - t0).toFixed(2), j.reduce((a, r) => a + r.ms, 0)); });' "$n" "$t0" "$t1"
}
ctl POST /list-index/clear >/dev/null
read -r n reqs wall ms <<<"$(list10k list-objects-v2)"
check "10,000 keys, 10 pages of 1000, cold index: ${wall} s with aws CLI, ${ms} ms in the server" \
    test "$n $reqs" = "10000 10"
read -r n reqs wall ms <<<"$(list10k list-objects-v2)"
check "10,000 keys, 10 pages of 1000, warm index: ${wall} s with aws CLI, ${ms} ms in the server" \
    test "$n $reqs" = "10000 10" -a "$ms" -lt 3000
read -r n reqs wall ms <<<"$(list10k list-objects)"
check "(for comparison, s3rver's own ListObjects v1: ${wall} s, ${ms} ms in the server)" \
    test "$n $reqs" = "10000 10"

# ---------------------------------------------------------------- stop
"$here/stop.sh"
check "stop.sh with S3_PID/S3_DIR from the environment" gone "$S3_PID" "$S3_DIR"

finish
