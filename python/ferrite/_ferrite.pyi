"""Type stubs of the native layer (`ferrite._ferrite`, PyO3). Use the `ferrite` package's API."""

from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

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

def train(
    data: Union[str, List[Tuple[str, str]]],
    out: str,
    val: Optional[Union[str, List[Tuple[str, str]]]] = ...,
    init: Optional[str] = ...,
    epochs: Optional[int] = ...,
    batch_size: Optional[int] = ...,
    lr: Optional[float] = ...,
    time_budget: Optional[float] = ...,
    early_stop: Optional[int] = ...,
    val_fraction: Optional[float] = ...,
    seed: Optional[int] = ...,
    augment: Optional[str] = ...,
    label_smoothing: Optional[float] = ...,
    class_weight_power: Optional[float] = ...,
    ferplus: Optional[str] = ...,
    votes: Optional[str] = ...,
    val_votes: Optional[str] = ...,
    skip_bad: Optional[bool] = ...,
    max_per_class: Optional[int] = ...,
    arch: Optional[str] = ...,
    width: Optional[int] = ...,
    dropout: Optional[float] = ...,
    on_epoch: Optional[Callable[[str], Any]] = ...,
    on_step: Optional[Callable[[int, int, int, int, float, float, float], Any]] = ...,
) -> str: ...

def resume(
    out: str,
    on_epoch: Optional[Callable[[str], Any]] = ...,
    on_step: Optional[Callable[[int, int, int, int, float, float, float], Any]] = ...,
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
        precision: Optional[str] = ...,
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
