// The connection registry: open WebSocket and SSH connections, re-authorized while they last (docs/contract.md §6).
export { createConnectionRegistry, type ConnectionRegistryOptions } from './registry';
export * from './types';
