"""walrust's SQLite extension, packaged for Python.

walrust is a read-only SQLite VFS that keeps a local replica of a database
up to date from the LTX files a primary publishes to S3 or a directory.
This package holds the extension (``path``) and three helpers:

    import walrust_vfs
    db = walrust_vfs.connect("replica.db", source="s3://bucket/app", interval="1s")
    db.execute("SELECT count(*) FROM orders").fetchone()

``load(conn)`` loads the extension into a ``sqlite3`` or ``apsw`` connection;
``uri(path, source, **params)`` spells a replica's URI; ``connect`` does
both and returns a ``sqlite3.Connection``. Loading once registers the VFS
for the whole process.

Python's ``sqlite3`` module can load extensions only when it was built with
them (Debian's python3 is; pyenv's default build is not). Without it, use
apsw (``pip install apsw``, or Debian's python3-apsw), which always can::

    import apsw, walrust_vfs
    walrust_vfs.load(apsw.Connection(":memory:"))
    db = apsw.Connection(walrust_vfs.uri("replica.db", source="s3://bucket/app"),
                         flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
                         | apsw.SQLITE_OPEN_URI)

Load the extension after any ``fork()``, in each worker: Go's runtime,
which runs the follower, does not survive a fork.
"""

import os
import sqlite3
import sys
import threading
import urllib.parse

from ._version import version as __version__

__all__ = ["path", "load", "uri", "connect", "__version__"]

#: The extension inside this package, for ``conn.load_extension(path)``
#: (SQLite finds its entry point, ``sqlite3_walrust_init``, by the name).
path = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    {"darwin": "walrust.dylib", "win32": "walrust.dll"}.get(sys.platform, "walrust.so"),
)

_NO_LOADING = (
    "this Python's sqlite3 module cannot load SQLite extensions (it was built "
    "without --enable-loadable-sqlite-extensions, as pyenv builds are by default). "
    "Use apsw instead (pip install apsw, or Debian's python3-apsw): "
    "walrust_vfs.load(apsw.Connection(':memory:')), then open "
    "apsw.Connection(walrust_vfs.uri(...), flags=... | apsw.SQLITE_OPEN_URI); "
    "or use a Python built with extension loading (Debian's /usr/bin/python3)"
)


def _method(conn, *names):
    for name in names:
        m = getattr(conn, name, None)
        if m is not None:
            return m
    return None


def load(conn):
    """Load the walrust extension into conn, registering the VFS ``walrust``
    for the whole process (it stays registered after conn closes).

    conn is a ``sqlite3.Connection`` or an ``apsw.Connection`` (both
    spellings of apsw's methods: ``enable_load_extension`` and
    ``load_extension``, or ``enableloadextension`` and ``loadextension``
    before apsw 3.41). Extension loading is left disabled on conn
    afterwards, so that SQL run on it cannot call ``load_extension()``.

    Raises RuntimeError, saying to use apsw, when conn is a sqlite3
    connection of a Python built without extension loading; TypeError when
    conn is neither kind; and the connection's own error (for example
    sqlite3.OperationalError) when the extension cannot be loaded.
    """
    if isinstance(conn, sqlite3.Connection):
        enable = _method(conn, "enable_load_extension")
        load_ext = _method(conn, "load_extension")
        if enable is None or load_ext is None:
            raise RuntimeError(_NO_LOADING)
    else:
        enable = _method(conn, "enable_load_extension", "enableloadextension")
        load_ext = _method(conn, "load_extension", "loadextension")
        if enable is None or load_ext is None:
            raise TypeError(
                "walrust_vfs.load takes a sqlite3.Connection or an apsw.Connection, not %s"
                % type(conn).__name__
            )
    enable(True)
    try:
        load_ext(path)
    finally:
        enable(False)


def _param(value):
    if isinstance(value, bool):
        value = "true" if value else "false"
    # SQLite decodes %HH in a URI's path and query; '&', '=', '#', '%' and
    # spaces in a value must be escaped, '/' and ':' may stay.
    return urllib.parse.quote(str(value), safe="/:")


def uri(path, source=None, **params):
    """The URI that opens the replica at path through walrust:
    ``file:/abs/path?vfs=walrust&source=SOURCE&k=v...``.

    path is made absolute. source is the store to follow
    (``s3://bucket/prefix`` or ``file:///abs/dir``); it may be left out once
    the replica exists. Every other keyword becomes a URI parameter, for
    walrust (``interval="1s"``, ``timeout="30s"``, ``max_size="2TiB"``,
    ``endpoint=...``, ``region=...``, ``path_style=True``) or for SQLite
    (``mode="ro"``); values are percent-escaped, booleans spelt true/false,
    and parameters given None are left out. Use it with
    ``sqlite3.connect(uri, uri=True)`` or apsw's ``SQLITE_OPEN_URI``.
    """
    fields = [("vfs", "walrust")]
    if source is not None:
        fields.append(("source", source))
    fields.extend((k, v) for k, v in params.items() if v is not None)
    query = "&".join(_param(k) + "=" + _param(v) for k, v in fields)
    return "file:" + urllib.parse.quote(os.path.abspath(os.fspath(path)), safe="/") + "?" + query


_loaded = False
_lock = threading.Lock()


def _load_once():
    global _loaded
    with _lock:
        if _loaded:
            return
        loader = sqlite3.connect(":memory:")
        try:
            load(loader)
        finally:
            loader.close()
        _loaded = True


def connect(path, source=None, **params):
    """Open the replica at path (created from source the first time) and
    return a ``sqlite3.Connection`` to it.

    The extension is loaded the first time, into a connection of its own
    that is closed again (the VFS stays registered for the process). The
    arguments are ``uri``'s: ``connect("replica.db",
    source="s3://bucket/app", interval="1s")``. The replica is read-only:
    writes fail with "attempt to write a readonly database". For other
    options of ``sqlite3.connect`` (``check_same_thread``, a busy
    ``timeout``), call ``load`` or connect once, then
    ``sqlite3.connect(walrust_vfs.uri(...), uri=True, ...)``.

    Raises RuntimeError, saying to use apsw, when this Python's sqlite3
    cannot load extensions.
    """
    _load_once()
    return sqlite3.connect(uri(path, source, **params), uri=True)
