/**
 * Which connections a namespace's NetworkPolicies admit, evaluated the way the NetworkPolicy API defines
 * it (networking.k8s.io/v1, ingress only): a pod no policy selects admits everything; a pod some policy
 * selects admits a connection when any of those policies has an ingress rule whose `from` and `ports`
 * both match. No network plugin enforces policies on the loopback cluster (kwok's pods run nothing), so
 * the tests check the live objects with this instead. It covers what deploy/kubernetes uses: pod and
 * selectors of this namespace (matchLabels, matchExpressions In/NotIn/Exists/DoesNotExist) and numeric
 * ports; a namespaceSelector, an ipBlock or a named port makes it throw rather than guess.
 */
import type { V1LabelSelector, V1NetworkPolicy } from "@kubernetes/client-node";

/** Where a connection comes from: a pod of the same namespace, or anything outside it. */
export type Source = { pod: Record<string, string> } | { outside: true };

export function selects(selector: V1LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return false;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const values = e.values ?? [];
    const ok =
      e.operator === "In"
        ? has && values.includes(value ?? "")
        : e.operator === "NotIn"
          ? !has || !values.includes(value ?? "")
          : e.operator === "Exists"
            ? has
            : e.operator === "DoesNotExist"
              ? !has
              : unsupported(`matchExpressions operator ${e.operator}`);
    if (!ok) return false;
  }
  return true;
}

function unsupported(what: string): never {
  throw new Error(`network-policy.ts does not evaluate ${what}`);
}

/** Whether `policies` (all of one namespace) admit a TCP connection from `source` to a pod labelled `target` on `port`. */
export function admits(policies: readonly V1NetworkPolicy[], source: Source, target: Record<string, string>, port: number): boolean {
  const applying = policies.filter((p) => (p.spec?.policyTypes ?? ["Ingress"]).includes("Ingress") && selects(p.spec?.podSelector ?? {}, target));
  if (applying.length === 0) return true;
  return applying.some((p) =>
    (p.spec?.ingress ?? []).some((rule) => {
      const portOk =
        rule.ports === undefined ||
        rule.ports.length === 0 ||
        rule.ports.some((pp) => {
          if (typeof pp.port === "string") unsupported(`named port ${pp.port}`);
          if ((pp.protocol ?? "TCP") !== "TCP") return false;
          if (pp.port === undefined) return true;
          return port >= pp.port && port <= (pp.endPort ?? pp.port);
        });
      if (!portOk) return false;
      if (rule._from === undefined || rule._from.length === 0) return true;
      return rule._from.some((peer) => {
        if (peer.ipBlock !== undefined) unsupported("ipBlock");
        if (peer.namespaceSelector !== undefined) unsupported("namespaceSelector");
        // A podSelector alone admits only pods of the policy's own namespace.
        return "pod" in source && selects(peer.podSelector, source.pod);
      });
    }),
  );
}
