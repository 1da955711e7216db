// The layers of the app, as rules `npm run lint` checks on every import: the one owner of the layer
// rules (docs/architecture.md lists them, and test/architecture.test.ts fails when the list and these
// differ). A rule broken here fails CI; the message says which rule and why it exists.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'A cycle hides which module is the lower layer: split out what both need. One exception: src/handlerApi/declarations.ts imports only types from the API it implements (swc, which parses here, cannot tell type-only imports apart).',
      from: { pathNot: '^src/handlerApi/(index|declarations)\\.ts$' },
      to: { circular: true },
    },
    {
      name: 'dataverse-is-the-domain',
      severity: 'error',
      comment: 'src/dataverse is the Dataverse model: usable alone, with no Azure and no other layer of the app.',
      from: { path: '^src/dataverse/' },
      to: { pathNot: ['^src/dataverse/', 'node_modules/zod/'], dependencyTypesNot: ['core'] },
    },
    {
      name: 'app-does-not-use-development-tools',
      severity: 'error',
      comment: 'What deploys (src/) never depends on the development host, the tests, the bench or the packager.',
      from: { path: '^src/' },
      to: { path: '^(devhost|test|bench|deploy|hostRules)/' },
    },
    {
      name: 'functions-are-wiring-only',
      severity: 'error',
      comment: 'src/functions registers Azure Functions and adapts them; nothing in the app calls into it.',
      from: { path: '^src/', pathNot: '^src/functions/' },
      to: { path: '^src/functions/' },
    },
    {
      name: 'azure-functions-stays-at-the-edge',
      severity: 'error',
      comment: '@azure/functions is used by the function registrations, the app entry point and the invocation log only.',
      from: { path: '^src/', pathNot: ['^src/functions/', '^src/index\\.ts$', '^src/observability/log\\.ts$'] },
      to: { path: '^node_modules/@azure/functions/' },
    },
    {
      name: 'storage-is-transport',
      severity: 'error',
      comment: 'src/storage moves bytes: it knows nothing of the pipeline, the functions, the handlers or the CLI.',
      from: { path: '^src/storage/' },
      to: { path: '^src/(pipeline|functions|handlers|cli)/' },
    },
    {
      name: 'the-ledger-is-written-by-its-protocol',
      severity: 'error',
      comment:
        "src/storage/ledgerTable.ts is the ledger's rows and table; what is written there, and when, is decided by the effects-once protocol in src/pipeline/ledger/ alone.",
      from: { path: '^src/', pathNot: ['^src/pipeline/ledger/', '^src/storage/'] },
      to: { path: '^src/storage/ledgerTable\\.ts$' },
    },
    {
      name: 'pipeline-knows-no-host',
      severity: 'error',
      comment: 'src/pipeline is callable without Azure: no function registrations, no CLI, no @azure/functions.',
      from: { path: '^src/pipeline/' },
      to: { path: ['^src/(functions|cli)/', '^node_modules/@azure/functions/'] },
    },
    {
      name: 'cli-is-a-leaf',
      severity: 'error',
      comment:
        "The CLI uses the app; the app never uses the CLI. The handler test kit (src/handlerApi/testing.ts) is the one exception: it builds payloads as `send` does, and runs only in the user's tests.",
      from: { path: '^src/', pathNot: ['^src/cli/', '^src/handlerApi/testing\\.ts$'] },
      to: { path: '^src/cli/' },
    },
    {
      name: 'devhost-stands-outside',
      severity: 'error',
      comment:
        "The development host runs the app as the Functions host does: through package.json's entry points, never by importing functions or handlers.",
      from: { path: '^devhost/', pathNot: '^devhost/test/' },
      to: { path: '^src/(functions|handlers|pipeline)/' },
    },
    {
      name: 'deploy-does-not-use-the-dev-host',
      severity: 'error',
      comment:
        "The packager ships what the Functions host's Node worker loads: it follows the worker's rules in hostRules/, as the dev host does, and never imports the dev host.",
      from: { path: '^deploy/' },
      to: { path: '^devhost/' },
    },
    {
      name: 'host-rules-stand-alone',
      severity: 'error',
      comment:
        'hostRules/ states rules of the Functions host and its Node worker that the dev host and the packager both follow: it imports nothing but Node.',
      from: { path: '^hostRules/' },
      to: { dependencyTypesNot: ['core'] },
    },
    {
      name: 'accept-is-not-process',
      severity: 'error',
      comment:
        'The HTTP path (accept, decide) and the queue path (process, runUnit, loadEvent, failures, retention, the unit lease) share only what both need (envelope, delivery key, handler context, the ledger).',
      from: { path: '^src/pipeline/(accept/|decide\\.ts$)' },
      to: { path: '^src/pipeline/(process|runUnit|loadEvent|failures|retention|ledger/unitLease)\\.ts$' },
    },
    {
      name: 'process-is-not-accept',
      severity: 'error',
      comment: 'The queue path never calls into the HTTP path.',
      from: { path: '^src/pipeline/(process|runUnit|loadEvent|failures|retention|ledger/unitLease)\\.ts$' },
      to: { path: '^src/pipeline/(accept/|decide\\.ts$)' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to nothing.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    // TypeScript 7 (the native compiler) has no JavaScript API for dependency-cruiser to parse with: swc reads the sources.
    parser: 'swc',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.test.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
