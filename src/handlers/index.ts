/**
 * Your business logic lives in this folder: one file per concern, each exporting the handlers it
 * declares with `on(…)` (react, from the queue) or `decide(…)` (decide, inside the webhook's
 * request), both from '../handlerApi'. List every such file below: the app runs, and `register`
 * registers, exactly the handlers of these files, in this order. A file of this folder that
 * declares handlers and is not listed fails `npm test` (test/handlerApi/wiring.test.ts).
 */
import * as accountCreated from './accountCreated';
import * as contactChanges from './contactChanges';
import * as creditLimit from './creditLimit';

export const handlerFiles = [contactChanges, accountCreated, creditLimit];
