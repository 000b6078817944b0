// Bundles vendor.js (GraphiQL 3, React 18, graphql-ws 5, pinned by
// package.json and package-lock.json) into one minified script and one
// stylesheet for the embedded GraphiQL page, then moves the fonts and images
// that the stylesheet carries as data: URLs into files of their own, so
// that the page's Content-Security-Policy can allow nothing but 'self'.
//
//   node build.mjs OUTDIR
//
// writes OUTDIR/vendor.js, OUTDIR/vendor.css, OUTDIR/media/<sha256>.<ext>
// and OUTDIR/THIRD_PARTY.txt (every package in the bundle, its version and
// licence). scripts/build-graphiql.sh runs it after `npm ci`; the output is
// committed, so `go build` needs neither node nor npm.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUTDIR');
  process.exit(2);
}

const result = await build({
  entryPoints: { vendor: 'vendor.js' },
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome109', 'firefox115', 'safari16'],
  define: { 'process.env.NODE_ENV': '"production"' },
  legalComments: 'eof',
  metafile: true,
  write: false,
  outdir: out,
  logLevel: 'warning',
});

const media = join(out, 'media');
rmSync(media, { recursive: true, force: true });
mkdirSync(media, { recursive: true });

const extensions = {
  'font/woff2': 'woff2',
  'font/woff': 'woff',
  'font/ttf': 'ttf',
  'image/png': 'png',
  'image/svg+xml': 'svg',
  'image/gif': 'gif',
};

// undata replaces every url(data:TYPE;base64,…) of a stylesheet with a file
// under media/, named by the content's hash (so a rebuild is byte-equal).
function undata(css) {
  return css.replace(/url\((["']?)data:([a-z0-9.+/-]+);base64,([A-Za-z0-9+/=]+)\1\)/g, (_, _q, type, b64) => {
    const ext = extensions[type];
    if (!ext) {
      throw new Error(`build.mjs: no file extension for data: URL of type ${type}`);
    }
    const bytes = Buffer.from(b64, 'base64');
    const name = createHash('sha256').update(bytes).digest('hex').slice(0, 16) + '.' + ext;
    writeFileSync(join(media, name), bytes);
    return `url(media/${name})`;
  });
}

for (const f of result.outputFiles) {
  let text = f.text;
  if (f.path.endsWith('.css')) {
    text = undata(text);
    if (text.includes('data:')) {
      throw new Error('build.mjs: vendor.css still holds a data: URL the page CSP would refuse');
    }
  }
  writeFileSync(f.path, text);
}

// THIRD_PARTY.txt: the packages whose code is in the bundle.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//g);
  if (!m) continue;
  const dir = m.join('').replace(/\/$/, '');
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  packages.set(`${pkg.name}@${pkg.version}`, typeof pkg.license === 'string' ? pkg.license : JSON.stringify(pkg.license ?? 'UNKNOWN'));
}
const lines = [...packages.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([p, l]) => `${p}\t${l}`);
writeFileSync(
  join(out, 'THIRD_PARTY.txt'),
  '# Packages bundled into vendor.js and vendor.css by graphiql/web/build.mjs (name@version, licence).\n' +
    '# Their licence texts are at the end of vendor.js and vendor.css.\n' +
    lines.join('\n') +
    '\n',
);
console.log(`build.mjs: ${result.outputFiles.length} bundles and ${packages.size} packages written to ${out}`);
