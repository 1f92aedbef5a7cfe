// The built proxy process with SSH enabled, as the container runs it: workspaces discovered from the
// Kubernetes API stand-in, tokens checked with the GitLab stand-in, a real sshd as the workspace, and
// SIGTERM telling open SSH sessions "going away" before a clean exit (docs/contract.md §1, §5).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGitLabStandIn } from '../support/gitlab-stand-in';
import { startKubeApiStandIn, workspaceService } from '../support/kube-api-stand-in';
import { writeKubeconfig } from '../support/kubeconfig';
import { freePorts, spawnProxy, validConfig } from '../support/spawn-proxy';
import { clientKit, startWorkspaceSshd } from '../support/sshd';
import { testHostKey } from '../support/ssh-harness';

test('the proxy process serves SSH to a discovered workspace and says "going away" on SIGTERM', async () => {
  const sshd = await startWorkspaceSshd();
  const gitlab = await startGitLabStandIn();
  const kube = await startKubeApiStandIn();
  const dir = mkdtempSync(join(tmpdir(), 'gwp-ssh-proc-'));
  const kit = clientKit();
  const alice = gitlab.addUser({ username: 'alice', password: 'pw' });
  gitlab.setWorkspaceOwner(501, alice);
  const token = gitlab.createPersonalAccessToken(alice);
  kube.addService(workspaceService({ name: 'ws-proc', namespace: 'ns-a', workspaceId: '501', ports: [3000], clusterIP: '127.0.0.1' }));
  const ports = await freePorts();
  const proxy = spawnProxy({
    config: {
      ...validConfig({ ports, gitlabUrl: gitlab.url }),
      ssh: { enabled: true, port: ports.ssh, host_key: testHostKey(), backend_port: sshd.port, backend_username: sshd.user.name },
    },
    kubeconfigPath: writeKubeconfig(kube.url, dir),
  });
  try {
    const addrs = await proxy.listening;
    assert.equal(addrs.ssh?.port, ports.ssh);
    await proxy.waitForLog((l) => /first complete list/.test(String(l.msg)));
    const target = [...kit.commonOptions(), '-p', String(ports.ssh), 'ws-proc@127.0.0.1'];

    const r = await kit.run('ssh', [...target, 'echo ok; exit 3'], { tokens: [token] });
    assert.equal(r.stdout, 'ok\n', r.stderr);
    assert.equal(r.code, 3);

    const marker = join(sshd.workdir, 'started');
    const session = kit.run('ssh', [...target, `echo started; touch ${marker}; sleep 30; echo never`], { tokens: [token] });
    while (!existsSync(marker)) await new Promise((res) => setTimeout(res, 50));
    const exit = await proxy.stop('SIGTERM');
    assert.equal(exit.code, 0);
    const closed = await session;
    assert.notEqual(closed.code, 0);
    assert.equal(closed.stdout, 'started\n');
    assert.match(closed.stderr, /gitlab-workspaces-proxy: proxy going away/);
    assert.ok(!proxy.stdout().includes(token), 'the token never reaches the log');
  } finally {
    await proxy.cleanup();
    kit.cleanup();
    await kube.close();
    await gitlab.close();
    await sshd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
