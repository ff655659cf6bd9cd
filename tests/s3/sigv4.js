'use strict';
// Strict AWS Signature Version 4 verification for S3 requests, written for the
// chunkfs test server (server.js). Only Node's crypto is used.
//
// The canonical request is rebuilt from the request exactly as it came off the
// wire (the raw request-target, not a decoded/normalised path):
//   * path: split on '/', each segment percent-decoded to bytes ('+' taken as a
//     space, as S3 does in paths) and re-encoded once: RFC 3986 unreserved
//     characters (A-Z a-z 0-9 - . _ ~) kept, every other byte as %XX uppercase.
//     No '.'/'..' resolution, no merging of '//'.
//   * query: split on '&', each name/value percent-decoded ('+' = space) and
//     re-encoded the same way, sorted by name then value, valueless params as
//     'name='. For presigned URLs X-Amz-Signature is left out.
//   * headers: the SignedHeaders list, values from the raw header lines; each
//     value trimmed with inner whitespace runs collapsed to one space; repeated
//     headers joined with ','.
//   * payload: the x-amz-content-sha256 header (header auth) or UNSIGNED-PAYLOAD
//     (presigned, unless X-Amz-Content-Sha256 is in the query).

const crypto = require('crypto');

const EMPTY_SHA256 =
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const ALGORITHM = 'AWS4-HMAC-SHA256';
const HEX = '0123456789ABCDEF';

function isUnreservedByte(b) {
  return (
    (b >= 0x41 && b <= 0x5a) || // A-Z
    (b >= 0x61 && b <= 0x7a) || // a-z
    (b >= 0x30 && b <= 0x39) || // 0-9
    b === 0x2d || b === 0x2e || b === 0x5f || b === 0x7e // - . _ ~
  );
}

/** URI-encode a byte buffer per SigV4: unreserved kept, rest %XX uppercase. */
function uriEncodeBytes(buf) {
  let out = '';
  for (const b of buf) {
    if (isUnreservedByte(b)) out += String.fromCharCode(b);
    else out += '%' + HEX[b >> 4] + HEX[b & 15];
  }
  return out;
}

function hexVal(c) {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * Percent-decode a string taken from the raw request-target into bytes.
 * Node hands us the request-target as a latin1 string (one char per wire
 * byte), so chars < 256 are taken as bytes; anything above is UTF-8 encoded.
 * Malformed escapes are kept literally (the '%' then encodes as %25).
 */
function percentDecode(str, plusIsSpace) {
  const bytes = [];
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i);
    if (c === 0x25 && i + 2 < str.length) {
      const h = hexVal(str.charCodeAt(i + 1));
      const l = hexVal(str.charCodeAt(i + 2));
      if (h >= 0 && l >= 0) {
        bytes.push(h * 16 + l);
        i += 2;
        continue;
      }
    }
    if (c === 0x2b && plusIsSpace) bytes.push(0x20);
    else if (c < 256) bytes.push(c);
    else for (const b of Buffer.from(str[i], 'utf8')) bytes.push(b);
  }
  return Buffer.from(bytes);
}

function splitUrl(rawUrl) {
  const q = rawUrl.indexOf('?');
  return q < 0
    ? { rawPath: rawUrl, rawQuery: '' }
    : { rawPath: rawUrl.slice(0, q), rawQuery: rawUrl.slice(q + 1) };
}

/** Canonical URI (S3 rules: single encoding, no normalisation). */
function canonicalUri(rawPath, opts = {}) {
  const plusIsSpace = opts.pathPlusIsSpace !== false;
  if (rawPath === '' || rawPath === undefined) return '/';
  return rawPath
    .split('/')
    .map(seg => uriEncodeBytes(percentDecode(seg, plusIsSpace)))
    .join('/');
}

/** Parse a raw query string into [{name, value, hasValue}] (decoded, utf8). */
function parseRawQuery(rawQuery) {
  const out = [];
  if (!rawQuery) return out;
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    out.push({
      nameBytes: percentDecode(rawName, true),
      valueBytes: percentDecode(rawValue, true),
      hasValue: eq >= 0,
    });
  }
  for (const p of out) {
    p.name = p.nameBytes.toString('utf8');
    p.value = p.valueBytes.toString('utf8');
  }
  return out;
}

/** Canonical query string; names in `exclude` (exact match) are left out. */
function canonicalQuery(rawQuery, exclude = []) {
  return parseRawQuery(rawQuery)
    .filter(p => !exclude.includes(p.name))
    .map(p => [uriEncodeBytes(p.nameBytes), uriEncodeBytes(p.valueBytes)])
    .sort((a, b) =>
      a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0,
    )
    .map(([n, v]) => `${n}=${v}`)
    .join('&');
}

/** rawHeaders ([name, value, name, value...]) -> Map(lowercase name -> [values]) */
function headerMap(rawHeaders) {
  const m = new Map();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const n = rawHeaders[i].toLowerCase();
    if (!m.has(n)) m.set(n, []);
    m.get(n).push(rawHeaders[i + 1]);
  }
  return m;
}

function canonicalHeaderValue(values) {
  return values.map(v => String(v).trim().replace(/\s+/g, ' ')).join(',');
}

function buildCanonicalRequest({
  method,
  rawUrl,
  rawHeaders,
  signedHeaders, // string 'a;b;c' as sent
  payloadHash,
  excludeQuery = [],
  pathPlusIsSpace = true,
}) {
  const { rawPath, rawQuery } = splitUrl(rawUrl);
  const hm = headerMap(rawHeaders);
  const names = signedHeaders.split(';');
  const headerLines = names
    .map(n => `${n}:${canonicalHeaderValue(hm.get(n.toLowerCase()) || [])}\n`)
    .join('');
  return [
    method,
    canonicalUri(rawPath, { pathPlusIsSpace }),
    canonicalQuery(rawQuery, excludeQuery),
    headerLines,
    signedHeaders,
    payloadHash,
  ].join('\n');
}

function sha256hex(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function hmac(key, data) {
  return crypto.createHmac('sha256', key).update(data, 'utf8').digest();
}

function signingKey(secret, date, region, service) {
  const kDate = hmac('AWS4' + secret, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

function stringToSign(amzDate, scope, canonicalRequest) {
  return [ALGORITHM, amzDate, scope, sha256hex(canonicalRequest)].join('\n');
}

function sign(secret, date, region, service, sts) {
  return crypto
    .createHmac('sha256', signingKey(secret, date, region, service))
    .update(sts, 'utf8')
    .digest('hex');
}

function safeEqualHex(a, b) {
  const ba = Buffer.from(String(a).toLowerCase());
  const bb = Buffer.from(String(b).toLowerCase());
  return ba.length === bb.length && crypto.timingSafeEqual(ba, bb);
}

/** 'YYYYMMDDTHHMMSSZ' -> ms since epoch, or NaN */
function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return NaN;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
}

function toAmzDate(ms) {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
}

function fail(status, code, message, detail = {}) {
  return { ok: false, status, code, message, detail };
}

function parseCredential(cred) {
  const parts = String(cred).split('/');
  if (parts.length !== 5) return null;
  const [accessKey, date, region, service, terminator] = parts;
  return { accessKey, date, region, service, terminator };
}

function checkScope(c, amzDate, opts, malformedCode) {
  const service = opts.service || 's3';
  if (!/^\d{8}$/.test(c.date) || c.date !== amzDate.slice(0, 8)) {
    return fail(400, malformedCode,
      'Invalid credential date. Date is not the same as X-Amz-Date.');
  }
  if (c.service !== service) {
    return fail(400, malformedCode,
      `Credential should be scoped to correct service: '${service}'.`);
  }
  if (c.terminator !== 'aws4_request') {
    return fail(400, malformedCode,
      'Credential should be scoped with a valid terminator: \'aws4_request\'.');
  }
  if (opts.region && c.region !== opts.region) {
    return fail(400, malformedCode,
      `The authorization header is malformed; the region '${c.region}' is ` +
        `wrong; expecting '${opts.region}'`, { Region: opts.region });
  }
  return null;
}

function unsignedAmzHeaders(hm, signedList) {
  const signed = new Set(signedList.map(s => s.toLowerCase()));
  return [...hm.keys()].filter(n => n.startsWith('x-amz-') && !signed.has(n));
}

/**
 * Verify one request.
 *   req: { method, url (raw request-target), rawHeaders }
 *   opts: { getSecret(accessKey) -> secret|undefined, now (ms), maxSkewMs,
 *           region (enforced if set), pathPlusIsSpace }
 * Returns { ok:true, anonymous:true } when no auth is present,
 *         { ok:true, mode, accessKey, payloadHash, canonicalRequest, ... } or
 *         { ok:false, status, code, message, detail }.
 */
function verify(req, opts) {
  const now = opts.now !== undefined ? opts.now : Date.now();
  const maxSkewMs = opts.maxSkewMs !== undefined ? opts.maxSkewMs : 15 * 60 * 1000;
  const hm = headerMap(req.rawHeaders);
  const authz = hm.get('authorization');
  const { rawQuery } = splitUrl(req.url);
  const query = parseRawQuery(rawQuery);
  const qget = name => {
    const p = query.find(x => x.name === name);
    return p ? p.value : undefined;
  };
  const hasQueryV4 = query.some(p => p.name === 'X-Amz-Algorithm');
  const hasQueryV2 = query.some(p => p.name === 'Signature');

  if (!authz && !hasQueryV4 && !hasQueryV2) return { ok: true, anonymous: true };
  if ((authz ? 1 : 0) + (hasQueryV4 ? 1 : 0) + (hasQueryV2 ? 1 : 0) > 1) {
    return fail(400, 'InvalidArgument',
      'Only one auth mechanism allowed; only the X-Amz-Algorithm query ' +
        'parameter, Signature query string parameter or the Authorization ' +
        'header should be specified');
  }
  if (hasQueryV2 || (authz && !/^AWS4-HMAC-SHA256 /.test(authz[0]))) {
    if (authz && !/^AWS /.test(authz[0])) {
      return fail(400, 'InvalidArgument', 'Unsupported Authorization Type',
        { ArgumentName: 'Authorization', ArgumentValue: authz[0] });
    }
    return fail(400, 'InvalidRequest',
      'The authorization mechanism you have provided is not supported. ' +
        'Please use AWS4-HMAC-SHA256.');
  }

  let mode, cred, signedHeaders, signatureProvided, amzDate, payloadHash;
  if (authz) {
    if (authz.length > 1) {
      return fail(400, 'InvalidArgument', 'Multiple Authorization headers');
    }
    mode = 'header';
    const comps = new Map();
    for (const piece of authz[0].slice(ALGORITHM.length + 1).split(',')) {
      const t = piece.trim();
      const eq = t.indexOf('=');
      if (eq > 0) comps.set(t.slice(0, eq).trim(), t.slice(eq + 1).trim());
    }
    for (const n of ['Credential', 'SignedHeaders', 'Signature']) {
      if (!comps.has(n)) {
        return fail(400, 'AuthorizationHeaderMalformed',
          `The authorization header is malformed; missing ${n}.`);
      }
    }
    cred = parseCredential(comps.get('Credential'));
    if (!cred) {
      return fail(400, 'AuthorizationHeaderMalformed',
        'The authorization header is malformed; the Credential is mal-formed; ' +
          'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".');
    }
    signedHeaders = comps.get('SignedHeaders');
    signatureProvided = comps.get('Signature');
    const xd = hm.get('x-amz-date');
    if (xd) {
      amzDate = xd[0].trim();
    } else if (hm.get('date')) {
      const t = Date.parse(hm.get('date')[0]);
      amzDate = isNaN(t) ? '' : toAmzDate(t);
    }
    const t = parseAmzDate(amzDate);
    if (isNaN(t)) {
      return fail(403, 'AccessDenied',
        'AWS authentication requires a valid Date or x-amz-date header');
    }
    const sha = hm.get('x-amz-content-sha256');
    if (!sha && opts.missingPayloadHash === undefined) {
      return fail(400, 'InvalidRequest',
        'Missing required header for this request: x-amz-content-sha256');
    }
    payloadHash = sha ? sha[0].trim() : opts.missingPayloadHash;
    if (!isValidPayloadHash(payloadHash)) {
      return fail(400, 'InvalidArgument',
        'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, ' +
          'STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.',
        { ArgumentName: 'x-amz-content-sha256', ArgumentValue: payloadHash });
    }
    const secret0 = opts.getSecret(cred.accessKey);
    if (secret0 === undefined) {
      return fail(403, 'InvalidAccessKeyId',
        'The AWS Access Key Id you provided does not exist in our records.',
        { AWSAccessKeyId: cred.accessKey });
    }
    const bad = checkScope(cred, amzDate, opts, 'AuthorizationHeaderMalformed');
    if (bad) return bad;
    if (Math.abs(now - t) > maxSkewMs) {
      return fail(403, 'RequestTimeTooSkewed',
        'The difference between the request time and the current time is too large.',
        { RequestTime: amzDate, ServerTime: toAmzDate(now),
          MaxAllowedSkewMilliseconds: String(maxSkewMs) });
    }
  } else {
    mode = 'query';
    if (qget('X-Amz-Algorithm') !== ALGORITHM) {
      return fail(400, 'AuthorizationQueryParametersError',
        'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
    }
    for (const n of ['X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date',
      'X-Amz-SignedHeaders', 'X-Amz-Expires']) {
      if (qget(n) === undefined) {
        return fail(400, 'AuthorizationQueryParametersError',
          'Query-string authentication version 4 requires the ' +
            'X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, ' +
            'X-Amz-SignedHeaders, and X-Amz-Expires parameters.');
      }
    }
    cred = parseCredential(qget('X-Amz-Credential'));
    if (!cred) {
      return fail(400, 'AuthorizationQueryParametersError',
        'Error parsing the X-Amz-Credential parameter; the Credential is ' +
          'mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".');
    }
    signedHeaders = qget('X-Amz-SignedHeaders');
    signatureProvided = qget('X-Amz-Signature');
    amzDate = qget('X-Amz-Date');
    const t = parseAmzDate(amzDate);
    if (isNaN(t)) {
      return fail(400, 'AuthorizationQueryParametersError',
        "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
    }
    const expires = Number(qget('X-Amz-Expires'));
    if (!Number.isInteger(expires) || expires < 0 || expires > 604800) {
      return fail(400, 'AuthorizationQueryParametersError',
        'X-Amz-Expires must be a non-negative integer less than a week (604800 s)');
    }
    payloadHash = qget('X-Amz-Content-Sha256') ||
      opts.presignedPayloadHash || 'UNSIGNED-PAYLOAD';
    const secret0 = opts.getSecret(cred.accessKey);
    if (secret0 === undefined) {
      return fail(403, 'InvalidAccessKeyId',
        'The AWS Access Key Id you provided does not exist in our records.',
        { AWSAccessKeyId: cred.accessKey });
    }
    const bad = checkScope(cred, amzDate, opts, 'AuthorizationQueryParametersError');
    if (bad) return bad;
    if (!opts.ignoreExpiry) {
      if (now > t + expires * 1000) {
        return fail(403, 'AccessDenied', 'Request has expired',
          { 'X-Amz-Expires': String(expires), Expires: toAmzDate(t + expires * 1000),
            ServerTime: toAmzDate(now) });
      }
      if (t - now > maxSkewMs) {
        return fail(403, 'AccessDenied', 'Request is not valid yet',
          { 'X-Amz-Date': amzDate, ServerTime: toAmzDate(now) });
      }
    }
  }

  const signedList = signedHeaders.split(';');
  if (!signedList.map(s => s.toLowerCase()).includes('host')) {
    return fail(400, mode === 'header' ? 'AuthorizationHeaderMalformed'
      : 'AuthorizationQueryParametersError',
      'The host header must be included in SignedHeaders.');
  }
  if (!opts.allowUnsignedAmzHeaders) {
    const unsigned = unsignedAmzHeaders(hm, signedList);
    if (unsigned.length) {
      return fail(403, 'AccessDenied',
        'There were headers present in the request which were not signed',
        { HeadersNotSigned: unsigned.join(', ') });
    }
  }

  const secret = opts.getSecret(cred.accessKey);
  const canonicalRequest = buildCanonicalRequest({
    method: req.method,
    rawUrl: req.url,
    rawHeaders: req.rawHeaders,
    signedHeaders,
    payloadHash,
    excludeQuery: mode === 'query' ? ['X-Amz-Signature'] : [],
    pathPlusIsSpace: opts.pathPlusIsSpace,
  });
  const scope = [cred.date, cred.region, cred.service, cred.terminator].join('/');
  const sts = stringToSign(amzDate, scope, canonicalRequest);
  const expected = sign(secret, cred.date, cred.region, cred.service, sts);
  const result = {
    mode,
    accessKey: cred.accessKey,
    region: cred.region,
    payloadHash,
    canonicalRequest,
    stringToSign: sts,
    signature: expected,
  };
  if (!safeEqualHex(expected, signatureProvided || '')) {
    return Object.assign(
      fail(403, 'SignatureDoesNotMatch',
        'The request signature we calculated does not match the signature ' +
          'you provided. Check your key and signing method.',
        {
          AWSAccessKeyId: cred.accessKey,
          StringToSign: sts,
          SignatureProvided: signatureProvided || '',
          StringToSignBytes: hexBytes(sts),
          CanonicalRequest: canonicalRequest,
          CanonicalRequestBytes: hexBytes(canonicalRequest),
        }),
      { canonicalRequest, stringToSign: sts, expected });
  }
  return Object.assign({ ok: true }, result);
}

function isValidPayloadHash(v) {
  return (
    /^[0-9a-fA-F]{64}$/.test(v) ||
    v === 'UNSIGNED-PAYLOAD' ||
    /^STREAMING-/.test(v)
  );
}

function hexBytes(s) {
  return Buffer.from(s, 'utf8').toString('hex').replace(/(..)(?!$)/g, '$1 ');
}

/** Decode the raw path into { bucket, key } the way S3 reads it ('+' = space). */
function decodePath(rawPath) {
  const p = rawPath.startsWith('/') ? rawPath.slice(1) : rawPath;
  const slash = p.indexOf('/');
  const rawBucket = slash < 0 ? p : p.slice(0, slash);
  const rawKey = slash < 0 ? '' : p.slice(slash + 1);
  return {
    bucket: percentDecode(rawBucket, true).toString('utf8'),
    key: slash < 0 ? null : percentDecode(rawKey, true).toString('utf8'),
  };
}

module.exports = {
  EMPTY_SHA256,
  uriEncodeBytes,
  percentDecode,
  splitUrl,
  canonicalUri,
  canonicalQuery,
  parseRawQuery,
  buildCanonicalRequest,
  stringToSign,
  sign,
  signingKey,
  sha256hex,
  parseAmzDate,
  toAmzDate,
  verify,
  decodePath,
  isValidPayloadHash,
};
