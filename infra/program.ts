// The stack program (Pulumi.yaml `main` runs it through infra/index.ts): read and validate this stack's
// config, then declare the GitLabWorkspaces component (infra/workspaces.ts) with it. Config problems
// stop here, before any resource, each naming its `gitlab-workspaces:<key>`. The stack outputs are the
// component's outputs.
import * as pulumi from '@pulumi/pulumi';
import { loadStackConfig, rawConfigObject, SECRET_KEYS, type WorkspacesSettings } from './config';
import { GitLabWorkspaces, type WorkspacesOutputs } from './workspaces';

export type StackOutputs = WorkspacesOutputs;

/** Name of the component in this repository's stacks (its children are `gitlab-workspaces-<part>`). */
export const STACK_COMPONENT_NAME = 'gitlab-workspaces';

export async function main(): Promise<StackOutputs> {
  const cfg = loadStackConfig();
  const settings = rawConfigObject(pulumi.runtime.allConfig(), pulumi.getProject());
  for (const key of SECRET_KEYS) delete settings[key];
  const workspaces = new GitLabWorkspaces(STACK_COMPONENT_NAME, {
    ...(settings as WorkspacesSettings),
    secrets: cfg.secrets,
    instance: cfg.stack,
    // The stacks had these resources at their root before the component: adopt them, no replacement.
    adoptRootResources: true,
  });
  return workspaces.outputs;
}
