// The classify protocol against the Worker inside workerd (its own parsing, in front of the real backend).
import { ModelList, ModelManifest } from '@protopool/shared';
import { protocolContract } from '../protocol/contract';
import { auth } from './env';
import { worker } from './worker';

protocolContract('edge Worker', () => ({
  manifest: async () => ModelManifest.parse(await (await worker.fetch('http://edge/v1/model')).json()),
  models: async () => ModelList.parse(await (await worker.fetch('http://edge/v1/models')).json()),
  classify: (call) =>
    worker.fetch(`http://edge/v1/classify${call.query ? `?${call.query}` : ''}`, {
      method: 'POST',
      headers: { ...auth(), ...(call.type === undefined ? {} : { 'content-type': call.type }) },
      body: call.body,
    }) as unknown as Promise<Response>,
}));
