import { HandlerRegistry } from '../pipeline/handlerRegistry';

/**
 * The app's handlers. Register yours in a file of this folder, imported by index.ts: the
 * declaration is both what the app routes by and what `register` registers in Dataverse.
 *  - `on(…)` reacts: the handler runs later, from the queue, once the event is stored;
 *  - `decide(…)` decides: the handler runs inside the webhook's request, before Dataverse gets its
 *    answer, and returns `allow()` or `reject(reason)` (synchronous steps only).
 */
export const handlers = new HandlerRegistry();

export const on: HandlerRegistry['on'] = (options, handle) => handlers.on(options, handle);
export const decide: HandlerRegistry['decide'] = (options, handle) => handlers.decide(options, handle);

export { allow, reject, type Decision } from '../pipeline/handlerRegistry';
