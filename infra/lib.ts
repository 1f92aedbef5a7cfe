// The package's entry point for TypeScript programs (package.json `exports`): the GitLabWorkspaces
// component, its settings and outputs. README "Three ways to use it" shows a program using it.
export { GitLabWorkspaces, WORKSPACES_TYPE, type GitLabWorkspacesArgs, type WorkspacesOutputs } from './workspaces';
export { StackConfigError, type WorkspacesSettings } from './config';
export type { AgentSummary } from './agent';
