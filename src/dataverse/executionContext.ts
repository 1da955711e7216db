import { parseDataContractDate } from './dates';
import { IssueFound } from './errors';
import { formatPath, memberAt, zodIssues } from './issues';
import {
  type DataverseRecord,
  type DataverseValue,
  EXECUTION_MODES,
  type ExecutionContext,
  isEntity,
  isEntityReference,
  STAGE_NAMES,
} from './model';
import { ValueNormalizer } from './normalizeValue';
import { EXECUTION_CONTEXT_PROPERTIES, isWellFormedExecutionContext, type RawExecutionContext, rawExecutionContext } from './rawSchemas';

/**
 * Dataverse stops plug-in chains at Depth 8 and real ParentContext chains are shorter still;
 * the bound only keeps a hostile body from recursing without end.
 */
export const MAX_CONTEXT_DEPTH = 64;

/** Validates and normalizes a RemoteExecutionContext, ParentContext chain included. */
export function normalizeExecutionContext(raw: unknown, path: Array<string | number> = [], level = 0): ExecutionContext {
  if (level >= MAX_CONTEXT_DEPTH) {
    throw new IssueFound('too-deep', [
      { path: `${formatPath(path.slice(0, 3))}…`, message: `ParentContext nests deeper than ${MAX_CONTEXT_DEPTH} levels` },
    ]);
  }
  const context = isWellFormedExecutionContext(raw) ? raw : checkedContext(raw, path);
  const values = new ValueNormalizer(path);

  let operationCreatedOn: Date | null = null;
  if (context.OperationCreatedOn !== null && context.OperationCreatedOn !== undefined) {
    operationCreatedOn = parseDataContractDate(context.OperationCreatedOn);
    if (!operationCreatedOn) values.at('OperationCreatedOn', () => values.fail('expected a /Date(…)/ value'));
  }

  const inputParameters = values.at('InputParameters', () => values.keyValues(context.InputParameters));
  const target = inputParameters['Target'];

  return {
    messageName: context.MessageName,
    primaryEntityName: context.PrimaryEntityName,
    primaryEntityId: context.PrimaryEntityId,
    secondaryEntityName: !context.SecondaryEntityName || context.SecondaryEntityName === 'none' ? null : context.SecondaryEntityName,
    stage: context.Stage,
    stageName: STAGE_NAMES[context.Stage] ?? null,
    mode: EXECUTION_MODES[context.Mode] ?? null,
    depth: context.Depth,
    isolationMode: context.IsolationMode ?? null,
    correlationId: context.CorrelationId,
    operationId: context.OperationId ?? null,
    requestId: context.RequestId ?? null,
    organizationId: context.OrganizationId,
    organizationName: context.OrganizationName ?? null,
    businessUnitId: context.BusinessUnitId ?? null,
    userId: context.UserId,
    initiatingUserId: context.InitiatingUserId ?? null,
    initiatingUserAgent: context.InitiatingUserAgent ?? null,
    initiatingUserAzureActiveDirectoryObjectId: context.InitiatingUserAzureActiveDirectoryObjectId ?? null,
    userAzureActiveDirectoryObjectId: context.UserAzureActiveDirectoryObjectId ?? null,
    operationCreatedOn,
    isExecutingOffline: context.IsExecutingOffline ?? null,
    isInTransaction: context.IsInTransaction ?? null,
    isOfflinePlayback: context.IsOfflinePlayback ?? null,
    inputParameters,
    outputParameters: values.at('OutputParameters', () => values.keyValues(context.OutputParameters)),
    sharedVariables: values.at('SharedVariables', () => values.keyValues(context.SharedVariables)),
    preEntityImages: values.at('PreEntityImages', () => values.entityImages(context.PreEntityImages)),
    postEntityImages: values.at('PostEntityImages', () => values.entityImages(context.PostEntityImages)),
    owningExtension: values.at('OwningExtension', () => values.optionalEntityReference(context.OwningExtension)),
    parentContext:
      context.ParentContext === null || context.ParentContext === undefined
        ? null
        : normalizeExecutionContext(context.ParentContext, [...path, 'ParentContext'], level + 1),
    target: isEntity(target) || isEntityReference(target) ? target : null,
    additionalProperties: additionalProperties(raw as Record<string, unknown>, values),
  };
}

/** The schema's verdict, with the failing paths, for a context the fast check did not take. */
function checkedContext(raw: unknown, path: Array<string | number>): RawExecutionContext {
  const parsed = rawExecutionContext.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw new IssueFound('invalid-context', zodIssues(parsed.error, { at: path }));
}

/** Named by position in an issue's path: an undeclared property's name is the payload's. */
function additionalProperties(raw: Record<string, unknown>, values: ValueNormalizer): DataverseRecord<DataverseValue> {
  const extra: DataverseRecord<DataverseValue> = Object.create(null);
  // for…in lists an object's own properties before any it inherits, so a count of what it listed
  // is an own property's position (and the declared ones are not asked whether they are own).
  let position = -1;
  for (const key in raw) {
    position++;
    if (!EXECUTION_CONTEXT_PROPERTIES.has(key) && Object.hasOwn(raw, key)) {
      extra[key] = values.at(memberAt(position), () => values.value(raw[key]));
    }
  }
  return extra;
}
