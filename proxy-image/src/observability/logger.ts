// JSON logs with pino. Credentials never reach a log line: known secret-bearing paths are censored.
import pino, { type Logger, type DestinationStream } from 'pino';

export const redactPaths = [
  'token', '*.token', 'password', '*.password', 'accessToken', '*.accessToken', 'refreshToken', '*.refreshToken',
  'req.headers.cookie', 'req.headers.authorization', 'headers.cookie', 'headers.authorization',
  'res.headers["set-cookie"]', 'client_secret', '*.client_secret', 'signing_key', '*.signing_key',
  'service_token', '*.service_token',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    { level, base: { service: 'gitlab-workspaces-proxy' }, redact: { paths: redactPaths, censor: '[redacted]' } },
    destination,
  );
}
