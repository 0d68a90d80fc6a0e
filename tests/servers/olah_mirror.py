"""Run a real olah Hugging Face mirror on 127.0.0.1 in offline mode, serving local git
repos from its mirror folder (<mirrors>/models/<org>/<name>), so huggingface_hub's normal
download path (repo_info -> list_repo_tree -> HEAD/GET resolve) is exercised."""
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TOML = """[basic]
host = "127.0.0.1"
port = {port}
repos-path = "{root}/cache"
mirrors-path = ["{root}/mirrors"]
mirror-netloc = "127.0.0.1:{port}"
mirror-lfs-netloc = "127.0.0.1:{port}"

[accessibility]
offline = true
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git_repo_from_folder(folder: Path, root: Path, repo_id: str) -> Path:
    """Commit the files of `folder` into a git repo at <root>/mirrors/models/<repo_id>."""
    repo = root / "mirrors" / "models" / repo_id
    shutil.copytree(folder, repo)
    git = ["git", "-C", str(repo), "-c", "user.name=zoo", "-c", "user.email=zoo@localhost"]
    subprocess.run(git[:3] + ["init", "-q", "-b", "main"], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "checkpoint"], check=True)
    return repo


def start_olah(root: Path, timeout: float = 30.0):
    """Start olah-cli; return (process, endpoint URL) once it answers."""
    port = free_port()
    config = root / "olah.toml"
    config.write_text(TOML.format(port=port, root=root))
    exe = Path(sys.executable).with_name("olah-cli")
    log = open(root / "olah.log", "w")
    proc = subprocess.Popen([str(exe), "-c", str(config), "--log-path", str(root / "logs")],
                            stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"olah exited: {(root / 'olah.log').read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url + "/api/models/none/none/revision/main", timeout=1)
            return proc, url
        except urllib.error.HTTPError:
            return proc, url  # any HTTP answer means it is serving
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("olah did not start")
