import { describe, expect, it } from "vitest";
import { parseMetricsTargets } from "./config.js";

describe("parseMetricsTargets", () => {
  it("reads name=url pairs", () => {
    expect(parseMetricsTargets("gateway=http://127.0.0.1:1337/metrics, registry=http://127.0.0.1:9338/metrics,")).toEqual([
      { name: "gateway", url: "http://127.0.0.1:1337/metrics" },
      { name: "registry", url: "http://127.0.0.1:9338/metrics" },
    ]);
  });

  it("names what is wrong", () => {
    expect(() => parseMetricsTargets("http://x/metrics")).toThrow('expected name=http://host:port/metrics, got "http://x/metrics"');
    expect(() => parseMetricsTargets("a=ftp://x/metrics")).toThrow('a: "ftp://x/metrics" is not an http(s) URL');
    expect(() => parseMetricsTargets("a=not a url")).toThrow('a: "not a url" is not a URL');
    expect(() => parseMetricsTargets("a=http://x/m,a=http://y/m")).toThrow('target "a" is named twice');
  });
});
