// What the rest of the proxy knows about workspaces: an in-memory index fed by the Kubernetes watch.

/** One workspace Service, as discovered (docs/contract.md §3). */
export interface Workspace {
  /** Service name: the workspace name and the SSH username. */
  name: string;
  namespace: string;
  /** Service metadata.uid: tells a re-created Service from the old one. */
  uid: string;
  /** Numeric GitLab workspace id (annotation workspaces.gitlab.com/id). */
  id: string;
  /** clusterIP when it is an IP address, else `<name>.<namespace>.svc`. */
  backendHost: string;
  /** Every host this Service routes, lowercased, without port. */
  hosts: string[];
}

export interface Route {
  host: string;
  workspace: Workspace;
  /** Where requests for this host go: backendHost and the port's targetPort (or port). */
  target: { host: string; port: number };
}

export type WorkspaceChange =
  | { type: 'added'; workspace: Workspace }
  | { type: 'updated'; before: Workspace; workspace: Workspace }
  | { type: 'removed'; workspace: Workspace };

export interface WorkspaceDirectory {
  /** O(1) lookup; `host` may carry a port and any case, both are normalised. */
  routeForHost(host: string): Route | undefined;
  /** By SSH username. 'ambiguous' when Services of that name exist in two namespaces. */
  workspaceByName(name: string): Workspace | 'ambiguous' | undefined;
  /** True once the first complete list of Services has been loaded (drives /readyz). */
  isReady(): boolean;
  /** Called after the index has changed. Returns an unsubscribe function. */
  onChange(listener: (change: WorkspaceChange) => void): () => void;
}
