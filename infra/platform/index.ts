// The platform around the proxy: ingress controller, certificates, DNS, and the post-deploy checks.
// infra/program.ts wires these (infra/index.ts only runs it); see docs/platform.md.
export * from './config';
export { IngressController, loadBalancerAddressOf, addressText, traefikValues, type LoadBalancerAddress } from './controller';
export { Certificates, PROXY_TLS_SECRET, WILDCARD_TLS_SECRET, ACME_SERVERS, type TlsSecretsInput } from './tls';
export { DnsRecords, plannedRecords, recordFor, recordsAsText, requireAddress, type DnsRecordSpec } from './dns';
export { GatewayApiCrds, ProxyGateway, gatewaySettings, gatewayApiCrdsUrl, type GatewaySettings, type GatewayParentRef } from './gateway';
export { verificationChecks, type VerificationInput } from './verify';
