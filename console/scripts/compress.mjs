// Writes a gzip copy (`name.gz`) next to every compressible file of the build, so the gateway can
// serve it to browsers that accept gzip. Usage: node scripts/compress.mjs dist
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync, constants } from 'node:zlib';

const root = process.argv[2] ?? 'dist';
const compressible = /\.(js|mjs|css|html|svg|json|txt|map)$/;

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

let count = 0;
for (const path of files(root)) {
  if (!compressible.test(path)) continue;
  const raw = readFileSync(path);
  const gz = gzipSync(raw, { level: constants.Z_BEST_COMPRESSION });
  writeFileSync(`${path}.gz`, gz);
  count += 1;
}
console.log(`compress: wrote ${count} .gz files under ${root}`);
