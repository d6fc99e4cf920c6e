// The image maths lives in the shared package (the edge runs the same code); re-exported for data code.
export * from '@protopool/shared/image';
