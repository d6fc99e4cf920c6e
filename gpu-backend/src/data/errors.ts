// The error every data loader throws for a bad file: it names the file (and, in the message, the field).

export class DataError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'DataError';
  }
}
