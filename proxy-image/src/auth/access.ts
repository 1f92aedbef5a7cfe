// HTTP access control: "may this browser session use its workspace now?", answered with the shared
// ownership check (ownership.ts) and the common confirmation (confirm.ts). What is particular to a browser
// request: a positive answer is reused for an interval, a refreshed token goes back to the browser as a
// new cookie, a request refreshes at most once, and during a GitLab outage a recently confirmed session
// keeps working for the grace of policy.ts.
import type { Logger } from 'pino';
import { refreshCredential, refreshDue, type Credential, type RefreshOutcome, type TokenRefresher } from './credential';
import { confirmOwnership, type CredentialHolder } from './confirm';
import type { OwnershipCheck } from './ownership';
import { REFRESH_TIMEOUT_MS, REQUEST_REFRESH_EARLY_MS, requestReuse, withinGrace } from './policy';
import { credentialOf, withCredential, type SessionData } from './session';

export type AccessDecision =
  | { kind: 'allow'; session: SessionData; /** set when tokens were refreshed: re-issue the cookie */ renewed: boolean }
  /** The credential is no good any more: log in again (GET) or 401. */
  | { kind: 'login' }
  | { kind: 'forbidden' }
  /** GitLab could not be asked and nothing recent vouches for the session. */
  | { kind: 'unavailable' };

export interface AccessControl {
  decide(session: SessionData): Promise<AccessDecision>;
  /**
   * The decision `decide` would reach without waiting for anything (a fresh cached answer, or an outage
   * within the grace), or undefined when it needs GitLab or a refresh: then call `decide`. Lets the request
   * hot path answer synchronously; the rules stay these, in one place.
   */
  decideCached(session: SessionData): AccessDecision | undefined;
}

export interface AccessControlOptions {
  ownership: OwnershipCheck;
  /** Must share refreshes of one refresh token (shareRefreshes), as createAuth (index.ts) wires it. */
  refresher: TokenRefresher;
  logger: Logger;
  reauthorizeIntervalSeconds: number;
  now?: () => number;
}

/**
 * The credential one request holds. The refresher is shared process-wide (shared-refresher.ts, wired in
 * index.ts): concurrent and repeated refreshes of one refresh token already share one grant there, because
 * GitLab rotates refresh tokens and a second grant would be refused. A request refreshes at most once: a
 * token refreshed moments ago that GitLab still rejects means signing in again. A class, not an object
 * literal with a getter: one is made per request, and literals with accessors are built the slow way.
 */
class RequestHolder implements CredentialHolder {
  renewed = false;
  constructor(
    public current: Credential,
    private readonly refresher: TokenRefresher,
    private readonly options: { timeoutMs: number; logger: Logger },
  ) {}

  async refresh(): Promise<RefreshOutcome | 'impossible'> {
    if (this.renewed) return 'rejected';
    const r = await refreshCredential(this.current, this.refresher, this.options);
    if (r.outcome !== 'refreshed') return r.outcome;
    this.current = r.credential;
    this.renewed = true;
    return 'refreshed';
  }
}

export function createAccessControl(opts: AccessControlOptions): AccessControl {
  const now = opts.now ?? Date.now;
  const reuse = requestReuse(opts.reauthorizeIntervalSeconds);

  const refreshOptions = { timeoutMs: REFRESH_TIMEOUT_MS, logger: opts.logger };
  const holderFor = (s: SessionData): RequestHolder => new RequestHolder(credentialOf(s), opts.refresher, refreshOptions);

  /** allow/forbidden from what is known now; the first steps of every decision. */
  function decideCached(s: SessionData): AccessDecision | undefined {
    const cred = credentialOf(s);
    const t = now();
    // An outage already seen for this session, within the grace: the request does not wait for GitLab.
    // Otherwise every request of a busy page would sit out the call's timeout (10 s) while GitLab hangs.
    // One call at a time still goes to GitLab (ownership.ts shares it); its answer ends the outage.
    if (opts.ownership.failing(cred, s.w) && withinGrace(opts.ownership.confirmedAt(cred, s.w), t, opts.reauthorizeIntervalSeconds)) {
      void opts.ownership.check(cred, s.w, reuse);
      return { kind: 'allow', session: s, renewed: false };
    }
    // What confirmOwnership does first: a token about to expire is refreshed before anything is reused.
    if (refreshDue(cred, REQUEST_REFRESH_EARLY_MS, t)) return undefined;
    const known = opts.ownership.cached(cred, s.w, reuse);
    if (known?.kind === 'owner') return { kind: 'allow', session: s, renewed: false };
    if (known?.kind === 'not_owner') return { kind: 'forbidden' };
    return undefined;
  }

  return {
    decideCached,
    async decide(s) {
      const known = decideCached(s);
      if (known) return known;
      const holder = holderFor(s);
      const c = await confirmOwnership(opts.ownership, holder, s.w, { reuse, refreshMarginMs: REQUEST_REFRESH_EARLY_MS, now: now() });
      // Unrefreshed (nearly every request), the session is the one presented: no copy.
      const allow = (): AccessDecision => ({ kind: 'allow', session: holder.renewed ? withCredential(s, holder.current) : s, renewed: holder.renewed });
      switch (c.outcome) {
        case 'owner': return allow();
        case 'not_owner': return { kind: 'forbidden' };
        case 'credential_invalid': return { kind: 'login' };
        case 'unavailable': {
          // A refresh GitLab could not answer leaves a rejected token: only a new login helps.
          if (c.during === 'refresh') return { kind: 'login' };
          const confirmed = opts.ownership.confirmedAt(holder.current, s.w);
          return confirmed > 0 && withinGrace(confirmed, now(), opts.reauthorizeIntervalSeconds) ? allow() : { kind: 'unavailable' };
        }
      }
    },
  };
}
