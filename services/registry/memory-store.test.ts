import { MemoryStore } from "./memory-store.js";
import { describeStoreContract } from "./testing/store-contract.js";

let store = new MemoryStore();
describeStoreContract("memory", {
  open: async () => store,
  reset: async () => {
    store = new MemoryStore();
  },
});
