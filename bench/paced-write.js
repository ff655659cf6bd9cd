// paced-write.js SRC DST MBPS: copy SRC to DST in 1 MiB write()s at no more
// than MBPS MB/s, then close -- a program that produces its output at a
// steady rate (torch.save serializing a model, a checkpoint writer), where
// cp and dd produce it as fast as the filesystem takes it.
'use strict';
const fs = require('fs');

const [src, dst, mbps] = process.argv.slice(2);
if (!dst || !(Number(mbps) > 0)) {
  console.error('usage: paced-write.js SRC DST MBPS');
  process.exit(2);
}
const rate = Number(mbps) * 1e6; // bytes per second
const inp = fs.openSync(src, 'r');
const out = fs.openSync(dst, 'w');
const buf = Buffer.alloc(1 << 20);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const t0 = process.hrtime.bigint();
let done = 0;
for (;;) {
  const n = fs.readSync(inp, buf, 0, buf.length, null);
  if (n === 0) break;
  fs.writeSync(out, buf, 0, n);
  done += n;
  const aheadMs = (done / rate) * 1e3 - Number(process.hrtime.bigint() - t0) / 1e6;
  if (aheadMs > 0) Atomics.wait(sleeper, 0, 0, aheadMs);
}
fs.closeSync(out);
fs.closeSync(inp);
