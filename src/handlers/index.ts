/**
 * Your business logic lives in this folder. Each file registers its handlers with `on(…)`;
 * import it here so the processor sees it.
 */
import './contactChanges';
import './accountCreated';

export { handlers, on } from './registry';
