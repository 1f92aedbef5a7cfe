// CrossGuard policy pack entry: `pulumi preview --policy-pack infra/policy` (see docs/deploy-proxy.md).
// The rules live in policies.ts, where tests call them directly.
import { PolicyPack } from '@pulumi/policy';
import { policies } from './policies';

new PolicyPack('gitlab-workspaces-security', { policies });
