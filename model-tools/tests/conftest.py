import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
REPO = os.path.dirname(ROOT)


def encoder_dir() -> str:
    """The int8 all-MiniLM-L6-v2 encoder directory that the Maven build unpacks (./test.sh runs Maven
    first); made here with Maven when missing, so the encoder tests always run."""
    import subprocess
    from mach_tools.encoder import DEFAULT_DIR
    if not os.path.isfile(os.path.join(DEFAULT_DIR, "encoder.onnx")):
        subprocess.run([os.path.join(REPO, "mvnw"), "-B", "-q", "-ntp", "-pl", "plugin", "process-test-resources"],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return DEFAULT_DIR
