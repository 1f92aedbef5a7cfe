// SSH with the keys users already have in GitLab (docs/contract.md §5, §6; issue 11), with the real OpenSSH
// client and real ed25519 and RSA keys made by ssh-keygen, against the GitLab stand-in: the proxy looks the
// workspace's owner up with its service token (a Maintainer project access token of the agent's project),
// then the owner's keys, and accepts a key only when it is one of them, not expired, and signed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BaseAgent, Client, utils } from 'ssh2';
import { startSshHarness, WORKSPACE, type SshHarness } from '../support/ssh-harness';
import type { UserKey } from '../support/sshd';
import { NEW_CONNECTION_REUSE_MS } from '../../proxy-image/src/auth/policy';

let h: SshHarness;
let aliceEd: UserKey;
let aliceRsa: UserKey;
let aliceOld: UserKey;
let bobKey: UserKey;
let strangerKey: UserKey;
/** Every client's output, to check that the service token never reaches a user. */
const outputs: string[] = [];

before(async () => {
  h = await startSshHarness({ serviceToken: true });
  aliceEd = h.kit.userKey('ed25519', 'alice-ed');
  aliceRsa = h.kit.userKey('rsa', 'alice-rsa');
  aliceOld = h.kit.userKey('ed25519', 'alice-old');
  bobKey = h.kit.userKey('ed25519', 'bob');
  strangerKey = h.kit.userKey('rsa', 'stranger');
  h.gitlab.addSshKey(h.alice, aliceEd.publicKey, { title: 'laptop' });
  h.gitlab.addSshKey(h.alice, aliceRsa.publicKey, { title: 'old laptop', usageType: 'auth' });
  h.gitlab.addSshKey(h.alice, aliceOld.publicKey, { expiresAt: Date.now() - 60_000 });
  h.gitlab.addSshKey(h.bob, bobKey.publicKey);
});
after(async () => {
  await h?.close();
});

async function run(harness: SshHarness, keys: UserKey[], tokens: string[], command = ['echo', 'in'], extra: string[] = []) {
  const r = await harness.ssh({ options: [...harness.kit.keyOptions(...keys), ...extra], tokens, command });
  outputs.push(r.stdout, r.stderr);
  return r;
}
const authorized = (harness: SshHarness) => harness.logs().filter((l) => l.msg === 'ssh connection authorized');
const refusedKeys = (harness: SshHarness) => harness.logs().filter((l) => l.msg === 'ssh public key refused');

for (const [kind, key] of [['ed25519', () => aliceEd], ['RSA', () => aliceRsa]] as const) {
  test(`the owner's ${kind} key logs in with no prompt, and commands run`, async () => {
    const r = await run(h, [key()], ['glpat-never-asked'], ['echo', 'in', '$USER']);
    assert.equal(r.stdout, `in ${h.sshd.user.name}\n`, r.stderr);
    assert.equal(r.code, 0);
    assert.equal(r.prompts, 0);
    const last = authorized(h).at(-1);
    assert.equal(last?.method, 'publickey');
    assert.equal(last?.gitlabUserId, h.alice.gid);
  });
}

test("scp and sftp work with the owner's key", async () => {
  const local = join(h.kit.dir, 'upload.txt');
  writeFileSync(local, 'sent with a GitLab key\n');
  const remote = join(h.sshd.workdir, 'uploaded.txt');
  const scp = await h.kit.run('scp', [...h.kit.keyOptions(aliceEd), ...h.kit.commonOptions(), '-P', String(h.port), local, `${WORKSPACE}@127.0.0.1:${remote}`], { tokens: ['glpat-never-asked'] });
  outputs.push(scp.stdout, scp.stderr);
  assert.equal(scp.code, 0, scp.stderr);
  assert.equal(scp.prompts, 0);
  assert.equal(readFileSync(remote, 'utf8'), 'sent with a GitLab key\n');
  const sftp = await h.kit.run('sftp', [...h.kit.keyOptions(aliceRsa), ...h.kit.commonOptions(), '-P', String(h.port), '-b', '-', `${WORKSPACE}@127.0.0.1`],
    { tokens: ['glpat-never-asked'], input: `get ${remote} ${join(h.kit.dir, 'back.txt')}\n` });
  outputs.push(sftp.stdout, sftp.stderr);
  assert.equal(sftp.code, 0, sftp.stderr);
  assert.equal(readFileSync(join(h.kit.dir, 'back.txt'), 'utf8'), 'sent with a GitLab key\n');
});

test("another user's key, an expired key and an unknown key are refused; the PAT works in the same attempt", async () => {
  for (const [key, reason] of [[bobKey, 'unknown_key'], [aliceOld, 'expired_key'], [strangerKey, 'unknown_key']] as const) {
    const before = refusedKeys(h).length;
    const r = await run(h, [key], [h.aliceToken]);
    assert.equal(r.stdout, 'in\n', r.stderr);
    assert.equal(r.prompts, 1, 'fell back to the password prompt once');
    assert.equal(authorized(h).at(-1)?.method, 'password');
    const refused = refusedKeys(h).slice(before);
    assert.ok(refused.some((l) => l.reason === reason), `refused as ${reason}: ${JSON.stringify(refused)}`);
  }
  // A refused key looks like a wrong password to the client: nothing tells it why.
  const noPassword = await run(h, [bobKey], ['glpat-wrong'], ['echo', 'in'], ['-o', 'NumberOfPasswordPrompts=1']);
  assert.equal(noPassword.code, 255);
  assert.equal(noPassword.stdout, '');
  assert.match(noPassword.stderr, /Permission denied \(publickey,password\)/);
});

test('key attempts use up none of the 3 password tries', async () => {
  h.gitlab.resetCounts();
  const r = await run(h, [bobKey, aliceOld, strangerKey], ['glpat-wrong-1', 'glpat-wrong-2', h.aliceToken]);
  assert.equal(r.stdout, 'in\n', r.stderr);
  assert.equal(r.prompts, 3);
  // The two wrong tokens were each checked with GitLab (alice's may come from the brief reuse): the three
  // refused keys took none of the three tries.
  const passwordChecks = h.gitlab.graphqlLog.filter((c) => c.token !== h.serviceToken).map((c) => c.token);
  assert.deepEqual(passwordChecks.slice(0, 2), ['glpat-wrong-1', 'glpat-wrong-2']);
  assert.equal(refusedKeys(h).filter((l) => l.username === WORKSPACE).length >= 3, true);
});

/** Sum of workspaces_proxy_gitlab_ssh_key_lookups_total over outcomes, for one lookup. */
function lookups(metrics: string, lookup: 'owner' | 'keys'): number {
  const re = new RegExp(`^workspaces_proxy_gitlab_ssh_key_lookups_total\\{lookup="${lookup}",outcome="[a-z_]+"\\} (\\d+)$`, 'gm');
  return [...metrics.matchAll(re)].reduce((sum, m) => sum + Number(m[1]), 0);
}

test('a burst of 10 key logins costs GitLab one owner lookup and at most one key listing (per reuse window)', async () => {
  // A workspace nobody has asked about yet, so nothing is cached for it.
  h.memory?.add({ name: 'ws-burst', namespace: 'ns-alice', id: '4242', backendHost: '127.0.0.1', routes: {} });
  h.gitlab.setWorkspaceOwner(4242, h.alice, { agentProject: h.agentProject });
  h.gitlab.resetCounts();
  const before = await h.registry.metrics();
  const started = Date.now();
  const runs = await Promise.all(Array.from({ length: 10 }, () =>
    h.ssh({ user: 'ws-burst', options: h.kit.keyOptions(aliceEd), tokens: ['glpat-never-asked'], command: ['echo', 'in'] })));
  // Answers are reused for NEW_CONNECTION_REUSE_MS: one lookup, unless a loaded machine spreads the burst
  // over more than one reuse window.
  const windows = Math.floor((Date.now() - started) / NEW_CONNECTION_REUSE_MS) + 1;
  for (const r of runs) {
    outputs.push(r.stdout, r.stderr);
    assert.equal(r.stdout, 'in\n', r.stderr);
    assert.equal(r.prompts, 0);
  }
  assert.ok(h.gitlab.count('graphql') >= 1 && h.gitlab.count('graphql') <= windows, `${h.gitlab.count('graphql')} owner lookups in ${windows} reuse windows`);
  assert.ok(h.gitlab.count('user_keys') <= windows, `key listings: ${h.gitlab.count('user_keys')}`);
  assert.ok(h.gitlab.graphqlLog.every((c) => c.token === h.serviceToken && c.workspaceId === '4242'));
  // The proxy's GitLab call metrics count the lookups as GitLab saw them.
  const after = await h.registry.metrics();
  assert.equal(lookups(after, 'owner') - lookups(before, 'owner'), h.gitlab.count('graphql'));
  assert.equal(lookups(after, 'keys') - lookups(before, 'keys'), h.gitlab.count('user_keys'));
  assert.match(after, /^workspaces_proxy_gitlab_ssh_key_lookup_duration_seconds_count\{lookup="owner"\} \d+$/m);
});

test('the service token never reaches a client, the workspace or a log line', async () => {
  const env = await run(h, [aliceEd], ['glpat-never-asked'], ['env']);
  assert.equal(env.code, 0);
  const token = h.serviceToken as string;
  assert.match(token, /^glpat-/);
  for (const text of [...outputs, h.logText(), h.sshd.log()]) assert.ok(!text.includes(token), 'service token leaked');
  // It was used, though: every owner lookup went out with it.
  assert.ok(h.gitlab.graphqlLog.some((c) => c.token === token));
});

test('without a service token keys are refused without asking GitLab, and PATs work as before', async () => {
  const plain = await startSshHarness();
  try {
    plain.gitlab.addSshKey(plain.alice, aliceEd.publicKey);
    plain.gitlab.resetCounts();
    const r = await run(plain, [aliceEd], [plain.aliceToken]);
    assert.equal(r.stdout, 'in\n', r.stderr);
    assert.equal(r.prompts, 1);
    assert.equal(plain.gitlab.count('user_keys'), 0);
    assert.equal(plain.gitlab.count('graphql'), 1); // the PAT's check only
    const denied = await run(plain, [aliceEd], ['glpat-wrong'], ['true'], ['-o', 'NumberOfPasswordPrompts=1']);
    assert.match(denied.stderr, /Permission denied \(password\)/, 'only passwords are offered');
  } finally {
    await plain.close();
  }
  // ssh.public_key_auth: false turns keys off even with a token.
  const off = await startSshHarness({ serviceToken: true, publicKeyAuth: false });
  try {
    off.gitlab.addSshKey(off.alice, aliceEd.publicKey);
    const r = await run(off, [aliceEd], [off.aliceToken]);
    assert.equal(r.stdout, 'in\n', r.stderr);
    assert.equal(r.prompts, 1);
    assert.equal(off.gitlab.count('user_keys'), 0);
  } finally {
    await off.close();
  }
});

test('removing the key from GitLab closes its open session within 2 x interval + 1 s; a PAT session stays', async (t) => {
  const interval = 1;
  const bound = 2 * interval * 1000 + 1000;
  const short = await startSshHarness({ serviceToken: true, reauthorizeInterval: interval });
  try {
    const gitlabKey = short.gitlab.addSshKey(short.alice, aliceEd.publicKey);
    const keyMarker = short.marker('key-session');
    const patMarker = short.marker('pat-session');
    const keySession = short.kit.spawn('ssh', [...short.sshArgs(WORKSPACE, short.kit.keyOptions(aliceEd)), `${keyMarker.touch}; sleep 60`], { tokens: ['glpat-never-asked'] });
    const patSession = short.kit.spawn('ssh', [...short.sshArgs(WORKSPACE), `${patMarker.touch}; sleep 60`], { tokens: [short.aliceToken] });
    let keyStderr = '';
    keySession.stderr?.on('data', (d: Buffer) => (keyStderr += d.toString()));
    const keyClosed = new Promise<number>((resolve) => keySession.once('close', () => resolve(performance.now())));
    let patClosed = false;
    patSession.once('close', () => (patClosed = true));
    try {
      await Promise.all([keyMarker.wait(), patMarker.wait()]);
      // Both sessions went through a re-check already: the key one is not closed for lack of one.
      await new Promise((r) => setTimeout(r, 2 * interval * 1000));
      assert.equal(keySession.exitCode, null, 'the key session survives re-checks while the key is there');
      const removed = performance.now();
      short.gitlab.removeSshKey(gitlabKey.id);
      const closedAt = await Promise.race([keyClosed, new Promise<number>((r) => setTimeout(() => r(Infinity), bound + 5000))]);
      t.diagnostic(`key session closed ${Math.round(closedAt - removed)} ms after the key was removed (bound ${bound} ms)`);
      assert.ok(closedAt - removed <= bound, `closed after ${Math.round(closedAt - removed)} ms`);
      assert.match(keyStderr, /GitLab credential revoked or expired/);
      // Give the PAT session the same time and more: it stays.
      await new Promise((r) => setTimeout(r, bound));
      assert.equal(patClosed, false, 'the PAT session is untouched');
      assert.ok(short.logs().some((l) => l.msg === 'closing connection' && l.reason === 'credential_invalid'));
    } finally {
      keySession.kill('SIGKILL');
      patSession.kill('SIGKILL');
    }
  } finally {
    await short.close();
  }
});

test("offering the owner's public key without its private key fails: the signature is checked against GitLab's key", async () => {
  const alicePublic = utils.parseKey(readFileSync(`${aliceEd.path}.pub`, 'utf8'));
  const forger = utils.parseKey(readFileSync(strangerKey.path, 'utf8'));
  assert.ok(!(alicePublic instanceof Error) && !(forger instanceof Error));
  // An agent that claims alice's key but signs with another one.
  class ForgingAgent extends BaseAgent {
    getIdentities(cb: (err: Error | null, keys?: Buffer[]) => void): void {
      cb(null, [(alicePublic as { getPublicSSH(): Buffer }).getPublicSSH()]);
    }
    sign(_key: unknown, data: Buffer, ...rest: unknown[]): void {
      const cb = rest.at(-1) as (err: Error | null, sig?: Buffer) => void;
      cb(null, (forger as { sign(d: Buffer): Buffer }).sign(data));
    }
  }
  const before = refusedKeys(h).length;
  const outcome = await new Promise<string>((resolve) => {
    const c = new Client();
    c.on('ready', () => {
      c.end();
      resolve('logged in');
    });
    c.on('error', (err) => resolve(err.message));
    c.connect({ host: '127.0.0.1', port: h.port, username: WORKSPACE, agent: new ForgingAgent(), tryKeyboard: false });
  });
  assert.match(outcome, /All configured authentication methods failed/);
  assert.ok(refusedKeys(h).slice(before).some((l) => l.reason === 'bad_signature'), 'refused for its signature');
});
