import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText, parseFlags, renderConfigYaml, ConfigError, UsageError } from '../../proxy-image/src/config';

const minimal = `
auth:
  client_id: abc
  client_secret: s3cret
  host: https://gitlab.example.com
  redirect_uri: https://workspaces.example.dev/auth/callback
  signing_key: 0123456789abcdef0123
`;

test('minimal config gets the upstream defaults and the extensions', () => {
  const { config, unknownKeys } = parseConfigText(minimal);
  assert.equal(config.auth.protocol, 'https');
  assert.equal(config.http.enabled, true);
  assert.equal(config.http.port, 9876);
  assert.equal(config.http.internal_port, 9877);
  assert.equal(config.ssh.enabled, false);
  assert.equal(config.ssh.port, 2222);
  assert.equal(config.ssh.backend_port, 22);
  assert.equal(config.ssh.backend_username, 'gitlab-workspaces');
  assert.equal(config.metrics_path, '/metrics');
  assert.equal(config.log_level, 'info');
  assert.equal(config.auth.reauthorize_interval, 60);
  assert.equal(config.auth.max_session_duration, 0);
  assert.deepEqual(unknownKeys, []);
});

test('each missing required key is named in full', () => {
  assert.throws(
    () => parseConfigText('auth: {}\n'),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      for (const key of ['auth.client_id', 'auth.client_secret', 'auth.host', 'auth.redirect_uri', 'auth.signing_key']) {
        assert.ok(e.problems.includes(`${key}: required`), `${key} named in ${e.message}`);
      }
      return true;
    },
  );
});

test('wrong types and bad values are named', () => {
  assert.throws(() => parseConfigText(`${minimal}http:\n  port: "x"\n`), /http\.port: expected number/);
  assert.throws(() => parseConfigText(`${minimal}http:\n  port: 70000\n`), /http\.port/);
  assert.throws(() => parseConfigText(minimal.replace('https://gitlab.example.com', 'gitlab')), /auth\.host/);
  assert.throws(() => parseConfigText(`${minimal}log_level: loud\n`), /log_level/);
  assert.throws(() => parseConfigText('auth: [\n'), /YAML syntax/);
});

test('ssh.enabled needs a readable private host key', () => {
  assert.throws(() => parseConfigText(`${minimal}ssh:\n  enabled: true\n`), /ssh\.host_key: required/);
  assert.throws(() => parseConfigText(`${minimal}ssh:\n  enabled: true\n  host_key: nonsense\n`), /ssh\.host_key: cannot read/);
});

test('unknown keys are reported with their dotted path', () => {
  const { unknownKeys } = parseConfigText(`${minimal}  colour: blue\nextra: 1\nhttp:\n  tls: true\n`);
  assert.deepEqual(unknownKeys.sort(), ['auth.colour', 'extra', 'http.tls']);
});

test('renderConfigYaml writes what the parser accepts and rejects what it would not', () => {
  const yaml = renderConfigYaml({
    auth: {
      client_id: 'a', client_secret: 'b', host: 'https://gitlab.com',
      redirect_uri: 'https://w.example/auth/callback', signing_key: 'x'.repeat(32),
    },
    http: { port: 8080 },
  });
  assert.equal(parseConfigText(yaml).config.http.port, 8080);
  assert.throws(() => renderConfigYaml({ auth: { client_id: 'a' } } as never), /auth\.client_secret: required/);
});

test('flags: Go style, Go style with =, and GNU style', () => {
  assert.deepEqual(parseFlags(['-config', '/a.yaml']), { configPath: '/a.yaml', kubeconfigPath: undefined });
  assert.deepEqual(parseFlags(['-config=/a.yaml', '-kubeconfig=/k']), { configPath: '/a.yaml', kubeconfigPath: '/k' });
  assert.deepEqual(parseFlags(['--config', '/a.yaml', '--kubeconfig', '/k']), { configPath: '/a.yaml', kubeconfigPath: '/k' });
  assert.throws(() => parseFlags([]), UsageError);
  assert.throws(() => parseFlags(['-config']), /needs a value/);
  assert.throws(() => parseFlags(['-bogus', 'x', '-config', 'a']), /unknown flag -bogus/);
});

test('auth.service_token and ssh.public_key_auth: optional, keys on by default, types named', () => {
  const plain = parseConfigText(minimal);
  assert.equal(plain.config.auth.service_token, undefined);
  assert.equal(plain.config.ssh.public_key_auth, true);
  const set = parseConfigText(`${minimal}  service_token: glpat-service\nssh:\n  public_key_auth: false\n`);
  assert.equal(set.config.auth.service_token, 'glpat-service');
  assert.equal(set.config.ssh.public_key_auth, false);
  assert.deepEqual(set.unknownKeys, []);
  assert.throws(() => parseConfigText(`${minimal}  service_token: ""\n`), /auth\.service_token/);
  assert.throws(() => parseConfigText(`${minimal}ssh:\n  public_key_auth: "yes"\n`), /ssh\.public_key_auth: expected boolean/);
});
