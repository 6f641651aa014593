"""The committed test clips of issue 45 (tests/fixtures/video) and their frames' own times."""

import subprocess
from pathlib import Path

CLIPS_DIR = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "video"
CLIPS = sorted(CLIPS_DIR.glob("*.mp4"))


def stream_times(path):
    """The presentation times of a clip's video frames as ffprobe decodes them, from the first."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=best_effort_timestamp_time", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    t = [float(x.strip().rstrip(",")) for x in out.splitlines() if x.strip().rstrip(",")]
    return [x - t[0] for x in t]
