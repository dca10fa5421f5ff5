// The container-manager's front door: what a composition root and the tests may use.
export { type LaunchCommand, type LaunchPaths, launchCommand } from "./backends/launch.js";
export { processStartTime, stopLeftoverReplicas } from "./backends/process-ledger.js";
export { type ContainerManagerOptions, type RunningContainerManager, startContainerManager } from "./manager.js";
