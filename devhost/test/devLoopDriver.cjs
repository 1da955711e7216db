'use strict';
// Runs the built dev loop as npm start does, with the test's ports, folders and fake programs
// (DEV_LOOP_OPTIONS), so that the test can signal it as a terminal would.
const path = require('node:path');
const { runDevLoop } = require(path.resolve(__dirname, '..', '..', 'dist', 'devhost', 'start.js'));

const options = JSON.parse(process.env.DEV_LOOP_OPTIONS);
runDevLoop({ ...options, env: { ...process.env, DEV_LOOP_OPTIONS: undefined } }).then((code) => process.exit(code));
