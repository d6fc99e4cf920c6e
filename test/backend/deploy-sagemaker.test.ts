// SageMaker deploy: the exact AWS calls of the create, update, failure and timeout paths (SDK mocked, no network).
import {
  ApplicationAutoScalingClient,
  DeregisterScalableTargetCommand,
  ObjectNotFoundException,
  PutScalingPolicyCommand,
  RegisterScalableTargetCommand,
} from '@aws-sdk/client-application-auto-scaling';
import {
  CreateEndpointCommand,
  CreateEndpointConfigCommand,
  CreateModelCommand,
  DescribeEndpointCommand,
  SageMakerClient,
  SageMakerServiceException,
  UpdateEndpointCommand,
} from '@aws-sdk/client-sagemaker';
import { mockClient } from 'aws-sdk-client-mock';
import { Command } from 'commander';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { addDeployCommands } from '../../gpu-backend/src/cli/deploy';
import { UsageError } from '../../gpu-backend/src/cli/errors';
import { DeployError, DeployOptions, deploySageMaker } from '../../gpu-backend/src/deploy/sagemaker';

const sm = mockClient(SageMakerClient);
const aas = mockClient(ApplicationAutoScalingClient);
const SECRET = 'hmac-secret-that-must-never-be-printed';
const START = Date.UTC(2026, 6, 1, 12, 34, 56);
const SUFFIX = '20260701123456';
const NAME = `protopool-${SUFFIX}`;
const IMAGE = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/protopool:1.0';
const MODEL_DATA = 's3://protopool-models/v1/model.tar.gz';
const ROLE = 'arn:aws:iam::123456789012:role/ProtoPoolSageMaker';
const TARGET = {
  ServiceNamespace: 'sagemaker',
  ResourceId: 'endpoint/protopool/variant/AllTraffic',
  ScalableDimension: 'sagemaker:variant:DesiredInstanceCount',
};

const options = (extra: Record<string, unknown> = {}) =>
  DeployOptions.parse({ endpoint: 'protopool', image: IMAGE, modelData: MODEL_DATA, role: ROLE, ...extra });

let elapsed = 0;
let sleeps: number[] = [];
let logs: string[] = [];
const clients = {
  sagemaker: new SageMakerClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'x' },
  }),
  autoscaling: new ApplicationAutoScalingClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'x' },
  }),
};
const deps = () => ({
  ...clients,
  secret: SECRET,
  log: (line: string) => logs.push(line),
  now: () => new Date(START + elapsed),
  sleep: async (ms: number) => {
    sleeps.push(ms);
    elapsed += ms;
  },
});

/** Every command sent to either client, in order, as [command name, input]. */
function sent(): [string, unknown][] {
  return [...sm.calls(), ...aas.calls()]
    .sort((a, b) => (a.calledBefore(b) ? -1 : 1))
    .map((c) => {
      const command = c.args[0] as { constructor: { name: string }; input: unknown };
      return [command.constructor.name, command.input];
    });
}

const notFound = () =>
  new SageMakerServiceException({
    name: 'ValidationException',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
    message: 'Could not find endpoint "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/protopool".',
  });

const createModel = {
  ModelName: NAME,
  ExecutionRoleArn: ROLE,
  PrimaryContainer: {
    Image: IMAGE,
    ModelDataUrl: MODEL_DATA,
    Environment: { PROTOPOOL_HMAC_SECRET: SECRET },
  },
};
const createConfig = {
  EndpointConfigName: NAME,
  ProductionVariants: [
    {
      VariantName: 'AllTraffic',
      ModelName: NAME,
      InstanceType: 'ml.g4dn.xlarge',
      InitialInstanceCount: 1,
      InitialVariantWeight: 1,
    },
  ],
};
const register = { ...TARGET, MinCapacity: 1, MaxCapacity: 4 };
const policy = {
  ...TARGET,
  PolicyName: 'protopool-invocations-per-instance',
  PolicyType: 'TargetTrackingScaling',
  TargetTrackingScalingPolicyConfiguration: {
    TargetValue: 600,
    PredefinedMetricSpecification: { PredefinedMetricType: 'SageMakerVariantInvocationsPerInstance' },
    ScaleInCooldown: 300,
    ScaleOutCooldown: 60,
  },
};
const describe_ = ['DescribeEndpointCommand', { EndpointName: 'protopool' }];

beforeEach(() => {
  sm.reset();
  aas.reset();
  elapsed = 0;
  sleeps = [];
  logs = [];
});
afterAll(() => {
  sm.restore();
  aas.restore();
});

describe('deploySageMaker', () => {
  it('creates model, endpoint config and endpoint, waits for InService, then registers autoscaling', async () => {
    sm.on(DescribeEndpointCommand)
      .rejectsOnce(notFound())
      .resolvesOnce({ EndpointStatus: 'Creating', EndpointConfigName: NAME })
      .resolvesOnce({ EndpointStatus: 'Creating', EndpointConfigName: NAME })
      .resolvesOnce({ EndpointStatus: 'InService', EndpointConfigName: NAME });
    const result = await deploySageMaker(options(), deps());
    expect(result).toEqual({
      endpointName: 'protopool',
      modelName: NAME,
      endpointConfigName: NAME,
      action: 'created',
    });
    expect(sent()).toEqual([
      describe_,
      ['CreateModelCommand', createModel],
      ['CreateEndpointConfigCommand', createConfig],
      ['CreateEndpointCommand', { EndpointName: 'protopool', EndpointConfigName: NAME }],
      describe_,
      describe_,
      describe_,
      ['RegisterScalableTargetCommand', register],
      ['PutScalingPolicyCommand', policy],
    ]);
    expect(sleeps).toEqual([30_000, 30_000]);
    expect(logs.join('\n')).toContain('endpoint protopool: InService');
    expect(logs.join('\n')).not.toContain(SECRET);
  });

  it('updates an existing endpoint: pauses autoscaling, keeps the scaled instance count, re-registers', async () => {
    sm.on(DescribeEndpointCommand)
      .resolvesOnce({ EndpointStatus: 'InService', EndpointConfigName: 'protopool-old' })
      .resolvesOnce({ EndpointStatus: 'Updating', EndpointConfigName: 'protopool-old' })
      .resolvesOnce({ EndpointStatus: 'InService', EndpointConfigName: NAME });
    const o = options({
      instanceType: 'ml.g5.2xlarge',
      initialInstances: '2',
      minInstances: '2',
      maxInstances: '8',
      targetInvocations: '1200',
      env: ['PROTOPOOL_SERVE_ARGS=--max-batch 64'],
      pollSeconds: '5',
    });
    const result = await deploySageMaker(o, deps());
    expect(result.action).toBe('updated');
    expect(sent()).toEqual([
      describe_,
      [
        'CreateModelCommand',
        {
          ...createModel,
          PrimaryContainer: {
            ...createModel.PrimaryContainer,
            Environment: { PROTOPOOL_SERVE_ARGS: '--max-batch 64', PROTOPOOL_HMAC_SECRET: SECRET },
          },
        },
      ],
      [
        'CreateEndpointConfigCommand',
        {
          EndpointConfigName: NAME,
          ProductionVariants: [
            { ...createConfig.ProductionVariants[0], InstanceType: 'ml.g5.2xlarge', InitialInstanceCount: 2 },
          ],
        },
      ],
      ['DeregisterScalableTargetCommand', TARGET],
      [
        'UpdateEndpointCommand',
        { EndpointName: 'protopool', EndpointConfigName: NAME, RetainAllVariantProperties: true },
      ],
      describe_,
      describe_,
      ['RegisterScalableTargetCommand', { ...register, MinCapacity: 2, MaxCapacity: 8 }],
      [
        'PutScalingPolicyCommand',
        {
          ...policy,
          TargetTrackingScalingPolicyConfiguration: {
            ...policy.TargetTrackingScalingPolicyConfiguration,
            TargetValue: 1200,
          },
        },
      ],
    ]);
    expect(sleeps).toEqual([5000]);
  });

  it('updates an endpoint that had no autoscaling yet (DeregisterScalableTarget: ObjectNotFound)', async () => {
    sm.on(DescribeEndpointCommand)
      .resolvesOnce({ EndpointStatus: 'Failed', EndpointConfigName: 'protopool-old' })
      .resolvesOnce({ EndpointStatus: 'InService', EndpointConfigName: NAME });
    aas
      .on(DeregisterScalableTargetCommand)
      .rejects(new ObjectNotFoundException({ $metadata: {}, message: 'No scalable target registered' }));
    await expect(deploySageMaker(options(), deps())).resolves.toMatchObject({ action: 'updated' });
    expect(sm.commandCalls(UpdateEndpointCommand)).toHaveLength(1);
    expect(aas.commandCalls(RegisterScalableTargetCommand)).toHaveLength(1);
    expect(aas.commandCalls(PutScalingPolicyCommand)).toHaveLength(1);
  });

  it('fails with the FailureReason when the endpoint fails, and registers no autoscaling', async () => {
    const reason =
      'The primary container for production variant AllTraffic did not pass the ping health check.';
    sm.on(DescribeEndpointCommand)
      .rejectsOnce(notFound())
      .resolvesOnce({ EndpointStatus: 'Creating', EndpointConfigName: NAME })
      .resolvesOnce({ EndpointStatus: 'Failed', EndpointConfigName: NAME, FailureReason: reason });
    const err = await deploySageMaker(options(), deps()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeployError);
    expect((err as Error).message).toBe(`endpoint protopool is Failed: ${reason}`);
    expect(aas.calls()).toHaveLength(0);
  });

  it('reports an update that SageMaker rolled back, after restoring autoscaling on the old config', async () => {
    sm.on(DescribeEndpointCommand)
      .resolvesOnce({ EndpointStatus: 'InService', EndpointConfigName: 'protopool-old' })
      .resolvesOnce({ EndpointStatus: 'Updating', EndpointConfigName: 'protopool-old' })
      .resolvesOnce({ EndpointStatus: 'RollingBack', EndpointConfigName: 'protopool-old' })
      .resolvesOnce({
        EndpointStatus: 'InService',
        EndpointConfigName: 'protopool-old',
        FailureReason: 'ping health check failed',
      });
    await expect(deploySageMaker(options(), deps())).rejects.toThrow(
      'update of endpoint protopool was rolled back to protopool-old: ping health check failed',
    );
    expect(sent().slice(-5)).toEqual([
      describe_,
      describe_,
      describe_,
      ['RegisterScalableTargetCommand', register],
      ['PutScalingPolicyCommand', policy],
    ]);
  });

  it('times out after --timeout-minutes, naming the last status', async () => {
    sm.on(DescribeEndpointCommand)
      .rejectsOnce(notFound())
      .resolves({ EndpointStatus: 'Creating', EndpointConfigName: NAME });
    const o = options({ timeoutMinutes: '1', pollSeconds: '20' });
    await expect(deploySageMaker(o, deps())).rejects.toThrow(
      /^timed out after 1 min waiting for endpoint protopool to be InService \(last status: Creating\)/,
    );
    expect(sleeps).toEqual([20_000, 20_000, 20_000]);
    expect(sm.commandCalls(DescribeEndpointCommand)).toHaveLength(5);
    expect(aas.calls()).toHaveLength(0);
  });

  it('refuses to touch an endpoint that is busy, before creating anything', async () => {
    sm.on(DescribeEndpointCommand).resolves({ EndpointStatus: 'Updating', EndpointConfigName: 'x' });
    await expect(deploySageMaker(options(), deps())).rejects.toThrow(
      'endpoint protopool is Updating: wait until it settles, then deploy again',
    );
    expect(sent()).toEqual([describe_]);
  });

  it('passes other DescribeEndpoint errors through without creating anything', async () => {
    sm.on(DescribeEndpointCommand).rejects(
      new SageMakerServiceException({
        name: 'AccessDeniedException',
        $fault: 'client',
        $metadata: {},
        message: 'not authorized to perform sagemaker:DescribeEndpoint',
      }),
    );
    await expect(deploySageMaker(options(), deps())).rejects.toThrow('not authorized');
    expect(sm.commandCalls(CreateModelCommand)).toHaveLength(0);
  });
});

describe('protopool deploy (CLI)', () => {
  const cli = (env: NodeJS.ProcessEnv = { PROTOPOOL_HMAC_SECRET: SECRET }) =>
    addDeployCommands(new Command('protopool').exitOverride(), {
      env,
      now: () => new Date(START),
      sleep: async () => {},
    });
  const base = [
    'deploy',
    '--endpoint',
    'protopool',
    '--image',
    IMAGE,
    '--model-data',
    MODEL_DATA,
    '--role',
    ROLE,
  ];
  let stdout: string[];
  let stderr: string[];
  beforeEach(() => {
    stdout = [];
    stderr = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => stdout.push(String(s)) > 0);
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => stderr.push(String(s)) > 0);
  });
  afterEach(() => vi.restoreAllMocks());

  it('prints only the endpoint name on stdout, progress on stderr, never the secret', async () => {
    sm.on(DescribeEndpointCommand)
      .rejectsOnce(notFound())
      .resolves({ EndpointStatus: 'InService', EndpointConfigName: NAME });
    await cli().parseAsync([...base, '--region', 'eu-west-1'], { from: 'user' });
    expect(stdout.join('')).toBe('protopool\n');
    expect(stderr.join('')).toContain(`deploy: creating model ${NAME}`);
    expect(stdout.join('') + stderr.join('')).not.toContain(SECRET);
    expect(sm.commandCalls(CreateEndpointCommand)).toHaveLength(1);
    expect(
      sm.commandCalls(CreateEndpointConfigCommand)[0]!.args[0].input.ProductionVariants![0]!.InstanceType,
    ).toBe('ml.g4dn.xlarge');
  });

  it.each([
    [['--instance-type', 'g4dn.xlarge'], '--instance-type g4dn.xlarge: expected a SageMaker instance type'],
    [
      ['--min-instances', '5', '--max-instances', '2'],
      '--min-instances 5: must not exceed --max-instances (2)',
    ],
    [['--max-instances', '0'], '--max-instances 0: Too small'],
    [['--target-invocations', 'lots'], '--target-invocations lots: Invalid input: expected number'],
    [['--env', 'PROTOPOOL_HMAC_SECRET=oops'], '--env: PROTOPOOL_HMAC_SECRET comes from the deployer'],
    [['--env', 'not an assignment'], '--env: expected KEY=VALUE'],
    [['--endpoint', 'bad_name'], '--endpoint bad_name: letters, digits and hyphens'],
    [
      ['--model-data', 's3://bucket/model.zip'],
      '--model-data s3://bucket/model.zip: expected s3://<bucket>/<key>.tar.gz',
    ],
    [['--suffix', 'x'.repeat(60)], '--suffix'],
  ])('refuses %j with a usage error naming the flag, before any AWS call', async (extra, message) => {
    const err = await cli()
      .parseAsync([...base, ...extra], { from: 'user' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toContain(message);
    expect(sm.calls()).toHaveLength(0);
  });

  it('refuses to deploy without PROTOPOOL_HMAC_SECRET', async () => {
    const err = await cli({})
      .parseAsync(base, { from: 'user' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(/^PROTOPOOL_HMAC_SECRET is not set/);
    expect(sm.calls()).toHaveLength(0);
  });
});
