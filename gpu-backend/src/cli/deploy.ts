// `protopool deploy` (SageMaker endpoint) and `protopool sagemaker-train` (the container's training entry).
import { join } from 'node:path';
import { ApplicationAutoScalingClient } from '@aws-sdk/client-application-auto-scaling';
import { SageMakerClient } from '@aws-sdk/client-sagemaker';
import type { Command } from 'commander';
import { HyperparameterError, runTrainingJob, SAGEMAKER_ROOT, sageMakerPaths } from '../deploy/container';
import { DeployOptions, deploySageMaker, SECRET_ENV } from '../deploy/sagemaker';
import { UsageError } from './errors';
import { trainReporter } from './progress';

export interface DeployCliDeps {
  /** Where PROTOPOOL_HMAC_SECRET is read [process.env]. */
  env?: NodeJS.ProcessEnv;
  sleep?: (ms: number) => Promise<void>;
  now?: () => Date;
}

const flag = (field: string) => `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** Validates the deploy flags; a mistake names its flag and exits 2. */
export function parseDeployOptions(raw: Record<string, unknown>): DeployOptions {
  const parsed = DeployOptions.safeParse(raw);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((issue) => {
    const field = String(issue.path[0] ?? '');
    const value = raw[field];
    const shown = value === undefined || Array.isArray(value) ? '' : ` ${String(value)}`;
    return `${field ? flag(field) : 'options'}${shown}: ${issue.message}`;
  });
  throw new UsageError(lines.join('; '));
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function addDeployCommands(cli: Command, deps: DeployCliDeps = {}): Command {
  cli
    .command('deploy')
    .description(
      'deploy a model (model.tar.gz on S3) to a SageMaker real-time endpoint with autoscaling; prints the endpoint name',
    )
    .requiredOption('--endpoint <name>', 'endpoint name (created if missing, else updated)')
    .requiredOption('--image <uri>', 'ECR image URI of the container (gpu-backend/deploy/Dockerfile)')
    .requiredOption('--model-data <s3-uri>', 'the model directory packed as s3://…/model.tar.gz')
    .requiredOption('--role <arn>', 'SageMaker execution role ARN (reads the image and the model data)')
    .option('--instance-type <type>', 'instance type [ml.g4dn.xlarge]')
    .option('--initial-instances <n>', 'instances at creation [1]')
    .option('--min-instances <n>', 'autoscaling minimum [1]')
    .option('--max-instances <n>', 'autoscaling maximum [4]')
    .option('--target-invocations <n>', 'autoscaling target: invocations per instance per minute [600]')
    .option('--scale-in-cooldown <s>', 'seconds between scale-in steps [300]')
    .option('--scale-out-cooldown <s>', 'seconds between scale-out steps [60]')
    .option('--suffix <s>', 'suffix of the new model and endpoint-config names [UTC timestamp]')
    .option('--env <KEY=VALUE>', 'extra container environment, repeatable (not the secret)', collect, [])
    .option('--region <name>', 'AWS region [the SDK default: AWS_REGION, profile]')
    .option('--timeout-minutes <n>', 'how long to wait for InService [30]')
    .option('--poll-seconds <n>', 'DescribeEndpoint interval while waiting [30]')
    .action(async (o: Record<string, unknown>) => {
      const options = parseDeployOptions(o);
      const secret = (deps.env ?? process.env)[SECRET_ENV];
      if (!secret) {
        throw new UsageError(
          `${SECRET_ENV} is not set: the endpoint's \`protopool serve\` refuses to start without it (set it in this environment; it is handed to the container and never printed)`,
        );
      }
      const config = options.region ? { region: options.region } : {};
      const sagemaker = new SageMakerClient(config);
      const autoscaling = new ApplicationAutoScalingClient(config);
      try {
        const result = await deploySageMaker(options, {
          sagemaker,
          autoscaling,
          secret,
          log: (line) => process.stderr.write(`deploy: ${line}\n`),
          sleep: deps.sleep,
          now: deps.now,
        });
        process.stdout.write(`${result.endpointName}\n`);
      } finally {
        sagemaker.destroy();
        autoscaling.destroy();
      }
    });

  cli
    .command('sagemaker-train')
    .description(
      'the container entry of a SageMaker training job: hyperparameters.json → config, data from input/data/<channel>, model to /opt/ml/model',
    )
    .option('--root <dir>', 'the SageMaker directory (tests and local runs use another)', SAGEMAKER_ROOT)
    .action(async (o: { root: string }) => {
      const paths = sageMakerPaths(o.root);
      // JSON lines on stdout: CloudWatch keeps them; the same lines go to output/data (output.tar.gz).
      const reporter = trainReporter({ json: true, logFile: join(paths.outputData, 'train.jsonl') });
      // StopTrainingJob sends SIGTERM: stop after the current step; checkpoints stay valid for a restart.
      const stop = new AbortController();
      const onSignal = (sig: NodeJS.Signals) => {
        if (stop.signal.aborted) process.exit(130);
        process.stderr.write(`${sig}: stopping after this step\n`);
        stop.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const result = await runTrainingJob({
          root: o.root,
          engine: cli.opts().engine,
          events: reporter,
          signal: stop.signal,
          log: (line) => process.stderr.write(`${line}\n`),
        });
        process.stdout.write(
          `${JSON.stringify({ modelDir: result.modelDir, resumedFrom: result.resumedFrom, ...result.final })}\n`,
        );
      } catch (err) {
        if (err instanceof HyperparameterError) throw new UsageError(err.message);
        throw err;
      } finally {
        reporter.stop();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
  return cli;
}
