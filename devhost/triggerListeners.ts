import { randomUUID } from 'node:crypto';
import { QueueServiceClient } from '@azure/storage-queue';
import { storageConnectionFrom } from '../src/storage/clients';
import { STORAGE_CONNECTION } from '../src/storage/names';
import { inputBinding, type RpcFunctionMetadata, type RpcTypedData } from './functionsCore';
import type { HostJson } from './hostJson';
import type { HostLog } from './hostLog';
import type { HostWorker } from './hostWorker';
import { type ListenerEvent, QueueListener, SharedQueueWatcher } from './queueListener';
import { TimerListener } from './timerListener';
import { parseSchedule } from './timerSchedule';

/**
 * The local host's queue and timer triggers: one listener per function, as its binding declares
 * (the host's queue listener, queueListener.ts; a schedule, timerListener.ts), each invocation
 * handed to the worker (hostWorker.ts). A binding that cannot be resolved (a setting missing, a
 * schedule that does not parse) is logged and its function does not run, as under the host.
 */

export interface TriggerContext {
  /** The app settings (`%Name%` in a binding, and the storage connection). */
  env: NodeJS.ProcessEnv;
  host: HostJson;
  worker: HostWorker;
  log: HostLog;
  /** The queue listener's receive lease; default the host's 10 minutes. */
  leaseSeconds?: number;
}

/** Anything that listens until it is stopped. */
export interface Listener {
  start(): void;
  stop(): Promise<void>;
}

/** A DateTimeOffset as Json.NET writes it in trigger metadata: `2024-05-01T10:00:00.12+00:00`. */
export function dotnetDate(date: Date): string {
  const iso = date.toISOString();
  const fraction = iso.slice(20, 23).replace(/0+$/, '');
  return `${iso.slice(0, 19)}${fraction ? `.${fraction}` : ''}+00:00`;
}

/** `%Name%` in a binding property is read from the app settings (the host's INameResolver). */
function resolveSetting(value: string, env: NodeJS.ProcessEnv): string {
  return value.replace(/%([^%]+)%/g, (whole, name: string) => {
    const setting = env[name];
    if (setting === undefined) throw new Error(`The app setting "${name}" (named by "${whole}") is not set.`);
    return setting;
  });
}

function queueServiceFor(env: NodeJS.ProcessEnv, connectionName: string): QueueServiceClient {
  const connection = storageConnectionFrom(env, connectionName);
  return connection.kind === 'connection-string'
    ? QueueServiceClient.fromConnectionString(connection.connectionString)
    : new QueueServiceClient(connection.queueUrl, connection.credential);
}

/**
 * Trigger metadata for a queue message, as the queue extension makes it (QueueTriggerBinding.cs
 * `CreateBindingData`: QueueTrigger, DequeueCount, ExpirationTime, Id, InsertionTime,
 * NextVisibleTime, PopReceipt), plus the host's `sys` data, each converted for the worker as
 * GrpcMessageConversionExtensions.cs `ToRpc` does: strings as strings, everything else as Json.NET
 * JSON. @azure/functions then gives them to the function camel-cased in context.triggerMetadata
 * (dequeueCount a number, the times ISO strings).
 */
export function queueTriggerMetadata(
  fn: { name: string },
  body: string,
  message: { messageId: string; popReceipt: string; dequeueCount: number; insertedOn: Date; expiresOn: Date; nextVisibleOn: Date },
  now = new Date(),
): Record<string, RpcTypedData> {
  return {
    QueueTrigger: { string: body },
    DequeueCount: { json: String(message.dequeueCount) },
    ExpirationTime: { json: JSON.stringify(dotnetDate(message.expiresOn)) },
    Id: { string: message.messageId },
    InsertionTime: { json: JSON.stringify(dotnetDate(message.insertedOn)) },
    NextVisibleTime: { json: JSON.stringify(dotnetDate(message.nextVisibleOn)) },
    PopReceipt: { string: message.popReceipt },
    sys: { json: JSON.stringify({ MethodName: fn.name, UtcNow: dotnetDate(now), RandGuid: randomUUID() }) },
  };
}

/** The listeners of every queue- and timer-triggered function, started. */
export function startTriggerListeners(functions: RpcFunctionMetadata[], context: TriggerContext): Listener[] {
  // One queue listener per function, woken by each other's poison moves.
  const watcher = new SharedQueueWatcher();
  const listeners: Listener[] = [];
  for (const fn of functions) {
    try {
      const listener = queueListenerOf(fn, context, watcher) ?? timerListenerOf(fn, context);
      if (listener) listeners.push(listener);
    } catch (error) {
      context.log.system('error', `The function ${fn.name} will not run: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  for (const listener of listeners) listener.start();
  return listeners;
}

/** A queue-triggered function's listener (null for another trigger). */
function queueListenerOf(fn: RpcFunctionMetadata, context: TriggerContext, watcher: SharedQueueWatcher): QueueListener | null {
  const trigger = inputBinding(fn, 'queueTrigger');
  if (!trigger) return null;
  const [triggerName, binding] = trigger;
  const { env, host, log, worker } = context;
  const queueName = resolveSetting(String(binding['queueName'] ?? ''), env);
  const connection = typeof binding['connection'] === 'string' && binding['connection'] ? binding['connection'] : STORAGE_CONNECTION;
  return new QueueListener({
    queueService: queueServiceFor(env, connection),
    queueName,
    queues: host.queues,
    ...(context.leaseSeconds === undefined ? {} : { leaseSeconds: context.leaseSeconds }),
    watcher,
    onEvent: (event: ListenerEvent) => {
      if (event.type === 'poisoned') {
        log.system(
          'warning',
          `Message has reached MaxDequeueCount of ${host.queues.maxDequeueCount}. Moving message to queue '${event.poisonQueueName}'.`,
        );
      } else if (event.type === 'storage-error') {
        const error = event.error as { message?: string };
        log.system('warning', `Queue '${event.queueName}': ${event.operation} failed: ${error?.message ?? String(event.error)}`);
      }
    },
    onUnhandledError: (error) => log.system('error', `Queue '${queueName}': ${error instanceof Error ? error.message : String(error)}`),
    run: async ({ body, message }) => {
      await worker.invoke({
        functionId: fn.functionId,
        functionName: fn.name,
        reason: `New queue message detected on '${queueName}'.`,
        details: `Trigger Details: MessageId: ${message.messageId}, DequeueCount: ${message.dequeueCount}, InsertedOn: ${dotnetDate(message.insertedOn)}`,
        inputData: [{ name: triggerName, data: { string: body } }],
        triggerMetadata: queueTriggerMetadata(fn, body, message),
      });
    },
  });
}

/** A timer-triggered function's listener, on the schedule it registered (null for another trigger). */
function timerListenerOf(fn: RpcFunctionMetadata, { env, worker, log }: TriggerContext): TimerListener | null {
  const trigger = inputBinding(fn, 'timerTrigger');
  if (!trigger) return null;
  const [triggerName, binding] = trigger;
  const listener = new TimerListener({
    schedule: parseSchedule(resolveSetting(String(binding['schedule'] ?? ''), env)),
    runOnStartup: binding['runOnStartup'] === true,
    useMonitor: binding['useMonitor'] !== false,
    formatDate: dotnetDate,
    onError: () => undefined,
    run: async (timerInfo, reason) => {
      await worker.invoke({
        functionId: fn.functionId,
        functionName: fn.name,
        reason: reason === 'startup' ? 'Timer fired at startup (RunOnStartup).' : 'Timer fired.',
        inputData: [{ name: triggerName, data: { json: JSON.stringify(timerInfo) } }],
        // TriggerMetadata is not given to timer functions (@azure/functions reads the Timer from the input).
        triggerMetadata: {},
      });
    },
  });
  log.system('information', `The next occurrence of ${fn.name} is ${listener.next.toISOString()}.`);
  return listener;
}
