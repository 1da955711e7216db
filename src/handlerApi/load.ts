import path from 'node:path';
import { GENERATED_MODULE_NAME } from '../dataverse/tables';
import { DeclarationRefusedError, HandlerRegistry } from '../pipeline/handlerRegistry';
import { type HandlerDefinition, isHandlerDefinition } from './declarations';

/**
 * The app's handlers, built from src/handlers/index.ts's `handlerFiles`: each entry a handler file
 * (its module, `import * as contactChanges from './contactChanges'`) or one declaration. Declaring
 * a handler registers nothing (src/handlerApi/declarations.ts); the registry is built here, in the
 * order of the list, and then in the order each file declares its handlers.
 *
 * A declaration the registry refuses (what Dataverse would refuse, two handlers that cannot share
 * a step) is one line naming the file, the handler and the reason: the CLI prints it and exits 1,
 * and the app logs it as it starts and answers 503 until it is fixed (src/functions).
 */
export class HandlerLoadError extends Error {
  override readonly name = 'HandlerLoadError';
}

/** The declarations a handler file exports, in the order it declares them. */
export function definitionsOf(module: object): HandlerDefinition[] {
  return Object.values(module)
    .filter(isHandlerDefinition)
    .sort((a, b) => a.order - b.order);
}

/**
 * The tables of the app's generated module (src/handlers/tables.generated.ts, built beside this
 * folder), which a handler may name besides Dataverse's own: the compiler knows them from the
 * module's types, and the app from its build. None when there is no module or no build of it.
 */
export function generatedTableNames(compiled = path.join(__dirname, '..', 'handlers', `${GENERATED_MODULE_NAME}.js`)): string[] {
  try {
    const { tables } = require(compiled) as { tables?: unknown };
    return typeof tables === 'object' && tables !== null ? Object.keys(tables) : [];
  } catch {
    return [];
  }
}

/** The registry of the listed files and declarations; a HandlerLoadError names what it refuses. */
export function registryOf(listed: readonly unknown[], knownTables: readonly string[] = generatedTableNames()): HandlerRegistry {
  if (!Array.isArray(listed))
    throw new HandlerLoadError('src/handlers/index.ts must export handlerFiles, the list of the files that declare handlers');
  try {
    return HandlerRegistry.of(declarationsOf(listed), { knownTables });
  } catch (error) {
    if (error instanceof DeclarationRefusedError)
      throw new HandlerLoadError(`${error.definition.file ?? 'src/handlers'}: ${error.message}`);
    throw error;
  }
}

/** The declarations of the list, in its order, each once: an entry is a declaration, or a file's module. */
function* declarationsOf(listed: readonly unknown[]): Generator<HandlerDefinition> {
  const seen = new Set<HandlerDefinition>();
  for (const [index, entry] of listed.entries()) {
    const definitions = isHandlerDefinition(entry) ? [entry] : typeof entry === 'object' && entry !== null ? definitionsOf(entry) : [];
    if (definitions.length === 0) {
      throw new HandlerLoadError(
        `src/handlers/index.ts: entry ${index + 1} of handlerFiles declares no handler: list a file that exports what on(…) or decide(…) returns`,
      );
    }
    for (const definition of definitions) {
      if (seen.has(definition)) continue;
      seen.add(definition);
      yield definition;
    }
  }
}

const built = new WeakMap<readonly unknown[], HandlerRegistry | HandlerLoadError>();

/**
 * The registry of the app's list, built once per process (the app's entry point and its functions
 * share it), or the one line saying why it cannot be.
 */
export function appHandlers(listed: readonly unknown[]): HandlerRegistry | HandlerLoadError {
  let result = built.get(listed);
  if (!result) {
    try {
      result = registryOf(listed);
    } catch (error) {
      if (!(error instanceof HandlerLoadError)) throw error;
      result = error;
    }
    built.set(listed, result);
  }
  return result;
}

/** The line the app logs as it starts, and the CLI prints. */
export function handlerLoadLine(error: HandlerLoadError): string {
  return `dataverse-webhooks: the handlers do not load: ${error.message}`;
}
