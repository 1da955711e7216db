/**
 * Your business logic lives in this folder. Each file registers its handlers with `on(…)` (react,
 * from the queue) or `decide(…)` (decide, inside the webhook's request); import it here so the
 * app sees it.
 */
import './contactChanges';
import './accountCreated';
import './creditLimit';

export { allow, decide, handlers, on, reject } from './registry';
