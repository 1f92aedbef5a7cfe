// Host-template rendering (Go text/template subset) and Service parsing (docs/contract.md §3).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Service } from '@kubernetes/client-node';
import { renderTemplate, renderHost, normaliseHost } from '../../proxy-image/src/discovery/template';
import { parseService } from '../../proxy-image/src/discovery/service';

test('renders {{.port}} with and without spacing and trim markers', () => {
  assert.deepEqual(renderTemplate('{{.port}}-ws.zone', { port: 3000 }), { ok: true, value: '3000-ws.zone' });
  assert.deepEqual(renderTemplate('{{ .port }}-ws.zone', { port: 3000 }), { ok: true, value: '3000-ws.zone' });
  assert.deepEqual(renderTemplate('a- {{- .port -}} -b', { port: 1 }), { ok: true, value: 'a-1-b' });
  assert.deepEqual(renderTemplate('{{/* c */}}{{.port}}.x', { port: 2 }), { ok: true, value: '2.x' });
  assert.deepEqual(renderTemplate('no-port.zone', { port: 2 }), { ok: true, value: 'no-port.zone' });
});

test('unknown fields, functions and broken delimiters are errors', () => {
  const unknown = renderTemplate('{{.Port}}-ws.zone', { port: 1 });
  assert.equal(unknown.ok, false);
  assert.match(!unknown.ok ? unknown.error : '', /unknown template field \.Port/);
  assert.equal(renderTemplate('{{.port | printf "%d"}}', { port: 1 }).ok, false);
  assert.equal(renderTemplate('{{ if .port }}x{{ end }}', { port: 1 }).ok, false);
  assert.equal(renderTemplate('{{.port}-ws', { port: 1 }).ok, false);
  assert.equal(renderTemplate('x}}', { port: 1 }).ok, false);
});

test('renderHost lowercases and insists on a DNS name', () => {
  assert.deepEqual(renderHost('{{.port}}-WS.Zone', 80), { ok: true, value: '80-ws.zone' });
  assert.equal(renderHost('{{.port}}_ws.zone', 80).ok, false);
  assert.equal(renderHost('{{.port}}-ws.zone/path', 80).ok, false);
  assert.equal(renderHost('', 80).ok, false);
});

test('normaliseHost strips port, trailing dot and case', () => {
  assert.equal(normaliseHost('3000-WS.Zone:443'), '3000-ws.zone');
  assert.equal(normaliseHost('3000-ws.zone.'), '3000-ws.zone');
  assert.equal(normaliseHost('[::1]:8080'), '[::1]');
});

function svc(over: { annotations?: Record<string, string>; clusterIP?: string; ports?: NonNullable<V1Service['spec']>['ports'] } = {}): V1Service {
  return {
    metadata: {
      name: 'ws-1', namespace: 'ns', uid: 'u1', resourceVersion: '5',
      annotations: over.annotations ?? { 'workspaces.gitlab.com/host-template': '{{ .port }}-ws-1.zone', 'workspaces.gitlab.com/id': '12' },
    },
    spec: { clusterIP: over.clusterIP ?? '10.0.0.7', ports: over.ports ?? [{ port: 3000, targetPort: 3000 }] },
  };
}

test('one host per port: targetPort number, else the port; backend is the clusterIP', () => {
  const r = parseService(svc({
    ports: [
      { port: 80, targetPort: 3000 }, // numeric targetPort wins
      { port: 8080, targetPort: 'http' }, // named: port
      { port: 9090 }, // absent: port
      { port: 9091, targetPort: '5000' }, // numeric string
    ],
  }));
  assert.ok(r.ok);
  assert.deepEqual(r.value.routes, [
    { host: '3000-ws-1.zone', port: 3000 },
    { host: '8080-ws-1.zone', port: 8080 },
    { host: '9090-ws-1.zone', port: 9090 },
    { host: '5000-ws-1.zone', port: 5000 },
  ]);
  assert.equal(r.value.backendHost, '10.0.0.7');
  assert.equal(r.value.id, '12');
});

test('headless or odd clusterIP: backend is <name>.<namespace>.svc', () => {
  for (const clusterIP of ['None', '', 'not-an-ip']) {
    const r = parseService(svc({ clusterIP }));
    assert.ok(r.ok);
    assert.equal(r.value.backendHost, 'ws-1.ns.svc');
  }
  const v6 = parseService(svc({ clusterIP: 'fd00::5' }));
  assert.ok(v6.ok);
  assert.equal(v6.value.backendHost, 'fd00::5');
});

test('missing or bad annotations skip the Service with a reason', () => {
  const noTemplate = parseService(svc({ annotations: { 'workspaces.gitlab.com/id': '1' } }));
  assert.deepEqual(noTemplate, { ok: false, key: 'ns/ws-1', reason: 'missing annotation workspaces.gitlab.com/host-template' });
  const noId = parseService(svc({ annotations: { 'workspaces.gitlab.com/host-template': '{{.port}}-x.zone' } }));
  assert.equal(!noId.ok && noId.reason, 'missing annotation workspaces.gitlab.com/id');
  const badId = parseService(svc({ annotations: { 'workspaces.gitlab.com/host-template': '{{.port}}-x.zone', 'workspaces.gitlab.com/id': 'x1' } }));
  assert.equal(badId.ok, false);
  const badTemplate = parseService(svc({ annotations: { 'workspaces.gitlab.com/host-template': '{{.name}}.zone', 'workspaces.gitlab.com/id': '1' } }));
  assert.match(!badTemplate.ok ? badTemplate.reason : '', /unknown template field \.name/);
});
