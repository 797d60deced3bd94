// An OpenID provider for Paved's tests, built on panva's `oidc-provider` (an OpenID
// Certified implementation written independently of Paved), so that the gateway's `authn`
// plugin is tested against someone else's reading of the specifications, not its own.
//
// Headless by design: the login interaction is a plain HTML form that accepts one fixed test
// user and consent is granted automatically, so a test completes a sign-in with plain HTTP
// requests (GET the form, POST it, follow the redirects). PKCE is required for every client.
//
// Options, each as `--name value` or the environment variable in brackets:
//   --port (OIDC_PORT)                 port to listen on; 0 (default) picks a free one
//   --host (OIDC_HOST)                 address to listen on (127.0.0.1)
//   --issuer (OIDC_ISSUER)             issuer URL (http://<host>:<port>)
//   --client-id (OIDC_CLIENT_ID)       the relying party's client id (paved-gateway)
//   --client-secret (OIDC_CLIENT_SECRET)  its secret; absent: a public client
//   --redirect-uri (OIDC_REDIRECT_URIS)   registered redirect URI; repeat the option, or
//                                      separate them with commas in the variable (required)
//   --post-logout-redirect-uri (OIDC_POST_LOGOUT_REDIRECT_URIS)  same, for logout
//   --user-sub (OIDC_USER_SUB)         the test user's subject (alice)
//   --user-login (OIDC_USER_LOGIN)     the name typed into the login form (the subject)
//   --user-password (OIDC_USER_PASSWORD)  the password the form accepts (password)
//   --user-email (OIDC_USER_EMAIL)     the user's e-mail (<sub>@example.test)
//   --user-name (OIDC_USER_NAME)       the user's display name (the subject)
//   --user-groups (OIDC_USER_GROUPS)   comma-separated groups (none)
//   --keys-file (OIDC_KEYS_FILE)       private JWKS (JSON) to sign with; read when the file
//                                      exists, else generated and written there, so that two
//                                      providers can share keys (a multi-tenant provider's
//                                      situation); absent: a fresh RSA key per process
//   --resources (OIDC_RESOURCES)       JSON array of resource servers for which the token
//                                      endpoint issues JWT access tokens (`resource`
//                                      parameter, RFC 8707), each {"indicator", "audience"
//                                      (the indicator), "scope" ("api"), "ttl" (seconds, 300),
//                                      "sign" ("default" or "hs256-public-key": HS256 with the
//                                      provider's public RSA key as the secret — the RS/HS
//                                      key-confusion attack, for tests that must refuse it)}
//
// Prints `oidc-provider ready issuer=<issuer> port=<port>` on stdout once it listens.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

function fail(message) {
  process.stderr.write(`oidc-provider: ${message}\n`);
  process.exit(2);
}

function options() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      issuer: { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'post-logout-redirect-uri': { type: 'string', multiple: true },
      'user-sub': { type: 'string' },
      'user-login': { type: 'string' },
      'user-password': { type: 'string' },
      'user-email': { type: 'string' },
      'user-name': { type: 'string' },
      'user-groups': { type: 'string' },
      'keys-file': { type: 'string' },
      resources: { type: 'string' },
    },
    strict: true,
  });
  const env = process.env;
  const list = (flag, variable) => values[flag]
    ?? (env[variable] ? env[variable].split(',').map((s) => s.trim()).filter(Boolean) : []);
  const pick = (flag, variable, fallback) => values[flag] ?? env[variable] ?? fallback;

  const port = Number(pick('port', 'OIDC_PORT', '0'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`invalid port ${port}`);
  const sub = pick('user-sub', 'OIDC_USER_SUB', 'alice');
  const redirectUris = list('redirect-uri', 'OIDC_REDIRECT_URIS');
  if (redirectUris.length === 0) fail('at least one --redirect-uri is required');
  let resources;
  try {
    resources = JSON.parse(pick('resources', 'OIDC_RESOURCES', '[]'));
  } catch (e) {
    fail(`--resources is not JSON: ${e.message}`);
  }
  if (!Array.isArray(resources) || resources.some((r) => typeof r?.indicator !== 'string')) {
    fail('--resources must be a JSON array of objects with an "indicator"');
  }
  return {
    port,
    host: pick('host', 'OIDC_HOST', '127.0.0.1'),
    issuer: pick('issuer', 'OIDC_ISSUER', undefined),
    clientId: pick('client-id', 'OIDC_CLIENT_ID', 'paved-gateway'),
    clientSecret: pick('client-secret', 'OIDC_CLIENT_SECRET', undefined),
    redirectUris,
    postLogoutRedirectUris: list('post-logout-redirect-uri', 'OIDC_POST_LOGOUT_REDIRECT_URIS'),
    user: {
      sub,
      login: pick('user-login', 'OIDC_USER_LOGIN', sub),
      password: pick('user-password', 'OIDC_USER_PASSWORD', 'password'),
      email: pick('user-email', 'OIDC_USER_EMAIL', `${sub}@example.test`),
      name: pick('user-name', 'OIDC_USER_NAME', sub),
      groups: (pick('user-groups', 'OIDC_USER_GROUPS', '') || '')
        .split(',').map((g) => g.trim()).filter(Boolean),
    },
    keysFile: pick('keys-file', 'OIDC_KEYS_FILE', undefined),
    resources,
  };
}

// The signing keys: one RSA key (RS256, the algorithm every relying party must support).
function signingKeys(keysFile) {
  if (keysFile && fs.existsSync(keysFile)) {
    return JSON.parse(fs.readFileSync(keysFile, 'utf8'));
  }
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const jwks = {
    keys: [{ ...jwk, kid: crypto.randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' }],
  };
  if (keysFile) {
    // `wx`: two providers racing to create the file must not both win.
    try {
      fs.writeFileSync(keysFile, JSON.stringify(jwks), { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if (e.code === 'EEXIST') return JSON.parse(fs.readFileSync(keysFile, 'utf8'));
      throw e;
    }
  }
  return jwks;
}

function html(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, clientId, error) {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in to ${html(clientId)}</h1>
${error ? `<p class="error">${html(error)}</p>` : ''}
<form method="post" action="/interaction/${html(uid)}/login">
<input type="text" name="login" autocomplete="username" required>
<input type="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</body></html>
`;
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

// Every scope and claim the client asked for, granted at once (the tests' auto-consent).
async function grantEverything(provider, clientId, accountId, details) {
  const grant = details?.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId });
  const missing = details?.prompt?.details ?? {};
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}

async function main() {
  const opts = options();
  const jwks = signingKeys(opts.keysFile);
  const publicKeyPem = crypto.createPublicKey({ key: jwks.keys[0], format: 'jwk' })
    .export({ format: 'pem', type: 'spki' });

  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, resolve);
  });
  const { port } = server.address();
  const issuer = opts.issuer ?? `http://${opts.host}:${port}`;
  const { user } = opts;

  const resources = new Map(opts.resources.map((r) => [r.indicator, r]));

  const client = {
    client_id: opts.clientId,
    redirect_uris: opts.redirectUris,
    post_logout_redirect_uris: opts.postLogoutRedirectUris,
    response_types: ['code'],
    grant_types: opts.clientSecret
      ? ['authorization_code', 'refresh_token', 'client_credentials']
      : ['authorization_code', 'refresh_token'],
    ...(opts.clientSecret
      ? { client_secret: opts.clientSecret, token_endpoint_auth_method: 'client_secret_basic' }
      : { token_endpoint_auth_method: 'none' }),
  };

  const provider = new Provider(issuer, {
    clients: [client],
    jwks,
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    pkce: { required: () => true },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    async findAccount(_ctx, sub) {
      if (sub !== user.sub) return undefined;
      return {
        accountId: user.sub,
        async claims() {
          return {
            sub: user.sub,
            name: user.name,
            preferred_username: user.login,
            email: user.email,
            email_verified: true,
            groups: user.groups,
          };
        },
      };
    },
    // Consent is automatic: a grant of what was asked, made the first time it is needed.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(String(ctx.oidc.params.scope ?? 'openid'));
      grant.addOIDCClaims(['sub', 'name', 'preferred_username', 'email', 'email_verified', 'groups']);
      await grant.save();
      return grant;
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      revocation: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Sign-ins without `resource` get an opaque access token for userinfo only.
        defaultResource: (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: () => false,
        async getResourceServerInfo(_ctx, indicator) {
          const r = resources.get(indicator);
          if (!r) throw new errors.InvalidTarget();
          const info = {
            audience: r.audience ?? r.indicator,
            scope: r.scope ?? 'api',
            accessTokenTTL: r.ttl ?? 300,
            accessTokenFormat: 'jwt',
          };
          if (r.sign === 'hs256-public-key') {
            info.jwt = { sign: { alg: 'HS256', key: publicKeyPem, kid: jwks.keys[0].kid } };
          }
          return info;
        },
      },
    },
  });
  provider.on('server_error', (_ctx, err) => process.stderr.write(`oidc-provider: ${err.stack}\n`));

  const providerCallback = provider.callback();
  server.on('request', async (req, res) => {
    const url = new URL(req.url, issuer);
    const match = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (!match) {
      providerCallback(req, res);
      return;
    }
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.uid !== match[1]) {
        send(res, 400, 'interaction mismatch', 'text/plain');
        return;
      }
      if (req.method === 'GET' && !match[2]) {
        if (details.prompt.name === 'consent') {
          const grantId = await grantEverything(
            provider, details.params.client_id, details.session.accountId, details,
          );
          await provider.interactionFinished(req, res, { consent: { grantId } }, {
            mergeWithLastSubmission: true,
          });
          return;
        }
        send(res, 200, loginPage(details.uid, details.params.client_id));
        return;
      }
      if (req.method === 'POST' && match[2]) {
        const form = await readForm(req);
        if (form.get('login') !== user.login || form.get('password') !== user.password) {
          send(res, 401, loginPage(details.uid, details.params.client_id, 'Wrong login or password.'));
          return;
        }
        await provider.interactionFinished(req, res, { login: { accountId: user.sub } }, {
          mergeWithLastSubmission: false,
        });
        return;
      }
      send(res, 405, 'method not allowed', 'text/plain');
    } catch (err) {
      // An unknown or expired interaction (no cookie, replayed form): a client error.
      send(res, 400, `interaction failed: ${err.message}`, 'text/plain');
    }
  });

  process.stdout.write(`oidc-provider ready issuer=${issuer} port=${port}\n`);
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => fail(err.stack ?? String(err)));
