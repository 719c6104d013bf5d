"""What the bench scripts share: where things are, the clips they measure
on, and one child process measured on its own."""

import os
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("WAYSIDE_MODELS_DIR", ROOT / "models" / "cache"))
BENCH = ROOT / "var" / "bench"


def exported_model(model_id: str) -> Path:
    """A model as its exporter wrote it, without the rewrites models/fetch.py
    makes for tract: what a Python pipeline would load, and what
    onnxruntime runs best (fetch.exported_path)."""
    sys.path.insert(0, str(ROOT / "models"))
    from fetch import exported_path
    manifest = tomllib.loads((ROOT / "models" / "manifest.toml").read_text())
    model = next(m for m in manifest["model"] if m["id"] == model_id)
    path = exported_path(model, CACHE)
    if not path.is_file():
        sys.exit(f"{path} is missing: run scripts/setup-models.sh")
    return path


def vtest_clip(height: int, codec: str = "h264") -> Path:
    """vtest.avi (768x576, real pedestrians, 79.5 s at 10 fps) stretched to
    16:9 at `height` lines, H.264 (or H.265 with `codec="h265"`, as phones
    record it), made once under var/bench/. Every bench takes its clips
    from here, so a name always means the same pixels."""
    src = CACHE / "media" / "vtest.avi"
    suffix = "" if codec == "h264" else f"-{codec}"
    out = BENCH / f"vtest-{height}p{suffix}.mp4"
    encoder = {
        "h264": ["-c:v", "libx264"],
        "h265": ["-c:v", "libx265", "-x265-params", "log-level=warning", "-tag:v", "hvc1"],
    }[codec]
    if not out.exists():
        if not src.exists():
            sys.exit(f"{src} is missing: run scripts/setup-models.sh")
        BENCH.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.mp4")
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(src),
             "-vf", f"scale={height * 16 // 9}:{height}", *encoder,
             "-preset", "medium", "-crf", "20", "-pix_fmt", "yuv420p",
             "-movflags", "+faststart", str(tmp)],
            check=True,
        )
        tmp.rename(out)
    return out


@dataclass
class Measured:
    wall_s: float
    user_s: float
    sys_s: float
    rss_mib: float
    stdout: bytes

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


def run_measured(cmd: list[str], env: dict | None = None) -> Measured:
    """Runs cmd in the repository, its stderr discarded unless it fails.
    Wall time from start to exit; CPU time and peak RSS from wait4() on this
    child alone: RUSAGE_CHILDREN's ru_maxrss would be the largest of every
    child so far, ffmpeg's that made a clip too."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        child = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            sys.exit(f"{cmd[0]} failed ({code}):\n{err.read().decode()[-2000:]}")
        out.seek(0)
        return Measured(wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024.0, out.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
