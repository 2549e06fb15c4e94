// Asserting on Nexus errors in tests.

import { expect } from 'vitest';
import { NexusError } from '../../src/core/errors.js';

/** Expects `f` to throw a NexusError with `code` (and, if given, a message matching `pattern`). */
export function expectNexusError(f: () => unknown, code: string, pattern?: RegExp): NexusError {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, 'expected a throw').toBeInstanceOf(NexusError);
  expect((thrown as NexusError).code).toBe(code);
  if (pattern) expect((thrown as NexusError).message).toMatch(pattern);
  return thrown as NexusError;
}
