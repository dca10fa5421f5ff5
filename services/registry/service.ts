import type { ServiceImpl } from "@connectrpc/connect";
import type { ManagementService } from "../../gen/clipper/v1/management_service_pb.js";
import type { Registry } from "./registry.js";

/** clipper.v1.ManagementService over a Registry: transport only, the rules live in Registry. */
export function createManagementService(registry: Registry): ServiceImpl<typeof ManagementService> {
  return {
    async createApplication(req) {
      return { application: await registry.createApplication(req) };
    },
    getApplication(req) {
      return { application: registry.getApplication(req.name) };
    },
    listApplications() {
      return { applications: registry.listApplications() };
    },
    async updateApplication(req) {
      return { application: await registry.updateApplication(req) };
    },
    async deleteApplication(req) {
      await registry.deleteApplication(req.name);
      return {};
    },
    async createModel(req) {
      return registry.createModel(req);
    },
    getModel(req) {
      return registry.getModel(req.name, req.version);
    },
    listModels(req) {
      return registry.listModels(req.name);
    },
    async updateModel(req) {
      return { model: await registry.updateModel(req) };
    },
    async deleteModel(req) {
      return { deleted: await registry.deleteModel(req.name, req.version) };
    },
    async setModelVersion(req) {
      return { previousVersion: await registry.setModelVersion(req.name, req.version) };
    },
    async linkModel(req) {
      return { application: await registry.linkModel(req.application, req.modelName) };
    },
    async unlinkModel(req) {
      return { application: await registry.unlinkModel(req.application, req.modelName) };
    },
    async reportReplicas(req) {
      await registry.reportReplicas(req.replicaSet);
      return {};
    },
    listReplicas(req) {
      return { replicaSets: registry.listReplicas(req.modelName, req.modelVersion) };
    },
    async getPolicyState(req) {
      return registry.getPolicyState(req.application, req.uid);
    },
    async updatePolicyState(req) {
      const swap = await registry.updatePolicyState(req.application, req.uid, req.expectedVersion, req.state);
      return swap.applied ? { applied: true, version: swap.version } : swap;
    },
    async *watchConfig(_req, ctx) {
      const { snapshot, changes } = registry.watch();
      // Wakes the subscription's wait when the client goes away or the server stops.
      const stop = () => changes.end();
      ctx.signal.addEventListener("abort", stop, { once: true });
      try {
        yield { event: { case: "snapshot", value: snapshot } };
        for await (const change of changes) yield { event: { case: "change", value: change } };
      } finally {
        ctx.signal.removeEventListener("abort", stop);
        changes.end();
      }
    },
  };
}
