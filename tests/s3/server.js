#!/usr/bin/env node
'use strict';
// S3-compatible test server for chunkfs: s3rver 3.7.1 behind a Koa front end
// that adds strict SigV4 checks, payload-hash checks, latency, fault injection,
// request counting and a JSON control port. See README.md in this directory.
//
// Run with:  node --openssl-legacy-provider tests/s3/server.js --port 0 \
//              --dir DIR --bucket NAME [options]       (--help for all)

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { PassThrough, Readable } = require('stream');

const sigv4 = require('./sigv4');

let S3rver;
try {
  S3rver = require('s3rver');
} catch (e) {
  console.error(
    'server.js: cannot load s3rver; run `npm ci` in ' + __dirname +
      ' (or tests/s3/start.sh, which does it)');
  process.exit(2);
}

// ---------------------------------------------------------------- options

const USAGE = `usage: node --openssl-legacy-provider server.js [options]
  --port N              S3 port on --host (0 = pick a free port; default 0)
  --host ADDR           listen address (default 127.0.0.1)
  --control-port N      JSON control port on 127.0.0.1 (default 0 = free port)
  --dir DIR             s3rver data directory (created; default: a temp dir
                        removed at exit)
  --bucket NAME         create bucket NAME (repeatable, or comma-separated)
  --public-bucket NAME  create NAME and allow anonymous GET/HEAD on it
  --latency-ms N        wait N ms before answering each request (default 0)
  --latency-jitter-ms N add 0..N ms more, uniformly (default 0)
  --fault-rate R        probability 0..1 of a fault on an eligible request
  --fault-count N       inject at most N faults (rate defaults to 1)
  --fault-after N       leave the first N eligible requests alone
  --fault-kinds LIST    500,503,403,reset,reset_before,reset_body,stall,
                        stall_body,reset_after,short_body
                        (default 500,503)
  --fault-methods LIST  only these request types/ops, e.g. GET or GetObject,
                        PUT,UploadPart, ListObjectsV2 (default: all)
  --fault-prefix P      only keys starting with P
  --fault-bucket B      only bucket B
  --fault-pick MODE     random (default) or cycle through the kinds
  --seed N              seed for fault decisions (deterministic sequence)
  --stall-ms N          how long a stall lasts before the socket is reset
                        (default 120000)
  --reset-fraction F    part of the body sent before a reset (default 0.5)
  --reset-mode MODE     rst (TCP RST, default) or fin (plain close)
  --hostile LIST        behave like a hostile store (see README, "Hostile
                        mode"): same_token,new_tokens (listings that never
                        end), outside (keys outside the listed prefix or
                        shorter than it), slash (names with '/', '.', '..'
                        or empty components), ctl (names with control
                        characters), endless,trickle (GET bodies that never
                        end or crawl), constant_etag (one ETag for all)
  --hostile-prefix P    only keys (and listing prefixes) starting with P
  --trickle-bps N       bytes a second of a trickled body (default 2)
  --region R            require credential scope region R (default: any)
  --bucket-owner ID     account id owning every bucket: a request whose
                        x-amz-expected-bucket-owner differs gets 403
                        AccessDenied (default 123456789012)
  --max-skew-s N        allowed clock skew for header auth (default 900)
  --keep-alive-ms N     idle keep-alive timeout (default: node's 5000)
  --spool-mem-mb N      request bodies up to N MiB are held in memory, larger
                        ones spooled to a temp file (default 16)
  --spool-dir DIR       where to spool (default: a temp dir removed at exit)
  --ready-file FILE     write {"port":..,"control_port":..,"pid":..} here
                        (atomically) once listening
  --silent              silence s3rver's own request log
  --quiet               silence this front end's messages (auth failures...)
  --help`;

function parseArgs(argv) {
  const o = {
    port: 0, host: '127.0.0.1', controlPort: 0, dir: null, buckets: [],
    publicBuckets: [], latencyMs: 0, latencyJitterMs: 0, faults: {},
    region: null, maxSkewS: 900, keepAliveMs: null, spoolMemMb: 16,
    spoolDir: null, readyFile: null, silent: false, quiet: false,
    stallMs: 120000, hostile: {}, bucketOwner: '123456789012',
  };
  const list = v => String(v).split(',').map(s => s.trim()).filter(Boolean);
  for (let i = 2; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const val = () => {
      if (v !== undefined) return v;
      if (i + 1 >= argv.length) die(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--port': o.port = num(val(), a); break;
      case '--host': o.host = val(); break;
      case '--control-port': o.controlPort = num(val(), a); break;
      case '--dir': o.dir = val(); break;
      case '--bucket': o.buckets.push(...list(val())); break;
      case '--public-bucket': o.publicBuckets.push(...list(val())); break;
      case '--latency-ms': o.latencyMs = num(val(), a); break;
      case '--latency-jitter-ms': o.latencyJitterMs = num(val(), a); break;
      case '--fault-rate': o.faults.rate = val(); break;
      case '--fault-count': o.faults.count = val(); break;
      case '--fault-after': o.faults.after = val(); break;
      case '--fault-kinds': o.faults.kinds = val(); break;
      case '--fault-methods': o.faults.methods = val(); break;
      case '--fault-prefix': o.faults.prefix = val(); break;
      case '--fault-bucket': o.faults.bucket = val(); break;
      case '--fault-pick': o.faults.pick = val(); break;
      case '--seed': o.faults.seed = val(); break;
      case '--stall-ms': o.stallMs = num(val(), a); break;
      case '--reset-fraction': o.faults.reset_fraction = val(); break;
      case '--reset-mode': o.faults.reset_mode = val(); break;
      case '--hostile': o.hostile.modes = val(); break;
      case '--hostile-prefix': o.hostile.prefix = val(); break;
      case '--trickle-bps': o.hostile.trickle_bps = val(); break;
      case '--region': o.region = val(); break;
      case '--bucket-owner': o.bucketOwner = val(); break;
      case '--max-skew-s': o.maxSkewS = num(val(), a); break;
      case '--keep-alive-ms': o.keepAliveMs = num(val(), a); break;
      case '--spool-mem-mb': o.spoolMemMb = num(val(), a); break;
      case '--spool-dir': o.spoolDir = val(); break;
      case '--ready-file': o.readyFile = val(); break;
      case '--silent': o.silent = true; break;
      case '--quiet': o.quiet = true; break;
      case '--help': case '-h': console.log(USAGE); process.exit(0); break;
      default: die(`unknown option ${a}\n${USAGE}`);
    }
  }
  o.buckets = [...new Set([...o.buckets, ...o.publicBuckets])];
  return o;
}

function num(v, name) {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) die(`${name}: not a non-negative number: ${v}`);
  return n;
}

function die(msg) {
  console.error(`server.js: ${msg}`);
  process.exit(2);
}

const opts = parseArgs(process.argv);
const CREDENTIALS = new Map([['S3RVER', 'S3RVER']]);
const PREFIX = '[s3-test-server]';
const log = (...a) => { if (!opts.quiet) console.error(PREFIX, ...a); };

// ---------------------------------------------------------------- state

const settings = {
  latencyMs: opts.latencyMs,
  latencyJitterMs: opts.latencyJitterMs,
  publicBuckets: new Set(opts.publicBuckets),
};

/** mulberry32: small, fast, deterministic PRNG in [0,1). */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FAULT_KINDS = ['500', '503', '403', 'reset', 'reset_before', 'reset_body', 'stall',
  'stall_body', 'reset_after', 'short_body'];
const KIND_ALIASES = {
  internalerror: '500', slowdown: '503', accessdenied: '403', rst: 'reset', 'reset-after': 'reset_after',
  'stall-body': 'stall_body', timeout: 'stall', 'reset-before': 'reset_before',
  reset_headers: 'reset_before', 'reset-headers': 'reset_before', 'reset-body': 'reset_body',
};

/** Validate a fault config (from CLI strings, query strings or JSON). */
function normalizeFaults(p) {
  const has = k => p[k] !== undefined && p[k] !== null && p[k] !== '';
  const list = v => (Array.isArray(v) ? v : String(v).split(','))
    .map(s => String(s).trim()).filter(Boolean);
  const number = (k, lo, hi) => {
    const n = Number(p[k]);
    if (!Number.isFinite(n) || n < lo || n > hi) {
      throw new Error(`${k} must be a number in [${lo}, ${hi}], got ${p[k]}`);
    }
    return n;
  };
  const c = {
    rate: has('rate') ? number('rate', 0, 1) : has('count') ? 1 : 0,
    count: has('count') ? Math.floor(number('count', 0, Number.MAX_SAFE_INTEGER)) : null,
    after: has('after') ? Math.floor(number('after', 0, Number.MAX_SAFE_INTEGER)) : 0,
    kinds: has('kinds') ? list(p.kinds).map(k => KIND_ALIASES[k.toLowerCase()] || k.toLowerCase()) : ['500', '503'],
    methods: has('methods') ? list(p.methods).map(m => m.toLowerCase()) : null,
    prefix: has('prefix') ? String(p.prefix) : null,
    bucket: has('bucket') ? String(p.bucket) : null,
    seed: has('seed') ? Math.floor(number('seed', 0, 2 ** 32 - 1)) : null,
    stall_ms: has('stall_ms') ? number('stall_ms', 0, 3600e3) : opts.stallMs,
    reset_fraction: has('reset_fraction') ? number('reset_fraction', 0, 1) : 0.5,
    reset_mode: has('reset_mode') ? String(p.reset_mode) : 'rst',
    pick: has('pick') ? String(p.pick) : 'random',
  };
  for (const k of c.kinds) {
    if (!FAULT_KINDS.includes(k)) {
      throw new Error(`unknown fault kind ${k} (known: ${FAULT_KINDS.join(',')})`);
    }
  }
  if (!c.kinds.length) throw new Error('kinds is empty');
  if (!['rst', 'fin'].includes(c.reset_mode)) throw new Error('reset_mode must be rst or fin');
  if (!['random', 'cycle'].includes(c.pick)) throw new Error('pick must be random or cycle');
  return c;
}

const faults = {
  cfg: null,
  rng: Math.random,
  seedUsed: null,
  eligible: 0,
  injected: 0,
  byKind: {},
  cycle: 0,
  set(cfg) {
    this.cfg = cfg;
    this.seedUsed = cfg.seed !== null ? cfg.seed : crypto.randomBytes(4).readUInt32LE(0);
    this.rng = mulberry32(this.seedUsed);
    this.eligible = 0;
    this.injected = 0;
    this.byKind = {};
    this.cycle = 0;
  },
  clear() {
    this.set(normalizeFaults({}));
  },
  active() {
    const c = this.cfg;
    return !!c && c.rate > 0 && (c.count === null || this.injected < c.count);
  },
  matches(info) {
    const c = this.cfg;
    if (c.methods && !c.methods.includes(info.type.toLowerCase()) &&
        !c.methods.includes(info.op.toLowerCase())) return false;
    if (c.bucket !== null && info.bucket !== c.bucket) return false;
    if (c.prefix && (info.key === null || !info.key.startsWith(c.prefix))) return false;
    return true;
  },
  /** Returns the fault kind for this request, or null. */
  decide(info) {
    if (!this.active() || !this.matches(info)) return null;
    const c = this.cfg;
    this.eligible++;
    if (this.eligible <= c.after) return null;
    if (c.rate < 1 && this.rng() >= c.rate) return null;
    let kind;
    if (c.kinds.length === 1) kind = c.kinds[0];
    else if (c.pick === 'cycle') kind = c.kinds[this.cycle++ % c.kinds.length];
    else kind = c.kinds[Math.floor(this.rng() * c.kinds.length)];
    this.injected++;
    this.byKind[kind] = (this.byKind[kind] || 0) + 1;
    return kind;
  },
  state() {
    return {
      active: this.active(),
      config: this.cfg,
      seed_used: this.seedUsed,
      eligible_seen: this.eligible,
      injected: this.injected,
      injected_by_kind: this.byKind,
      remaining: this.cfg && this.cfg.count !== null
        ? Math.max(0, this.cfg.count - this.injected) : null,
    };
  },
};

try {
  faults.set(normalizeFaults(opts.faults));
} catch (e) {
  die(`fault options: ${e.message}`);
}

// Counters and a ring buffer of recent requests.
const TYPES = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'ListObjectsV2', 'OTHER'];
const LOG_MAX = 10000;
const KEYS_MAX = 100000;
let counters;
let requestLog;
let seq = 0;
let inFlight = 0;
const startTime = Date.now();

// The request headers below, as they reached the server: the last value
// seen per operation and per object, and how many requests of each
// operation carried each value ('' for none), for GET /amz-headers.
const AMZ_HEADERS = ['x-amz-storage-class', 'x-amz-acl', 'x-amz-request-payer',
  'x-amz-expected-bucket-owner'];
let amzHeaders;

function resetAmzHeaders() {
  amzHeaders = { by_op: {}, by_key: {}, counts: {} };
}

function noteAmzHeaders(info, headers) {
  const seen = Object.fromEntries(AMZ_HEADERS.map(h => [h, headers[h] || null]));
  amzHeaders.by_op[info.op] = seen;
  if (info.key) amzHeaders.by_key[`${info.bucket}/${info.key}`] = seen;
  for (const h of AMZ_HEADERS) {
    const perOp = amzHeaders.counts[h] || (amzHeaders.counts[h] = {});
    inc(perOp[info.op] || (perOp[info.op] = {}), seen[h] || '');
  }
}

/** Per operation (and "all"): requests whose header h was v ("with") or not
 *  ("other"). */
function amzHeaderMatches(h, v) {
  const out = { all: { with: 0, other: 0 } };
  for (const [op, values] of Object.entries(amzHeaders.counts[h] || {})) {
    const all = Object.values(values).reduce((a, b) => a + b, 0);
    out[op] = { with: values[v] || 0, other: all - (values[v] || 0) };
    out.all.with += out[op].with;
    out.all.other += out[op].other;
  }
  return out;
}

function resetCounters() {
  const old = counters;
  resetAmzHeaders();
  counters = {
    total: 0,
    ...Object.fromEntries(TYPES.map(t => [t, 0])),
    ops: {},
    status: {},
    faults: {},
    auth: { header: 0, query: 0, anonymous: 0, rejected: 0 },
    bytes_in: 0,
    bytes_out: 0,
    incomplete_responses: 0,
    completions: { in_place: 0, copied: 0 }, // CompleteMultipartUpload's two ways
    in_flight: 0,
    max_in_flight: inFlight,
    keys: {},
    keys_truncated: false,
    since_ms: Date.now() - startTime,
  };
  requestLog = [];
  return old;
}
resetCounters();

function countersView(withKeys) {
  const v = { ...counters, in_flight: inFlight };
  if (!withKeys) {
    delete v.keys;
    delete v.keys_truncated;
  }
  return v;
}

function inc(obj, k, n = 1) {
  obj[k] = (obj[k] || 0) + n;
}

// ---------------------------------------------------------------- requests

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const WRITE_METHODS = new Set(['PUT', 'POST', 'DELETE']);

// s3rver's vhost pattern with its default serviceEndpoint (amazonaws.com).
const VHOST_RE = /^(?:(.+)\.)?s3(-website)?([-.].+)?\.amazonaws\.com$/;

/** Classify a request: HTTP-method type (ListObjectsV2 apart) and S3 operation. */
function classify(method, rawUrl, headers) {
  const { rawPath, rawQuery } = sigv4.splitUrl(rawUrl);
  let { bucket, key } = sigv4.decodePath(rawPath);
  // Virtual-host style (Host: BUCKET.s3[.REGION].amazonaws.com), which s3rver
  // also accepts (its vhost middleware, same pattern): the whole path is the key.
  const vhost = VHOST_RE.exec(String(headers.host || '').replace(/:\d+$/, ''));
  if (vhost && vhost[1] && !vhost[2]) {
    bucket = vhost[1];
    const p = rawPath.startsWith('/') ? rawPath.slice(1) : rawPath;
    key = sigv4.percentDecode(p, true).toString('utf8');
  }
  const q = new Set(sigv4.parseRawQuery(rawQuery).map(p => p.name));
  const qv = sigv4.parseRawQuery(rawQuery);
  const listType = (qv.find(p => p.name === 'list-type') || {}).value;
  const copy = headers['x-amz-copy-source'] !== undefined;
  const sub = ['acl', 'cors', 'website', 'policy', 'tagging', 'versioning',
    'lifecycle', 'location', 'logging', 'notification', 'replication',
    'encryption', 'publicAccessBlock', 'ownershipControls', 'accelerate',
    'requestPayment', 'analytics', 'metrics', 'inventory', 'intelligent-tiering',
    'object-lock'].find(s => q.has(s));
  let op = 'Other';
  if (!bucket) {
    if (method === 'GET') op = 'ListBuckets';
  } else if (key === null || key === '') {
    switch (method) {
      case 'GET':
        if (listType === '2') op = 'ListObjectsV2';
        else if (q.has('uploads')) op = 'ListMultipartUploads';
        else if (q.has('versions')) op = 'ListObjectVersions';
        else if (q.has('location')) op = 'GetBucketLocation';
        else if (sub) op = 'GetBucketConfig';
        else op = 'ListObjects';
        break;
      case 'HEAD': op = 'HeadBucket'; break;
      case 'PUT': op = sub ? 'PutBucketConfig' : 'CreateBucket'; break;
      case 'DELETE': op = sub ? 'DeleteBucketConfig' : 'DeleteBucket'; break;
      case 'POST': op = q.has('delete') ? 'DeleteObjects' : 'PostObject'; break;
    }
  } else {
    switch (method) {
      case 'GET':
        op = q.has('uploadId') ? 'ListParts' : q.has('tagging') ? 'GetObjectTagging'
          : q.has('acl') ? 'GetObjectAcl' : 'GetObject';
        break;
      case 'HEAD': op = 'HeadObject'; break;
      case 'PUT':
        if (q.has('partNumber') && q.has('uploadId')) op = copy ? 'UploadPartCopy' : 'UploadPart';
        else if (q.has('tagging')) op = 'PutObjectTagging';
        else if (q.has('acl')) op = 'PutObjectAcl';
        else op = copy ? 'CopyObject' : 'PutObject';
        break;
      case 'POST':
        op = q.has('uploads') ? 'CreateMultipartUpload'
          : q.has('uploadId') ? 'CompleteMultipartUpload' : 'Other';
        break;
      case 'DELETE':
        op = q.has('uploadId') ? 'AbortMultipartUpload'
          : q.has('tagging') ? 'DeleteObjectTagging' : 'DeleteObject';
        break;
    }
  }
  if (method === 'OPTIONS') op = 'Options';
  let type = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'].includes(method) ? method : 'OTHER';
  if (op === 'ListObjectsV2') type = 'ListObjectsV2';
  return { type, op, bucket, key, rawPath, rawQuery };
}

function xmlEscape(s) {
  return String(s).replace(/[<>&'"]/g, c => ({
    '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;',
  })[c]);
}

function errorXml(code, message, detail, resource, requestId) {
  const extra = Object.entries(detail || {})
    .map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`).join('');
  return '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message>` +
    extra + `<Resource>${xmlEscape(resource)}</Resource>` +
    `<RequestId>${requestId}</RequestId><HostId>${requestId}</HostId></Error>`;
}

function sendError(ctx, rec, status, code, message, detail) {
  ctx.status = status;
  ctx.set('Content-Type', 'application/xml');
  ctx.set('x-amz-error-code', code);
  ctx.body = errorXml(code, message, detail, rec.info.rawPath, rec.id);
  rec.error = code;
}

function sleep(ms) {
  return new Promise(r => setTimeout(r, ms));
}

function latencyDelay() {
  const ms = settings.latencyMs +
    (settings.latencyJitterMs ? Math.random() * settings.latencyJitterMs : 0);
  return ms > 0 ? sleep(ms) : null;
}

// Pending stalls, released at shutdown.
const stalls = new Set();

function stall(socket, ms) {
  return new Promise(resolve => {
    let t = null;
    const done = () => {
      clearTimeout(t);
      stalls.delete(done);
      if (socket) socket.off('close', done);
      resolve();
    };
    t = setTimeout(done, ms);
    stalls.add(done);
    if (!socket || socket.destroyed) return done();
    socket.once('close', done);
  });
}

function hardClose(socket, mode) {
  if (!socket || socket.destroyed) return;
  if (mode === 'rst' && typeof socket.resetAndDestroy === 'function') {
    socket.resetAndDestroy();
  } else {
    socket.destroy();
  }
}

// ---- request bodies: spooled whole (memory or temp file) before s3rver sees
// them, so that x-amz-content-sha256 / Content-MD5 are checked first, and an
// upload the client aborts never reaches s3rver (which writes objects in place
// and would leave a truncated object behind).

let spoolDir = opts.spoolDir;
let spoolDirIsTemp = false;
let spoolSeq = 0;

function spoolBody(req, { wantSha256, wantMd5 }) {
  const memLimit = opts.spoolMemMb * 1024 * 1024;
  return new Promise((resolve, reject) => {
    // hash only what will be checked: each costs ~1-2 s per GiB on this CPU
    const sha = wantSha256 ? crypto.createHash('sha256') : null;
    const md5 = wantMd5 ? crypto.createHash('md5') : null;
    let size = 0;
    let chunks = [];
    let file = null;
    let ws = null;
    let settled = false;
    const cleanup = () => {
      if (ws) ws.destroy();
      if (file) fs.unlink(file, () => {});
    };
    const failed = err => {
      if (settled) return;
      settled = true;
      cleanup();
      reject(err);
    };
    req.on('data', chunk => {
      if (settled) return;
      if (sha) sha.update(chunk);
      if (md5) md5.update(chunk);
      size += chunk.length;
      if (!ws && size <= memLimit) {
        chunks.push(chunk);
        return;
      }
      if (!ws) {
        file = path.join(spoolDir, `body-${process.pid}-${++spoolSeq}`);
        ws = fs.createWriteStream(file);
        ws.on('error', failed);
        for (const c of chunks) ws.write(c);
        chunks = [];
      }
      if (!ws.write(chunk)) {
        req.pause();
        ws.once('drain', () => req.resume());
      }
    });
    req.on('error', failed);
    req.on('aborted', () => failed(new Error('client aborted the upload')));
    req.on('close', () => {
      if (!req.complete) failed(new Error('connection closed during upload'));
    });
    req.on('end', () => {
      if (settled) return;
      const finish = () => {
        if (settled) return;
        settled = true;
        resolve({
          size,
          sha256: sha ? sha.digest('hex') : null,
          md5: md5 ? md5.digest() : null,
          chunks,
          file,
          cleanup: () => { if (file) fs.unlink(file, () => {}); },
        });
      };
      if (ws) ws.end(finish);
      else finish();
    });
  });
}

/** Read about fraction of a request body (at least 1 byte, at most all but
 *  the last one when its length is known; 64 KiB of a chunked one) and stop
 *  reading.  Resolves to the bytes read. */
function receivePart(req, fraction) {
  const cl = Number(req.headers['content-length']);
  const limit = Number.isFinite(cl) && cl > 0
    ? Math.min(Math.max(cl - 1, 1), Math.max(1, Math.floor(cl * fraction))) : 65536;
  return new Promise(resolve => {
    let got = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      req.pause();
      req.removeListener('data', onData);
      resolve(got);
    };
    const onData = chunk => {
      got += chunk.length;
      if (got >= limit) finish();
    };
    req.on('data', onData);
    req.once('end', finish);
    req.once('close', finish);
    req.once('error', finish);
  });
}

/** Give s3rver a stand-in request whose body replays the spooled bytes. */
function installReplay(ctx, spool) {
  const orig = ctx.req;
  let stream;
  if (spool.file) {
    stream = fs.createReadStream(spool.file, { highWaterMark: 1 << 20 });
  } else {
    stream = new PassThrough({ highWaterMark: 1 << 20 });
    for (const c of spool.chunks) stream.write(c);
    stream.end();
  }
  for (const k of ['headers', 'rawHeaders', 'trailers', 'rawTrailers', 'method',
    'url', 'httpVersion', 'httpVersionMajor', 'httpVersionMinor', 'socket']) {
    stream[k] = orig[k];
  }
  stream.connection = orig.socket;
  stream.complete = true;
  stream.aborted = false;
  // The body's size, known before s3rver reads it (putPart places a part by it).
  stream.bodySize = spool.size;
  ctx.req = ctx.request.req = ctx.response.req = stream;
  return stream;
}

function hasBody(req) {
  const te = req.headers['transfer-encoding'];
  const cl = req.headers['content-length'];
  return te !== undefined || (cl !== undefined && Number(cl) > 0);
}

// ---- per-object reader/writer locks. s3rver overwrites object files in place
// and writes the ETag after the data, so a GET racing a PUT of the same key can
// see torn bytes or a mismatched ETag. Real S3 replaces objects atomically; the
// lock gives the same guarantee (GET/HEAD shared, writes exclusive, FIFO).

const locks = new Map();
const SHARED_OPS = new Set(['GetObject', 'HeadObject']);
const EXCLUSIVE_OPS = new Set(['PutObject', 'CopyObject', 'CompleteMultipartUpload',
  'DeleteObject']);

function lockKey(info) {
  return `${info.bucket}\0${info.key}`;
}

function acquire(key, exclusive) {
  let l = locks.get(key);
  if (!l) {
    l = { readers: 0, writer: false, queue: [] };
    locks.set(key, l);
  }
  const grantable = () => (exclusive ? !l.writer && l.readers === 0 : !l.writer);
  const grant = () => {
    if (exclusive) l.writer = true;
    else l.readers++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (exclusive) l.writer = false;
      else l.readers--;
      pump(key, l);
    };
  };
  if (!l.queue.length && grantable()) return Promise.resolve(grant());
  return new Promise(resolve => l.queue.push({ exclusive, grantable, grant, resolve }));
}

function pump(key, l) {
  while (l.queue.length && l.queue[0].grantable()) {
    const w = l.queue.shift();
    w.resolve(w.grant());
  }
  if (!l.queue.length && !l.writer && l.readers === 0) locks.delete(key);
}

// ---- small S3 behaviours s3rver lacks, handled here: If-Match /
// If-Unmodified-Since on GET/HEAD (412), suffix ranges "bytes=-N", and any
// range on an empty object (416: s3rver answers 206 "bytes 0-0/0" with a
// Content-Length of 1 and no body, so the client sees a truncated transfer).

function rangeNotSatisfiable(ctx, rec, range, size) {
  ctx.set('Content-Range', `bytes */${size}`);
  sendError(ctx, rec, 416, 'InvalidRange', 'The requested range is not satisfiable',
    { RangeRequested: range, ActualObjectSize: String(size) });
}

async function preconditions(ctx, rec, app) {
  const info = rec.info;
  const h = ctx.req.headers;
  const ifMatch = h['if-match'];
  const ifUnmod = h['if-unmodified-since'];
  const range = h.range;
  const suffix = /^bytes=-(\d+)\s*$/.exec(range || '');
  // a well-formed single range "bytes=A-" / "bytes=A-B" (A <= B); S3 ignores others
  const single = /^bytes=(\d+)-(\d*)\s*$/.exec(range || '');
  if (single && single[2] !== '' && Number(single[2]) < Number(single[1])) {
    // an invalid range: S3 ignores the header (s3rver would read "A-" instead)
    delete ctx.req.headers.range;
    return preconditions(ctx, rec, app);
  }
  const ranged = suffix || single;
  // "bytes=0-0": s3rver reads an end of 0 as "no end" and sends everything
  const firstByte = single && Number(single[1]) === 0 && Number(single[2]) === 0 && single[2] !== '';
  if (!ifMatch && !ifUnmod && !suffix) {
    if (!ranged) return true;
    // only the size is needed: one stat, not s3rver's three reads
    let st;
    try {
      st = await fs.promises.stat(app.store.getResourcePath(info.bucket, info.key, 'object'));
    } catch (e) {
      return true; // missing object: s3rver answers 404
    }
    if (st.size === 0) {
      rangeNotSatisfiable(ctx, rec, range, 0);
      return false;
    }
    if (firstByte) askFirstByte(ctx, rec, st.size);
    return true;
  }
  let md;
  try {
    md = await app.store.getMetadata(info.bucket, info.key);
  } catch (e) {
    return true; // missing object: s3rver answers 404
  }
  const etag = String(md.etag).replace(/^"|"$/g, '');
  if (ifMatch) {
    const ok = ifMatch.split(',').map(s => s.trim().replace(/^W\//, '').replace(/^"|"$/g, ''))
      .some(t => t === '*' || t === etag);
    if (!ok) {
      sendError(ctx, rec, 412, 'PreconditionFailed',
        'At least one of the pre-conditions you specified did not hold',
        { Condition: 'If-Match' });
      return false;
    }
  } else if (ifUnmod) {
    const t = Date.parse(ifUnmod);
    if (!isNaN(t) && Date.parse(md['last-modified']) > t) {
      sendError(ctx, rec, 412, 'PreconditionFailed',
        'At least one of the pre-conditions you specified did not hold',
        { Condition: 'If-Unmodified-Since' });
      return false;
    }
  }
  const size = Number(md['content-length']);
  if (ranged && size === 0) {
    rangeNotSatisfiable(ctx, rec, range, size);
    return false;
  }
  if (suffix) {
    const n = Number(suffix[1]);
    if (n === 0) {
      rangeNotSatisfiable(ctx, rec, range, size);
      return false;
    }
    ctx.req.headers.range = `bytes=${Math.max(0, size - n)}-${size - 1}`;
  }
  if (firstByte) askFirstByte(ctx, rec, size);
  return true;
}

/** bytes=0-0: ask s3rver for bytes 0-1, then answer with the first byte only. */
function askFirstByte(ctx, rec, size) {
  ctx.req.headers.range = 'bytes=0-1';
  rec.firstByteOf = size;
}

async function* firstBytes(src, n) {
  try {
    for await (const chunk of src) {
      if (n <= 0) break;
      const take = chunk.subarray(0, n);
      n -= take.length;
      yield take;
    }
  } finally {
    src.destroy();
  }
}

function trimToFirstByte(ctx, size) {
  if (ctx.status !== 206) return;
  ctx.set('Content-Range', `bytes 0-0/${size}`);
  const body = ctx.body;
  if (body && typeof body.pipe === 'function') ctx.body = Readable.from(firstBytes(body, 1));
  ctx.length = 1;
}

// ---- partial body, then reset / stall (faults on responses with a body)

// A well-formed answer with no body: its headers (Content-Range included)
// untouched but Content-Length 0.  What a broken proxy or store might send;
// a client must not take it for the object's end.
async function shortBody(ctx) {
  const body = ctx.body;
  if (!body || ctx.status >= 300) return;
  let buf;
  if (typeof body.pipe === 'function') {
    const chunks = [];
    for await (const chunk of body) chunks.push(chunk);
    buf = Buffer.concat(chunks);
  } else {
    buf = Buffer.from(body);
  }
  const range = ctx.response.get('Content-Range');
  ctx.body = buf.subarray(0, 0);
  if (range) ctx.set('Content-Range', range);
}

async function partialBody(ctx, rec, fault) {
  const c = faults.cfg;
  const res = ctx.res;
  const socket = res.socket;
  const body = ctx.body;
  ctx.respond = false;
  const len = ctx.response.length;
  const write = chunk => new Promise(resolve => {
    rec.bytesOut += chunk.length;
    res.write(chunk, () => resolve());
  });
  const isStream = body && typeof body.pipe === 'function';
  if (!body || !(len >= 2 || (isStream && len === undefined))) {
    if (isStream) body.destroy();
    if (rec.release) rec.release();
    if (fault === 'stall_body') await stall(socket, c.stall_ms);
    hardClose(socket, c.reset_mode);
    return;
  }
  const limit = len !== undefined
    ? Math.min(len - 1, Math.max(1, Math.floor(len * c.reset_fraction))) : 65536;
  res.statusCode = ctx.status;
  if (isStream) {
    let sent = 0;
    try {
      for await (const chunk of body) {
        const take = Math.min(chunk.length, limit - sent);
        if (take > 0) await write(chunk.subarray(0, take));
        sent += take;
        if (sent >= limit || !socket || socket.destroyed) break;
      }
    } catch (e) { /* source error: just cut the connection */ }
    body.destroy();
  } else {
    await write(Buffer.from(body).subarray(0, limit));
  }
  rec.partial = true;
  if (rec.release) rec.release();
  if (fault === 'stall_body') await stall(socket, c.stall_ms);
  else await sleep(30); // let the bytes reach the client before the reset
  hardClose(socket, c.reset_mode);
}

// ---- hostile mode: a store that answers what a client must survive
// (issue 13): listings whose continuation never ends, names outside the
// listed prefix or unusable as file names, GET bodies that never end or
// crawl, one ETag for every object. Off unless asked for.

const HOSTILE_MODES = ['same_token', 'new_tokens', 'outside', 'slash', 'ctl', 'endless',
  'trickle', 'constant_etag'];
const HOSTILE_ETAG = '"00000000000000000000000000000000"';
const HOSTILE_TOKEN = 'hostile-';
const hostile = { modes: new Set(), prefix: '', trickle_bps: 2, tokens: 0, applied: {} };

function setHostile(p) {
  const modes = String(p.modes || '').split(',').map(m => m.trim()).filter(Boolean);
  for (const m of modes) {
    if (!HOSTILE_MODES.includes(m)) {
      throw new Error(`unknown hostile mode ${m} (known: ${HOSTILE_MODES.join(',')})`);
    }
  }
  const bps = p.trickle_bps !== undefined ? Number(p.trickle_bps) : 2;
  if (!Number.isFinite(bps) || bps <= 0) throw new Error(`trickle_bps must be > 0: ${p.trickle_bps}`);
  hostile.modes = new Set(modes);
  hostile.prefix = p.prefix ? String(p.prefix) : '';
  hostile.trickle_bps = bps;
  hostile.tokens = 0;
  hostile.applied = {};
}

function hostileView() {
  return { modes: [...hostile.modes], prefix: hostile.prefix, trickle_bps: hostile.trickle_bps,
    applied: hostile.applied };
}

/** Whether mode m applies to a key (or listing prefix) s. */
function hostileOn(m, s) {
  if (!hostile.modes.has(m) || !String(s || '').startsWith(hostile.prefix)) return false;
  inc(hostile.applied, m);
  return true;
}

try {
  setHostile(opts.hostile);
} catch (e) {
  die(`--hostile: ${e.message}`);
}

/** The names a hostile listing of prefix adds: objects and common prefixes. */
function hostileNames(prefix) {
  const objects = [];
  const prefixes = [];
  const obj = key => objects.push({ key, size: 1, etag: PHANTOM_ETAG, mtime: PHANTOM_MTIME });
  if (hostileOn('outside', prefix)) {
    obj('~outside');
    if (prefix.length > 0) obj(prefix.slice(0, -1));
    prefixes.push('~outside/');
  }
  if (hostileOn('slash', prefix)) {
    obj(`${prefix}sl/ash`);
    prefixes.push(`${prefix}sl/ash/`, `${prefix}./`, `${prefix}../`, `${prefix}/`);
  }
  if (hostileOn('ctl', prefix)) {
    obj(`${prefix}new\nline`);
    obj(`${prefix}tab\there`);
    prefixes.push(`${prefix}del\x7f/`);
  }
  return { objects, prefixes };
}

/** The continuation token of a hostile listing of prefix, or undefined. */
function hostileToken(prefix) {
  if (hostileOn('same_token', prefix)) return `${HOSTILE_TOKEN}same`;
  if (hostileOn('new_tokens', prefix)) return `${HOSTILE_TOKEN}${++hostile.tokens}`;
  return undefined;
}

/** The bytes of buf at bps bytes a second: up to ten pieces a second. */
function trickleStream(buf, bps) {
  const piece = Math.max(1, Math.floor(bps / 10));
  let i = 0;
  return new Readable({
    read() {
      if (i >= buf.length) { this.push(null); return; }
      setTimeout(() => {
        const from = i;
        i = Math.min(buf.length, i + piece);
        this.push(buf.subarray(from, i));
      }, (1000 * piece) / bps);
    },
  });
}

/** A body that never ends, 64 KiB at a time. */
function endlessStream() {
  const chunk = Buffer.alloc(65536, 0x78);
  return new Readable({ read() { this.push(chunk); } });
}

async function bodyBuffer(body) {
  if (typeof body.pipe !== 'function') return Buffer.from(body);
  const chunks = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks);
}

/** After s3rver answered a GET or HEAD: the hostile body and ETag. */
async function hostileAnswer(ctx, info) {
  if (ctx.status < 200 || ctx.status > 299) return;
  if (hostileOn('constant_etag', info.key)) ctx.set('ETag', HOSTILE_ETAG);
  if (info.op !== 'GetObject' || !ctx.body) return;
  if (hostileOn('endless', info.key)) {
    if (typeof ctx.body.destroy === 'function') ctx.body.destroy();
    const range = ctx.response.get('Content-Range');
    ctx.body = endlessStream(); // no Content-Length: chunked, for ever
    if (range) ctx.set('Content-Range', range);
  } else if (hostileOn('trickle', info.key)) {
    const range = ctx.response.get('Content-Range');
    const buf = await bodyBuffer(ctx.body);
    ctx.body = trickleStream(buf, hostile.trickle_bps);
    ctx.length = buf.length;
    if (range) ctx.set('Content-Range', range);
  }
}

// ---- ListObjectsV2, answered here rather than by s3rver, whose listing
// differs from S3: with a delimiter it prunes directories more than one level
// below the prefix (deep implicit "directories" vanish), returns keys in
// filesystem walk order, puts every CommonPrefix on the first page without
// counting it toward max-keys, repeats prefixes at or before start-after and
// builds continuation tokens from the last key only.
//
// Keys come from a per-bucket index: a sorted (UTF-8 byte order) array of all
// keys, built by walking the bucket's directory in s3rver's filesystem store
// (one readdir per directory; no per-file stat or metadata read) and kept up
// to date by every write that goes through this server: single-key writes
// (PutObject, CopyObject, CompleteMultipartUpload, DeleteObject) update it in
// place, any other write to the bucket drops it. A page costs a binary search
// plus, the first time a key is listed, a stat and a small read (size, ETag,
// mtime), which the index entry then keeps until the key is written again.

const FilesystemStore = require('s3rver/lib/stores/filesystem');
const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account');

// The file for a new version of an object, with its directory made.  An
// existing file is unlinked, not truncated and rewritten: ext4
// (auto_da_alloc) writes back a file truncated to zero and rewritten as soon
// as it is closed, which made replacing an object cost up to 1 s more per GiB
// than creating one (and made the writers that create an empty object first,
// as s3fs and chunkfs on an early flush do, look slower).  That is a cost of
// this server's disk layout, not of S3.  Writes hold the key's exclusive
// lock, so no reader sees the object missing in between.
async function freshObjectPath(store, bucket, key) {
  const objectPath = store.getResourcePath(bucket, key, 'object');
  await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
  await fs.promises.rm(objectPath, { force: true });
  return objectPath;
}

// s3rver 3.7.1's putObject resolves when the request body has been read,
// not when the object's file is written (it never waits for the write
// stream), so the answer to a PUT could go out, and the object lock here be
// released, before the file holds all its bytes: a GET right after then
// read a short or empty object. S3 is read-after-write consistent; so is
// this server: the file is complete before putObject returns.
FilesystemStore.prototype.putObject = async function putObject(object) {
  const objectPath = await freshObjectPath(this, object.bucket, object.key);
  const md5 = crypto.createHash('md5');
  let size = 0;
  await new Promise((resolve, reject) => {
    const out = fs.createWriteStream(objectPath);
    out.on('error', reject).on('close', resolve);
    if (Buffer.isBuffer(object.content)) {
      md5.update(object.content);
      size = object.content.length;
      out.end(object.content);
    } else {
      object.content.on('error', err => { out.destroy(); reject(err); });
      object.content.on('data', chunk => { md5.update(chunk); size += chunk.length; });
      object.content.pipe(out);
    }
  });
  const digest = md5.digest('hex');
  await this.putMetadata(object.bucket, object.key, object.metadata, digest);
  return { size, md5: digest };
};

// CompleteMultipartUpload as S3 does it, where s3rver 3.7.1 differs:
// - each listed part must exist with the listed ETag (else 400 InvalidPart),
//   part numbers must ascend (InvalidPartOrder), and every part but the last
//   must hold at least 5 MiB (EntityTooSmall);
// - the ETag is S3's multipart form: the MD5 of the parts' binary MD5s,
//   then "-" and the number of parts;
// - no copy of the data.  s3rver concatenated the parts into a new file
//   (hashing it again through 64 KiB chunks): 1.4-3.3 s per GiB here even
//   without the hash, a fixed share of every writer's benchmark that S3
//   does not have, and one that varied with the machine's dirty pages.
//
// Parts of the usual layout, all of one size R but the last, go straight
// into the upload's "assembly" file at (N - 1) * R; R is part 1's size, or
// the size of the first part of at least 5 MiB to arrive before part 1.  A
// part larger than R, or one of under 5 MiB while R is unknown, goes to its
// own file, as s3rver stores parts.  Completing an upload whose listed parts
// lie in the assembly one after the other renames the assembly into place;
// any other layout is copied into a new file.  Either way a new version is a
// new file (see freshObjectPath).
//
// Per part N in the upload's directory: N.md5 (its MD5, as s3rver keeps it)
// and either N.at ({"offset", "size"} in the assembly) or the file N.
const S3Error = require('s3rver/lib/models/error');
const S3Object = require('s3rver/lib/models/object');
// Storage classes S3 knows that s3rver 3.7.1 refuses as InvalidStorageClass.
S3Object.STORAGE_CLASSES.push('GLACIER_IR', 'SNOW', 'EXPRESS_ONEZONE');
const MIN_PART_BYTES = 5 * 1024 * 1024;
const uploadLayouts = new Map(); // upload dir -> { R, busy: Map(N -> promise) }

function uploadLayout(uploadDir) {
  let l = uploadLayouts.get(uploadDir);
  if (!l) {
    l = { R: null, busy: new Map() };
    uploadLayouts.set(uploadDir, l);
  }
  return l;
}

/** Where part N of size goes: an offset in the assembly, or null (own file). */
function placePart(l, n, size) {
  if (l.R === null && (n === 1 || size >= MIN_PART_BYTES)) l.R = size;
  if (l.R === null || size > l.R) return null;
  return (n - 1) * l.R;
}

/** Copy a readable stream into fh at offset, at most max bytes; returns
 *  [bytes, md5 hex].  More than max bytes is an error (they would overwrite
 *  the next part). */
async function writeAt(content, fh, offset, max) {
  const md5 = crypto.createHash('md5');
  let n = 0;
  for await (const chunk of content) {
    if (n + chunk.length > max) throw new Error(`part longer than its announced ${max} bytes`);
    md5.update(chunk);
    let done = 0;
    while (done < chunk.length) {
      const { bytesWritten } = await fh.write(chunk, done, chunk.length - done, offset + n + done);
      done += bytesWritten;
    }
    n += chunk.length;
  }
  return [n, md5.digest('hex')];
}

FilesystemStore.prototype.putPart = async function putPart(bucket, uploadId, partNumber, content) {
  const uploadDir = path.join(this.getResourcePath(bucket, undefined, 'uploads'), uploadId);
  const n = Number(partNumber);
  const file = path.join(uploadDir, String(n));
  const l = uploadLayout(uploadDir);
  // One write of a given part at a time: two would interleave in one slot.
  const before = l.busy.get(n) || Promise.resolve();
  let done;
  const mine = new Promise(resolve => { done = resolve; });
  const chain = before.then(() => mine);
  l.busy.set(n, chain);
  await before;
  try {
    await fs.promises.mkdir(uploadDir, { recursive: true });
    // The old version's ETag goes first: a write that fails halfway leaves
    // the part missing (InvalidPart at completion), never its old ETag over
    // new bytes.
    await fs.promises.rm(`${file}.md5`, { force: true });
    const size = typeof content.bodySize === 'number' ? content.bodySize : null;
    const offset = size === null ? null : placePart(l, n, size);
    let got;
    let md5;
    if (offset !== null) {
      const fh = await fs.promises.open(path.join(uploadDir, 'assembly'),
        fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
      try {
        [got, md5] = await writeAt(content, fh, offset, size);
      } finally {
        await fh.close();
      }
      if (got !== size) throw new Error(`part ${n}: ${got} bytes, ${size} announced`);
      await fs.promises.writeFile(`${file}.at`, JSON.stringify({ offset, size }));
      await fs.promises.rm(file, { force: true });
    } else {
      await fs.promises.rm(`${file}.at`, { force: true });
      const fh = await fs.promises.open(file, 'w');
      try {
        [got, md5] = await writeAt(content, fh, 0, Infinity);
      } finally {
        await fh.close();
      }
    }
    await fs.promises.writeFile(`${file}.md5`, md5);
    return { size: got, md5 };
  } finally {
    done();
    if (l.busy.get(n) === chain) l.busy.delete(n);
  }
};

/** Where part N's bytes are: { file, offset, size }, or null if it has none. */
async function partBytes(uploadDir, n) {
  const file = path.join(uploadDir, String(n));
  try {
    const at = JSON.parse(await fs.promises.readFile(`${file}.at`, 'utf8'));
    return { file: path.join(uploadDir, 'assembly'), offset: at.offset, size: at.size };
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
  try {
    const st = await fs.promises.stat(file);
    return { file, offset: 0, size: st.size };
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
  return null;
}

FilesystemStore.prototype.putObjectMultipart = async function putObjectMultipart(bucket, uploadId, parts) {
  const uploadDir = path.join(this.getResourcePath(bucket, undefined, 'uploads'), uploadId);
  let key;
  let metadata;
  try {
    [key, metadata] = await Promise.all([
      fs.promises.readFile(path.join(uploadDir, 'key'), 'utf8'),
      fs.promises.readFile(path.join(uploadDir, 'metadata'), 'utf8').then(JSON.parse),
    ]);
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
    // completed or aborted already: S3's answer to a repeated completion
    throw new S3Error('NoSuchUpload', 'The specified upload does not exist. The upload ID ' +
      'may be invalid, or the upload may have been aborted or completed.', { UploadId: uploadId });
  }
  const where = [];
  const digests = [];
  let prev = 0;
  let size = 0;
  let inPlace = true; // the listed parts lie in the assembly, in order
  for (const [i, part] of parts.entries()) {
    if (!(part.number > prev)) {
      throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. ' +
        'The parts list must be specified in order by part number.');
    }
    prev = part.number;
    let md5;
    let at = null;
    try {
      md5 = (await fs.promises.readFile(path.join(uploadDir, `${part.number}.md5`), 'utf8')).trim();
      at = await partBytes(uploadDir, part.number);
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    if (!md5 || !at || md5 !== part.etag) {
      throw new S3Error('InvalidPart', 'One or more of the specified parts could not be found. ' +
        'The part may not have been uploaded, or the specified entity tag may not match the ' +
        "part's entity tag.", { UploadId: uploadId, PartNumber: part.number, ETag: part.etag });
    }
    if (i < parts.length - 1 && at.size < MIN_PART_BYTES) {
      throw new S3Error('EntityTooSmall',
        'Your proposed upload is smaller than the minimum allowed object size.',
        { ProposedSize: at.size, MinSizeAllowed: MIN_PART_BYTES, PartNumber: part.number });
    }
    if (at.file !== path.join(uploadDir, 'assembly') || at.offset !== size) inPlace = false;
    where.push(at);
    digests.push(Buffer.from(md5, 'hex'));
    size += at.size;
  }
  const objectPath = await freshObjectPath(this, bucket, key);
  if (inPlace && parts.length > 0) {
    const assembly = path.join(uploadDir, 'assembly');
    await fs.promises.truncate(assembly, size); // parts past the listed ones are dropped
    await fs.promises.rename(assembly, objectPath);
    counters.completions.in_place++;
  } else {
    counters.completions.copied++;
    const out = await fs.promises.open(objectPath, 'w');
    const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
    try {
      for (const at of where) {
        const fin = await fs.promises.open(at.file, 'r');
        try {
          for (let off = 0; off < at.size;) {
            const want = Math.min(buf.length, at.size - off);
            const { bytesRead } = await fin.read(buf, 0, want, at.offset + off);
            if (bytesRead === 0) throw new Error(`${at.file}: short part`);
            await out.write(buf, 0, bytesRead);
            off += bytesRead;
          }
        } finally {
          await fin.close();
        }
      }
    } finally {
      await out.close();
    }
  }
  const etag = `${crypto.createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${parts.length}`;
  await this.putMetadata(bucket, key, metadata, etag);
  await fs.promises.rm(uploadDir, { recursive: true, force: true });
  uploadLayouts.delete(uploadDir);
  return { size, md5: etag };
};

const OBJECT_SUFFIX = '._S3rver_object';
const UPLOADS_DIR = '._S3rver_uploads';
const LIST_MAX_KEYS = 1000;
const TOKEN_TAG = 'chunkfs-s3-list-v1';
const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';

const keyIndexes = new Map(); // bucket -> sorted [{ key, buf }], current
const indexBuilds = new Map(); // bucket -> { epoch, promise }
const bucketEpochs = new Map(); // bucket -> count of finished writes
let globalEpoch = 0; // bumped when every index is dropped
const listStats = { index_builds: 0, index_build_ms: 0, index_hits: 0,
  index_updates: 0, index_drops: 0 };

const indexEpoch = bucket => `${globalEpoch}/${bucketEpochs.get(bucket) || 0}`;
const makeEntry = key => ({ key, buf: Buffer.from(key, 'utf8') });
const compareEntries = (a, b) => Buffer.compare(a.buf, b.buf);

/** First index i in sorted entries with entries[i].buf >= buf (or > buf). */
function lowerBound(entries, buf, strictlyAfter) {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = Buffer.compare(entries[mid].buf, buf);
    if (c < 0 || (strictlyAfter && c === 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The smallest byte string greater than every string starting with buf. */
function prefixEnd(buf) {
  const b = Buffer.from(buf);
  let n = b.length;
  while (n > 0 && b[n - 1] === 0xff) n--;
  if (n === 0) return null; // no upper bound
  b[n - 1]++;
  return b.subarray(0, n);
}

function startsWithBuf(buf, prefix) {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/** All keys of a bucket, sorted in UTF-8 byte order, from s3rver's layout:
 *  key "a/b/c" is the file BUCKET/a/b/c._S3rver_object (plus .md5 and a
 *  ._S3rver_metadata.json next to it); multipart parts live in ._S3rver_uploads. */
async function walkBucket(bucketPath) {
  const entries = [];
  const dirs = [''];
  while (dirs.length) {
    const rel = dirs.pop();
    let list;
    try {
      list = await fs.promises.readdir(path.join(bucketPath, rel), { withFileTypes: true });
    } catch (e) {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') continue; // removed meanwhile
      throw e;
    }
    for (const d of list) {
      if (d.isDirectory()) {
        if (!(rel === '' && d.name === UPLOADS_DIR)) dirs.push(`${rel}${d.name}/`);
      } else if (d.name.endsWith(OBJECT_SUFFIX)) {
        const keyPath = rel + d.name.slice(0, -OBJECT_SUFFIX.length);
        entries.push(makeEntry(FilesystemStore.decodeKeyPath(keyPath)));
      }
    }
  }
  return entries.sort(compareEntries);
}

/** The bucket's sorted key index (cached; built when missing). */
function getKeyIndex(app, bucket) {
  const cached = keyIndexes.get(bucket);
  if (cached) {
    listStats.index_hits++;
    return Promise.resolve(cached);
  }
  const epoch = indexEpoch(bucket);
  let b = indexBuilds.get(bucket);
  // join a build in progress only if no write has finished since it started
  if (!b || b.epoch !== epoch) {
    const t0 = Date.now();
    b = { epoch, promise: walkBucket(app.store.getBucketPath(bucket)) };
    indexBuilds.set(bucket, b);
    const done = () => { if (indexBuilds.get(bucket) === b) indexBuilds.delete(bucket); };
    b.promise.then(entries => {
      done();
      listStats.index_builds++;
      listStats.index_build_ms += Date.now() - t0;
      // a write that finished during the walk may or may not be in it: then
      // the result serves the requests waiting for it but is not kept
      if (indexEpoch(bucket) === b.epoch) keyIndexes.set(bucket, entries);
    }, done);
  }
  return b.promise;
}

const INDEX_KEY_WRITES = new Set(['PutObject', 'CopyObject', 'CompleteMultipartUpload',
  'DeleteObject']);
const INDEX_NEUTRAL_WRITES = new Set(['UploadPart', 'CreateMultipartUpload',
  'AbortMultipartUpload', 'PutObjectTagging', 'DeleteObjectTagging', 'PutObjectAcl']);

function dropKeyIndexes() {
  globalEpoch++;
  listStats.index_drops += keyIndexes.size;
  keyIndexes.clear();
}

/** Called after s3rver has processed a PUT/POST/DELETE (successfully or not). */
function noteWrite(app, info, status) {
  const bucket = info.bucket;
  if (!bucket) {
    dropKeyIndexes();
    return;
  }
  bucketEpochs.set(bucket, (bucketEpochs.get(bucket) || 0) + 1);
  const entries = keyIndexes.get(bucket);
  if (!entries || INDEX_NEUTRAL_WRITES.has(info.op)) return;
  const key = info.key;
  // s3rver maps keys to paths with path.join: "a//b", "./", "../" do not map
  // back to the same key, so such writes just drop the index
  const plain = key && !key.startsWith('/') &&
    !key.split('/').slice(0, -1).some(s => s === '' || s === '.' || s === '..');
  if (!INDEX_KEY_WRITES.has(info.op) || !plain) {
    keyIndexes.delete(bucket);
    listStats.index_drops++;
    return;
  }
  let exists;
  if (status >= 200 && status < 300) {
    exists = info.op !== 'DeleteObject';
  } else {
    exists = fs.existsSync(app.store.getResourcePath(bucket, key, 'object'));
  }
  const e = makeEntry(key);
  const i = lowerBound(entries, e.buf, false);
  const present = i < entries.length && entries[i].buf.equals(e.buf);
  if (exists && present) entries[i] = e; // new version: forget the old metadata
  else if (exists) entries.splice(i, 0, e);
  else if (present) entries.splice(i, 1);
  listStats.index_updates++;
}

function listIndexView() {
  return { ...listStats,
    buckets: Object.fromEntries([...keyIndexes].map(([b, e]) => [b, e.length])) };
}

// ---- phantom keys: names that ListObjectsV2 lists but that do not exist as
// objects (HEAD/GET answer 404 NoSuchKey). They let a client's handling of
// keys that cannot be file names be tested: "a//b", "./" and "../" segments
// collide in s3rver's on-disk store and a segment over 255 bytes cannot be
// stored at all. Kept apart from the key index (so they outlive its rebuilds
// and drops) and merged into it for each listing of a bucket that has some.

const PHANTOM_ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'; // MD5 of nothing
const PHANTOM_MTIME = '2000-01-01T00:00:00.000Z';
const PHANTOM_KEY_MAX_BYTES = 1024; // S3's limit on key length
const phantoms = new Map(); // bucket -> { byKey: Map(key -> entry), sorted: [entry] }

function phantomView(bucket) {
  const names = bucket !== undefined ? [bucket] : [...phantoms.keys()].sort();
  const buckets = {};
  let count = 0;
  for (const b of names) {
    const ph = phantoms.get(b);
    buckets[b] = ph ? ph.sorted.map(e => ({ key: e.key, size: e.meta.size })) : [];
    count += buckets[b].length;
  }
  return { buckets, count, etag: PHANTOM_ETAG, last_modified: PHANTOM_MTIME };
}

/** keys: an array of strings (or one string) from the control API. */
function phantomKeyList(keys) {
  if (keys === undefined || keys === null) throw new Error('keys is required');
  const list = Array.isArray(keys) ? keys : [keys];
  for (const k of list) {
    if (typeof k !== 'string' || k === '') throw new Error(`keys must be non-empty strings, got ${JSON.stringify(k)}`);
    const buf = Buffer.from(k, 'utf8');
    if (buf.toString('utf8') !== k) throw new Error(`key is not valid UTF-8 (lone surrogate): ${JSON.stringify(k)}`);
    if (buf.length > PHANTOM_KEY_MAX_BYTES) {
      throw new Error(`key longer than ${PHANTOM_KEY_MAX_BYTES} bytes (${buf.length}): ${k.slice(0, 40)}...`);
    }
  }
  return list;
}

function addPhantoms(bucket, keys, size) {
  let ph = phantoms.get(bucket);
  if (!ph) phantoms.set(bucket, ph = { byKey: new Map(), sorted: [] });
  let added = 0;
  for (const key of keys) {
    if (!ph.byKey.has(key)) added++;
    const e = makeEntry(key);
    e.phantom = true;
    e.meta = { key, size, etag: PHANTOM_ETAG, mtime: PHANTOM_MTIME };
    ph.byKey.set(key, e);
  }
  ph.sorted = [...ph.byKey.values()].sort(compareEntries);
  return added;
}

/** Remove some keys of a bucket, all of a bucket, or all (bucket undefined). */
function removePhantoms(bucket, keys) {
  let removed = 0;
  for (const [b, ph] of [...phantoms]) {
    if (bucket !== undefined && b !== bucket) continue;
    if (keys) {
      for (const k of keys) if (ph.byKey.delete(k)) removed++;
      ph.sorted = ph.sorted.filter(e => ph.byKey.has(e.key));
    } else {
      removed += ph.byKey.size;
      ph.byKey.clear();
      ph.sorted = [];
    }
    if (!ph.byKey.size) phantoms.delete(b);
  }
  return removed;
}

function isPhantomKey(bucket, key) {
  const ph = bucket && key ? phantoms.get(bucket) : null;
  return !!ph && ph.byKey.has(key);
}

/** The bucket's index with its phantom keys merged in, in byte order; a
 *  phantom key equal to a real one stands in for it. */
function withPhantoms(entries, bucket) {
  const ph = phantoms.get(bucket);
  if (!ph || !ph.sorted.length) return entries;
  const p = ph.sorted;
  const out = new Array(entries.length + p.length);
  let i = 0;
  let j = 0;
  let n = 0;
  while (i < entries.length || j < p.length) {
    const c = i >= entries.length ? 1 : j >= p.length ? -1 : Buffer.compare(entries[i].buf, p[j].buf);
    if (c < 0) out[n++] = entries[i++];
    else {
      if (c === 0) i++;
      out[n++] = p[j++];
    }
  }
  out.length = n;
  return out;
}

/** Size, ETag and mtime of one listed key, read under the key's shared lock
 *  (consistent with a concurrent overwrite); null if it is gone. Synchronous
 *  reads: about 12 us a key here, against 90 us with fs.promises. */
async function listedObject(app, bucket, key) {
  const release = await acquire(lockKey({ bucket, key }), false);
  try {
    const objectPath = app.store.getResourcePath(bucket, key, 'object');
    const st = fs.statSync(objectPath, { throwIfNoEntry: false });
    if (!st || !st.isFile()) return null;
    let md5;
    try {
      md5 = fs.readFileSync(`${objectPath}.md5`, 'utf8').trim();
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
      try { // s3rver computes and stores it
        md5 = JSON.parse((await app.store.getMetadata(bucket, key)).etag);
      } catch (e2) {
        if (e2.code === 'ENOENT') return null;
        throw e2;
      }
    }
    // S3 lists LastModified with whole seconds (".000Z"), like HEAD's date
    const mtime = new Date(Math.floor(st.mtimeMs / 1000) * 1000);
    return { key, size: st.size, etag: `"${md5}"`, mtime: mtime.toISOString() };
  } finally {
    release();
  }
}

/** Fill in entry.meta for the listed entries that lack it, in batches of
 *  100 keys between which other requests get their turn. */
async function fillListedMeta(app, bucket, entries) {
  let n = 0;
  for (const entry of entries) {
    if (entry.meta) continue;
    entry.meta = await listedObject(app, bucket, entry.key);
    if (++n % 100 === 0) await new Promise(resolve => setImmediate(resolve));
  }
}

/** XML text: S3 escapes markup characters, and control characters as
 *  character references (a raw CR would be read back as LF). */
function xmlText(s) {
  return String(s).replace(/[<>&'"\x00-\x08\x0b-\x1f\x7f]/g, c => {
    switch (c) {
      case '<': return '&lt;';
      case '>': return '&gt;';
      case '&': return '&amp;';
      case "'": return '&apos;';
      case '"': return '&quot;';
      default: return `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`;
    }
  });
}

/** encoding-type=url: UTF-8 bytes percent-encoded, space as '+', '/' and
 *  unreserved characters kept. */
function urlEncodeName(s) {
  let out = '';
  for (const b of Buffer.from(String(s), 'utf8')) {
    if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) ||
        b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e || b === 0x2f) {
      out += String.fromCharCode(b);
    } else if (b === 0x20) {
      out += '+';
    } else {
      out += `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
    }
  }
  return out;
}

const encodeToken = (bucket, last) =>
  Buffer.from(`${TOKEN_TAG}\n${bucket}\n${last}`, 'utf8').toString('base64');

function decodeToken(bucket, token) {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(token)) return null;
  const buf = Buffer.from(token, 'base64');
  if (buf.toString('base64') !== token) return null;
  const s = buf.toString('utf8');
  const head = `${TOKEN_TAG}\n${bucket}\n`;
  return s.startsWith(head) && s.length > head.length ? s.slice(head.length) : null;
}

/**
 * One page of a listing: keys after `after` (exclusive; '' = from the start)
 * that start with `prefix`, rolled up at `delimiter` into common prefixes,
 * each listed once, at most maxKeys items (keys + prefixes) in byte order.
 */
function listPage(entries, { prefix, delimiter, after, maxKeys }) {
  const prefixBuf = Buffer.from(prefix, 'utf8');
  const afterBuf = after ? Buffer.from(after, 'utf8') : null;
  let i = lowerBound(entries, prefixBuf, false);
  if (afterBuf) i = Math.max(i, lowerBound(entries, afterBuf, true));
  const items = [];
  let truncated = false;
  while (i < entries.length) {
    const e = entries[i];
    if (!startsWithBuf(e.buf, prefixBuf)) break;
    let item;
    const d = delimiter ? e.key.indexOf(delimiter, prefix.length) : -1;
    if (d >= 0) {
      const cp = e.key.slice(0, d + delimiter.length);
      const cpBuf = Buffer.from(cp, 'utf8');
      const end = prefixEnd(cpBuf);
      i = end ? lowerBound(entries, end, false) : entries.length; // past the group
      if (afterBuf && Buffer.compare(cpBuf, afterBuf) <= 0) continue; // already listed
      item = { prefix: cp };
    } else {
      item = { entry: e };
      i++;
    }
    if (items.length >= maxKeys) {
      truncated = true;
      break;
    }
    items.push(item);
  }
  return { items, truncated };
}

function queryParams(rawQuery) {
  const q = new Map();
  for (const p of sigv4.parseRawQuery(rawQuery)) if (!q.has(p.name)) q.set(p.name, p.value);
  return q;
}

async function listObjectsV2(ctx, rec, app) {
  const info = rec.info;
  const bucket = info.bucket;
  const q = queryParams(info.rawQuery);
  const invalid = (message, name, value) => {
    const detail = { ArgumentName: name };
    if (value !== undefined) detail.ArgumentValue = value;
    sendError(ctx, rec, 400, 'InvalidArgument', message, detail);
  };
  let maxKeys = LIST_MAX_KEYS;
  let maxKeysEcho = String(LIST_MAX_KEYS);
  if (q.has('max-keys')) {
    const v = q.get('max-keys');
    if (!/^-?\d+$/.test(v) || Math.abs(Number(v)) > 2147483647) {
      return invalid('Provided max-keys not an integer or within integer range', 'max-keys', v);
    }
    if (Number(v) < 0) {
      return invalid('Argument maxKeys must be an integer between 0 and 2147483647',
        'maxKeys', v);
    }
    maxKeys = Math.min(LIST_MAX_KEYS, Number(v));
    maxKeysEcho = String(Number(v)); // S3 echoes the requested value
  }
  const encodingType = q.get('encoding-type');
  if (encodingType !== undefined && encodingType !== 'url') {
    return invalid('Invalid Encoding Method specified in Request', 'encoding-type', encodingType);
  }
  if (q.has('marker')) {
    return invalid('Marker unsupported with REST.GET.BUCKET in list-type=2', 'marker');
  }
  if (!(await app.store.getBucket(bucket))) {
    return sendError(ctx, rec, 404, 'NoSuchBucket', 'The specified bucket does not exist',
      { BucketName: bucket });
  }
  const prefix = q.get('prefix') || '';
  const delimiter = q.get('delimiter') || '';
  const startAfter = q.get('start-after') || '';
  const token = q.get('continuation-token');
  let after = startAfter; // S3 ignores start-after when a token is given
  if (token !== undefined && token.startsWith(HOSTILE_TOKEN)) {
    after = ''; // a hostile listing starts over
  } else if (token !== undefined) {
    after = decodeToken(bucket, token);
    if (after === null) {
      return invalid('The continuation token provided is incorrect', 'continuation-token');
    }
  }

  const entries = maxKeys > 0 ? withPhantoms(await getKeyIndex(app, bucket), bucket) : [];
  const page = listPage(entries, { prefix, delimiter, after, maxKeys });
  const items = page.items;
  let truncated = page.truncated;
  const last = items.length ? items[items.length - 1] : null;
  let next = truncated ? encodeToken(bucket, last.prefix !== undefined ? last.prefix : last.entry.key) : null;
  // size/ETag/mtime: remembered in the index entry once read (a write to the
  // key replaces the entry, so they are never stale; during an overwrite the
  // previous version is listed, as on S3)
  const listed = items.filter(it => it.entry).map(it => it.entry);
  await fillListedMeta(app, bucket, listed);
  const objects = listed.map(e => e.meta).filter(Boolean);
  const prefixes = items.filter(it => it.prefix !== undefined).map(it => it.prefix);
  const extra = hostileNames(prefix);
  objects.push(...extra.objects);
  prefixes.push(...extra.prefixes);
  if (hostileOn('constant_etag', prefix)) {
    for (let i = 0; i < objects.length; i++) objects[i] = { ...objects[i], etag: HOSTILE_ETAG };
  }
  const endless = hostileToken(prefix);
  if (endless !== undefined) {
    truncated = true;
    next = endless;
  }

  const name = encodingType ? urlEncodeName : (s => s);
  const el = (tag, v) => `<${tag}>${xmlText(v)}</${tag}>`;
  const owner = q.get('fetch-owner') === 'true'
    ? `<Owner>${el('ID', DUMMY_ACCOUNT.id)}${el('DisplayName', DUMMY_ACCOUNT.displayName)}</Owner>`
    : '';
  const parts = [
    '<?xml version="1.0" encoding="UTF-8"?>\n',
    `<ListBucketResult xmlns="${S3_XMLNS}">`,
    el('Name', bucket),
    el('Prefix', name(prefix)),
  ];
  if (token !== undefined) parts.push(el('ContinuationToken', token));
  if (next) parts.push(el('NextContinuationToken', next));
  parts.push(el('KeyCount', objects.length + prefixes.length), el('MaxKeys', maxKeysEcho));
  if (delimiter) parts.push(el('Delimiter', name(delimiter)));
  parts.push(el('IsTruncated', truncated ? 'true' : 'false'));
  if (encodingType) parts.push(el('EncodingType', encodingType));
  if (startAfter) parts.push(el('StartAfter', name(startAfter)));
  for (const o of objects) {
    parts.push('<Contents>', el('Key', name(o.key)), el('LastModified', o.mtime),
      el('ETag', o.etag), el('Size', o.size), owner, '<StorageClass>STANDARD</StorageClass>',
      '</Contents>');
  }
  for (const p of prefixes) parts.push('<CommonPrefixes>', el('Prefix', name(p)), '</CommonPrefixes>');
  parts.push('</ListBucketResult>');
  ctx.status = 200;
  ctx.set('Content-Type', 'application/xml');
  ctx.body = parts.join('');
  return undefined;
}

// ---- the front-end middleware

function beginRecord(ctx) {
  const req = ctx.req;
  const info = classify(req.method, req.url, req.headers);
  const rec = {
    id: crypto.randomBytes(8).toString('hex').toUpperCase(),
    seq: ++seq,
    info,
    start: Date.now(),
    auth: null,
    fault: null,
    error: null,
    bytesIn: 0,
    bytesOut: 0,
    partial: false,
    release: null,
    closed: false,
  };
  noteAmzHeaders(info, req.headers);
  counters.total++;
  counters[info.type]++;
  inc(counters.ops, info.op);
  inFlight++;
  if (inFlight > counters.max_in_flight) counters.max_in_flight = inFlight;
  ctx.res.once('close', () => endRecord(ctx, rec));
  return rec;
}

function endRecord(ctx, rec) {
  rec.closed = true;
  inFlight--;
  if (rec.release) rec.release();
  const res = ctx.res;
  const complete = res.writableFinished && !rec.partial;
  const status = res.headersSent ? res.statusCode : 0;
  if (complete) {
    const cl = Number(res.getHeader('content-length'));
    if (Number.isFinite(cl) && ctx.method !== 'HEAD') rec.bytesOut = cl;
  } else {
    counters.incomplete_responses++;
  }
  inc(counters.status, status ? String(status) : 'none');
  counters.bytes_out += rec.bytesOut;
  counters.bytes_in += rec.bytesIn;
  const info = rec.info;
  if (info.key !== null && info.key !== '') {
    const k = `${info.bucket}/${info.key}`;
    let kc = counters.keys[k];
    if (!kc) {
      if (Object.keys(counters.keys).length >= KEYS_MAX) {
        counters.keys_truncated = true;
      } else {
        kc = counters.keys[k] = {};
      }
    }
    if (kc) {
      inc(kc, info.type);
      inc(kc, 'bytes_out', rec.bytesOut);
      inc(kc, 'bytes_in', rec.bytesIn);
    }
  }
  requestLog.push({
    seq: rec.seq,
    t_ms: rec.start - startTime,
    ms: Date.now() - rec.start,
    method: ctx.method,
    op: info.op,
    bucket: info.bucket || null,
    key: info.key,
    query: info.rawQuery || undefined,
    range: ctx.req.headers.range,
    status,
    complete,
    bytes_in: rec.bytesIn,
    bytes_out: rec.bytesOut,
    auth: rec.auth,
    fault: rec.fault,
    error: rec.error,
  });
  if (requestLog.length > LOG_MAX) requestLog.splice(0, requestLog.length - LOG_MAX);
}

function makeFront(app) {
  return async function front(ctx, next) {
    const rec = beginRecord(ctx);
    const info = rec.info;
    const origReq = ctx.req;
    ctx.set('x-amz-request-id', rec.id);
    ctx.set('x-amz-id-2', rec.id);

    // 1. authentication
    const auth = sigv4.verify(origReq, {
      getSecret: k => CREDENTIALS.get(k),
      maxSkewMs: opts.maxSkewS * 1000,
      region: opts.region,
    });
    let authError = null;
    if (!auth.ok) {
      authError = [auth.status, auth.code, auth.message, auth.detail];
      log(`${auth.status} ${auth.code} ${origReq.method} ${origReq.url}: ${auth.message}` +
        (auth.canonicalRequest !== undefined
          ? `\n--- canonical request (server side):\n${auth.canonicalRequest}\n` +
            `--- string to sign:\n${auth.stringToSign}\n---` : ''));
    } else if (auth.anonymous) {
      rec.auth = 'anonymous';
      if (!(info.bucket && settings.publicBuckets.has(info.bucket) &&
            READ_METHODS.has(origReq.method))) {
        authError = [403, 'AccessDenied', 'Access Denied', {}];
        log(`403 AccessDenied ${origReq.method} ${origReq.url}: anonymous request ` +
          '(no Authorization header or X-Amz-Signature) to a non-public bucket');
      }
    } else {
      rec.auth = auth.mode;
      if (/^STREAMING-/.test(auth.payloadHash)) {
        authError = [501, 'NotImplemented',
          `${auth.payloadHash} (aws-chunked) uploads are not supported by this ` +
            'test server; send UNSIGNED-PAYLOAD or the hex SHA-256 of the body', {}];
      }
    }
    const owner = origReq.headers['x-amz-expected-bucket-owner'];
    if (!authError && owner !== undefined && owner !== opts.bucketOwner) {
      authError = [403, 'AccessDenied', 'Access Denied', {}];
      log(`403 AccessDenied ${origReq.method} ${origReq.url}: expected bucket owner ` +
        `${owner}, the owner is ${opts.bucketOwner}`);
    }
    if (authError) {
      if (authError[1] !== 'NotImplemented') counters.auth.rejected++;
      rec.auth = rec.auth || 'rejected';
      await latencyDelay();
      sendError(ctx, rec, ...authError);
      return;
    }
    counters.auth[rec.auth]++;

    // 2. body: spool, check x-amz-content-sha256 and Content-MD5
    let spool = null;
    let processed = false; // handed to s3rver (or answered as ListObjectsV2)
    const claimed = auth.payloadHash ||
      (origReq.headers['x-amz-content-sha256'] || '').trim();
    const claimedHex = /^[0-9a-fA-F]{64}$/.test(claimed);
    const md5h = origReq.headers['content-md5'];
    // reset_body cuts a request body short: decided before receiving it
    let early;
    if (hasBody(origReq) && faults.cfg.kinds.includes('reset_body')) {
      early = faults.decide(info);
      if (early === 'reset_body') {
        rec.fault = early;
        inc(counters.faults, early);
        ctx.respond = false;
        rec.bytesIn = await receivePart(origReq, faults.cfg.reset_fraction);
        hardClose(origReq.socket, faults.cfg.reset_mode);
        return;
      }
    }
    if (hasBody(origReq)) {
      try {
        spool = await spoolBody(origReq, { wantSha256: claimedHex, wantMd5: md5h !== undefined });
      } catch (e) {
        rec.error = 'ClientAbort';
        ctx.respond = false;
        hardClose(origReq.socket, 'fin');
        return;
      }
      rec.bytesIn = spool.size;
    }
    try {
      const bodySha = spool ? spool.sha256 : sigv4.EMPTY_SHA256;
      if (claimedHex && claimed.toLowerCase() !== bodySha) {
        await latencyDelay();
        sendError(ctx, rec, 400, 'XAmzContentSHA256Mismatch',
          "The provided 'x-amz-content-sha256' header does not match what was computed.",
          { ClientComputedContentSHA256: claimed, S3ComputedContentSHA256: bodySha });
        return;
      }
      if (md5h !== undefined) {
        const want = Buffer.from(md5h.trim(), 'base64');
        const got = spool ? spool.md5 : crypto.createHash('md5').digest();
        if (want.length !== 16 || want.toString('base64') !== md5h.trim()) {
          await latencyDelay();
          sendError(ctx, rec, 400, 'InvalidDigest',
            'The Content-MD5 you specified was invalid.', { 'Content-MD5': md5h });
          return;
        }
        if (!want.equals(got)) {
          await latencyDelay();
          sendError(ctx, rec, 400, 'BadDigest',
            'The Content-MD5 you specified did not match what we received.',
            { ExpectedDigest: md5h, CalculatedDigest: got.toString('base64') });
          return;
        }
      }
      if (spool) installReplay(ctx, spool);
      // S3 reads '+' in a path as a space; s3rver would keep it as '+'.
      if (info.rawPath.includes('+')) {
        ctx.req.url = info.rawPath.replace(/\+/g, '%20') +
          (info.rawQuery || ctx.req.url.includes('?') ? '?' + info.rawQuery : '');
      }

      // 3. latency
      await latencyDelay();

      // 4. faults decided before the request is processed
      const fault = early !== undefined ? early : faults.decide(info);
      let after = null;
      if (fault) {
        rec.fault = fault;
        inc(counters.faults, fault);
        const c = faults.cfg;
        const sock = origReq.socket;
        switch (fault) {
          case '500':
            sendError(ctx, rec, 500, 'InternalError',
              'We encountered an internal error. Please try again.');
            return;
          case '503':
            sendError(ctx, rec, 503, 'SlowDown', 'Please reduce your request rate.');
            return;
          case '403':
            sendError(ctx, rec, 403, 'AccessDenied', 'Access Denied');
            return;
          case 'stall':
            ctx.respond = false;
            await stall(sock, c.stall_ms);
            hardClose(sock, c.reset_mode);
            return;
          case 'reset_before':
            ctx.respond = false;
            hardClose(sock, c.reset_mode);
            return;
          case 'reset':
          case 'reset_body':
          case 'stall_body':
            if (origReq.method === 'GET') {
              after = fault;
              break;
            }
            ctx.respond = false;
            if (fault === 'stall_body') await stall(sock, c.stall_ms);
            hardClose(sock, c.reset_mode);
            return;
          case 'reset_after':
          case 'short_body':
            after = fault;
            break;
        }
      }

      // 5. object lock, S3 precondition fixes, then s3rver (phantom keys:
      // GET/HEAD answered 404 here, whatever s3rver's store holds at the
      // path the name collapses to)
      const objectRead = info.op === 'GetObject' || info.op === 'HeadObject';
      const phantom = objectRead && isPhantomKey(info.bucket, info.key);
      if (!phantom && info.key && (SHARED_OPS.has(info.op) || EXCLUSIVE_OPS.has(info.op))) {
        const release = await acquire(lockKey(info), EXCLUSIVE_OPS.has(info.op));
        rec.release = release;
        if (rec.closed) release();
      }
      if (objectRead && hostile.modes.has('constant_etag')) {
        delete ctx.req.headers['if-match']; // a store whose ETags mean nothing
        delete ctx.req.headers['if-none-match'];
      }
      if (objectRead && !phantom && !(await preconditions(ctx, rec, app))) {
        return;
      }
      processed = true;
      if (info.op === 'ListObjectsV2') await listObjectsV2(ctx, rec, app);
      else if (phantom) {
        sendError(ctx, rec, 404, 'NoSuchKey', 'The specified key does not exist.',
          { Key: info.key });
      } else if (info.op === 'UploadPartCopy') {
        await uploadPartCopy(ctx, rec, app, next);
      } else await next();
      if (info.op === 'CopyObject') await copyStorageClass(ctx, app, info);
      if (rec.firstByteOf !== undefined) trimToFirstByte(ctx, rec.firstByteOf);
      if (objectRead && !phantom && hostile.modes.size) await hostileAnswer(ctx, info);

      // 6. faults applied after processing
      if (after === 'short_body') {
        await shortBody(ctx);
      } else if (after === 'reset_after') {
        ctx.respond = false;
        if (ctx.body && typeof ctx.body.destroy === 'function') ctx.body.destroy();
        hardClose(origReq.socket, faults.cfg.reset_mode);
      } else if (after) {
        await partialBody(ctx, rec, after);
      }
    } finally {
      if (spool) spool.cleanup();
      if (processed && WRITE_METHODS.has(origReq.method)) noteWrite(app, info, ctx.status);
    }
  };
}

/** S3 gives a copy the storage class its request names (STANDARD when
 *  none), even when the metadata is copied; s3rver keeps the source's. */
async function copyStorageClass(ctx, app, info) {
  const cls = ctx.req.headers['x-amz-storage-class'];
  if (ctx.status !== 200 || ctx.req.headers['x-amz-metadata-directive'] === 'REPLACE') return;
  const meta = await app.store.getMetadata(info.bucket, info.key);
  if (cls && cls !== 'STANDARD') meta['x-amz-storage-class'] = cls;
  else delete meta['x-amz-storage-class'];
  await app.store.putMetadata(info.bucket, info.key, meta);
}

/** UploadPartCopy, which s3rver lacks: the source range (read from s3rver's
 *  store) becomes the body of an UploadPart, and the answer a CopyPartResult. */
async function uploadPartCopy(ctx, rec, app, next) {
  const req = ctx.req;
  let src = decodeURIComponent(String(req.headers['x-amz-copy-source'] || '').split('?')[0]);
  if (src.startsWith('/')) src = src.slice(1);
  const slash = src.indexOf('/');
  const srcKey = src.slice(slash + 1);
  const file = slash > 0 ? app.store.getResourcePath(src.slice(0, slash), srcKey, 'object') : '';
  const st = file ? fs.statSync(file, { throwIfNoEntry: false }) : null;
  if (!st || !st.isFile()) {
    sendError(ctx, rec, 404, 'NoSuchKey', 'The specified key does not exist.', { Key: srcKey });
    return;
  }
  let start = 0;
  let end = st.size - 1;
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers['x-amz-copy-source-range'] || '');
  if (m) {
    start = Number(m[1]);
    end = Number(m[2]);
    if (start > end || end >= st.size) {
      sendError(ctx, rec, 416, 'InvalidRange', 'The requested range is not satisfiable');
      return;
    }
  }
  const data = Buffer.alloc(end - start + 1);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, data, 0, data.length, start);
  } finally {
    fs.closeSync(fd);
  }
  delete req.headers['x-amz-copy-source'];
  delete req.headers['x-amz-copy-source-range'];
  req.headers['content-length'] = String(data.length);
  installReplay(ctx, { chunks: [data], file: null, size: data.length });
  await next();
  if (ctx.status === 200) {
    const etag = ctx.response.get('ETag');
    ctx.remove('ETag');
    ctx.type = 'application/xml';
    ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<CopyPartResult><LastModified>' +
      new Date().toISOString() + '</LastModified><ETag>' + etag.replace(/"/g, '&quot;') +
      '</ETag></CopyPartResult>';
  }
}

// ---------------------------------------------------------------- control API

function readAll(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', c => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function configView() {
  return {
    port: s3Port,
    control_port: controlPort,
    pid: process.pid,
    dir: dataDir,
    buckets: opts.buckets,
    public_buckets: [...settings.publicBuckets],
    latency: { ms: settings.latencyMs, jitter_ms: settings.latencyJitterMs },
    faults: faults.state(),
    region: opts.region,
  };
}

function truthy(v) {
  return v === true || v === 1 || /^(1|true|yes|on)$/i.test(String(v));
}

async function control(req, res) {
  const send = (status, obj) => {
    const s = JSON.stringify(obj, null, 1) + '\n';
    res.writeHead(status, { 'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(s) });
    res.end(s);
  };
  try {
    const u = new URL(req.url, 'http://control');
    const text = await readAll(req);
    let body = {};
    if (text.trim()) body = JSON.parse(text);
    const p = { ...Object.fromEntries(u.searchParams), ...body };
    const route = `${req.method} ${u.pathname.replace(/\/+$/, '') || '/'}`;
    switch (route) {
      case 'GET /':
      case 'GET /health':
        return send(200, { ok: true, pid: process.pid, port: s3Port });
      case 'GET /config':
        return send(200, configView());
      case 'GET /counters': {
        const v = countersView(truthy(p.keys));
        if (truthy(p.reset)) resetCounters();
        return send(200, v);
      }
      case 'POST /counters/reset':
      case 'POST /reset':
      case 'DELETE /counters': {
        const v = countersView(truthy(p.keys));
        resetCounters();
        return send(200, v);
      }
      case 'GET /amz-headers':
        if (p.header !== undefined) {
          return send(200, amzHeaderMatches(String(p.header), String(p.value || '')));
        }
        return send(200, amzHeaders);
      case 'GET /log': {
        const n = p.n !== undefined ? Number(p.n) : 1000;
        return send(200, requestLog.slice(-Math.max(0, n)));
      }
      case 'GET /faults':
        return send(200, faults.state());
      case 'POST /faults':
      case 'PUT /faults':
        faults.set(normalizeFaults(p));
        return send(200, faults.state());
      case 'POST /faults/clear':
      case 'DELETE /faults':
        faults.clear();
        return send(200, faults.state());
      case 'GET /latency':
        return send(200, { ms: settings.latencyMs, jitter_ms: settings.latencyJitterMs });
      case 'POST /latency':
      case 'PUT /latency': {
        if (p.ms !== undefined) settings.latencyMs = Math.max(0, Number(p.ms) || 0);
        if (p.jitter_ms !== undefined) settings.latencyJitterMs = Math.max(0, Number(p.jitter_ms) || 0);
        return send(200, { ms: settings.latencyMs, jitter_ms: settings.latencyJitterMs });
      }
      case 'GET /hostile':
        return send(200, hostileView());
      case 'POST /hostile':
      case 'PUT /hostile':
        setHostile(p);
        return send(200, hostileView());
      case 'POST /hostile/clear':
      case 'DELETE /hostile':
        setHostile({});
        return send(200, hostileView());
      case 'GET /public':
        return send(200, { public_buckets: [...settings.publicBuckets] });
      case 'POST /public':
      case 'PUT /public': {
        if (!p.bucket) return send(400, { error: 'bucket is required' });
        if (p.public === undefined || truthy(p.public)) settings.publicBuckets.add(String(p.bucket));
        else settings.publicBuckets.delete(String(p.bucket));
        return send(200, { public_buckets: [...settings.publicBuckets] });
      }
      case 'GET /list-index':
        return send(200, listIndexView());
      case 'POST /list-index/clear':
      case 'DELETE /list-index':
        dropKeyIndexes();
        return send(200, listIndexView());
      case 'GET /phantom':
        return send(200, phantomView(p.bucket !== undefined ? String(p.bucket) : undefined));
      case 'POST /phantom':
      case 'PUT /phantom': {
        if (p.bucket === undefined || p.bucket === '') return send(400, { error: 'bucket is required' });
        const bucket = String(p.bucket);
        const keys = phantomKeyList(p.keys);
        const size = p.size === undefined || p.size === '' ? 0 : Number(p.size);
        if (!Number.isSafeInteger(size) || size < 0) {
          return send(400, { error: `size must be a non-negative integer, got ${p.size}` });
        }
        if (!(await app.store.getBucket(bucket))) {
          return send(404, { error: `no such bucket: ${bucket}` });
        }
        const added = addPhantoms(bucket, keys, size);
        return send(200, { added, ...phantomView() });
      }
      case 'DELETE /phantom':
      case 'POST /phantom/clear': {
        const bucket = p.bucket !== undefined && p.bucket !== '' ? String(p.bucket) : undefined;
        let keys = null;
        if (p.keys !== undefined) {
          if (bucket === undefined) return send(400, { error: 'keys needs a bucket' });
          keys = phantomKeyList(p.keys);
        }
        const removed = removePhantoms(bucket, keys);
        return send(200, { removed, ...phantomView() });
      }
      case 'POST /shutdown':
        send(200, { ok: true });
        setImmediate(() => shutdown('control'));
        return undefined;
      default:
        return send(404, { error: `no such endpoint: ${route}`, endpoints: [
          'GET /health', 'GET /config', 'GET /counters[?keys=1][&reset=1]',
          'POST /counters/reset', 'GET /log[?n=N]', 'GET /faults',
          'POST /faults {rate,count,after,kinds,methods,prefix,bucket,seed,' +
            'stall_ms,reset_fraction,reset_mode,pick}', 'DELETE /faults',
          'GET /latency', 'POST /latency {ms,jitter_ms}', 'GET /public',
          'POST /public {bucket,public}', 'GET /list-index', 'POST /list-index/clear',
          'GET /phantom[?bucket=B]', 'POST /phantom {bucket,keys,size}',
          'DELETE /phantom[?bucket=B] [{keys}]', 'GET /amz-headers[?header=H&value=V]',
          'GET /hostile',
          'POST /hostile {modes,prefix,trickle_bps}', 'DELETE /hostile',
          'POST /shutdown'] });
    }
  } catch (e) {
    return send(400, { error: e.message });
  }
}

// ---------------------------------------------------------------- start/stop

let dataDir = opts.dir;
let dataDirIsTemp = false;
let s3Port = null;
let controlPort = null;
let app = null;
let controlServer = null;
let stopping = false;

function writeReady(obj) {
  const line = JSON.stringify(obj);
  if (opts.readyFile) {
    const tmp = `${opts.readyFile}.tmp.${process.pid}`;
    fs.writeFileSync(tmp, line + '\n');
    fs.renameSync(tmp, opts.readyFile);
  }
  process.stdout.write(line + '\n');
}

async function main() {
  if (!dataDir) {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 's3-test-data-'));
    dataDirIsTemp = true;
  }
  fs.mkdirSync(dataDir, { recursive: true });
  if (!spoolDir) {
    spoolDir = fs.mkdtempSync(path.join(os.tmpdir(), 's3-test-spool-'));
    spoolDirIsTemp = true;
  }
  fs.mkdirSync(spoolDir, { recursive: true });

  app = new S3rver({
    address: opts.host,
    port: opts.port,
    directory: dataDir,
    silent: opts.silent,
    vhostBuckets: false,
    configureBuckets: opts.buckets.map(name => ({ name })),
  });
  app.on('error', (err, ctx) => {
    if (['EPIPE', 'ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE'].includes(err.code)) return;
    if (err.status && err.status < 500) return;
    log(`s3rver error${ctx ? ` on ${ctx.method} ${ctx.url}` : ''}: ${err.stack || err}`);
  });
  app.middleware.unshift(makeFront(app));

  const addr = await app.run();
  s3Port = addr.port;
  if (opts.keepAliveMs !== null) app.httpServer.keepAliveTimeout = opts.keepAliveMs;
  app.httpServer.requestTimeout = 0; // big uploads / stalls are ours to time
  app.httpServer.on('clientError', (err, socket) => {
    if (socket.writable && err.code !== 'ECONNRESET') {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    } else {
      socket.destroy();
    }
  });

  controlServer = http.createServer((req, res) => { control(req, res); });
  await new Promise((resolve, reject) => {
    controlServer.once('error', reject);
    controlServer.listen(opts.controlPort, '127.0.0.1', resolve);
  });
  controlPort = controlServer.address().port;

  writeReady({ port: s3Port, control_port: controlPort, pid: process.pid,
    endpoint: `http://${opts.host}:${s3Port}`, dir: dataDir });
  log(`listening on http://${opts.host}:${s3Port}, control http://127.0.0.1:${controlPort}, ` +
    `data ${dataDir}, buckets [${opts.buckets.join(', ')}]`);
}

function shutdown(why) {
  if (stopping) return;
  stopping = true;
  log(`stopping (${why})`);
  setTimeout(() => process.exit(0), 3000).unref();
  for (const done of [...stalls]) done();
  const closers = [];
  for (const srv of [app && app.httpServer, controlServer]) {
    if (!srv) continue;
    closers.push(new Promise(r => srv.close(() => r())));
    if (srv.closeAllConnections) srv.closeAllConnections();
  }
  Promise.all(closers).finally(() => {
    try {
      if (spoolDirIsTemp) fs.rmSync(spoolDir, { recursive: true, force: true });
      if (dataDirIsTemp) fs.rmSync(dataDir, { recursive: true, force: true });
    } catch (e) { /* best effort */ }
    process.exit(0);
  });
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGHUP', () => shutdown('SIGHUP'));
process.on('uncaughtException', err => {
  console.error(PREFIX, 'uncaught exception (continuing):', err && err.stack);
});
process.on('unhandledRejection', err => {
  console.error(PREFIX, 'unhandled rejection (continuing):', err && (err.stack || err));
});

main().catch(err => {
  console.error(PREFIX, 'failed to start:', err && (err.stack || err));
  process.exit(1);
});
