// Aliases that carry a component's move (GitLabWorkspaces adopting the stacks' root resources, its
// `childOptions`) down to the children of a component nested inside it.
import * as pulumi from '@pulumi/pulumi';

/**
 * Explicit aliases for a component's child *component*, from the aliases the component itself was given
 * (`{ name, parent: pulumi.rootStackResource }`: where it was declared before). The SDK, when the engine
 * does not resolve alias specs, gives a child only what it derives from its parent's *explicit* aliases,
 * so the children of a nested component (two levels down) would lose theirs: this makes them explicit
 * one level down, named as the SDK would (`<parent>-x` → `<parent's old name>-x`).
 */
export function nestedComponentAliases(
  parent: { name: string; type: string; aliases?: pulumi.ComponentResourceOptions['aliases'] },
  childName: string,
): pulumi.Alias[] {
  const out: pulumi.Alias[] = [];
  for (const a of parent.aliases ?? []) {
    const alias = a as pulumi.Alias;
    if (typeof a !== 'object' || alias.parent !== pulumi.rootStackResource || typeof alias.name !== 'string') continue;
    const name = childName.startsWith(parent.name) ? `${alias.name}${childName.slice(parent.name.length)}` : childName;
    out.push({ name, parent: pulumi.createUrn(alias.name, parent.type) });
  }
  return out;
}
