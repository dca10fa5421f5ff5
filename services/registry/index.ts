// The registry's front door: what a composition root and the tests may use.
export { MemoryStore } from "./memory-store.js";
export { Registry, type RegistryOptions } from "./registry.js";
export { createManagementService } from "./service.js";
export type { RegistryStore } from "./store.js";
