#!/usr/bin/env node
// standin.js - a stand-in for the AWS endpoints that hand out credentials,
// for tests/unit/check_creds.c.  Plain Node.js, no modules to install.
//
//   node standin.js --mode imds|container|sts [options]
//
// Options
//   --host ADDR        listen address (default 127.0.0.1)
//   --port N           port, 0 for a free one (default 0)
//   --ready FILE       write the port there once listening (atomically)
//   --expires SECS     credentials expire SECS from the time of the answer
//                      (default 3600; negative: already expired)
//   --delay MS         wait MS before answering a credentials request
//   --fail STATUS      answer every request (but /__*) with STATUS
//   --require-token    imds: refuse (401) metadata GETs without a token
//                      issued by PUT /latest/api/token
//   --role NAME        imds: the instance profile role ("" for none)
//   --auth TOKEN       container: refuse (401) requests whose Authorization
//                      header is not TOKEN
//   --echo-token       sts: with --fail, quote the WebIdentityToken in the
//                      error message (the client must not log it)
//   --lifetime SECS    exit after SECS (default 120), whatever happens
//
// Credentials answer number N (counting from 1) carries
//   AccessKeyId      ASIA<MODE>NNNN      e.g. ASIAIMDS0001
//   SecretAccessKey  s3cr3t-<mode>-N-...
//   Token            t0k3n-<mode>-N-... (about 700 characters)
// so that a test can tell fresh credentials from old ones and grep its log
// for "s3cr3t" and "t0k3n".
//
// Control (never delayed, failed or refused)
//   GET /__control?expires=S&delay=MS&fail=STATUS&auth=TOKEN  change settings
//   GET /__stats   JSON: total, creds (requests for credentials), token
//                  (IMDS token PUTs), role (IMDS role name GETs), rejected
//                  (401s for a missing token / authorization), failed
//                  (--fail answers), last_ttl, last_path, last_auth,
//                  last_token, last_role_arn, last_session
'use strict';

const fs = require('fs');
const http = require('http');
const crypto = require('crypto');

function parseArgs(argv) {
	const o = {
		mode: null, host: '127.0.0.1', port: 0, ready: null, expires: 3600, delay: 0,
		fail: 0, requireToken: false, role: 'chunkfs-test-role', auth: null,
		echoToken: false, lifetime: 120,
	};
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const next = () => {
			if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
			return argv[++i];
		};
		switch (a) {
		case '--mode': o.mode = next(); break;
		case '--host': o.host = next(); break;
		case '--port': o.port = Number(next()); break;
		case '--ready': o.ready = next(); break;
		case '--expires': o.expires = Number(next()); break;
		case '--delay': o.delay = Number(next()); break;
		case '--fail': o.fail = Number(next()); break;
		case '--require-token': o.requireToken = true; break;
		case '--role': o.role = next(); break;
		case '--auth': o.auth = next(); break;
		case '--echo-token': o.echoToken = true; break;
		case '--lifetime': o.lifetime = Number(next()); break;
		default: throw new Error(`unknown argument ${a}`);
		}
	}
	if (!['imds', 'container', 'sts'].includes(o.mode))
		throw new Error('--mode must be imds, container or sts');
	return o;
}

const opt = parseArgs(process.argv.slice(2));
const stats = {
	total: 0, creds: 0, token: 0, role: 0, rejected: 0, failed: 0,
	last_ttl: null, last_path: null, last_auth: null, last_token: null,
	last_role_arn: null, last_session: null,
};
const imdsTokens = new Set();
let served = 0;

function expiration(withMillis) {
	const iso = new Date(Date.now() + opt.expires * 1000).toISOString();
	return withMillis ? iso : iso.replace(/\.\d{3}Z$/, 'Z');
}

function nextCreds() {
	served++;
	const n = String(served).padStart(4, '0');
	return {
		AccessKeyId: `ASIA${opt.mode.toUpperCase()}${n}`,
		SecretAccessKey: `s3cr3t-${opt.mode}-${served}-${'S'.repeat(24)}`,
		Token: `t0k3n-${opt.mode}-${served}-${'T'.repeat(680)}`,
	};
}

function send(res, status, body, type) {
	res.writeHead(status, {'Content-Type': type || 'text/plain', 'Content-Length': Buffer.byteLength(body)});
	res.end(body);
}

function later(fn) {
	if (opt.delay > 0)
		setTimeout(fn, opt.delay);
	else
		fn();
}

function xmlEscape(s) {
	return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function control(url, res) {
	if (url.pathname === '/__stats')
		return send(res, 200, JSON.stringify(stats), 'application/json');
	const q = url.searchParams;
	if (q.has('expires')) opt.expires = Number(q.get('expires'));
	if (q.has('delay')) opt.delay = Number(q.get('delay'));
	if (q.has('fail')) opt.fail = Number(q.get('fail'));
	if (q.has('auth')) opt.auth = q.get('auth');
	if (q.has('role')) opt.role = q.get('role');
	send(res, 200, 'ok\n');
}

function imds(req, res, url) {
	const p = url.pathname;
	if (req.method === 'PUT' && p === '/latest/api/token') {
		stats.token++;
		const ttl = req.headers['x-aws-ec2-metadata-token-ttl-seconds'];
		stats.last_ttl = ttl || null;
		if (!ttl)
			return send(res, 400, 'missing X-aws-ec2-metadata-token-ttl-seconds\n');
		const t = `imds-t0k3n-${crypto.randomBytes(12).toString('hex')}`;
		imdsTokens.add(t);
		return send(res, 200, t);
	}
	if (req.method !== 'GET')
		return send(res, 405, 'method not allowed\n');
	const base = '/latest/meta-data/iam/security-credentials/';
	if (!p.startsWith(base))
		return send(res, 404, 'not found\n');
	const tok = req.headers['x-aws-ec2-metadata-token'];
	if (opt.requireToken && (!tok || !imdsTokens.has(tok))) {
		stats.rejected++;
		return send(res, 401, 'unauthorized\n');
	}
	const role = p.slice(base.length);
	if (role === '') {
		stats.role++;
		return opt.role === '' ? send(res, 404, 'not found\n') : send(res, 200, opt.role);
	}
	if (opt.role === '' || role !== opt.role)
		return send(res, 404, 'not found\n');
	stats.creds++;
	later(() => {
		const c = nextCreds();
		send(res, 200, JSON.stringify({
			Code: 'Success', LastUpdated: new Date().toISOString(), Type: 'AWS-HMAC',
			AccessKeyId: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey,
			Token: c.Token, Expiration: expiration(false),
		}, null, 2), 'application/json');
	});
}

function container(req, res, url) {
	stats.last_path = url.pathname;
	stats.last_auth = req.headers.authorization || null;
	if (opt.auth !== null && req.headers.authorization !== opt.auth) {
		stats.rejected++;
		return send(res, 401, JSON.stringify({Code: 'Unauthorized', Message: 'bad token'}), 'application/json');
	}
	stats.creds++;
	later(() => {
		const c = nextCreds();
		send(res, 200, JSON.stringify({
			AccessKeyId: c.AccessKeyId, SecretAccessKey: c.SecretAccessKey, Token: c.Token,
			Expiration: expiration(true), RoleArn: 'arn:aws:iam::123456789012:role/test',
		}), 'application/json');
	});
}

function stsError(res, status, code, message) {
	send(res, status, '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">' +
		`<Error><Type>Sender</Type><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>` +
		'<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>', 'text/xml');
}

function sts(req, res, url, body) {
	const q = req.method === 'POST' ? new URLSearchParams(body) : url.searchParams;
	stats.creds++;
	stats.last_token = q.get('WebIdentityToken');
	stats.last_role_arn = q.get('RoleArn');
	stats.last_session = q.get('RoleSessionName');
	if (q.get('Action') !== 'AssumeRoleWithWebIdentity' || q.get('Version') !== '2011-06-15' ||
	    !q.get('RoleArn') || !q.get('RoleSessionName') || !q.get('WebIdentityToken'))
		return stsError(res, 400, 'ValidationError', 'missing or wrong parameter');
	later(() => {
		const c = nextCreds();
		send(res, 200,
			'<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n' +
			'  <AssumeRoleWithWebIdentityResult>\n' +
			'    <SubjectFromWebIdentityToken>system:serviceaccount:default:test</SubjectFromWebIdentityToken>\n' +
			'    <AssumedRoleUser>\n' +
			`      <Arn>${xmlEscape(q.get('RoleArn'))}/${xmlEscape(q.get('RoleSessionName'))}</Arn>\n` +
			'      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:test</AssumedRoleId>\n' +
			'    </AssumedRoleUser>\n' +
			'    <Credentials>\n' +
			`      <SessionToken>${c.Token}</SessionToken>\n` +
			`      <SecretAccessKey>${c.SecretAccessKey}</SecretAccessKey>\n` +
			`      <Expiration>${expiration(false)}</Expiration>\n` +
			`      <AccessKeyId>${c.AccessKeyId}</AccessKeyId>\n` +
			'    </Credentials>\n' +
			'    <Audience>sts.amazonaws.com</Audience>\n' +
			'  </AssumeRoleWithWebIdentityResult>\n' +
			'  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>\n' +
			'</AssumeRoleWithWebIdentityResponse>\n', 'text/xml');
	});
}

function failure(req, res, url, body) {
	stats.failed++;
	if (opt.mode !== 'sts')
		return send(res, opt.fail, 'failure requested\n');
	let message = 'Not authorized to perform sts:AssumeRoleWithWebIdentity';
	if (opt.echoToken) {
		const q = req.method === 'POST' ? new URLSearchParams(body) : url.searchParams;
		message += `: ${q.get('WebIdentityToken')}`;
	}
	const code = opt.fail === 403 ? 'AccessDenied' : opt.fail === 400 ? 'InvalidIdentityToken' : 'ServiceUnavailable';
	stsError(res, opt.fail, code, message);
}

const server = http.createServer((req, res) => {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		const body = Buffer.concat(chunks).toString('utf8');
		const url = new URL(req.url, 'http://standin');
		if (url.pathname.startsWith('/__'))
			return control(url, res);
		stats.total++;
		if (opt.fail)
			return failure(req, res, url, body);
		if (opt.mode === 'imds')
			return imds(req, res, url);
		if (opt.mode === 'container')
			return container(req, res, url);
		return sts(req, res, url, body);
	});
});

server.listen(opt.port, opt.host, () => {
	const port = server.address().port;
	if (opt.ready) {
		fs.writeFileSync(`${opt.ready}.tmp`, `${port}\n`);
		fs.renameSync(`${opt.ready}.tmp`, opt.ready);
	} else {
		process.stdout.write(`${port}\n`);
	}
});
setTimeout(() => process.exit(0), opt.lifetime * 1000);
process.on('SIGTERM', () => process.exit(0));
