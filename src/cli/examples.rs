//! The EXAMPLES of the command groups that act on orgs, agents, credentials,
//! tokens, AWS, the audit and admin tokens, in one place so that the command
//! files stay about what the commands do. (`serve`, `migrate`, `keys`,
//! `config`, `completion` and `man` keep theirs beside them.)

/// `org`.
pub const ORG: &str = "\
Examples:
  # An org whose tokens may be for STS and for one more audience
  nomos-issuer org create acme --audience sts.amazonaws.com --audience api.example.com
  # The same on a running issuer, through its admin API
  NOMOS_ADDR=https://127.0.0.1:9090 NOMOS_TOKEN=nomos_at_... nomos-issuer org list";
/// `org create`.
pub const ORG_CREATE: &str = "\
Examples:
  # The client secret is printed once
  nomos-issuer org create acme
  # Tokens of at most 10 minutes, for STS only; JSON for scripts
  nomos-issuer org create acme --max-ttl 600 --json";
/// `org list`.
pub const ORG_LIST: &str = "\
Examples:
  nomos-issuer org list
  nomos-issuer org list --json";
/// `org show`.
pub const ORG_SHOW: &str = "\
Examples:
  nomos-issuer org show acme";
/// `org update`.
pub const ORG_UPDATE: &str = "\
Examples:
  # Replace the audiences (the next token follows at once)
  nomos-issuer org update acme --audience sts.amazonaws.com --audience api.example.com
  # Shorter tokens
  nomos-issuer org update acme --max-ttl 300";
/// `org set-claims`.
pub const ORG_SET_CLAIMS: &str = "\
Examples:
  # Session tags org and agent, plus team=payments, for ABAC in AWS
  nomos-issuer org set-claims acme --session-tags --tag team=payments
  # No flags: the org's tokens carry no AWS session claims again
  nomos-issuer org set-claims acme";

/// `agent`.
pub const AGENT: &str = "\
Examples:
  nomos-issuer agent create acme deployer
  nomos-issuer agent list acme";
/// `agent create`.
pub const AGENT_CREATE: &str = "\
Examples:
  # A client secret, printed once
  nomos-issuer agent create acme deployer
  # private_key_jwt with a public key (a JWK, a JWKS or PEM)
  nomos-issuer agent create acme ci --public-key ci.pub.pem";
/// `agent list`.
pub const AGENT_LIST: &str = "\
Examples:
  nomos-issuer agent list acme --json";
/// `agent show`.
pub const AGENT_SHOW: &str = "\
Examples:
  nomos-issuer agent show acme deployer";
/// `agent set-claims`.
pub const AGENT_SET_CLAIMS: &str = "\
Examples:
  # This agent's tokens carry a source identity (deployer@acme)
  nomos-issuer agent set-claims acme deployer --source-identity
  # Back to the org's setting
  nomos-issuer agent set-claims acme deployer --inherit";

/// `credential`.
pub const CREDENTIAL: &str = "\
Examples:
  # Rotate an agent's secret without downtime: add, move the client, revoke the old one
  nomos-issuer credential add acme --agent deployer
  nomos-issuer credential list acme --agent deployer
  nomos-issuer credential revoke acme --agent deployer cred_...";
/// `credential add`.
pub const CREDENTIAL_ADD: &str = "\
Examples:
  # A second secret for the org (at most two are active)
  nomos-issuer credential add acme
  # Public keys for an agent's private_key_jwt
  nomos-issuer credential add acme --agent ci --public-key ci.jwks.json";
/// `credential list`.
pub const CREDENTIAL_LIST: &str = "\
Examples:
  nomos-issuer credential list acme --agent deployer --json";
/// `credential revoke`.
pub const CREDENTIAL_REVOKE: &str = "\
Examples:
  nomos-issuer credential revoke acme cred_...";

/// `token`.
pub const TOKEN: &str = "\
Examples:
  # Operators: a token signed with the store's keys
  nomos-issuer token mint acme deployer
  # Workloads: keep AWS_WEB_IDENTITY_TOKEN_FILE fresh from a running issuer
  nomos-issuer --issuer https://id.example.com token watch \\
      --client-id org/acme/agent/deployer --client-secret-file deployer.secret --out /run/nomos/token";
/// `token mint`.
pub const TOKEN_MINT: &str = "\
Examples:
  nomos-issuer token mint acme deployer
  nomos-issuer token mint acme --audience api.example.com --ttl 5m --json";
/// `token fetch`.
pub const TOKEN_FETCH: &str = "\
Examples:
  nomos-issuer --issuer https://id.example.com token fetch \\
      --client-id org/acme/agent/deployer --client-secret-file deployer.secret \\
      --out /run/nomos/token --role-arn arn:aws:iam::111122223333:role/deployer";
/// `token watch`.
pub const TOKEN_WATCH: &str = "\
Examples:
  nomos-issuer --issuer https://id.example.com token watch \\
      --client-id org/acme/agent/ci --private-key-file ci.jwk --out /run/nomos/token";

/// `aws`.
pub const AWS: &str = "\
Examples:
  nomos-issuer --issuer https://id.example.com aws provider
  nomos-issuer aws trust-policy --account 111122223333 --org acme --agent deployer > trust.json
  nomos-issuer aws lint trust.json";
/// `aws provider`.
pub const AWS_PROVIDER: &str = "\
Examples:
  # The `aws iam create-open-id-connect-provider` command for this issuer
  nomos-issuer --issuer https://id.example.com aws provider
  # With the org's audiences as client ids, and the TLS thumbprint
  nomos-issuer --issuer https://id.example.com aws provider --org acme --thumbprint";
/// `aws trust-policy`.
pub const AWS_TRUST_POLICY: &str = "\
Examples:
  nomos-issuer aws trust-policy --account 111122223333 --org acme --agent deployer
  # Every agent of the org, as Terraform
  nomos-issuer aws trust-policy --account 111122223333 --org acme --any-agent --format terraform";
/// `aws lint`.
pub const AWS_LINT: &str = "\
Examples:
  nomos-issuer aws lint trust.json
  # A policy written before its org exists
  nomos-issuer --issuer https://id.example.com aws lint trust.json --allow-unknown";
/// `aws check`.
pub const AWS_CHECK: &str = "\
Examples:
  # Discovery, JWKS and TLS as STS sees them
  nomos-issuer --issuer https://id.example.com aws check
  # And a real token, judged against a trust policy
  nomos-issuer --issuer https://id.example.com aws check \\
      --client-id org/acme/agent/deployer --client-secret-file deployer.secret --policy trust.json";

/// `audit`.
pub const AUDIT: &str = "\
Examples:
  nomos-issuer audit list --org acme --since 24h
  nomos-issuer audit decisions --client-id org/acme/agent/ci";
/// `audit list`.
pub const AUDIT_LIST: &str = "\
Examples:
  nomos-issuer audit list --org acme --agent deployer --since 7d
  # The next page
  nomos-issuer audit list --before CURSOR";
/// `audit show`.
pub const AUDIT_SHOW: &str = "\
Examples:
  nomos-issuer audit show 01938c3e-7f5a-7c4e-9b1d-2a6f0e4d8c11 --json";
/// `audit decisions`.
pub const AUDIT_DECISIONS: &str = "\
Examples:
  # Why did this client get invalid_client?
  nomos-issuer audit decisions --client-id org/acme/agent/ci --since 1h";
/// `audit purge`.
pub const AUDIT_PURGE: &str = "\
Examples:
  nomos-issuer audit purge
  nomos-issuer audit purge --older-than 30d --json";

/// `admin`.
pub const ADMIN: &str = "\
Examples:
  nomos-issuer admin token create --name ops-laptop --expires-in 30d";
/// `admin token`.
pub const ADMIN_TOKEN: &str = "\
Examples:
  nomos-issuer admin token create --expires-in 12h
  nomos-issuer admin token list";
/// `admin token create`.
pub const ADMIN_TOKEN_CREATE: &str = "\
Examples:
  # Printed once; use it as NOMOS_TOKEN or Authorization: Bearer
  nomos-issuer admin token create --name ci-pipeline --expires-in 90d";
/// `admin token list`.
pub const ADMIN_TOKEN_LIST: &str = "\
Examples:
  nomos-issuer admin token list --json";
/// `admin token revoke`.
pub const ADMIN_TOKEN_REVOKE: &str = "\
Examples:
  nomos-issuer admin token revoke adm_...";
