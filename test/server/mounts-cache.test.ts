/** The remote backend's memory of Mounts answers: the rules that keep it from ever answering stale. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MountsCache } from '../../src/backend/remote/mounts-cache';
import type { Mount } from '../../src/mount';

const answer = (source: string): Mount[] => [{ type: 'erofs', source, target: '', options: ['ro', 'loop'] }];

function cacheWithClock(ttlMs = 1000, maxEntries = 10) {
  let now = 0;
  const cache = new MountsCache({ ttlMs, maxEntries, now: () => now });
  return { cache, advance: (ms: number) => (now += ms) };
}

function remember(cache: MountsCache, key: string, mounts: Mount[]): void {
  cache.store(cache.beginLookup(), key, mounts);
}

describe('MountsCache', () => {
  test('answers a remembered key until the TTL has passed, then forgets it', () => {
    const { cache, advance } = cacheWithClock(1000);
    remember(cache, 'k', answer('/a'));
    advance(999);
    assert.deepEqual(cache.lookup('k'), answer('/a'));
    advance(1);
    assert.equal(cache.lookup('k'), undefined);
    assert.equal(cache.size, 0);
  });

  test('an answer that was in flight while any key changed is not stored', () => {
    const { cache } = cacheWithClock();
    const token = cache.beginLookup();
    cache.forget('other');
    cache.store(token, 'k', answer('/stale'));
    assert.equal(cache.lookup('k'), undefined);
    const afterClear = cache.beginLookup();
    cache.clear();
    cache.store(afterClear, 'k', answer('/stale'));
    assert.equal(cache.lookup('k'), undefined);
  });

  test('forget drops one key, clear drops all', () => {
    const { cache } = cacheWithClock();
    remember(cache, 'a', answer('/a'));
    remember(cache, 'b', answer('/b'));
    cache.forget('a');
    assert.equal(cache.lookup('a'), undefined);
    assert.ok(cache.lookup('b'));
    cache.clear();
    assert.equal(cache.size, 0);
  });

  test('drops the least recently used answer beyond maxEntries', () => {
    const { cache } = cacheWithClock(1000, 2);
    remember(cache, 'a', answer('/a'));
    remember(cache, 'b', answer('/b'));
    cache.lookup('a'); // a is now more recent than b
    remember(cache, 'c', answer('/c'));
    assert.ok(cache.lookup('a'));
    assert.equal(cache.lookup('b'), undefined);
    assert.ok(cache.lookup('c'));
  });

  test('a TTL of 0 remembers nothing', () => {
    const { cache } = cacheWithClock(0);
    remember(cache, 'k', answer('/a'));
    assert.equal(cache.lookup('k'), undefined);
  });

  test('remembered answers are frozen: editing one throws instead of changing later answers', () => {
    const { cache } = cacheWithClock();
    remember(cache, 'k', answer('/a'));
    const got = cache.lookup('k')!;
    assert.throws(() => got[0].options.push('rw'), TypeError);
    assert.throws(() => {
      got[0].source = '/elsewhere';
    }, TypeError);
    assert.deepEqual(cache.lookup('k'), answer('/a'));
  });
});
