export type { Storage, SqliteStorageOptions } from './types.js';
export { SCHEMA_VERSION } from './types.js';
export { compareKeys } from './staging.js';
export { SqliteStorage, DB_FILE_NAME, type SqliteInfo } from './sqlite.js';
export { MemoryStorage, type MemoryStorageOptions } from './memory.js';
