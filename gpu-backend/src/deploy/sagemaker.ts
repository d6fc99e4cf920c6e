// Deploys a model to a SageMaker real-time endpoint: new Model + EndpointConfig, create/update, wait, autoscale.
import {
  type ApplicationAutoScalingClient,
  DeregisterScalableTargetCommand,
  PutScalingPolicyCommand,
  RegisterScalableTargetCommand,
} from '@aws-sdk/client-application-auto-scaling';
import {
  CreateEndpointCommand,
  CreateEndpointConfigCommand,
  CreateModelCommand,
  DescribeEndpointCommand,
  type DescribeEndpointCommandOutput,
  type ProductionVariantInstanceType,
  type SageMakerClient,
  UpdateEndpointCommand,
} from '@aws-sdk/client-sagemaker';
import { z } from 'zod';

/** SageMaker's pattern for model, endpoint-config and endpoint names. */
const NAME_PATTERN = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;
const NAME_RULE = 'letters, digits and hyphens, at most 63, starting and ending with a letter or digit';
/** The environment variable carrying the edge → backend HMAC secret (read by `protopool serve`). */
export const SECRET_ENV = 'PROTOPOOL_HMAC_SECRET';
/** The one production variant; the autoscaling resource id names it. */
export const VARIANT = 'AllTraffic';

const count = (max: number) => z.coerce.number().int().min(1).max(max);
const EnvEntry = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*=/, 'expected KEY=VALUE')
  .refine((e) => !e.startsWith(`${SECRET_ENV}=`), `${SECRET_ENV} comes from the deployer's environment only`);

/** Deploy options as the CLI hands them over (strings are coerced); each field is one `--flag`. */
export const DeployOptions = z
  .object({
    endpoint: z.string().regex(NAME_PATTERN, NAME_RULE),
    image: z
      .string()
      .regex(
        /^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?\/[a-z0-9._/-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$/,
        'expected an ECR image URI: <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>',
      ),
    modelData: z
      .string()
      .regex(/^s3:\/\/[a-z0-9.-]{3,63}\/\S+\.tar\.gz$/, 'expected s3://<bucket>/<key>.tar.gz'),
    role: z
      .string()
      .regex(
        /^arn:aws[a-z-]*:iam::\d{12}:role\/\S+$/,
        'expected an IAM role ARN (arn:aws:iam::<account>:role/<name>)',
      ),
    // A GPU instance: the image runs tfjs-node-gpu (CUDA 11.2); a T4 is the cheapest that fits.
    instanceType: z
      .string()
      .regex(/^ml\.[a-z0-9-]+\.[a-z0-9]+$/, 'expected a SageMaker instance type such as ml.g4dn.xlarge')
      .default('ml.g4dn.xlarge'),
    initialInstances: count(100).default(1),
    minInstances: count(100).default(1),
    maxInstances: count(100).default(4),
    /** Target of SageMakerVariantInvocationsPerInstance: invocations per instance per minute. */
    targetInvocations: z.coerce.number().positive().max(1_000_000).default(600),
    scaleInCooldown: z.coerce.number().int().min(0).max(86_400).default(300),
    scaleOutCooldown: z.coerce.number().int().min(0).max(86_400).default(60),
    /** Distinguishes this deploy's Model and EndpointConfig (names are immutable); default: a UTC timestamp. */
    suffix: z.string().regex(NAME_PATTERN, NAME_RULE).optional(),
    timeoutMinutes: z.coerce
      .number()
      .positive()
      .max(24 * 60)
      .default(30),
    pollSeconds: z.coerce.number().positive().max(600).default(30),
    /** Extra container environment, KEY=VALUE each (e.g. PROTOPOOL_SERVE_ARGS=--max-batch 64). */
    env: z.array(EnvEntry).default([]),
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'expected an AWS region such as us-east-1')
      .optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.minInstances > o.maxInstances) {
      ctx.addIssue({
        code: 'custom',
        path: ['minInstances'],
        message: `must not exceed --max-instances (${o.maxInstances})`,
      });
    }
    if (o.initialInstances < o.minInstances || o.initialInstances > o.maxInstances) {
      ctx.addIssue({
        code: 'custom',
        path: ['initialInstances'],
        message: `must lie within --min-instances..--max-instances (${o.minInstances}..${o.maxInstances})`,
      });
    }
    if (o.suffix && o.endpoint.length + 1 + o.suffix.length > 63) {
      ctx.addIssue({
        code: 'custom',
        path: ['suffix'],
        message: `"${o.endpoint}-${o.suffix}" is longer than 63 characters`,
      });
    }
    if (!o.suffix && o.endpoint.length > 63 - 1 - 14) {
      ctx.addIssue({
        code: 'custom',
        path: ['endpoint'],
        message: 'at most 48 characters (a 14-digit timestamp suffix follows)',
      });
    }
  });
export type DeployOptions = z.infer<typeof DeployOptions>;

export interface DeployDeps {
  sagemaker: SageMakerClient;
  autoscaling: ApplicationAutoScalingClient;
  /** The HMAC secret handed to the container; never logged. */
  secret: string;
  /** Progress lines (the CLI writes them to stderr). */
  log?: (line: string) => void;
  now?: () => Date;
  sleep?: (ms: number) => Promise<void>;
}

export interface DeployResult {
  endpointName: string;
  modelName: string;
  endpointConfigName: string;
  action: 'created' | 'updated';
}

export class DeployError extends Error {
  override name = 'DeployError';
  /** The endpoint is InService again on its previous config (a failed update SageMaker rolled back). */
  rolledBack = false;
}

/** UTC yyyyMMddHHmmss: sortable, and unique enough for deploys run by people. */
export function timestampSuffix(d: Date): string {
  return d.toISOString().replace(/\D/g, '').slice(0, 14);
}

/** The autoscaling resource id of the endpoint's variant. */
export function scalingResourceId(endpoint: string): string {
  return `endpoint/${endpoint}/variant/${VARIANT}`;
}

function errorName(err: unknown): string {
  return (err as { name?: string } | null)?.name ?? '';
}

async function describeEndpoint(
  sm: SageMakerClient,
  name: string,
): Promise<DescribeEndpointCommandOutput | undefined> {
  try {
    return await sm.send(new DescribeEndpointCommand({ EndpointName: name }));
  } catch (err) {
    // SageMaker has no NotFound error for endpoints: a missing one is a ValidationException.
    if (errorName(err) === 'ValidationException' && /could not find endpoint/i.test((err as Error).message)) {
      return undefined;
    }
    throw err;
  }
}

/** Statuses during which SageMaker refuses UpdateEndpoint. */
const BUSY = new Set(['Creating', 'Updating', 'SystemUpdating', 'RollingBack', 'Deleting']);

async function waitInService(
  sm: SageMakerClient,
  endpoint: string,
  configName: string,
  o: DeployOptions,
  clock: { now: () => Date; sleep: (ms: number) => Promise<void>; log: (line: string) => void },
): Promise<void> {
  const timeoutMs = o.timeoutMinutes * 60_000;
  const pollMs = o.pollSeconds * 1000;
  const started = clock.now().getTime();
  let last: string | undefined;
  let moved = false;
  for (;;) {
    const d = await sm.send(new DescribeEndpointCommand({ EndpointName: endpoint }));
    const status = d.EndpointStatus ?? 'unknown';
    if (status !== last) clock.log(`endpoint ${endpoint}: ${status}`);
    last = status;
    if (status === 'InService') {
      if (d.EndpointConfigName === configName) return;
      // Back in service on the old config after having moved: the update failed and was rolled back.
      // Without movement yet, the update may simply not show in DescribeEndpoint: poll on.
      if (moved || d.FailureReason) {
        const err = new DeployError(
          `update of endpoint ${endpoint} was rolled back to ${d.EndpointConfigName}: ${d.FailureReason ?? 'no reason given'}`,
        );
        err.rolledBack = true;
        throw err;
      }
    } else {
      moved = true;
    }
    if (status === 'Failed' || status === 'UpdateRollbackFailed') {
      throw new DeployError(`endpoint ${endpoint} is ${status}: ${d.FailureReason ?? 'no reason given'}`);
    }
    if (status === 'OutOfService' || status === 'Deleting') {
      throw new DeployError(`endpoint ${endpoint} went ${status} while waiting for it`);
    }
    const waited = clock.now().getTime() - started;
    if (waited + pollMs > timeoutMs) {
      throw new DeployError(
        `timed out after ${o.timeoutMinutes} min waiting for endpoint ${endpoint} to be InService (last status: ${status}); it may still get there: check DescribeEndpoint`,
      );
    }
    await clock.sleep(pollMs);
  }
}

/**
 * Creates a new Model and EndpointConfig, then creates the endpoint or updates it in place (blue/green,
 * SageMaker's default), waits for InService and (re)registers autoscaling on invocations per instance.
 */
export async function deploySageMaker(o: DeployOptions, deps: DeployDeps): Promise<DeployResult> {
  const { sagemaker: sm, autoscaling: aas } = deps;
  const log = deps.log ?? (() => {});
  const now = deps.now ?? (() => new Date());
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  if (!deps.secret) throw new DeployError(`${SECRET_ENV} is empty: the endpoint would refuse to start`);

  const suffix = o.suffix ?? timestampSuffix(now());
  const modelName = `${o.endpoint}-${suffix}`;
  const configName = `${o.endpoint}-${suffix}`;
  const environment: Record<string, string> = {};
  for (const entry of o.env) {
    const eq = entry.indexOf('=');
    environment[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  environment[SECRET_ENV] = deps.secret;

  // Look first: a busy endpoint cannot be updated, and saying so before creating anything is kinder.
  const existing = await describeEndpoint(sm, o.endpoint);
  if (existing && BUSY.has(existing.EndpointStatus ?? '')) {
    throw new DeployError(
      `endpoint ${o.endpoint} is ${existing.EndpointStatus}: wait until it settles, then deploy again`,
    );
  }

  log(`creating model ${modelName} (${o.image}, ${o.modelData})`);
  await sm.send(
    new CreateModelCommand({
      ModelName: modelName,
      ExecutionRoleArn: o.role,
      PrimaryContainer: { Image: o.image, ModelDataUrl: o.modelData, Environment: environment },
    }),
  );
  log(`creating endpoint config ${configName} (${o.initialInstances} × ${o.instanceType})`);
  await sm.send(
    new CreateEndpointConfigCommand({
      EndpointConfigName: configName,
      ProductionVariants: [
        {
          VariantName: VARIANT,
          ModelName: modelName,
          InstanceType: o.instanceType as ProductionVariantInstanceType,
          InitialInstanceCount: o.initialInstances,
          InitialVariantWeight: 1,
        },
      ],
    }),
  );

  const resourceId = scalingResourceId(o.endpoint);
  const target = {
    ServiceNamespace: 'sagemaker',
    ResourceId: resourceId,
    ScalableDimension: 'sagemaker:variant:DesiredInstanceCount',
  } as const;
  let action: DeployResult['action'];
  if (!existing) {
    log(`creating endpoint ${o.endpoint}`);
    await sm.send(new CreateEndpointCommand({ EndpointName: o.endpoint, EndpointConfigName: configName }));
    action = 'created';
  } else {
    // An update that changes the instance type of an autoscaled variant fails; deregistering first
    // (which also deletes its policies) is always allowed. Re-registered below once InService.
    try {
      await aas.send(new DeregisterScalableTargetCommand(target));
      log(`autoscaling of ${resourceId} paused for the update`);
    } catch (err) {
      if (errorName(err) !== 'ObjectNotFoundException') throw err;
    }
    log(`updating endpoint ${o.endpoint} (was ${existing.EndpointConfigName})`);
    // Keep the instance count autoscaling reached, so a busy endpoint does not shrink while it updates.
    await sm.send(
      new UpdateEndpointCommand({
        EndpointName: o.endpoint,
        EndpointConfigName: configName,
        RetainAllVariantProperties: true,
      }),
    );
    action = 'updated';
  }

  const autoscale = async () => {
    log(`autoscaling ${resourceId}: ${o.minInstances}..${o.maxInstances} instances`);
    await aas.send(
      new RegisterScalableTargetCommand({
        ...target,
        MinCapacity: o.minInstances,
        MaxCapacity: o.maxInstances,
      }),
    );
    await aas.send(
      new PutScalingPolicyCommand({
        ...target,
        PolicyName: `${o.endpoint}-invocations-per-instance`,
        PolicyType: 'TargetTrackingScaling',
        TargetTrackingScalingPolicyConfiguration: {
          TargetValue: o.targetInvocations,
          PredefinedMetricSpecification: { PredefinedMetricType: 'SageMakerVariantInvocationsPerInstance' },
          ScaleInCooldown: o.scaleInCooldown,
          ScaleOutCooldown: o.scaleOutCooldown,
        },
      }),
    );
  };
  try {
    await waitInService(sm, o.endpoint, configName, o, { now, sleep, log });
  } catch (err) {
    // The old config serves again, but its autoscaling was deregistered above: put it back, then report.
    if (err instanceof DeployError && err.rolledBack) {
      log('update rolled back: restoring autoscaling on the previous config');
      await autoscale();
    }
    throw err;
  }
  await autoscale();
  log(`endpoint ${o.endpoint} ${action}: InService on ${configName}`);
  return { endpointName: o.endpoint, modelName, endpointConfigName: configName, action };
}
