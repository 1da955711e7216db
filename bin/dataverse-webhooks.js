#!/usr/bin/env node

// The CLI is compiled TypeScript: `npm ci` builds it (the prepare script); `npm run build` refreshes it.
let cli;
try {
  cli = require('../dist/src/cli/main.js');
} catch (error) {
  if (error && error.code === 'MODULE_NOT_FOUND') {
    process.stderr.write('dataverse-webhooks is not built yet: run "npm run build" in its folder first.\n');
    process.exit(1);
  }
  throw error;
}
cli.main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
