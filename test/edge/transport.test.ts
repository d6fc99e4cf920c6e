// Both transports, inside workerd, against the real backend process (SageMaker through a local stand-in).
import { HttpBackend } from '../../edge/src/transport/http';
import { SageMakerBackend } from '../../edge/src/transport/sagemaker';
import { env } from './env';
import { transportContract } from './transport-contract';

const DEAD = 'http://127.0.0.1:9';

transportContract(
  'HTTP + HMAC',
  (o = {}) =>
    new HttpBackend({
      baseUrl: o.dead ? DEAD : env.BACKEND_URL!,
      secret: o.secret ?? env.PROTOPOOL_HMAC_SECRET,
      timeoutMs: o.timeoutMs ?? 5000,
    }),
);

transportContract(
  'SageMaker (SigV4 via aws4fetch)',
  (o = {}) =>
    new SageMakerBackend({
      endpoint: 'protopool-test',
      region: 'us-east-1',
      accessKeyId: 'AKIDTEST',
      secretAccessKey: 'test-secret-key',
      secret: o.secret ?? env.PROTOPOOL_HMAC_SECRET,
      timeoutMs: o.timeoutMs ?? 5000,
      baseUrl: o.dead ? DEAD : env.TEST_SAGEMAKER_URL,
    }),
);
