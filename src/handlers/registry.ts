import { HandlerRegistry } from '../pipeline/handlerRegistry';

/** The app's handlers. Register yours with `on(…)` in a file of this folder, imported by index.ts. */
export const handlers = new HandlerRegistry();

export const on: HandlerRegistry['on'] = (options, handle) => handlers.on(options, handle);
