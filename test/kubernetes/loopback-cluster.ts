// The loopback cluster helper lives beside the container-manager, whose tests use it too (a test beside a service may import
// only its own folder and testing/ folders): services/container-manager/testing/loopback-cluster.ts.
export * from "../../services/container-manager/testing/loopback-cluster.js";
