"""Build walrust-vfs's wheel without downloading build tools.

    python3 python/build_wheel.py EXTENSION VERSION OUTDIR

A wheel is a zip archive (PEP 427): the package's files, and a
``walrust_vfs-VERSION.dist-info`` directory holding METADATA (core
metadata), WHEEL (the wheel's format version and tags) and RECORD (every
file's sha256, urlsafe base64 without padding, and size). This script
writes one: python/walrust_vfs/*.py, a generated _version.py, and
EXTENSION (build/walrust.so) under its own name, tagged py3-none-PLATFORM
for the machine it runs on (linux_x86_64 here): pure Python code, but a
native extension that only this platform can load. It replaces any other
walrust_vfs wheel in OUTDIR, and prints the new wheel's path. The archive
is reproducible: entries in a fixed order with a fixed time
(SOURCE_DATE_EPOCH if set).
"""

import base64
import glob
import hashlib
import os
import sys
import sysconfig
import time
import zipfile

NAME = "walrust_vfs"  # the import name, and the distribution's in file names
DIST = "walrust-vfs"  # the distribution name (PyPI's "walrust" is another project)
HERE = os.path.dirname(os.path.abspath(__file__))

METADATA = """\
Metadata-Version: 2.1
Name: {dist}
Version: {version}
Summary: walrust: a self-updating SQLite read replica from LTX files on S3 or a directory (the SQLite extension, for Python)
Home-page: https://github.com/walrust/walrust
Requires-Python: >=3.8
Classifier: Programming Language :: Python :: 3
Classifier: Topic :: Database
Description-Content-Type: text/markdown

walrust_vfs holds walrust's SQLite extension and loads it:

```python
import walrust_vfs
db = walrust_vfs.connect("replica.db", source="s3://bucket/app", interval="1s")
```

`walrust_vfs.path` is the extension's file, `walrust_vfs.load(conn)` loads it
into a `sqlite3` or `apsw` connection, and `walrust_vfs.uri(...)` spells a
replica's URI. Without extension loading in Python's sqlite3 (pyenv's default
build), use apsw.
"""

WHEEL = """\
Wheel-Version: 1.0
Generator: walrust python/build_wheel.py
Root-Is-Purelib: false
Tag: {tag}
"""


def platform_tag():
    """This machine's platform tag, as pip computes it: linux_x86_64."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def digest(data):
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + h.decode()


def build(extension, version, outdir):
    tag = "py3-none-" + platform_tag()
    info = "%s-%s.dist-info" % (NAME, version)
    files = []  # (name in the archive, bytes, mode)
    for src in sorted(glob.glob(os.path.join(HERE, NAME, "*.py"))):
        with open(src, "rb") as f:
            files.append((NAME + "/" + os.path.basename(src), f.read(), 0o644))
    files.append((NAME + "/_version.py", ('version = "%s"\n' % version).encode(), 0o644))
    with open(extension, "rb") as f:
        files.append((NAME + "/" + os.path.basename(extension), f.read(), 0o755))
    files.append((info + "/METADATA", METADATA.format(dist=DIST, version=version).encode(), 0o644))
    files.append((info + "/WHEEL", WHEEL.format(tag=tag).encode(), 0o644))
    record = "".join("%s,%s,%d\n" % (n, digest(d), len(d)) for n, d, _ in files)
    files.append((info + "/RECORD", (record + info + "/RECORD,,\n").encode(), 0o644))

    os.makedirs(outdir, exist_ok=True)
    for old in glob.glob(os.path.join(outdir, NAME + "-*.whl")):
        os.remove(old)
    wheel = os.path.join(outdir, "%s-%s-%s.whl" % (NAME, version, tag))
    stamp = time.gmtime(max(int(os.environ.get("SOURCE_DATE_EPOCH", 315532800)), 315532800))[:6]
    tmp = wheel + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data, mode in files:
            entry = zipfile.ZipInfo(name, stamp)
            entry.external_attr = (0o100000 | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(entry, data)
    os.replace(tmp, wheel)
    return wheel


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: build_wheel.py EXTENSION VERSION OUTDIR")
    print(build(sys.argv[1], sys.argv[2].strip(), sys.argv[3]))
