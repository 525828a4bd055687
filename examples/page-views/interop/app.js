'use strict';
// The page-views demo on Node: express-session's tutorial counter, with the same routes
// and answers as the Rust demo (examples/page-views), sharing its sessions through
// connect-redis or connect-pg-simple.
//
//   SESSIO_SECRET='new secret...,old secret...' \
//     node app.js --port 3000 --store redis://127.0.0.1:6379
//   node app.js --port 3000 --store postgres://postgres@127.0.0.1:5432/test
//
// SESSIO_SECRET is a comma-separated list: the first secret signs, all of them verify.
// Prints `listening` on stdout once it accepts connections; exits on SIGTERM or SIGINT.

const express = require('express');
const session = require('express-session');

function usage(message) {
  console.error(`app.js: ${message}`);
  console.error('usage: node app.js --port PORT --store redis://...|postgres://... [--host HOST]');
  process.exit(2);
}

function parseArgs(argv) {
  const args = { host: '127.0.0.1', port: undefined, store: undefined };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) usage(`${flag} needs a value`);
    switch (flag) {
      case '--host': args.host = value; break;
      case '--port': args.port = Number(value); break;
      case '--store': args.store = value; break;
      default: usage(`unknown argument ${flag}`);
    }
  }
  if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) usage('--port is required');
  if (!args.store) usage('--store is required');
  return args;
}

function secrets() {
  const list = (process.env.SESSIO_SECRET || '').split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) usage('SESSIO_SECRET is not set');
  return list;
}

// The session store, and how to close it at shutdown.
async function openStore(url) {
  const scheme = url.split('://')[0];
  if (scheme === 'redis' || scheme === 'rediss') {
    const { createClient } = require('redis');
    const { RedisStore } = require('connect-redis');
    const client = createClient({ url });
    client.on('error', (error) => console.error('redis:', error.message));
    await client.connect();
    return { store: new RedisStore({ client, prefix: 'sess:' }), close: () => client.quit() };
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    const { Pool } = require('pg');
    const PgStore = require('connect-pg-simple')(session);
    const pool = new Pool({ connectionString: url });
    pool.on('error', (error) => console.error('postgres:', error.message));
    const store = new PgStore({ pool, tableName: 'session', createTableIfMissing: true });
    return {
      store,
      close: async () => {
        await store.close();
        await pool.end();
      },
    };
  }
  // Only the scheme: a URL may carry a password.
  return usage(`unsupported store scheme ${JSON.stringify(scheme)}: use redis://... or postgres://...`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const { store, close } = await openStore(args.store);

  const app = express();
  app.use(session({
    name: 'connect.sid',
    secret: secrets(),
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: 86400000 },
    store,
  }));

  app.get('/', (req, res) => {
    res.type('text/plain; charset=utf-8');
    if (req.session.page_views) {
      req.session.page_views++;
      res.send(`Has visitado esta página ${req.session.page_views} veces`);
    } else {
      req.session.page_views = 1;
      res.send('¡Bienvenido a esta página por primera vez!');
    }
  });

  app.post('/logout', (req, res, next) => {
    req.session.destroy((error) => {
      if (error) return next(error);
      // express-session leaves the dead cookie in the browser: clear it.
      res.clearCookie('connect.sid');
      res.type('text/plain; charset=utf-8');
      res.send('Sesión cerrada');
    });
  });

  const server = app.listen(args.port, args.host, (error) => {
    if (error) {
      console.error(`app.js: cannot listen on ${args.host}:${args.port}: ${error.message}`);
      process.exit(1);
    }
    console.log('listening');
  });

  const shutdown = () => {
    server.close();
    server.closeAllConnections();
    Promise.resolve()
      .then(close)
      .catch(() => {})
      .finally(() => process.exit(0));
    // Do not hang on a store that does not answer.
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((error) => {
  console.error(`app.js: ${error.message}`);
  process.exit(1);
});
