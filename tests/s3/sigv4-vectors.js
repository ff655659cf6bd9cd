'use strict';
// Runs the verifier in sigv4.js against the official AWS SigV4 test suite
// (../shared/testdata/aws-sigv4-test-suite/v4 by default, or argv[2]).
// Both the header-signed and the query-signed (presigned) form of every case
// must verify, and the canonical request / string to sign must match the
// suite's text byte for byte. Cases that need path normalisation (which S3
// never does) are skipped: S3 signs the path exactly as sent. So is
// post-sts-header-after, where the session token is added after signing: S3
// needs every x-amz-* header (and the presigned token) signed.
//
// Usage: node tests/s3/sigv4-vectors.js [SUITE_DIR]   (exit 1 on failure)

const fs = require('fs');
const path = require('path');
const sigv4 = require('./sigv4');

const dir =
  process.argv[2] ||
  path.resolve(__dirname, '../../../shared/testdata/aws-sigv4-test-suite/v4');

if (!fs.existsSync(dir)) {
  console.log(`sigv4-vectors: suite not found at ${dir}; skipped`);
  process.exit(0);
}

/** Parse a raw HTTP request text (latin1, LF or CRLF) the way Node would. */
function parseRequest(text) {
  const sep = text.search(/\r?\n\r?\n/);
  const head = sep < 0 ? text : text.slice(0, sep);
  const body = sep < 0 ? '' : text.slice(sep).replace(/^\r?\n\r?\n/, '');
  const lines = head.split(/\r?\n/);
  const m = /^(\S+) (.*) HTTP\/1\.1$/.exec(lines[0]);
  const rawHeaders = [];
  for (const line of lines.slice(1)) {
    if (/^[ \t]/.test(line) && rawHeaders.length) {
      rawHeaders[rawHeaders.length - 1] += ' ' + line.trim(); // obs-fold
      continue;
    }
    const c = line.indexOf(':');
    rawHeaders.push(line.slice(0, c), line.slice(c + 1).trim());
  }
  return { method: m[1], url: m[2], rawHeaders, body: Buffer.from(body, 'latin1') };
}

function read(d, f) {
  const p = path.join(d, f);
  return fs.existsSync(p) ? fs.readFileSync(p, 'latin1') : null;
}

let passed = 0;
let failed = 0;
let skipped = 0;
const needsNormalisation = /-normalized$/;

for (const name of fs.readdirSync(dir).sort()) {
  const d = path.join(dir, name);
  if (!fs.statSync(d).isDirectory()) continue;
  const ctxJson = JSON.parse(read(d, 'context.json'));
  if (name === 'post-sts-header-after') {
    skipped++;
    continue;
  }
  if (ctxJson.normalize && needsNormalisation.test(name) &&
      read(d, 'request.txt').split('\n')[0].match(/\/\.|\/\/|\.\./)) {
    skipped++;
    continue;
  }
  const creds = ctxJson.credentials;
  const now = Date.parse(ctxJson.timestamp);
  for (const form of ['header', 'query']) {
    const signed = read(d, `${form}-signed-request.txt`);
    if (signed === null) continue;
    const req = parseRequest(signed);
    const bodyHash = sigv4.sha256hex(req.body);
    const res = sigv4.verify(req, {
      getSecret: k => (k === creds.access_key_id ? creds.secret_access_key : undefined),
      now,
      service: ctxJson.service,
      region: ctxJson.region,
      missingPayloadHash: bodyHash,
      presignedPayloadHash: bodyHash,
      allowUnsignedAmzHeaders: false,
    });
    const wantCreq = read(d, `${form}-canonical-request.txt`);
    const wantSts = read(d, `${form}-string-to-sign.txt`);
    const problems = [];
    if (!res.ok) problems.push(`verify: ${res.code}: ${res.message}`);
    if (res.canonicalRequest !== undefined && wantCreq !== null &&
        res.canonicalRequest !== wantCreq) {
      problems.push(`canonical request differs:\n--- got\n${res.canonicalRequest}\n--- want\n${wantCreq}`);
    }
    if (res.stringToSign !== undefined && wantSts !== null && res.stringToSign !== wantSts) {
      problems.push(`string to sign differs:\n--- got\n${res.stringToSign}\n--- want\n${wantSts}`);
    }
    // A corrupted signature must be rejected.
    const tampered = JSON.parse(JSON.stringify(req));
    tampered.url = tampered.url.replace(/X-Amz-Signature=([0-9a-f])/,
      (s, c) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`);
    for (let i = 0; i < tampered.rawHeaders.length; i += 2) {
      if (tampered.rawHeaders[i].toLowerCase() === 'authorization') {
        tampered.rawHeaders[i + 1] = tampered.rawHeaders[i + 1].replace(
          /Signature=([0-9a-f])/, (s, c) => `Signature=${c === '0' ? '1' : '0'}`);
      }
    }
    const bad = sigv4.verify(tampered, {
      getSecret: k => (k === creds.access_key_id ? creds.secret_access_key : undefined),
      now, service: ctxJson.service, region: ctxJson.region,
      missingPayloadHash: bodyHash, presignedPayloadHash: bodyHash,
    });
    if (bad.ok || bad.code !== 'SignatureDoesNotMatch') {
      problems.push(`tampered signature not rejected (${bad.code})`);
    }
    if (problems.length) {
      failed++;
      console.log(`FAIL ${name} [${form}]\n  ${problems.join('\n  ')}`);
    } else {
      passed++;
    }
  }
}

console.log(`sigv4-vectors: ${passed} passed, ${failed} failed, ${skipped} skipped (not S3 rules)`);
process.exit(failed ? 1 : 0);
