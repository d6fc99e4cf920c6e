// @protopool/gpu-backend as a library: the model, training, explanations, model files and the service.
// The `protopool` command (cli/) is built on these; bin/protopool.js runs it.

export { openDataset } from './data/specs';
export { type EngineInfo, engineSummary, initEngine } from './engine';
export { globalExplanation } from './explain/global';
export { explainBatch, headState } from './explain/local';
export { loadModelDir, readManifest, serialiseModel, verifyFiles } from './io/model-files';
export { BACKBONES, type BackboneName, buildBackbone, cutAtLayer } from './model/backbones';
export { foldBatchNorm } from './model/fold-batch-norm';
export { type ModelConfig, ProtoPoolModel } from './model/protopool';
export { createApp } from './server/app';
export { ModelService } from './server/model-service';
export { startServer } from './server/serve';
export { TrainConfig } from './train/config';
export { evaluate } from './train/evaluate';
export { TrainingStopped, type TrainOptions, type TrainResult, train } from './train/trainer';
export { importResnet } from './weights/import-resnet';
export { readCheckpoint } from './weights/read-checkpoint';
