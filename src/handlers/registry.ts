import { HandlerRegistry } from '../pipeline/handlerRegistry';

/**
 * The app's handlers. Register yours with `on(…)` in a file of this folder, imported by index.ts:
 * the declaration is both what the processor routes by and what `register` registers in Dataverse.
 */
export const handlers = new HandlerRegistry();

export const on: HandlerRegistry['on'] = (options, handle) => handlers.on(options, handle);
