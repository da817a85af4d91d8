// A real OpenID provider for Sesame's tests: panva/oidc-provider (OpenID Certified), with its
// development login page (any login name, any password). Configured by the environment:
//   OP_ISSUER    the issuer URL (the test's proxy in front of this process)
//   OP_CLIENTS   JSON array of client metadata
//   OP_ACCOUNTS  path of a JSON file {login: {claims}}; read at every sign-in, so a test can
//                change a user's groups between sign-ins
// It listens on 127.0.0.1 on a free port and prints "listening <port>" on standard output.
import http from 'node:http';
import fs from 'node:fs';
import Provider from 'oidc-provider';

const issuer = process.env.OP_ISSUER;
const clients = JSON.parse(process.env.OP_CLIENTS);
const accountsFile = process.env.OP_ACCOUNTS;

const provider = new Provider(issuer, {
  clients,
  pkce: { required: () => true },
  conformIdTokenClaims: false, // scope claims (email, groups) in the ID token
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'groups'],
  },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const accounts = JSON.parse(fs.readFileSync(accountsFile, 'utf8'));
    const a = accounts[id];
    if (!a) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...a }; } };
  },
  // First-party clients: no consent page.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const g = await ctx.oidc.provider.Grant.find(grantId);
      if (g) return g;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const server = http.createServer(provider.callback());
server.listen(0, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
process.stdin.on('end', () => process.exit(0)); // the test ended
process.stdin.resume();
