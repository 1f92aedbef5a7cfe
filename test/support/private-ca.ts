// A private CA and a server certificate for 127.0.0.1 / localhost, made with the real `openssl` CLI
// (Node's crypto cannot issue X.509 certificates). For tests of "GitLab behind an internal CA".
//
//   const ca = makePrivateCa();      // { caPem, caFile, keyPem, certPem, leafPem, dir, cleanup() }
//   https.createServer({ key: ca.keyPem, cert: ca.certPem }, ...)   // chain: leaf + CA
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PrivateCa {
  dir: string;
  /** The CA certificate (what a stack's gitlabCaBundle holds). */
  caPem: string;
  caFile: string;
  /** The server's private key and its certificate chain (leaf, then CA). */
  keyPem: string;
  certPem: string;
  /** The server certificate alone (not a CA: a bundle made of it must be refused). */
  leafPem: string;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string; code?: string };
    if (e.code === 'ENOENT') throw new Error('openssl is not installed (test/run.sh installs the Debian package openssl)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString() ?? e.message}`);
  }
}

export function makePrivateCa(name = 'Test Internal CA'): PrivateCa {
  const dir = mkdtempSync(join(tmpdir(), 'wsp-ca-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  openssl(['req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1'], dir);
  writeFileSync(join(dir, 'server.ext'), 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt',
    '-days', '2', '-extfile', 'server.ext'], dir);
  const caPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const leafPem = readFileSync(join(dir, 'server.crt'), 'utf8');
  return {
    dir,
    caPem,
    caFile: join(dir, 'ca.crt'),
    keyPem: readFileSync(join(dir, 'server.key'), 'utf8'),
    certPem: leafPem + caPem,
    leafPem,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
