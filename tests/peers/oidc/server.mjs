// A Keycloak-shaped OpenID Connect provider for the broker's tests, built on npm `oidc-provider`.
//
// Keycloak itself cannot be installed on the test machines (no package, no Docker), so this server
// reproduces what the broker relies on: Keycloak's paths (/realms/<realm>/protocol/openid-connect/...),
// JWT access tokens with `aud: broker-api`, Keycloak-like claims (realm_access.roles,
// resource_access.<client>.roles, groups "/organisations/<slug>", organisation, preferred_username, email),
// `client_credentials` service accounts (preferred_username "service-account-<client>"), and an
// authorization-code + PKCE login through a plain username/password form.
//
// Test-only extras, under /admin (never part of the realm):
//   GET  /admin/stats        -> {"requests": {"<path>": count}}  (e.g. how often the JWKS was fetched)
//   POST /admin/stats/reset  -> zero the counters
//   POST /admin/rotate-keys  -> generate a new RS256 key, sign with it from now on, publish it first in
//                               the JWKS (the previous keys stay published, as Keycloak does during a
//                               rotation). Answers {"kid": "<new kid>", "kids": [...]}.
//
// Environment: PORT (default 0 = any free port), HOST (default 127.0.0.1), REALM (default openig),
// EXTRA_REDIRECT_URIS (comma separated, added to the web and dashboard clients).
// On start it prints one JSON line on stdout: {"issuer": "...", "port": N, "pid": N}.

import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import { parse as parseQuery } from 'node:querystring';

import Provider, { interactionPolicy } from 'oidc-provider';

const HOST = process.env.HOST || '127.0.0.1';
const REALM = process.env.REALM || 'openig';
const PREFIX = `/realms/${REALM}`;
const API = 'broker-api';
// oidc-provider wants an absolute URI as resource indicator ('broker-api' alone gives invalid_target);
// the audience put in the token is still the plain 'broker-api', as a Keycloak audience mapper does.
const RESOURCE = `urn:${REALM}:${API}`;
const EXTRA_REDIRECT_URIS = (process.env.EXTRA_REDIRECT_URIS || '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

// Static users, with the claims a Keycloak realm would give them through its default mappers.
const USERS = {
  alice: {
    password: 'alice-pw',
    sub: '5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0001',
    email: 'alice@montpellier3m.example.fr',
    name: 'Alice Martin',
    realm_roles: ['publisher', 'default-roles-openig', 'offline_access'],
    client_roles: {},
    groups: ['/organisations/montpellier-mediterranee-metropole'],
    organisation: 'montpellier-mediterranee-metropole',
  },
  bruno: {
    password: 'bruno-pw',
    sub: '5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0002',
    email: 'bruno@toulouse-metropole.example.fr',
    name: 'Bruno Garcia',
    realm_roles: ['default-roles-openig'],
    client_roles: { [API]: ['referent'] },
    groups: ['/organisations/toulouse-metropole', '/staff-sig'],
    organisation: undefined,
  },
  chloe: {
    password: 'chloe-pw',
    sub: '5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0003',
    email: 'chloe@openig.example.org',
    name: 'Chloé Roux',
    realm_roles: ['staff', 'default-roles-openig'],
    client_roles: {},
    groups: [],
    organisation: undefined,
  },
  denis: {
    password: 'denis-pw',
    sub: '5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0004',
    email: 'denis@openig.example.org',
    name: 'Denis Blanc',
    realm_roles: ['board', 'default-roles-openig'],
    client_roles: {},
    groups: [],
    organisation: undefined,
  },
};
const USERS_BY_SUB = Object.fromEntries(Object.entries(USERS).map(([username, u]) => [u.sub, { username, ...u }]));

function keycloakClaims(user) {
  const claims = {
    preferred_username: user.username,
    email: user.email,
    email_verified: true,
    name: user.name,
    realm_access: { roles: user.realm_roles },
    groups: user.groups,
  };
  if (Object.keys(user.client_roles).length) {
    claims.resource_access = Object.fromEntries(
      Object.entries(user.client_roles).map(([client, roles]) => [client, { roles }]),
    );
  }
  if (user.organisation) claims.organisation = user.organisation;
  return claims;
}

// Service accounts: client_credentials clients. Their realm roles mean nothing to the broker, which binds
// each client to one organisation and one role in its own table.
const SERVICE_CLIENTS = ['broker-backend', 'harvester-montpellier', 'orphan-client'];

const clients = [
  ...SERVICE_CLIENTS.map((id) => ({
    client_id: id,
    client_secret: `${id}-secret`,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  })),
  {
    client_id: 'broker-web',
    client_secret: 'broker-web-secret',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:8765/callback', ...EXTRA_REDIRECT_URIS],
  },
  {
    // The Streamlit dashboard's confidential client (st.login).
    client_id: 'broker-dashboard',
    client_secret: 'broker-dashboard-secret',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: ['http://127.0.0.1:8501/oauth2callback', 'http://localhost:8501/oauth2callback', ...EXTRA_REDIRECT_URIS],
  },
];

// Signing keys, newest first. Rotation rebuilds the provider with a new first key.
let keyCounter = 0;
function newSigningKey() {
  keyCounter += 1;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: `test-rs256-${keyCounter}`, use: 'sig', alg: 'RS256' };
}
const signingKeys = [newSigningKey()];

// Streamlit's st.login sends prompt=select_account; oidc-provider refuses prompts its policy does not
// declare (invalid_request), so declare it and resolve it with the login form.
function policy() {
  const p = interactionPolicy.base();
  p.add(new interactionPolicy.Prompt({ name: 'select_account', requestable: true }), 0);
  return p;
}

function buildProvider(issuer) {
  const currentKid = signingKeys[0].kid;
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: signingKeys },
    cookies: { keys: ['local-test-only-cookie-key'] },
    pkce: { required: () => true },
    scopes: ['openid', 'offline_access', 'email', 'profile', 'roles'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username', 'name'],
      roles: ['realm_access', 'resource_access', 'groups', 'organisation'],
    },
    conformIdTokenClaims: false, // Keycloak puts profile/email claims in the ID token too
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async () => ({
          scope: 'broker:read broker:write',
          audience: API,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256', kid: currentKid } },
        }),
      },
    },
    extraTokenClaims: async (ctx, token) => {
      if (token.accountId) {
        const user = USERS_BY_SUB[token.accountId];
        return user ? { typ: 'Bearer', azp: token.clientId, ...keycloakClaims(user) } : undefined;
      }
      if (token.kind === 'ClientCredentials') {
        return {
          typ: 'Bearer',
          azp: token.clientId,
          preferred_username: `service-account-${token.clientId}`,
          realm_access: { roles: ['default-roles-openig', 'broker-service'] },
        };
      }
      return undefined;
    },
    findAccount: async (ctx, sub) => {
      const user = USERS_BY_SUB[sub];
      if (!user) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...keycloakClaims(user) }) };
    },
    interactions: { policy: policy(), url: async (ctx, interaction) => `${PREFIX}/interaction/${interaction.uid}` },
    routes: {
      authorization: '/protocol/openid-connect/auth',
      token: '/protocol/openid-connect/token',
      jwks: '/protocol/openid-connect/certs',
      userinfo: '/protocol/openid-connect/userinfo',
      end_session: '/protocol/openid-connect/logout',
      introspection: '/protocol/openid-connect/token/introspect',
      revocation: '/protocol/openid-connect/revoke',
    },
    ttl: { ClientCredentials: 300, AccessToken: 300, IdToken: 300, Interaction: 600, Session: 3600, Grant: 3600 },
  });
  provider.on('server_error', (ctx, err) => process.stderr.write(`server_error: ${err.stack}\n`));
  return provider;
}

const stats = {};
function count(path) {
  stats[path] = (stats[path] || 0) + 1;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

function loginPage(uid, message) {
  return `<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Connexion OPenIG (test)</title></head>
<body><h1>Connexion</h1>${message ? `<p class="error">${escapeHtml(message)}</p>` : ''}
<form method="post" action="${PREFIX}/interaction/${escapeHtml(uid)}/login">
<label>Identifiant <input name="username" autocomplete="username"></label>
<label>Mot de passe <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Se connecter</button></form></body></html>`;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'content-type': `${type}; charset=utf-8`, 'cache-control': 'no-store' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

// Consent is automatic, as for a Keycloak client with "Consent required" off.
async function grantConsent(provider, details) {
  const { prompt, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  if (prompt.details.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  return grant.save();
}

async function handleInteraction(provider, req, res, rest) {
  const [uid, action] = rest.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, { error: 'interaction_mismatch' });
  const promptName = details.prompt.name;

  if (req.method === 'GET' && !action) {
    if (promptName === 'consent') {
      const grantId = await grantConsent(provider, details);
      return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    return send(res, 200, loginPage(uid), 'text/html');
  }
  if (req.method === 'POST' && action === 'login') {
    const form = parseQuery(await readBody(req));
    const user = USERS[form.username];
    if (!user || user.password !== form.password) {
      return send(res, 401, loginPage(uid, 'Identifiant ou mot de passe incorrect.'), 'text/html');
    }
    return provider.interactionFinished(
      req,
      res,
      { login: { accountId: user.sub }, select_account: {} },
      { mergeWithLastSubmission: false },
    );
  }
  return send(res, 404, { error: 'not_found' });
}

let provider;
let handler;
let issuer;

function install(newProvider) {
  provider = newProvider;
  handler = newProvider.callback();
}

const server = createServer(async (req, res) => {
  try {
    const path = req.url.split('?')[0];
    count(path);
    if (path.startsWith('/admin/')) {
      if (req.method === 'GET' && path === '/admin/stats') return send(res, 200, { requests: stats });
      if (req.method === 'POST' && path === '/admin/stats/reset') {
        for (const k of Object.keys(stats)) delete stats[k];
        return send(res, 200, { requests: stats });
      }
      if (req.method === 'POST' && path === '/admin/rotate-keys') {
        signingKeys.unshift(newSigningKey());
        // Interactions, sessions and grants live in oidc-provider's module-level memory adapter, so they
        // survive the swap; only the keystore changes.
        install(buildProvider(issuer));
        return send(res, 200, { kid: signingKeys[0].kid, kids: signingKeys.map((k) => k.kid) });
      }
      return send(res, 404, { error: 'not_found' });
    }
    if (path !== PREFIX && !path.startsWith(`${PREFIX}/`)) return send(res, 404, { error: 'not_found' });

    // Mount the provider under /realms/<realm>, as Keycloak's paths are.
    req.originalUrl = req.url;
    req.url = req.url.slice(PREFIX.length) || '/';
    const inner = path.slice(PREFIX.length);
    if (inner.startsWith('/interaction/')) {
      return await handleInteraction(provider, req, res, inner.slice('/interaction/'.length));
    }
    return handler(req, res);
  } catch (err) {
    process.stderr.write(`error: ${err.stack || err}\n`);
    if (!res.headersSent) send(res, err.statusCode || 500, { error: err.name || 'server_error', detail: err.message });
    else res.end();
  }
});

server.listen(Number(process.env.PORT || 0), HOST, () => {
  const { port } = server.address();
  issuer = `http://${HOST}:${port}${PREFIX}`;
  install(buildProvider(issuer));
  process.stdout.write(`${JSON.stringify({ issuer, port, pid: process.pid })}\n`);
});

// Stop at once: the test fixture kills this process by PID and keep-alive sockets must not hold it.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
