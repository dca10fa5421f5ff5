// The container-manager's front door: what a composition root and the tests may use.

export { DEFAULT_KUBERNETES_OPTIONS, KubernetesBackend, type KubernetesBackendOptions } from "./backends/kubernetes-backend.js";
export { type LaunchCommand, type LaunchPaths, launchCommand } from "./backends/launch.js";
export { processStartTime, stopLeftoverReplicas } from "./backends/process-ledger.js";
export { type ContainerManagerOptions, type ManagedBackend, type RunningContainerManager, startContainerManager } from "./manager.js";
