// The credentials open connections are re-checked with. Connections opened with the same credential
// share one entry, so a refresh happens once and every batch using it sees the new tokens (GitLab rotates
// refresh tokens: refreshing the same one twice would fail the second time), and a refresh token GitLab
// refused is not sent again.
import type { Logger } from 'pino';
import { identityOf, refreshCredential, type Credential, type RefreshOutcome, type TokenRefresher } from './credential';
import type { CredentialHolder } from './confirm';

export interface CredentialEntry extends CredentialHolder {
  readonly key: string;
  /** The newest credential: the one the connection was opened with, or a refreshed one. */
  readonly current: Credential;
}

export interface CredentialStoreOptions {
  /** Identity of a credential (OwnershipCheck.keyOf: one key for the same credential everywhere). */
  keyOf(c: Credential): string;
  refresher: TokenRefresher;
  logger: Logger;
  timeoutMs: number;
  onRefresh(outcome: RefreshOutcome): void;
}

export interface CredentialStore {
  acquire(c: Credential): CredentialEntry;
  release(entry: CredentialEntry): void;
}

interface Slot {
  key: string;
  current: Credential;
  refs: number;
  refreshing?: Promise<RefreshOutcome | 'impossible'>;
  /** GitLab refused the refresh token: it stays refused, so it is not sent again. */
  refused?: boolean;
  entry: CredentialEntry;
}

export function createCredentialStore(opts: CredentialStoreOptions): CredentialStore {
  const slots = new Map<string, Slot>();
  const byEntry = new WeakMap<CredentialEntry, Slot>();

  /** A `stale` credential the slot already moved past (another batch refreshed meanwhile) needs no second refresh. */
  function refresh(slot: Slot, stale?: Credential): Promise<RefreshOutcome | 'impossible'> {
    if (slot.refreshing) return slot.refreshing;
    const cur = slot.current;
    if (stale !== undefined && identityOf(cur) !== identityOf(stale)) return Promise.resolve('refreshed');
    if (cur.type !== 'oauth' || !cur.refreshToken) return Promise.resolve('impossible');
    if (slot.refused) return Promise.resolve('rejected');
    slot.refreshing = refreshCredential(cur, opts.refresher, { timeoutMs: opts.timeoutMs, logger: opts.logger })
      .then((r) => {
        if (r.outcome === 'refreshed') slot.current = r.credential;
        if (r.outcome === 'rejected') slot.refused = true;
        if (r.outcome !== 'impossible') opts.onRefresh(r.outcome);
        return r.outcome;
      })
      .finally(() => {
        slot.refreshing = undefined;
      });
    return slot.refreshing;
  }

  return {
    acquire(c) {
      const key = opts.keyOf(c);
      let slot = slots.get(key);
      if (!slot) {
        const created: Slot = {
          key, current: c, refs: 0,
          entry: { key, get current() { return created.current; }, refresh: (stale) => refresh(created, stale) },
        };
        slot = created;
        slots.set(key, slot);
        byEntry.set(slot.entry, slot);
      }
      slot.refs += 1;
      return slot.entry;
    },
    release(entry) {
      const slot = byEntry.get(entry);
      if (!slot) return;
      slot.refs -= 1;
      if (slot.refs <= 0 && slots.get(slot.key) === slot) slots.delete(slot.key);
    },
  };
}
