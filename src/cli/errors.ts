/** The CLI is an HTTP client of the operator API; errors carry the server's code for the user. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}
