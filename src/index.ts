import { app } from '@azure/functions';

// App-wide setup, loaded by the host before any function file (package.json "main").
app.setup({ enableHttpStream: false });
