// Pulumi entry point (Pulumi.yaml `main`). The program exports a function: Pulumi calls it and uses
// its result as the stack outputs (docs/deploy-proxy.md lists them).
import { main } from './program';

export = main;
