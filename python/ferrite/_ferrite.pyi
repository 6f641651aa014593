"""Type stubs of the native layer (`ferrite._ferrite`, PyO3). Use the `ferrite` package's API."""

from typing import Any, List, Optional, Sequence, Tuple

__version__: str

def emotions() -> List[str]: ...
def evaluate(
    data: str,
    model: Optional[str] = ...,
    ferplus: bool = ...,
    votes: Optional[str] = ...,
    tta: str = ...,
    usage: Optional[str] = ...,
    skip_bad: bool = ...,
    prior_correction: float = ...,
) -> str: ...

class NativeAnalyzer:
    def __init__(
        self,
        model: Optional[str] = ...,
        detector: Optional[str] = ...,
        tta: Optional[str] = ...,
        abstain: Optional[float] = ...,
        margin: Optional[float] = ...,
        align: Optional[bool] = ...,
        min_score: Optional[float] = ...,
        tiles: Optional[int] = ...,
        pad_retry: Optional[float] = ...,
        prior_correction: Optional[float] = ...,
        threads: Optional[int] = ...,
        max_pixels: Optional[int] = ...,
        edge_pad: Optional[float] = ...,
        small_face_tiles: Optional[float] = ...,
    ) -> None: ...
    def analyze(self, image: Any) -> str: ...
    def analyze_many(self, images: Sequence[Any], threads: Optional[int] = ...) -> List[Any]: ...
    def predict(self, crops: Sequence[Any]) -> List[List[float]]: ...
    def model_meta(self) -> str: ...
    def video(
        self, source: str, detect_every: int = ..., smooth_seconds: float = ..., max_frames: Optional[int] = ..., start_frame: int = ...
    ) -> NativeVideo: ...

class NativeVideo:
    @property
    def info(self) -> Tuple[int, int, float]: ...
    def next_frame(self) -> Optional[str]: ...
