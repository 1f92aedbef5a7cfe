// The proxy image: built from proxy-image/Dockerfile and pushed with @pulumi/docker-build, or a
// prebuilt reference. Either way the Deployment gets `<repository>@sha256:<digest>`, so a pod never
// runs something other than what this update deployed (a moved tag changes nothing).
import * as path from 'node:path';
import * as dockerBuild from '@pulumi/docker-build';
import * as pulumi from '@pulumi/pulumi';

export interface ProxyImageArgs {
  /** Prebuilt image pinned by digest; when set nothing is built. */
  image?: string;
  build?: { repository: string; tag: string; platforms: string[]; username?: string };
  registryPassword?: pulumi.Input<string>;
  /** Repository root (build context: the npm workspace needs the root package.json and lockfile). */
  contextDir: string;
}

/** Registry host of an image repository (`registry.example.com/group/img` → `registry.example.com`). */
export function registryOf(repository: string): string {
  const first = repository.split('/')[0] ?? '';
  return /[.:]/.test(first) || first === 'localhost' ? first : 'docker.io';
}

export class ProxyImage extends pulumi.ComponentResource {
  /** Digest-pinned image reference. */
  readonly ref: pulumi.Output<string>;
  readonly image: dockerBuild.Image | undefined;

  constructor(name: string, args: ProxyImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super('gitlab-workspaces:proxy:Image', name, {}, opts);
    if (args.image) {
      this.image = undefined;
      this.ref = pulumi.output(args.image);
    } else if (args.build) {
      const b = args.build;
      const registries =
        b.username && args.registryPassword !== undefined
          ? [{ address: registryOf(b.repository), username: b.username, password: pulumi.secret(args.registryPassword) }]
          : undefined;
      this.image = new dockerBuild.Image(
        name,
        {
          context: { location: args.contextDir },
          dockerfile: { location: path.join(args.contextDir, 'proxy-image', 'Dockerfile') },
          platforms: b.platforms as dockerBuild.Platform[],
          tags: [`${b.repository}:${b.tag}`],
          push: true,
          registries,
        },
        { parent: this },
      );
      this.ref = pulumi.interpolate`${b.repository}@${this.image.digest}`;
    } else {
      throw new Error('ProxyImage: either image or build is required');
    }
    this.registerOutputs({ ref: this.ref });
  }
}
