// Precompresses a built site for Caddy's `file_server { precompressed zstd gzip }`: next to every compressible
// file (js, css, html, svg, json, ...) of at least MIN_BYTES it writes NAME.gz (gzip -9) and, when this Node has
// zstd (22.15+ / 23.8+: zlib.zstdCompressSync), NAME.zst (level 19); a variant that does not save at least
// 5 % is not written. Caddy then sends those bytes as they are instead of compressing on every request; a client
// asking only for an encoding that has no file still gets one from Caddy's `encode` (on the fly).
//
//   node tools/precompress.mjs DIR        (the stack runs it on its instance's build output after `vite build`)
//
// Standard library only. Prints one summary line; exits 1 if DIR is missing.
import { readdirSync, readFileSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { extname, join } from 'node:path';
import zlib from 'node:zlib';

const COMPRESSIBLE = new Set(['.js', '.mjs', '.css', '.html', '.svg', '.json', '.map', '.txt', '.xml', '.wasm']);
const MIN_BYTES = 256; // below this the headers dwarf any saving
const KEEP_RATIO = 0.95;

const root = process.argv[2];
if (!root || !statSync(root, { throwIfNoEntry: false })?.isDirectory()) {
  console.error(`usage: node tools/precompress.mjs DIR   (${root ? `${root} is not a folder` : 'no folder given'})`);
  process.exit(1);
}

const encoders = [['.gz', (data) => zlib.gzipSync(data, { level: 9 })]];
if (typeof zlib.zstdCompressSync === 'function') {
  const level = zlib.constants.ZSTD_c_compressionLevel;
  encoders.unshift(['.zst', (data) => zlib.zstdCompressSync(data, { params: { [level]: 19 } })]);
}

function* files(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield path;
  }
}

let count = 0;
let before = 0;
const after = Object.fromEntries(encoders.map(([suffix]) => [suffix, 0]));
for (const path of [...files(root)]) {
  if (!COMPRESSIBLE.has(extname(path).toLowerCase())) continue;
  const data = readFileSync(path);
  if (data.length < MIN_BYTES) continue;
  count += 1;
  before += data.length;
  for (const [suffix, encode] of encoders) {
    const packed = encode(data);
    if (packed.length <= data.length * KEEP_RATIO) {
      writeFileSync(path + suffix, packed);
      after[suffix] += packed.length;
    } else {
      rmSync(path + suffix, { force: true }); // never leave a stale variant of an older build
      after[suffix] += data.length;
    }
  }
}

const sizes = encoders.map(([suffix]) => `${suffix} ${after[suffix]} B`).join(', ');
const zstd = encoders.length > 1 ? '' : ` (no zstd in Node ${process.versions.node}: Caddy encodes it on the fly)`;
console.log(`precompressed ${count} file(s) in ${root}: ${before} B -> ${sizes}${zstd}`);
