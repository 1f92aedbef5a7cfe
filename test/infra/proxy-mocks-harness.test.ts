// The shared mock harness (test/support/pulumi-mocks.ts) itself: what the infra tests rely on.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import * as random from '@pulumi/random';
import * as tls from '@pulumi/tls';
import { utils as sshUtils } from 'ssh2';
import { createHash } from 'node:crypto';
import { runPulumiProgram, plainText, secretValue } from '../support/pulumi-mocks';

class Box extends pulumi.ComponentResource {
  constructor(name: string, opts?: pulumi.ComponentResourceOptions) {
    super('test:index:Box', name, {}, opts);
    this.registerOutputs({});
  }
}

describe('pulumi-mocks harness', () => {
  it('captures parents, options, secret inputs and mirrors provider secret outputs', async () => {
    const run = await runPulumiProgram(() => {
      const box = new Box('box');
      const key = new tls.PrivateKey('k', { algorithm: 'ED25519' }, { parent: box, protect: true });
      const bytes = new random.RandomBytes('b', { length: 32 }, { parent: box });
      const svc = new k8s.core.v1.Service('svc', { spec: { type: 'LoadBalancer', ports: [{ port: 22 }] } }, { parent: box });
      new k8s.core.v1.Secret('s', { metadata: { labels: { a: 'b' } }, stringData: { x: bytes.base64 } }, { parent: box, dependsOn: [svc] });
      return {
        privateKey: key.privateKeyOpenssh,
        publicKey: key.publicKeyOpenssh,
        fingerprint: key.publicKeyFingerprintSha256,
        bytes: bytes.base64,
        lb: svc.status.loadBalancer.ingress[0]?.ip,
        svcName: svc.metadata.name,
      };
    });
    const box = run.find('test:index:Box');
    const key = run.find('tls:index/privateKey:PrivateKey', 'k');
    assert.equal(run.parentOf(key), box);
    assert.equal(run.parentOf(box)?.type, 'pulumi:pulumi:Stack');
    assert.equal(key.options.protect, true);
    assert.equal(run.children(box).length, 4);
    const secret = run.find('kubernetes:core/v1:Secret');
    assert.deepEqual(secret.secretPaths, ['stringData']);
    assert.ok(!plainText(secret).includes(String(run.outputs.bytes)));
    assert.ok(secret.dependencies.includes(run.find('kubernetes:core/v1:Service').urn));
    // Provider-secret outputs are secret, public ones are not.
    assert.deepEqual([...run.secretOutputs].sort(), ['bytes', 'privateKey']);
    // The mock key is real: parseable, and its fingerprint is what ssh prints.
    const parsed = sshUtils.parseKey(String(run.outputs.privateKey));
    assert.ok(!(parsed instanceof Error));
    const blob = Buffer.from(String(run.outputs.publicKey).split(' ')[1] as string, 'base64');
    assert.equal(run.outputs.fingerprint, `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`);
    assert.equal(Buffer.from(String(run.outputs.bytes), 'base64').length, 32);
    assert.equal(run.outputs.lb, '203.0.113.10');
    assert.match(String(run.outputs.svcName), /^svc-[0-9a-f]{8}$/);
  });

  it('reports a program error without registering more, and honours overrides', async () => {
    const failed = await runPulumiProgram(() => {
      throw new Error('bad config');
    }, { expectError: true });
    assert.equal(failed.error?.message, 'bad config');
    assert.deepEqual(failed.resources.map((r) => r.type), ['pulumi:pulumi:Stack']);
    await assert.rejects(runPulumiProgram(() => { throw new Error('boom'); }), /boom/);

    const run = await runPulumiProgram(
      () => {
        const svc = new k8s.core.v1.Service('svc', { spec: { type: 'LoadBalancer' } });
        const pw = new random.RandomPassword('p', { length: 10 });
        return { host: svc.status.loadBalancer.ingress[0]?.hostname, pw: pw.result };
      },
      { loadBalancer: { hostname: 'lb.example.com' }, overrides: { 'random:index/randomPassword:RandomPassword': () => ({ result: secretValue('fixed') }) } },
    );
    assert.equal(run.outputs.host, 'lb.example.com');
    assert.equal(run.outputs.pw, 'fixed');
    assert.ok(run.secretOutputs.has('pw'));
  });
});
