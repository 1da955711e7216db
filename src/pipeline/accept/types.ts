import type { TableClient } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import type { QueueClient } from '@azure/storage-queue';
import type { DataverseEvent } from '../../dataverse';
import type { EventLog } from '../../observability/log';
import type { Telemetry } from '../../observability/telemetry';
import type { IngestSettings, SettingsError } from '../../settings';
import type { HandlerRegistry } from '../handlerRegistry';

export interface IncomingWebhook {
  method: string;
  url: string;
  headers: Headers;
  /**
   * The raw body: its chunks as they arrive (a request's stream), read only as far as the size
   * limit, or its bytes when they are already in memory (a test, the bench).
   */
  body(): AsyncIterable<Uint8Array> | Promise<Buffer>;
}

export interface WebhookResponse {
  status: number;
  headers?: Record<string, string>;
  jsonBody?: Record<string, unknown>;
}

export interface AcceptDependencies {
  /** The app's settings, or why they are invalid (every request then gets 503, and nothing is read). */
  settings: IngestSettings | SettingsError;
  storage: { eventsQueue: QueueClient; payloads: ContainerClient; rejected: ContainerClient };
  log: EventLog;
  telemetry?: Telemetry;
  now?: () => Date;
  newEventId?: () => string;
  /**
   * The inline handlers (`decide(…)`) and the effects-once ledger their decisions are kept in.
   * Without them no event is decided inline: every usable one is queued.
   */
  decisions?: { handlers: HandlerRegistry; ledger: TableClient };
}

export type AcceptOutcome =
  | 'accepted'
  | 'rejected-body'
  | 'unauthorized'
  | 'forbidden-organization'
  | 'method-not-allowed'
  | 'too-large'
  | 'storage-unavailable'
  | 'settings-invalid'
  | 'decision-rejected'
  | 'decision-failed'
  | 'decision-timeout';

export interface AcceptResult {
  response: WebhookResponse;
  outcome: AcceptOutcome;
  /** Why a body was refused (the parse error kind), when the outcome alone does not say. */
  reason?: string;
  eventId: string;
  event?: DataverseEvent;
  /** How long the inline handlers took, when any ran. */
  decisionMs?: number;
}

/** What every phase of one request shares. */
export interface Reception {
  request: IncomingWebhook;
  eventId: string;
  deps: AcceptDependencies;
  settings: IngestSettings;
  log: EventLog;
  answer: Answer;
}

/** This request's answer: its outcome, status, JSON body (which always carries the event's id) and headers. */
export type Answer = (
  outcome: AcceptOutcome,
  status: number,
  jsonBody: Record<string, unknown>,
  headers?: Record<string, string>,
) => AcceptResult;
