// Model replicas run untrusted code: they must not inherit the container-manager's secrets.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { InputType } from "../../gen/clipper/common/v1/data_pb.js";
import { ModelRuntimeSchema } from "../../gen/clipper/v1/resources_pb.js";
import { launchCommand } from "../../services/container-manager/index.js";

const paths = {
  repoRoot: "/repo",
  dataDir: "/data",
  python: "/usr/bin/python3",
  node: "/usr/bin/node",
  java: "/usr/bin/java",
  javaSdkJar: "/repo/sdk/java/target/sdk-all.jar",
};
const secrets = {
  CLIPPER_TOKEN: "clp_admin",
  CLIPPER_SERVICE_TOKEN: "clp_service",
  CLIPPER_TOKENS_FILE: "/etc/clipper/tokens",
  CLIPPER_TLS_KEY: "/etc/clipper/key.pem",
  CLIPPER_TLS_CERT: "/etc/clipper/cert.pem",
  CLIPPER_TLS_CA: "/etc/clipper/ca.pem",
  CLIPPER_GATEWAY_APP_KEYS_FILE: "/etc/clipper/keys",
  CLIPPER_REDIS_URL: "redis://:password@db:6379",
};

describe("replica environment", () => {
  const runtimes = [
    { case: "pythonClosure" as const, value: { artifactDigest: "a".repeat(64) } },
    { case: "nodeModule" as const, value: { modulePath: "/models/m.ts" } },
    { case: "command" as const, value: { argv: ["./serve"], env: { MODEL_OPTION: "1" } } },
    { case: "javaClass" as const, value: { jarDigest: "b".repeat(64), className: "com.example.M" } },
  ];
  for (const kind of runtimes) {
    it(`gives a ${kind.case} replica no token, key, certificate or store variable`, () => {
      const cmd = launchCommand(
        { modelName: "m", modelVersion: "1", inputType: InputType.DOUBLES, runtime: create(ModelRuntimeSchema, { kind }) },
        7000,
        paths,
        { ...process.env, ...secrets },
      );
      for (const name of Object.keys(secrets)) expect(cmd.env[name], name).toBeUndefined();
      const values = Object.values(cmd.env).join("\n");
      for (const value of Object.values(secrets)) expect(values).not.toContain(value);
      expect(Object.keys(cmd.env).filter((k) => /TOKEN|KEY|SECRET|PASSWORD/i.test(k))).toEqual([]);
    });
  }
});
