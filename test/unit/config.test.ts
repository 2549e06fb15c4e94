// Configuration validation (src/core/config.ts): like hashicorp/raft's ValidateConfig, it must
// reject bad values *and bad relations between values* before anything starts — R, W <= N,
// N <= members, partitions a power of two >= members, unique member ids, dialable URLs, this node
// among the members — always as an INVALID_ARGUMENT NexusError with a message naming the problem.
// Also pins down quorum name resolution, the settings fingerprint and the --peers parser.

import { expectNexusError } from '../helpers/errors.js';
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  defaultNodeConfig,
  parsePeers,
  resolveQuorum,
  settingsFingerprint,
  validateClusterSettings,
  validateNodeConfig,
  type ClusterSettings,
  type NodeConfig,
} from '../../src/core/config.js';
import { ErrorCodes, NexusError } from '../../src/core/errors.js';

function settings(count = 3, partitions = 64, n = 3): ClusterSettings {
  return {
    members: Array.from({ length: count }, (_, i) => ({ id: `n${i + 1}`, url: `ws://127.0.0.1:${7001 + i}` })),
    partitions,
    n,
  };
}

function config(overrides: Partial<NodeConfig> = {}): NodeConfig {
  return defaultNodeConfig({ id: 'n1', port: 7001, dataDir: '/tmp/nexus-n1', cluster: settings(), ...overrides });
}

/** Expects INVALID_ARGUMENT whose message matches `pattern`. */
const expectInvalid = (f: () => unknown, pattern?: RegExp): void => void expectNexusError(f, ErrorCodes.INVALID_ARGUMENT, pattern);

describe('validateClusterSettings', () => {
  it('accepts sound settings', () => {
    expect(() => validateClusterSettings(settings())).not.toThrow();
    expect(() => validateClusterSettings(settings(1, 1, 1))).not.toThrow();
    expect(() => validateClusterSettings(settings(5, 256, 3))).not.toThrow();
    expect(() => validateClusterSettings(settings(4, 4, 4))).not.toThrow();
    expect(() => validateClusterSettings(settings(3, 65536, 2))).not.toThrow();
  });

  it('refuses an empty member list', () => {
    expectInvalid(() => validateClusterSettings({ members: [], partitions: 64, n: 1 }), /at least one member/);
    expectInvalid(() => validateClusterSettings({ members: 'n1' as never, partitions: 64, n: 1 }), /at least one member/);
  });

  it('refuses member entries that are not objects (a JSON config file may list anything)', () => {
    // nodeConfigFrom passes a config file's "peers" array through unchecked.
    for (const junk of [null, 'n1@ws://127.0.0.1:7001', 7]) {
      const s = settings();
      s.members[0] = junk as never;
      expectInvalid(() => validateClusterSettings(s), /member/);
    }
  });

  it('refuses N above the number of members, and N below 1 or not an integer', () => {
    expectInvalid(() => validateClusterSettings(settings(2, 64, 3)), /n \(3\) cannot exceed the number of members \(2\)/);
    for (const n of [0, -1, 1.5, NaN, '3' as never, 'junk' as never]) expectInvalid(() => validateClusterSettings(settings(3, 64, n)), /n must/);
  });

  it('refuses partition counts that are not a power of two', () => {
    for (const p of [0, -64, 3, 48, 100, 63.5, NaN, Infinity, '64' as never]) expectInvalid(() => validateClusterSettings(settings(3, p)), /power of two/);
    expectInvalid(() => validateClusterSettings(settings(3, 131072)), /up to 65536/);
  });

  it('refuses fewer partitions than members', () => {
    expectInvalid(() => validateClusterSettings(settings(5, 4, 3)), /partitions \(4\) must be at least the number of members \(5\)/);
    expectInvalid(() => validateClusterSettings(settings(2, 1, 1)), /at least the number of members/);
  });

  it('refuses duplicate member ids', () => {
    const s = settings();
    s.members[2] = { id: 'n1', url: 'ws://127.0.0.1:7009' };
    expectInvalid(() => validateClusterSettings(s), /"n1" appears twice/);
  });

  it('refuses bad member ids', () => {
    for (const id of ['', 'has space', 'a/b', 'x'.repeat(65), 'é', 'a~b', undefined as never]) {
      const s = settings();
      s.members[0] = { id, url: 'ws://127.0.0.1:7001' };
      expectInvalid(() => validateClusterSettings(s), /member id/);
    }
  });

  it('refuses URLs that are not ws:// or wss:// with a host', () => {
    for (const url of ['http://127.0.0.1:7001', '127.0.0.1:7001', 'ws://', 'ws:///path', 'wss://', 'ws:127.0.0.1', '', ' ws://h:1', undefined as never]) {
      const s = settings();
      s.members[1] = { id: 'n2', url };
      expectInvalid(() => validateClusterSettings(s), /member n2 has URL/);
    }
    const ok = settings();
    ok.members[0] = { id: 'n1', url: 'wss://node-1.example.com:443' };
    expect(() => validateClusterSettings(ok)).not.toThrow();
  });

  it('refuses URLs that no WebSocket client can dial (a space in the host, a port that is not a number)', () => {
    // The check is a prefix match: anything after "ws://host" passes, so these reach the dialer
    // and fail there, after the node has started. WHATWG URL (what ws uses) refuses all of them.
    for (const url of ['ws://node one:7001', 'ws://localhost:port', 'ws://localhost:99999']) {
      expect(() => new URL(url)).toThrow();
      const s = settings();
      s.members[1] = { id: 'n2', url };
      expectInvalid(() => validateClusterSettings(s), /member n2 has URL/);
    }
  });
});

describe('validateNodeConfig', () => {
  it('accepts the defaults', () => {
    expect(() => validateNodeConfig(config())).not.toThrow();
  });

  it('refuses a node id that is not in the member list', () => {
    expectInvalid(() => validateNodeConfig(config({ id: 'n9' })), /node id "n9" is not in the member list \(n1, n2, n3\)/);
  });

  it('validates the cluster settings first', () => {
    expectInvalid(() => validateNodeConfig(config({ cluster: settings(2, 64, 3) })), /cannot exceed/);
  });

  it('refuses a bad durability', () => {
    for (const d of ['sync', '', 'FSYNC', undefined]) expectInvalid(() => validateNodeConfig(config({ durability: d as never })), /durability/);
    expect(() => validateNodeConfig(config({ durability: 'os' }))).not.toThrow();
  });

  it('refuses default R or W that N cannot satisfy, or junk', () => {
    expectInvalid(() => validateNodeConfig(config({ defaultR: 4 })), /R=4 is impossible/);
    expectInvalid(() => validateNodeConfig(config({ defaultW: 4 })), /W=4 is impossible/);
    expectInvalid(() => validateNodeConfig(config({ defaultW: 0 })), /W must be at least 1/);
    expectInvalid(() => validateNodeConfig(config({ defaultR: 'most' as never })), /R must be a number or one of/);
    expect(() => validateNodeConfig(config({ defaultR: 'all', defaultW: 'one' }))).not.toThrow();
  });

  it('refuses bad ports, data folders, limits and timeouts', () => {
    for (const port of [-1, 65536, 1.5, NaN]) expectInvalid(() => validateNodeConfig(config({ port })), /port/);
    expect(() => validateNodeConfig(config({ port: 0 }))).not.toThrow(); // pick any free port
    expectInvalid(() => validateNodeConfig(config({ dataDir: '' })), /data folder/);
    for (const v of [0, -1, 1.5, 64 * 1024 * 1024 + 1]) expectInvalid(() => validateNodeConfig(config({ maxValueBytes: v })), /maxValueBytes/);
    for (const v of [0, 10001, 2.5]) expectInvalid(() => validateNodeConfig(config({ maxSiblings: v })), /maxSiblings/);
    for (const v of [0, -5, NaN]) expectInvalid(() => validateNodeConfig(config({ requestTimeoutMs: v })), /requestTimeoutMs/);
    expectInvalid(() => validateNodeConfig(config({ maxInFlightPerLink: 0 })), /maxInFlightPerLink/);
    expectInvalid(() => validateNodeConfig(config({ maxBufferedBytesPerLink: -1 })), /maxBufferedBytesPerLink/);
  });
});

describe('resolveQuorum', () => {
  it('resolves the names for several N', () => {
    const cases: [number, number, number, number][] = [
      // n, one, quorum, all
      [1, 1, 1, 1],
      [2, 1, 2, 2],
      [3, 1, 2, 3],
      [4, 1, 3, 4],
      [5, 1, 3, 5],
    ];
    for (const [n, one, quorum, all] of cases) {
      expect(resolveQuorum('one', n, 'R')).toBe(one);
      expect(resolveQuorum('quorum', n, 'R')).toBe(quorum);
      expect(resolveQuorum('all', n, 'W')).toBe(all);
    }
  });

  it('accepts numbers and digit strings within 1..N', () => {
    expect(resolveQuorum(2, 3, 'W')).toBe(2);
    expect(resolveQuorum('2', 3, 'W')).toBe(2);
    expect(resolveQuorum(3, 3, 'R')).toBe(3);
    expect(resolveQuorum('1', 1, 'R')).toBe(1);
  });

  it('refuses R or W above N as impossible', () => {
    expectInvalid(() => resolveQuorum(4, 3, 'W'), /W=4 is impossible: the cluster keeps N=3 replicas/);
    expectInvalid(() => resolveQuorum('5', 3, 'R'), /R=5 is impossible/);
    expectInvalid(() => resolveQuorum('99999999999999999999', 3, 'R'), /impossible/);
  });

  it('refuses zero, negatives, fractions and junk', () => {
    for (const spec of [0, '0', -1, 1.5, NaN, Infinity]) expectInvalid(() => resolveQuorum(spec as never, 3, 'R'), /R must be at least 1/);
    for (const spec of ['', 'two', ' 2', '2 ', '-1', '1.5', 'ONE', 'Quorum', 'majority', '0x2', '1e1', null, true, {}])
      expectInvalid(() => resolveQuorum(spec as never, 3, 'W'), /W must be a number or one of one, quorum, all/);
    expectInvalid(() => resolveQuorum(undefined, 3, 'W'), /W is required/);
  });

  it('never returns a count outside 1..N (random specs)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: -5, max: 10 }), fc.string(), fc.constantFrom('one', 'quorum', 'all')), fc.integer({ min: 1, max: 7 }), (spec, n) => {
        let v: number;
        try {
          v = resolveQuorum(spec, n, 'R');
        } catch (e) {
          expect((e as NexusError).code).toBe(ErrorCodes.INVALID_ARGUMENT);
          return;
        }
        expect(Number.isInteger(v) && v >= 1 && v <= n).toBe(true);
      }),
    );
  });
});

describe('settingsFingerprint', () => {
  it('is equal for equal settings built separately', () => {
    expect(settingsFingerprint(settings())).toBe(settingsFingerprint(settings()));
    expect(settingsFingerprint(settings())).toMatch(/^[0-9a-f]{16}$/);
    // Key order of the objects does not matter, only their contents.
    const a = settings();
    const b: ClusterSettings = { n: a.n, partitions: a.partitions, members: a.members.map((m) => ({ url: m.url, id: m.id })) };
    expect(settingsFingerprint(b)).toBe(settingsFingerprint(a));
  });

  it('changes when members, their order, partitions or N change', () => {
    const base = settingsFingerprint(settings());
    const renamed = settings();
    renamed.members[1] = { ...renamed.members[1]!, id: 'x2' };
    const moved = settings();
    moved.members[1] = { ...moved.members[1]!, url: 'ws://127.0.0.1:9999' };
    const reordered = settings();
    reordered.members.reverse();
    const variants = [
      settings(4, 64, 3), // a member more
      settings(2, 64, 2), // a member fewer
      renamed,
      moved,
      reordered,
      settings(3, 128, 3),
      settings(3, 64, 2),
    ];
    const prints = variants.map(settingsFingerprint);
    for (const p of prints) expect(p).not.toBe(base);
    expect(new Set(prints).size).toBe(prints.length);
  });
});

describe('parsePeers', () => {
  it('parses id@url lists, trimming spaces and skipping empty entries', () => {
    expect(parsePeers('n1@ws://127.0.0.1:7001, n2@ws://127.0.0.1:7002 ,,n3@wss://h:443,')).toEqual([
      { id: 'n1', url: 'ws://127.0.0.1:7001' },
      { id: 'n2', url: 'ws://127.0.0.1:7002' },
      { id: 'n3', url: 'wss://h:443' },
    ]);
    expect(parsePeers('')).toEqual([]);
  });

  it('splits at the first @, so a URL may carry one', () => {
    expect(parsePeers('n1@ws://user@h:1')).toEqual([{ id: 'n1', url: 'ws://user@h:1' }]);
  });

  it('refuses entries without an id before @', () => {
    expectInvalid(() => parsePeers('ws://127.0.0.1:7001'), /must look like ID@ws:\/\/host:port/);
    expectInvalid(() => parsePeers('n1@ws://h:1,@ws://h:2'), /"@ws:\/\/h:2"/);
  });

  it('feeds validateClusterSettings: a parsed list with a duplicate is refused there', () => {
    const members = parsePeers('n1@ws://h:1,n1@ws://h:2');
    expectInvalid(() => validateClusterSettings({ members, partitions: 64, n: 1 }), /appears twice/);
  });
});
