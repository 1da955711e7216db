// The layers of the app, as rules `npm run lint` checks on every import (docs/architecture.md
// draws them). A rule broken here fails CI; the message says which rule and why it exists.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle hides which module is the lower layer: split out what both need.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'dataverse-is-the-domain',
      severity: 'error',
      comment: 'src/dataverse is the Dataverse model: usable alone, with no Azure and no other layer of the app.',
      from: { path: '^src/dataverse/' },
      to: { pathNot: ['^src/dataverse/', '^node_modules/zod/'], dependencyTypesNot: ['core'] },
    },
    {
      name: 'app-does-not-use-development-tools',
      severity: 'error',
      comment: 'What deploys (src/) never depends on the development host, the tests or the bench.',
      from: { path: '^src/' },
      to: { path: '^(devhost|test|bench)/' },
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
      name: 'pipeline-knows-no-host',
      severity: 'error',
      comment: 'src/pipeline is callable without Azure: no function registrations, no CLI, no @azure/functions.',
      from: { path: '^src/pipeline/' },
      to: { path: ['^src/(functions|cli)/', '^node_modules/@azure/functions/'] },
    },
    {
      name: 'cli-is-a-leaf',
      severity: 'error',
      comment: 'The CLI uses the app; the app never uses the CLI.',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'devhost-stands-outside',
      severity: 'error',
      comment: "The development host runs the app as the Functions host does: through package.json's entry points, never by importing functions or handlers.",
      from: { path: '^devhost/' },
      to: { path: '^src/(functions|handlers|pipeline)/' },
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
