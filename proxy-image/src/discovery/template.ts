// Renders the GitLab agent's host template (annotation workspaces.gitlab.com/host-template), a Go
// text/template such as `{{.port}}-workspace-1-abc.workspaces.example.dev`. Only what the agent uses is
// supported: field references `{{.field}}` with optional spacing and `{{-`/`-}}` trim markers, and
// comments. Anything else (pipelines, functions, unknown fields) is an error, so the Service is skipped
// with a log line instead of routing a host Go would have rendered differently (e.g. `<no value>`).

export type RenderResult = { ok: true; value: string } | { ok: false; error: string };

const action = /\{\{(-\s)?\s*([\s\S]*?)\s*(\s-)?\}\}/g;

export function renderTemplate(template: string, fields: Readonly<Record<string, string | number>>): RenderResult {
  let out = '';
  let last = 0;
  let trimNextLeading = false;
  for (const m of template.matchAll(action)) {
    let text = template.slice(last, m.index);
    if (trimNextLeading) text = text.trimStart();
    if (m[1]) text = text.trimEnd();
    out += text;
    last = m.index + m[0].length;
    trimNextLeading = Boolean(m[3]);
    const body = m[2] ?? '';
    if (/^\/\*[\s\S]*\*\/$/.test(body)) continue;
    const field = /^\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(body);
    if (!field) return { ok: false, error: `unsupported template action {{${body}}}` };
    const value = fields[field[1] ?? ''];
    if (value === undefined) return { ok: false, error: `unknown template field .${field[1]}` };
    out += String(value);
  }
  let rest = template.slice(last);
  if (trimNextLeading) rest = rest.trimStart();
  if (rest.includes('{{') || rest.includes('}}')) return { ok: false, error: 'unbalanced template delimiters' };
  return { ok: true, value: out + rest };
}

// A DNS name (labels of letters, digits and hyphens), as a workspace host must be.
const hostname = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Renders a host for one port; the result is lowercased and must be a valid DNS name. */
export function renderHost(template: string, port: number): RenderResult {
  const r = renderTemplate(template, { port });
  if (!r.ok) return r;
  const host = r.value.trim().toLowerCase();
  if (!hostname.test(host)) return { ok: false, error: `rendered host "${host}" is not a valid DNS name` };
  return { ok: true, value: host };
}

/** Normalises a Host header value for lookup: lowercase, no port, no trailing dot. */
export function normaliseHost(host: string): string {
  let h = host;
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    h = end > 0 ? h.slice(0, end + 1) : h;
  } else {
    const colon = h.indexOf(':');
    if (colon >= 0) h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h.toLowerCase();
}
