// `npm run demo` lets a newcomer try SSH: the exact commands it prints log in through the proxy to the
// no-root sample sshd, with alice's GitLab key (no prompt) or her personal access token, and scp works.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { startStack, type Stack } from '../support/proxy-stack';
import { clientKit, type ClientKit } from '../support/sshd';

let stack: Stack;
let kit: ClientKit;
before(async () => {
  stack = await startStack({ zone: 'workspaces.localhost', ssh: true });
  const host = stack.addWorkspace('demo', '1', stack.alice);
  kit = clientKit();
  // Discovery is asynchronous: wait until the proxy knows the workspace (its host stops answering 400).
  const status = () => new Promise<number>((resolve) => {
    const req = request({ host: '127.0.0.1', port: stack.httpPort, path: '/', headers: { host: `${host}:${stack.httpPort}` } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
  const until = Date.now() + 20_000;
  while ((await status()) === 400) {
    if (Date.now() > until) throw new Error('the proxy never discovered the demo workspace');
    await new Promise((r) => setTimeout(r, 50));
  }
});
after(async () => {
  await stack?.close();
  kit?.cleanup();
});

test("the printed key command logs in with alice's key, checking the proxy's host key, with no prompt", async () => {
  const ssh = stack.ssh!;
  const r = await kit.run('ssh', [...ssh.keyCommand('demo'), 'echo', 'in', '$PWD'], { tokens: ['never-asked'] });
  assert.equal(r.stdout, `in ${ssh.sshd.dir}\n`, r.stderr);
  assert.equal(r.prompts, 0);
});

test('the printed PAT command logs in with the token as password; scp works', async () => {
  const ssh = stack.ssh!;
  const r = await kit.run('ssh', [...ssh.patCommand('demo'), 'cat', 'README.txt'], { tokens: [ssh.alicePat] });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.prompts, 1);
  assert.match(r.stdout, /demo workspace/);
  const local = join(kit.dir, 'hello.txt');
  writeFileSync(local, 'hello workspace\n');
  const args = ssh.keyCommand('demo');
  const target = args.pop() as string;
  const scpArgs = args.map((a) => (a === '-p' ? '-P' : a));
  const scp = await kit.run('scp', [...scpArgs, local, `${target}:hello.txt`], { tokens: ['never-asked'] });
  assert.equal(scp.code, 0, scp.stderr);
  assert.equal(readFileSync(join(ssh.sshd.dir, 'hello.txt'), 'utf8'), 'hello workspace\n');
});

test("bob's key is not in GitLab and his PAT is not the owner's: refused", async () => {
  const ssh = stack.ssh!;
  const bobPat = stack.gitlab.createPersonalAccessToken(stack.bob);
  const r = await kit.run('ssh', [...ssh.patCommand('demo'), '-o', 'NumberOfPasswordPrompts=1', 'true'], { tokens: [bobPat] });
  assert.equal(r.code, 255);
  assert.match(r.stderr, /Permission denied/);
});
