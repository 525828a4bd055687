// The page-views workload on express 5 + express-session 1.19 with the default MemoryStore.
//
//   node app.js --addr 127.0.0.1:3000 [--no-sessions]
//
// GET /     counts the visit under `page_views` (the session changes on every request).
// GET /peek reads the count without changing the session, and without creating one.
// --no-sessions: express alone, answering fixed texts as the Rust baseline does, to tell
// express's own cost from express-session's.
'use strict';

const express = require('express');
const session = require('express-session');

const WELCOME = '¡Bienvenido a esta página por primera vez!';

let addr = '127.0.0.1:3000';
let sessions = true;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--addr' && i + 1 < process.argv.length) addr = process.argv[++i];
  else if (process.argv[i] === '--no-sessions') sessions = false;
  else throw new Error(`unknown argument ${process.argv[i]}; usage: node app.js [--addr HOST:PORT] [--no-sessions]`);
}
const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];

const app = express();
app.disable('x-powered-by');
const text = (res, body) => res.type('text/plain; charset=utf-8').send(body);

if (sessions) {
  app.use(session({
    // Fixed so runs are comparable; never use it elsewhere.
    secret: 'benchmark secret, fixed so runs are comparable -- never use it elsewhere',
    resave: false,
    saveUninitialized: false,
  }));
  app.get('/', (req, res) => {
    const views = (req.session.page_views || 0) + 1;
    req.session.page_views = views;
    text(res, views === 1 ? WELCOME : `Has visitado esta página ${views} veces`);
  });
  app.get('/peek', (req, res) => {
    const views = req.session.page_views;
    text(res, views ? `Visitas: ${views}` : WELCOME);
  });
} else {
  app.get('/', (req, res) => text(res, 'Has visitado esta página 123 veces'));
  app.get('/peek', (req, res) => text(res, 'Visitas: 123'));
}

const server = app.listen(port, host, () => console.log(`listening on http://${addr}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
