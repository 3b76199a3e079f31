"""Writing files whole or not at all."""
import json
import os
import os.path as osp
import tempfile
from contextlib import contextmanager


@contextmanager
def atomic_write(path: str, fsync: bool = False):
    """Yield a temporary path in ``path``'s folder; when the block ends without
    an error it replaces ``path`` (``os.replace``), otherwise it is removed, so an
    interrupted write leaves no file or the previous one whole. The file gets the
    permissions of a normally created one (mkstemp's 0600 is for secrets).
    ``fsync``: flush the file, and the rename, to disk."""
    path = osp.abspath(path)
    folder = osp.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + osp.basename(path) + '.',
                               suffix='.tmp')
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if fsync:
            with open(tmp, 'rb+') as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    if fsync:
        try:
            dir_fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)


def write_json(obj, path: str, indent: int = 2):
    """Atomic: a temp file in the target folder, then os.replace; an interrupted
    write leaves the previous file whole."""
    with atomic_write(path) as tmp, open(tmp, 'w') as f:
        json.dump(obj, f, indent=indent)
        f.write('\n')
