import type { DataverseEvent } from '../../dataverse';
import { describeError } from '../../observability/log';
import { decisionsBudgetMs } from '../../settings';
import { Deadline } from '../deadline';
import { type DecisionsResult, runDecisions } from '../decide';
import type { EventSummary } from '../envelope';
import type { AcceptResult, Reception } from './types';

/**
 * Decisions into answers: a synchronous event that inline handlers (`decide(…)`, ../decide.ts)
 * match is decided first, and their decisions make the answer. All allow: the event goes on to be
 * stored and answered 202, in the same one write. One rejects: 422, and nothing is queued or waited
 * for. One throws twice (it is run once more at once): 500, which Dataverse does not retry. One
 * runs past its time limit: 500 as well (a second try would wait as long again, beside a handler
 * that may still be running).
 */

/** The inline handlers' decisions for a synchronous event some of them match, or null when none does. */
export async function decideInline(
  { deps, settings, eventId, log }: Reception,
  event: DataverseEvent,
  summary: EventSummary,
): Promise<DecisionsResult | null> {
  const decisions = deps.decisions;
  if (!decisions || decisions.handlers.decisionsFor(event).length === 0) return null;
  const limits = { decisionTimeoutMs: settings.decisionTimeoutMs, totalMs: decisionsBudgetMs(settings) };
  return runDecisions(event, { eventId, summary }, limits, {
    handlers: decisions.handlers,
    ledger: decisions.ledger,
    log,
    ...(deps.telemetry ? { telemetry: deps.telemetry } : {}),
  });
}

/**
 * Writes what a failed save was decided on the ledger, once the answer is on its way: nothing
 * waits for it and no copy of the delivery reads it (decide.ts), so a write that fails is logged
 * and changes nothing. Bounded by the storage deadline.
 */
export function recordAfterAnswer(
  { settings, log }: Reception,
  decided: Exclude<DecisionsResult, { kind: 'allowed' }>,
  ids: Record<string, string | number | null>,
): void {
  const deadline = new Deadline(settings.storageDeadlineMs);
  void deadline
    .bound(decided.record.write(deadline.signal))
    .catch((error: unknown) => log.warn('Could not record the inline decisions in the ledger', { ...ids, reason: describeError(error) }))
    .finally(() => deadline.clear());
}

/**
 * The answer to an inline handler's decision.
 *
 * What the person whose save fails sees is Dataverse's, not ours: "The system cannot parse any
 * data returned with the body of the response, it will only look at the response StatusCode
 * value" (https://learn.microsoft.com/power-apps/developer/data-platform/use-webhooks#troubleshoot-webhook-registrations),
 * and the published error for it has a fixed text: 0x80050201 WebhooksNonSuccessHttpResponse,
 * "The webhook call failed because the http request received non-success httpStatus code.
 * Please check your webhook request handler." (MicrosoftDocs/powerapps-docs,
 * developer/data-platform/includes/data-service-error-codes.md). A public disassembly of the
 * on-premises Microsoft.Crm.ServiceBus WebhookClient.SendAsync agrees: 200-299 is success, the
 * body is never read, 502/503/504 are retried with the same serialized body, a time-out is not.
 * Not confirmed on Dataverse online. So the body is shaped for whoever does read it (`send`, the
 * logs, a plug-in of one's own calling the app): `message` is the one field meant for a person,
 * `code` and `handler` name the rule, `eventId` finds the ledger row and the telemetry.
 */
export function decisionAnswer({ answer }: Reception, decided: Exclude<DecisionsResult, { kind: 'allowed' }>): AcceptResult {
  switch (decided.kind) {
    case 'rejected':
      // Not retried by Dataverse (only 502, 503 and 504 are): the same rule would refuse it again.
      return {
        ...answer('decision-rejected', 422, {
          error: 'rejected',
          handler: decided.handler,
          code: decided.code,
          message: decided.reason,
          decisions: decided.units,
        }),
        reason: 'decision-rejected',
      };
    case 'error':
      // A throw was already retried once, at once (decide.ts): a retry by Dataverse would run it twice more.
      return answer('decision-failed', 500, { error: 'decision-failed', handler: decided.handler, message: 'An inline handler failed' });
    case 'timeout':
      return answer('decision-timeout', 500, {
        error: 'decision-timeout',
        handler: decided.handler,
        message: `An inline handler did not decide within ${decided.limitMs} ms`,
      });
  }
}
