#!/usr/bin/env node
'use strict';
// A TLS front for the test server, so tests can check that chunkfs verifies
// certificates and honours -o ca_bundle / AWS_CA_BUNDLE.
//
//   node tests/s3/tls-proxy.js --cert CERT --key KEY --target http://127.0.0.1:PORT \
//        [--port 0] [--ready-file FILE]
//
// Listens on 127.0.0.1 with the given certificate and forwards every request
// unchanged (method, path, headers including Host, body) to the target, and
// the answer back. Writes {"port": N} to --ready-file once listening.

const fs = require('fs');
const http = require('http');
const https = require('https');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const target = new URL(arg('target', ''));
const server = https.createServer(
  { cert: fs.readFileSync(arg('cert')), key: fs.readFileSync(arg('key')) },
  (req, res) => {
    const up = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      upRes => {
        res.writeHead(upRes.statusCode, upRes.headers);
        upRes.pipe(res);
      });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });

server.listen(Number(arg('port', '0')), '127.0.0.1', () => {
  const ready = JSON.stringify({ port: server.address().port });
  const file = arg('ready-file');
  if (file) {
    fs.writeFileSync(file + '.tmp', ready);
    fs.renameSync(file + '.tmp', file);
  }
  process.stdout.write(ready + '\n');
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
