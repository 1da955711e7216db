import { continueHostTrace, startTelemetry } from './observability/telemetry';
import { app } from '@azure/functions';

// App-wide setup, loaded by the host before any function file (package.json "main").
// Telemetry first: the SDK must be in place before any invocation for its items to correlate.
if (startTelemetry().enabled) app.hook.preInvocation(continueHostTrace);
app.setup({ enableHttpStream: false });
