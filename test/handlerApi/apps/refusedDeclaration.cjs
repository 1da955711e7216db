'use strict';
// Not part of the app: test/handlerApi/loadErrors.test.ts has the worker load this after the app's
// entry points. It lists a declaration the registry refuses (an asynchronous step in
// PreValidation, which plain JavaScript can write), as a user's file in src/handlers would.
const path = require('node:path');
const dist = path.resolve(__dirname, '..', '..', '..', 'dist', 'src');
const { handlerFiles } = require(path.join(dist, 'handlers', 'index.js'));
const { on } = require(path.join(dist, 'handlerApi', 'index.js'));

handlerFiles.push({
  early: on(
    { name: 'early-async', entity: 'test_widget', message: 'Update', stage: 'PreValidation', mode: 'Asynchronous' },
    () => undefined,
  ),
});
