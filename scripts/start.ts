// `npm start`: the whole product locally — backend on the shipped models + edge under wrangler dev,
// wired together; prints the URL of the demo page and stops both cleanly on Ctrl-C.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PortTakenError, SHIPPED_MODELS, startLocalStack } from './local-stack';

function say(line: string): void {
  console.log(`[protopool] ${line}`);
}

async function main(): Promise<number> {
  say('ProtoPool at the edge: interpretable image classification by prototype parts.');
  const missing = SHIPPED_MODELS.filter((m) => !existsSync(join(m.dir, 'manifest.json')));
  if (missing.length) {
    for (const m of missing)
      say(`no model at ${m.dir}; train it: npx protopool train --data ${m.name} --out ${m.dir}`);
    return 1;
  }
  say('starting the backend (TensorFlow.js) and the edge (wrangler dev) on loopback…');
  const stack = await startLocalStack({
    backendPort: Number(process.env.BACKEND_PORT ?? 8080),
    edgePort: Number(process.env.EDGE_PORT ?? 8787),
  });
  say(`backend: ${stack.backendUrl} (HMAC-signed requests only)`);
  say(`models:  ${SHIPPED_MODELS.map((m) => m.name).join(', ')} (the first answers requests naming none)`);
  say(`edge:    ${stack.edgeUrl}`);
  say('');
  say(`open the demo:  ${stack.edgeUrl}/#key=${stack.apiKey}`);
  say(`API docs:       ${stack.edgeUrl}/docs`);
  say(`try the API:    curl -s -H 'Authorization: Bearer ${stack.apiKey}' -H 'content-type: image/png' \\`);
  say(`                  --data-binary @your-image.png '${stack.edgeUrl}/v1/classify?model=parts'`);
  say(`the models:     curl -s ${stack.edgeUrl}/v1/models`);
  say('');
  say('Ctrl-C stops both.');
  await new Promise<void>((resolve) => {
    const stop = () => {
      say('stopping…');
      void stack.stop().then(resolve);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  say('stopped.');
  return 0;
}

try {
  process.exitCode = await main();
} catch (err) {
  console.error(
    `[protopool] ${err instanceof PortTakenError ? '' : 'start failed: '}${(err as Error).message}`,
  );
  process.exitCode = 1;
}
