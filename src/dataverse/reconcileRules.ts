import { effectiveStage, type HandlerDeclaration, LOGICAL_NAME } from './steps';

/**
 * What reconciliation through Dataverse change tracking can give a handler, and so which handlers
 * may opt in (`reconcile` on `on(…)`). Change tracking reports, per table, the rows created or
 * updated since a token (their current state) and the ids of the rows deleted
 * (https://learn.microsoft.com/power-apps/developer/data-platform/use-change-tracking-synchronize-data-external-systems),
 * nothing else: not which columns an update set, not the values before it, not the operation's
 * request. So a reconciled call carries no images and no exact change set, and only Create, Update
 * and Delete of one named table can be reconciled. src/handlerApi/declarations.ts refuses the same
 * at compile time.
 */

/** The messages change tracking can tell apart: a row new or changed since the token, or deleted. */
export const RECONCILABLE_MESSAGES = ['Create', 'Update', 'Delete'] as const;
export type ReconcilableMessage = (typeof RECONCILABLE_MESSAGES)[number];

/** What a handler declared about reconciliation, normalized: the columns a reconciled Target holds (null: every column). */
export interface ReconcileDeclaration {
  columns: readonly string[] | null;
}

/** `reconcile: true` or `{ columns: [...] }` as declared; null when the handler does not reconcile. */
export function reconcileDeclaration(option: unknown): ReconcileDeclaration | null {
  if (option === undefined || option === false) return null;
  if (option === true) return { columns: null };
  if (typeof option === 'object' && option !== null && Array.isArray((option as { columns?: unknown }).columns))
    return { columns: [...(option as { columns: unknown[] }).columns].map(String) };
  return { columns: [] };
}

/** Why a declaration cannot reconcile, one sentence each; empty when it can. */
export function reconcileProblems(option: unknown, declaration: HandlerDeclaration): string[] {
  const reconcile = reconcileDeclaration(option);
  if (!reconcile) return [];
  const problems: string[] = [];
  const shape = option === true || (typeof option === 'object' && option !== null && Object.keys(option).join() === 'columns');
  if (!shape || (reconcile.columns !== null && reconcile.columns.length === 0))
    problems.push('reconcile is true, or { columns: [...] } with the columns a reconciled Target holds');
  for (const column of reconcile.columns ?? [])
    if (!LOGICAL_NAME.test(column)) problems.push(`reconcile column "${column}" is not a column logical name`);
  if (declaration.entity === '*') problems.push('reconcile needs the table: change tracking is asked of one named table, not "*"');
  const others = declaration.messages.filter(
    (message) => !RECONCILABLE_MESSAGES.some((reconcilable) => reconcilable.toLowerCase() === message.toLowerCase()),
  );
  if (others.length > 0)
    problems.push(
      `reconcile applies to Create, Update and Delete, which change tracking reports; not to ${others.join(', ')}: declare those in another handler`,
    );
  if (declaration.images.length > 0)
    problems.push(
      'a reconciled call has no images (change tracking keeps no earlier values): a handler that reads images does not reconcile',
    );
  if (declaration.filteringAttributes !== null)
    problems.push(
      'change tracking does not say which columns an update set, so a reconciled Update cannot honour filtering attributes: leave them out (and test the columns in the handler), or do not reconcile',
    );
  if (effectiveStage(declaration) !== 'PostOperation')
    problems.push('reconcile replays committed changes: declare stage PostOperation (or leave the stage out)');
  return problems;
}
