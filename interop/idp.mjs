// An OpenID Connect identity provider that no one here wrote, for the SSO interop test:
// oauth2-mock-server on 127.0.0.1 at a port the operating system picks, signing RS256 with a
// key made at start.
//
//   node idp.mjs [--client-id ID] [--client-secret SECRET] [--audience AUD]
//
// Once it listens it prints one line of JSON to stdout,
//   {"issuer": "...", "token_endpoint": "...", "jwks_uri": "..."}
// and it serves until its stdin closes (the test that started it is gone), then exits.
//
// One client is registered, as with a real identity provider: a client-credentials grant
// must authenticate as it (HTTP Basic or client_id/client_secret in the form, RFC 6749
// 2.3.1) and ask for its audience in `aud`; anything else is answered as a real server would
// (401 invalid_client, 400 invalid_target). The access token then says who the client is
// (`sub`, `azp`) and whom the token is for (`aud`).

import { parseArgs } from 'node:util';
import { OAuth2Server } from 'oauth2-mock-server';

const { values: options } = parseArgs({
  options: {
    'client-id': { type: 'string', default: 'tower-token-refresh' },
    'client-secret': { type: 'string', default: 'interop-secret' },
    audience: { type: 'string', default: 'ocient' },
  },
});

/** The client a token request authenticates as, or undefined. */
function clientOf(req) {
  const [scheme, encoded] = (req.headers.authorization ?? '').split(' ');
  if (scheme?.toLowerCase() === 'basic' && encoded) {
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0) {
      // RFC 6749 2.3.1: each part is form-urlencoded before it is put in the header.
      const part = (s) => decodeURIComponent(s.replace(/\+/g, ' '));
      try {
        return { id: part(decoded.slice(0, colon)), secret: part(decoded.slice(colon + 1)) };
      } catch {
        return undefined; // not form-urlencoded: no client of ours
      }
    }
  }
  const { client_id: id, client_secret: secret } = req.body ?? {};
  return id === undefined ? undefined : { id, secret };
}

function isClientCredentials(req) {
  return req.body?.grant_type === 'client_credentials';
}

function asksForAudience(req) {
  const aud = req.body?.aud;
  return aud === options.audience || (Array.isArray(aud) && aud.includes(options.audience));
}

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');

// 8.2.3 copies the form's `aud` into a client-credentials token as it came; the token the
// client is registered for names exactly its audience, and who asked.
server.service.on('beforeTokenSigning', (token, req) => {
  if (!isClientCredentials(req)) {
    return;
  }
  token.payload.aud = options.audience;
  token.payload.sub = options['client-id'];
  token.payload.azp = options['client-id'];
});

// 8.2.3 issues a token to any caller; a real provider answers only its clients.
server.service.on('beforeResponse', (response, req) => {
  if (!isClientCredentials(req)) {
    return;
  }
  const client = clientOf(req);
  if (client?.id !== options['client-id'] || client?.secret !== options['client-secret']) {
    response.statusCode = 401;
    response.body = { error: 'invalid_client' };
  } else if (!asksForAudience(req)) {
    response.statusCode = 400;
    response.body = { error: 'invalid_target', error_description: 'unknown audience' };
  }
});

// Port 0: the operating system picks a free one. The issuer is named by the address it
// listens on, not `localhost`, which may resolve to ::1 where nothing listens.
await server.start(0, '127.0.0.1');
const { port } = server.address();
server.issuer.url = `http://127.0.0.1:${port}`;
const issuer = server.issuer.url;

process.stdout.write(
  `${JSON.stringify({
    issuer,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
  })}\n`,
);

// Serve until the parent closes stdin, by choice or by dying. Exit at once: `server.stop()`
// would wait for the client's keep-alive connections, and nothing is owed to them.
const stop = () => process.exit(0);
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.on('error', stop);
process.stdin.resume();
