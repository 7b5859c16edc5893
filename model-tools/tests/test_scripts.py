"""The repository's shell scripts: apt waiting for a held lock, node.sh keeping a node's data,
no ANSI codes from ./mvnw when its output is not a terminal."""
import os
import subprocess
import textwrap

from conftest import REPO

NODE_SH = os.path.join(REPO, "integ-test", "src", "test", "scripts", "node.sh")


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    os.chmod(path, mode)


def _apt_get(tmp_path, fake_apt):
    """Runs scripts/apt.sh's apt_get with a stub apt-get first on PATH."""
    _write(str(tmp_path / "bin" / "apt-get"), fake_apt, 0o755)
    script = f'log() {{ echo "setup: $*" >&2; }}; SUDO=(); source {REPO}/scripts/apt.sh; apt_get install -y x'
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", MACH_APT_LOCK_WAIT="20")
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)


def test_apt_waits_for_a_held_lock_then_installs(tmp_path):
    # the stub fails like apt does while another apt holds the lock, once, then succeeds
    r = _apt_get(tmp_path, f"""\
        #!/bin/bash
        if [[ ! -f {tmp_path}/tried ]]; then
          touch {tmp_path}/tried
          echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2; exit 100
        fi
        echo installed "$@"
        """)
    assert r.returncode == 0, r.stderr
    assert "installed install -y x" in r.stdout
    assert "holds the package lock (held by process 4242 (apt-get)); waiting" in r.stderr


def test_apt_other_failures_are_not_waited_for(tmp_path):
    r = _apt_get(tmp_path, """\
        #!/bin/bash
        echo "E: Unable to locate package x" >&2; exit 100
        """)
    assert r.returncode != 0
    assert "Unable to locate package x" in r.stderr
    assert "waiting" not in r.stderr


def _fake_dist(tmp_path):
    """A distribution whose bin/opensearch refuses to start: node.sh has decided what to keep by then."""
    dist = tmp_path / "dist"
    _write(str(dist / "bin" / "opensearch"), "#!/bin/bash\necho 'fake node: not starting'; exit 1\n", 0o755)
    _write(str(dist / "from-dist.txt"), "x\n")
    (dist / "config" / "jvm.options.d").mkdir(parents=True)
    return dist


def _start(*args):
    # as root the node runs as another user; root itself is fine for a node that never starts
    env = dict(os.environ, MACH_NODE_USER="root", MACH_NODE_WATCH_PID="0")
    return subprocess.run(["bash", NODE_SH, "start", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=120)


def test_node_start_keeps_a_node_home_that_holds_data(tmp_path):
    dist = _fake_dist(tmp_path)
    node = tmp_path / "node"
    r = _start(dist, node)  # an empty place: a new node home from the distribution
    assert "node failed to start" in r.stderr
    assert (node / "from-dist.txt").exists()
    marker = node / "data" / "nodes" / "0" / "marker"
    _write(str(marker), "indices\n")

    r = _start(dist, node)
    assert "holds a node's data" in r.stdout, r.stdout + r.stderr
    assert marker.exists(), "a node home with data is started again, not wiped"

    r = _start("--fresh", dist, node)
    assert not marker.exists(), "--fresh starts an empty node"
    assert (node / "from-dist.txt").exists()


def test_mvnw_writes_no_ansi_codes_to_a_pipe():
    r = subprocess.run([os.path.join(REPO, "mvnw"), "-N", "validate"], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:]
    assert "BUILD SUCCESS" in r.stdout
    assert "\x1b" not in r.stdout + r.stderr


def test_plugin_zip_is_rebuilt_only_when_a_source_is_newer(tmp_path):
    # a repository layout with a stub ./mvnw that counts its calls and "builds" the zip
    for f in ("pom.xml", "plugin/pom.xml", "plugin/src/main/A.java"):
        _write(str(tmp_path / f), "x\n")
    _write(str(tmp_path / "mvnw"), f"""\
        #!/bin/bash
        echo call >> {tmp_path}/mvnw.calls
        mkdir -p plugin/target/releases && touch plugin/target/releases/mach-retrieval-0.1.0.zip
        """, 0o755)

    def build():
        r = subprocess.run(["bash", "-c", f"source {REPO}/scripts/lib.sh && build_plugin_zip"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "plugin/target/releases/mach-retrieval-0.1.0.zip"
        return len(open(tmp_path / "mvnw.calls").read().split())

    assert build() == 1
    assert build() == 1, "nothing changed: no build"
    src = tmp_path / "plugin/src/main/A.java"
    later = os.path.getmtime(tmp_path / "plugin/target/releases/mach-retrieval-0.1.0.zip") + 5
    os.utime(src, (later, later))
    assert build() == 2, "a newer source: built again"
