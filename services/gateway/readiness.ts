/** Whether the gateway can answer predictions now (GET /readyz), and why not. */
export interface Readiness {
  ready: boolean;
  /** Why not, when not ready. */
  cause: string;
}
