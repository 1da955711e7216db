import type { HandlerRegistry } from '../pipeline/handlerRegistry';

/** The handlers a command works from: a registry, or how to load one. */
export type HandlersSource = HandlerRegistry | (() => HandlerRegistry | Promise<HandlerRegistry>);

/**
 * The app's handlers (src/handlers), loaded when a command first needs them rather than as the CLI
 * starts: a declaration the registry refuses then fails `register`, `status` and `types` with its
 * one line (the file, the handler, the reason), as it stops the app from taking events, and every
 * other command still runs.
 */
export async function loadAppHandlers(): Promise<HandlerRegistry> {
  // Not a literal: the compiler does not follow it, so a program that compiles the CLI (the engine's
  // tests, test/tableTypes with its own generated module) does not compile the user's handlers too.
  const handlersModule: string = '../handlers/index.js';
  const [{ handlerFiles }, { appHandlers, HandlerLoadError }] = await Promise.all([
    import(handlersModule) as Promise<{ handlerFiles: readonly unknown[] }>,
    import('../handlerApi/load.js'),
  ]);
  const handlers = appHandlers(handlerFiles);
  if (handlers instanceof HandlerLoadError) throw new HandlerLoadError(`The app's handlers do not load: ${handlers.message}`);
  return handlers;
}

export async function resolveHandlers(source: HandlersSource): Promise<HandlerRegistry> {
  return typeof source === 'function' ? source() : source;
}
