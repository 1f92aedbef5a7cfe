// Slow fail-to-ban per client address, so the SSH port cannot be used to try tokens against GitLab at
// volume. Each address has a budget of failed password attempts that refills one attempt per refill
// period; an address that has spent it is refused without asking GitLab until the budget grows back.
// An attempt takes from the budget *before* GitLab is asked, so parallel connections cannot overdraw it;
// attempts that end in success or in "GitLab unavailable" give it back.

export interface AddressLimiterOptions {
  /** Failed attempts an address may make in a burst. */
  budget: number;
  /** One failed attempt is forgiven per this many ms. */
  refillMs: number;
  /** Most addresses remembered; beyond it the oldest are forgotten (bounded memory under a flood). */
  maxAddresses?: number;
  now?: () => number;
}

export interface AddressLimiter {
  /** Takes one attempt from the address's budget; false when it is spent (refuse without asking GitLab). */
  take(address: string): boolean;
  /** Returns an attempt taken by take() (the attempt did not fail). */
  giveBack(address: string): void;
  /** Attempts left now (tests and logs). */
  remaining(address: string): number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export function createAddressLimiter(opts: AddressLimiterOptions): AddressLimiter {
  const now = opts.now ?? Date.now;
  const maxAddresses = opts.maxAddresses ?? 100_000;
  // Map keeps insertion order: re-inserting on use makes the first key the least recently used.
  const buckets = new Map<string, Bucket>();

  function current(address: string): Bucket {
    const t = now();
    const b = buckets.get(address);
    if (!b) return { tokens: opts.budget, at: t };
    const refilled = Math.min(opts.budget, b.tokens + (t - b.at) / opts.refillMs);
    return { tokens: refilled, at: t };
  }

  function store(address: string, b: Bucket): void {
    buckets.delete(address);
    // A full bucket is the default state: no need to remember it.
    if (b.tokens >= opts.budget) return;
    buckets.set(address, b);
    if (buckets.size > maxAddresses) {
      const oldest = buckets.keys().next().value;
      if (oldest !== undefined) buckets.delete(oldest);
    }
  }

  return {
    take(address) {
      const b = current(address);
      if (b.tokens < 1) {
        store(address, b);
        return false;
      }
      store(address, { tokens: b.tokens - 1, at: b.at });
      return true;
    },
    giveBack(address) {
      const b = current(address);
      store(address, { tokens: Math.min(opts.budget, b.tokens + 1), at: b.at });
    },
    remaining(address) {
      return Math.floor(current(address).tokens);
    },
  };
}
