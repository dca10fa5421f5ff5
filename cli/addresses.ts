// Where the services are: its own module because both the invocation (what a command gets) and the ways of finding
// a system (on this machine, on Kubernetes) name it, and the invocation names those ways.

/** host:port of each service the CLI talks to. */
export interface ServiceAddresses {
  registry: string;
  containerManager: string;
  gateway: string;
}
