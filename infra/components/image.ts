// The proxy image: built from proxy-image/Dockerfile and pushed with @pulumi/docker-build, or a
// prebuilt reference. Either way the Deployment gets `<repository>@sha256:<digest>`, so a pod never
// runs something other than what this update deployed (a moved tag changes nothing).
import * as path from 'node:path';
import * as dockerBuild from '@pulumi/docker-build';
import * as pulumi from '@pulumi/pulumi';
import type { z } from 'zod';
import { registryOf } from './image-pull';

export interface ProxyImageArgs {
  /** Prebuilt image pinned by digest; when set nothing is built. */
  image?: string;
  build?: { repository: string; tag: string; platforms: string[]; username?: string; builder?: string; buildOnPreview: boolean };
  registryPassword?: pulumi.Input<string>;
  /** Repository root (build context: the npm workspace needs the root package.json and lockfile). */
  contextDir: string;
}

/** The buildx recipe for a registry on the machine's own loopback (README, Deploy → local). */
export const LOCAL_BUILDER_RECIPE =
  'docker buildx create --name gitlab-workspaces-local --driver docker-container --driver-opt network=host';

/** True for a registry only reachable on this machine's loopback (kind's localhost:5001 recipe). */
export function isLoopbackRegistry(repository: string): boolean {
  const host = registryOf(repository).replace(/:\d+$/, '');
  return host === 'localhost' || host === '127.0.0.1' || host === '[::1]';
}

/**
 * @pulumi/docker-build never uses the legacy `docker` driver: without a named builder it creates a
 * `docker-container` BuildKit whose `localhost` is its own container (pulumi-docker-build
 * provider/internal/builder.go; docker/buildx#94), so a push to localhost:5001 fails. A loopback
 * registry therefore needs a named builder on the host network.
 */
export function refineBuild(build: { repository: string; builder?: string } | undefined, ctx: z.RefinementCtx): void {
  if (build && !build.builder && isLoopbackRegistry(build.repository)) {
    ctx.addIssue({
      code: 'custom',
      path: ['build', 'builder'],
      message: `required when build.repository is on localhost (the default BuildKit container cannot reach it): create one with \`${LOCAL_BUILDER_RECIPE}\` and set build.builder: gitlab-workspaces-local`,
    });
  }
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
          // docker-build's default (true) builds on every preview; a preview should be quick and
          // touch nothing, and images are never pushed on preview anyway.
          buildOnPreview: b.buildOnPreview,
          ...(b.builder ? { builder: { name: b.builder } } : {}),
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
