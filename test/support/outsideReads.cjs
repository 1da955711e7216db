// Preloaded (node --require) into a test run that must read nothing outside the project: every
// path a file-system call names is resolved, and one outside the allowed places is appended to the
// file OUTSIDE_READS_LOG names. It changes no behaviour: a read outside still happens (and fails on
// a clone with nothing beside it); test/selfContained.test.ts then reads the log. Allowed: the
// project (OUTSIDE_READS_ROOT), its node_modules wherever the link points, Node's own files, the
// system's (/proc, /dev, /etc, /sys, /run, /usr), module resolution's node_modules lookups, and the temp folder, except the folder that holds the
// project: reaching it is leaving the project (`../shared`).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const log = process.env.OUTSIDE_READS_LOG;
const root = process.env.OUTSIDE_READS_ROOT;
if (log && root) {
  const real = (where) => {
    try {
      return fs.realpathSync.native(where);
    } catch {
      return path.resolve(where);
    }
  };
  const projectRoot = real(root);
  const parent = path.dirname(projectRoot);
  const within = (file, dir) => file === dir || file.startsWith(dir + path.sep);
  const allowed = [
    projectRoot,
    real(path.join(projectRoot, 'node_modules')),
    path.resolve(path.dirname(process.execPath), '..'),
    '/proc',
    '/dev',
    '/etc',
    '/sys',
    '/run',
    '/usr',
  ];
  const temp = real(os.tmpdir());
  const appendFileSync = fs.appendFileSync;
  const check = (target) => {
    if (typeof target !== 'string' && !(target instanceof URL) && !Buffer.isBuffer(target)) return;
    let file;
    try {
      file = path.resolve(target instanceof URL ? target.pathname : String(target));
    } catch {
      return;
    }
    if (allowed.some((dir) => within(file, dir))) return;
    // Module resolution looks for node_modules in every folder above: a lookup, not a read of data.
    if (file.split(path.sep).includes('node_modules')) return;
    if (within(file, temp) && !within(file, parent)) return;
    appendFileSync(log, `${file}\n`);
  };
  const wrap = (owner, name) => {
    const original = owner[name];
    if (typeof original !== 'function') return;
    owner[name] = function (target, ...rest) {
      check(target);
      return original.call(this, target, ...rest);
    };
  };
  for (const name of [
    'readFileSync',
    'readFile',
    'openSync',
    'open',
    'existsSync',
    'statSync',
    'stat',
    'lstatSync',
    'readdirSync',
    'readdir',
    'createReadStream',
    'accessSync',
    'access',
  ])
    wrap(fs, name);
  for (const name of ['readFile', 'open', 'stat', 'lstat', 'readdir', 'access']) wrap(fs.promises, name);
}
