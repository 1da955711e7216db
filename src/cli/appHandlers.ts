import { HandlerRegistryError, type HandlerRegistry } from '../pipeline/handlerRegistry';

/** The handlers a command works from: a registry, or how to load one. */
export type HandlersSource = HandlerRegistry | (() => HandlerRegistry | Promise<HandlerRegistry>);

/**
 * The app's handlers (src/handlers), loaded when a command first needs them rather than as the CLI
 * starts: a declaration the registry refuses (an inline handler on an asynchronous step, say) then
 * fails `register` or `status` with its one-line reason, as it would stop the app from loading,
 * and every other command still runs.
 */
export async function loadAppHandlers(): Promise<HandlerRegistry> {
  try {
    return (await import('../handlers/index.js')).handlers;
  } catch (error) {
    if (error instanceof HandlerRegistryError) throw new HandlerRegistryError(`The app's handlers (src/handlers) do not load: ${error.message}`);
    throw error;
  }
}

export async function resolveHandlers(source: HandlersSource): Promise<HandlerRegistry> {
  return typeof source === 'function' ? source() : source;
}
