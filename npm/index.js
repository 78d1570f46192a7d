'use strict';
// walrust-vfs: the walrust SQLite extension (walrust.so, built by `make npm`
// from the walrust repository) and a helper that loads it.
const path = require('path');

// The extension's path. SQLite derives the entry point from the file name
// (walrust.so: sqlite3_walrust_init), so it is loaded under this name.
const extensionPath = path.join(__dirname, 'walrust.so');

// node-sqlite3's Database loads asynchronously, with a callback;
// better-sqlite3's synchronously.
function isNodeSqlite3(db) {
  return typeof db.serialize === 'function' && typeof db.pragma !== 'function';
}

// load loads walrust into db, which registers the walrust VFS (and, with
// WALRUST_DEFAULT_VFS=1 in the environment, makes it the default VFS) for
// the whole process:
//   - a better-sqlite3 Database: synchronously; returns db;
//   - a node-sqlite3 Database: returns a Promise of db, and calls
//     callback(err, db) if one is given.
function load(db, callback) {
  if (db == null || typeof db.loadExtension !== 'function') {
    throw new TypeError('walrust-vfs: load() takes a better-sqlite3 or node-sqlite3 Database');
  }
  if (isNodeSqlite3(db)) {
    const done = new Promise((resolve, reject) => {
      db.loadExtension(extensionPath, (err) => (err ? reject(err) : resolve(db)));
    });
    if (typeof callback === 'function') {
      done.then((d) => callback(null, d), (err) => callback(err));
    }
    return done;
  }
  db.loadExtension(extensionPath);
  return db;
}

module.exports = { path: extensionPath, load };
