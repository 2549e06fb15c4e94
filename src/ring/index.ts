// The ring's public face: everything outside src/ring imports from here.
export { partitionOf } from './hash.js';
export { claimOwners } from './claim.js';
export { Ring, selectReplicas, type PrefEntry, type ReplicaChoice } from './ring.js';
