// Hints in memory only, for unit tests and the simulation: the shared mirror with nothing to persist.

import { HintMirror } from './mirror.js';

export class MemoryHintStore extends HintMirror {
  constructor() {
    super({ persist: () => Promise.resolve() });
  }
}
