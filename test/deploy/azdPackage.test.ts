import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { FunctionsWorker } from '../../devhost/functionsCore';
import { registeredFunctionNames } from '../support/functionNames';
import { useTempDirs } from '../support/tempDirs';
import { extractZip, writeZip } from '../support/zip';
import { azdPackageFolder, azdService, dependenciesUpToDate, deployableZipEntries, remoteBuild } from './azdEmulation';

/**
 * `azd up` from a fresh clone, up to what Azure runs: the committed HEAD cloned into an empty
 * folder (nothing beside it), then azd's own steps for the service `api` (./azdEmulation.ts,
 * which cites the azure-dev source of each): restore (`npm install`, for real, from the npm cache
 * only), the `prepackage` hook, the framework's `npm run build`, the check that `dist` is there,
 * then the zip of `dist` less its .funcignore. The zip is unpacked alone into another empty folder
 * and loaded as the Node worker loads an app (devhost/functionsCore.ts): every function of
 * src/functions must register. Before the hook existed, this stopped where azd stops: "package
 * source '…/.deploy' is empty or does not exist".
 */
const ROOT = path.resolve(__dirname, '..', '..');
const tempDir = useTempDirs();

describe('azd up from a fresh clone', () => {
  it('packages .deploy with the prepackage hook, and the zip alone starts every function', async () => {
    const clone = path.join(tempDir('azd-clone-'), 'app');
    await promisify(execFile)('git', ['clone', '--quiet', ROOT, clone]);
    expect(readdirSync(path.dirname(clone))).toEqual(['app']);
    const service = azdService(clone, 'api');
    expect(service).toMatchObject({ dist: '.deploy', language: 'js', host: 'function' });
    // Both forms of the hook stage the package; azd picks the one for the platform it runs on.
    expect(service.hooks['prepackage']).toEqual({
      posix: { shell: 'sh', run: 'npm run package' },
      windows: { shell: 'pwsh', run: 'npm run package' },
    });
    expect(dependenciesUpToDate(clone)).toBe(false);

    const env = {
      PATH: process.env['PATH'],
      HOME: process.env['HOME'],
      // The registry is never asked: every package comes from the npm cache `npm ci` filled.
      npm_config_offline: 'true',
      npm_config_update_notifier: 'false',
      APPLICATIONINSIGHTS_CONNECTION_STRING: '',
    };
    const { folder, steps } = await azdPackageFolder(service, env);
    expect(steps.map((step) => step.step)).toEqual(['restore', 'prepackage', 'package (framework)']);

    const started = Date.now();
    const zip = path.join(tempDir('azd-zip-'), 'dataverse-webhooks-api-azddeploy.zip');
    const written = writeZip(zip, deployableZipEntries(folder, service));
    const zipped = Date.now() - started;
    const alone = tempDir('azd-unzipped-');
    expect(extractZip(zip, alone)).toBe(written.entries);
    expect(existsSync(path.join(alone, '.funcignore'))).toBe(false);
    expect(readdirSync(alone).sort()).toEqual(['dist', 'host.json', 'node_modules', 'package.json']);
    // Flex Consumption does not build remotely: the packages travel in the zip.
    expect(remoteBuild(service)).toBe(false);

    const worker = new FunctionsWorker({ log: () => undefined });
    worker.install();
    try {
      await worker.startApp(alone);
      expect((await worker.indexFunctions()).functions.map((fn) => fn.name).sort()).toEqual(registeredFunctionNames(ROOT));
    } finally {
      worker.uninstall();
    }
    console.log(
      `azd emulation: ${steps.map((step) => `${step.step} ${(step.ms / 1000).toFixed(1)} s`).join(', ')}, zip ${(zipped / 1000).toFixed(1)} s (${written.entries} files, ${(written.bytes / 1e6).toFixed(1)} MB)`,
    );
  }, 240_000);
});
