#!/usr/bin/env node
// Test-only oracle: decides whether an IAM role trust policy lets a web-identity
// (OIDC) caller perform an STS action, using the third-party simulator
// @cloud-copilot/iam-simulate and its policy parser @cloud-copilot/iam-policy
// (exact versions pinned in package.json / package-lock.json).
//
// Usage: node tests/iam/simulate.mjs TRUST_POLICY_FILE REQUEST_JSON
//
// REQUEST_JSON: {"action": "sts:AssumeRoleWithWebIdentity",
//                "principal": "arn:aws:iam::<acct>:oidc-provider/<host/path>",
//                "role_arn": "arn:aws:iam::<acct>:role/<name>",
//                "context": {"<host/path>:sub": "...", "<host/path>:aud": "...", ...}}
// "context" is optional; each value is a string or an array of strings.
//
// Output: exactly one line on stdout, the simulator's own EvaluationResult:
//   Allowed (exit 0) | ImplicitlyDenied (exit 1) | ExplicitlyDenied (exit 1)
// Usage, parse and simulator validation errors: message on stderr, exit 2.
// Set IAM_SIMULATE_EXPLAIN=1 to get the simulator's per-statement explanation on stderr.
//
// How the request is modelled (decisions, see README.md):
// * The trust policy is the role's resource policy; the request's principal is the
//   OIDC provider ARN, the resource is the role ARN, the resource account is the
//   account field of the role ARN.
// * No identity policies, no SCPs/RCPs (the simulator always adds its implicit
//   RCPFullAWSAccess), no permission boundary, no session policy: a web-identity
//   caller is not an IAM principal and has no policies of its own, so the trust
//   policy alone decides. With the provider in the role's account (how web-identity
//   federation is set up: the role trusts a provider of its own account) the simulator's
//   STS rule is "same account + resource policy present => only a statement whose
//   Principal matches the caller directly grants access"; an account-level
//   Principal ({"AWS": "<acct>"}) does not. If the provider ARN names another
//   account, the simulator treats the call as cross-account and would need an
//   identity policy; we deliberately give none, so such a request comes out
//   ImplicitlyDenied (a note is printed on stderr).
// * The policy is checked with the library's own trust-policy validator
//   (validateTrustPolicy from @cloud-copilot/iam-policy, the simulator's policy
//   parser: grammar, no Resource/NotResource, a Principal is required) and handed to
//   the simulator as a ValidatedPolicy, so invalid trust policies are exit 2.
// * Two passes. Pass 1 is the simulator's validated runSimulation: it reports the
//   policy errors above, checks the action name and that the role ARN is a valid
//   resource for the action; any error there is exit 2. But its context-key
//   filter only knows the condition keys listed for the action in its IAM catalogue (Google,
//   Cognito, GitHub, GitLab, ...), so it silently drops a generic provider's
//   "<host/path>:sub" and ":aud" keys. Pass 2 therefore evaluates with the
//   simulator's runUnsafeSimulation, which takes the context keys as given. Keys the
//   catalogue knows get the catalogue's value shape (multi-valued keys such as
//   sts:TransitiveTagKeys become arrays), as pass 1 would do; unknown keys are
//   passed through unchanged. When pass 1 dropped no key, both passes must agree,
//   otherwise exit 2 (a guard against this wrapper drifting from the library).

import { readFileSync } from 'node:fs'

const USAGE = 'usage: node tests/iam/simulate.mjs TRUST_POLICY_FILE REQUEST_JSON'
const RESULTS = new Set(['Allowed', 'ImplicitlyDenied', 'ExplicitlyDenied'])
const REQUEST_FIELDS = new Set(['action', 'principal', 'role_arn', 'context'])
const ROLE_ARN = /^arn:aws[a-z-]*:iam::(\d{12}):role\/.+$/

function fail(message) {
  process.stderr.write(`simulate.mjs: ${message}\n`)
  process.exit(2)
}

function parseArgs(argv) {
  if (argv.length !== 2) fail(`expected 2 arguments, got ${argv.length}\n${USAGE}`)
  const [policyFile, requestText] = argv

  let policyText
  try {
    policyText = readFileSync(policyFile, 'utf8')
  } catch (err) {
    fail(`cannot read trust policy file ${policyFile}: ${err.message}`)
  }
  let policy
  try {
    policy = JSON.parse(policyText)
  } catch (err) {
    fail(`trust policy file ${policyFile} is not valid JSON: ${err.message}`)
  }
  if (policy === null || typeof policy !== 'object' || Array.isArray(policy)) {
    fail('trust policy must be a JSON object')
  }

  let request
  try {
    request = JSON.parse(requestText)
  } catch (err) {
    fail(`REQUEST_JSON is not valid JSON: ${err.message}`)
  }
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    fail('REQUEST_JSON must be a JSON object')
  }
  for (const field of Object.keys(request)) {
    if (!REQUEST_FIELDS.has(field)) fail(`REQUEST_JSON has unknown field "${field}"`)
  }
  for (const field of ['action', 'principal', 'role_arn']) {
    if (typeof request[field] !== 'string' || request[field] === '') {
      fail(`REQUEST_JSON field "${field}" must be a non-empty string`)
    }
  }
  const roleMatch = ROLE_ARN.exec(request.role_arn)
  if (!roleMatch) fail(`role_arn is not an IAM role ARN: ${request.role_arn}`)
  if (request.role_arn.includes('*')) fail('role_arn must not contain a wildcard')

  const context = request.context ?? {}
  if (context === null || typeof context !== 'object' || Array.isArray(context)) {
    fail('REQUEST_JSON field "context" must be an object')
  }
  for (const [key, value] of Object.entries(context)) {
    const ok =
      typeof value === 'string' ||
      (Array.isArray(value) && value.every((v) => typeof v === 'string'))
    if (!ok) fail(`context value for "${key}" must be a string or an array of strings`)
  }

  return {
    policy,
    action: request.action,
    principal: request.principal,
    roleArn: request.role_arn,
    roleAccount: roleMatch[1],
    context
  }
}

async function loadLibraries() {
  try {
    const sim = await import('@cloud-copilot/iam-simulate')
    const policyLib = await import('@cloud-copilot/iam-policy')
    return { sim, policyLib }
  } catch (err) {
    fail(`cannot load the simulator (${err.message}); run tests/iam/install.sh first`)
  }
}

// Shape context values the way the simulator's validated path does for keys its
// catalogue knows; keys it does not know (generic OIDC keys) are kept as given.
async function shapeContext(sim, context) {
  const shaped = {}
  for (const [key, value] of Object.entries(context)) {
    let type
    try {
      type = await sim.typeForContextKey(key)
    } catch {
      type = undefined
    }
    if (type === undefined) {
      shaped[key] = value
    } else if (sim.isConditionKeyArray(type)) {
      shaped[key] = [value].flat()
    } else if (Array.isArray(value)) {
      fail(`context key "${key}" is single-valued (${type}) but an array was given`)
    } else {
      shaped[key] = value
    }
  }
  return shaped
}

// runUnsafeSimulation loads a raw resource policy without metadata and then
// crashes reading its name; a ValidatedPolicy carries the metadata (and, in pass 1,
// the trust-policy validation errors in place of the generic resource-policy check).
function simulation(req, trustPolicy, contextVariables) {
  return {
    request: {
      principal: req.principal,
      action: req.action,
      resource: { resource: req.roleArn, accountId: req.roleAccount },
      contextVariables
    },
    identityPolicies: [],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: trustPolicy
  }
}

async function main() {
  const req = parseArgs(process.argv.slice(2))
  const { sim, policyLib } = await loadLibraries()
  const shaped = await shapeContext(sim, req.context)
  const trustPolicy = policyLib.createValidatedPolicy(req.policy, policyLib.validateTrustPolicy, {
    name: 'TrustPolicy'
  })

  // Pass 1: validation (policy grammar, action, resource type) by the library itself.
  const validated = await sim.runSimulation(simulation(req, trustPolicy, shaped), {})
  if (validated.resultType === 'error') {
    fail(`simulator rejected the input: ${JSON.stringify(validated.errors)}`)
  }
  if (validated.resultType !== 'single') {
    fail(`unexpected simulator result type "${validated.resultType}"`)
  }
  const dropped = validated.result.ignoredContextKeys ?? []

  // Pass 2: the decision, with every context key the caller supplied.
  const result = sim.runUnsafeSimulation(simulation(req, trustPolicy, shaped), {})
  if (!RESULTS.has(result)) fail(`unexpected simulator result "${String(result)}"`)

  if (dropped.length === 0 && validated.overallResult !== result) {
    fail(
      `validated (${validated.overallResult}) and unvalidated (${result}) runs disagree; ` +
        'this wrapper no longer matches the library'
    )
  }

  const principalAccount = req.principal.split(':')[4]
  if (principalAccount !== req.roleAccount) {
    process.stderr.write(
      `simulate.mjs: note: principal account ${principalAccount} differs from role account ` +
        `${req.roleAccount}; evaluated as cross-account with no identity policy\n`
    )
  }
  if (process.env.IAM_SIMULATE_EXPLAIN === '1') {
    const analysis = validated.result.analysis?.resourceAnalysis
    const strip = (k, v) => (k === 'statement' ? undefined : v)
    process.stderr.write(
      `simulate.mjs: keys outside the simulator's catalogue for ${req.action}: ` +
        `${JSON.stringify(dropped)}\n` +
        `simulate.mjs: pass-1 resource analysis (without those keys): ` +
        `${JSON.stringify(analysis, strip, 1)}\n`
    )
  }

  process.stdout.write(`${result}\n`)
  process.exit(result === 'Allowed' ? 0 : 1)
}

main().catch((err) => fail(`internal error: ${err?.stack ?? err}`))
