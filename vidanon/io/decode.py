"""Streaming decode with PyAV: one frame at a time, pts and time_base kept.

`open_input` probes the file and raises `InputError` for anything that is not a
video we can read. `Demuxer` then yields, in file order, decoded video frames
(upright, RGB) and the raw packets of every other stream, so that the writer
can remux them untouched. Damage inside the stream is skipped and counted,
never fatal.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidanon.errors import InputError
from vidanon.types import FrameMeta, VideoInfo


@dataclass
class VideoItem:
    rgb: np.ndarray  # upright (h, w, 3) uint8
    meta: FrameMeta


@dataclass
class PacketItem:
    packet: av.Packet
    stream_index: int


@dataclass
class DecodeStats:
    corrupt_packets: int = 0
    demux_errors: int = 0
    frames: int = 0
    resized: int = 0  # frames of another size than the first (the encoder scales them to it)


def check_readable(path: Path) -> None:
    """Raises InputError naming `path` if it is missing, a directory, empty or unreadable."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    try:
        with open(path, "rb") as fh:
            head = fh.read(1)
    except OSError as exc:
        if exc.errno == errno.EACCES:
            raise InputError(f"{path}: permission denied") from None
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if not head:
        raise InputError(f"{path}: file is empty")


def _rotation_of(stream: av.video.stream.VideoStream, first_frame: av.VideoFrame | None) -> int:
    rot = 0
    if first_frame is not None:
        try:
            rot = int(round(first_frame.rotation or 0))
        except (AttributeError, TypeError, ValueError):
            rot = 0
    if rot == 0:
        try:
            rot = -int(float(stream.metadata.get("rotate", 0)))
        except ValueError:
            rot = 0
    rot = int(round(rot / 90.0)) * 90 % 360
    return rot


def main_video(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The video stream to anonymize: FFmpeg's pick (`av_find_best_stream`: a default stream
    first, then one of many frames, so neither a cover picture nor a one-frame track before the
    video), else the first. A Matroska file whose one-frame MJPEG track came first had that
    frame written as the whole video, and the video itself dropped."""
    return container.streams.best("video") or container.streams.video[0]


def _pixel_aspect(video: av.video.stream.VideoStream) -> Fraction | None:
    """The stored pixels' aspect ratio (the container's, else the bitstream's) where it is
    set and not 1:1, else None."""
    for sar in (video.sample_aspect_ratio, video.codec_context.sample_aspect_ratio):
        if sar is not None and sar > 0:
            return Fraction(sar) if sar != 1 else None
    return None


def _color(first: av.VideoFrame, ctx: av.video.codeccontext.VideoCodecContext) -> tuple[int, int, int, int]:
    """The input's colour tags (matrix, range, primaries, transfer; `VideoInfo.color`): the
    first frame's matrix and range, the stream's primaries and transfer."""
    return (
        int(first.colorspace or 2),
        int(first.color_range or 0),
        int(getattr(ctx, "color_primaries", 2) or 2),
        int(getattr(ctx, "color_trc", 2) or 2),
    )


def side_data(frame: av.VideoFrame, name: str) -> list:
    """The frame's side data of FFmpeg type `name` (e.g. "DISPLAYMATRIX"). PyAV up to 18.0
    iterates `frame.side_data` as a list of entries; 18.1 as a mapping, whose iteration gives
    the types alone (the entries, `.type.name` and all, are its values)."""
    entries = frame.side_data
    entries = entries.values() if hasattr(entries, "values") else entries
    return [sd for sd in entries if getattr(getattr(sd, "type", None), "name", None) == name]


def _mirror_matrix(first_frame: av.VideoFrame | None) -> tuple[int, ...] | None:
    """The first frame's display matrix where it mirrors the picture as well as turning it
    (a negative determinant; `frame.rotation` gives only the angle), else None."""
    try:
        found = side_data(first_frame, "DISPLAYMATRIX")
    except (AttributeError, TypeError, ValueError):
        return None
    if not found or len(bytes(found[0])) != 36:
        return None
    m = np.frombuffer(bytes(found[0]), np.int32)
    if float(m[0]) * float(m[4]) - float(m[1]) * float(m[3]) >= 0:
        return None
    return tuple(int(v) for v in m)


def _frame_rate(stream) -> Fraction | None:
    """FFmpeg's best guess of the frame rate; the container's average rate is sometimes bogus."""
    for rate in (stream.guessed_rate, stream.average_rate, stream.base_rate):
        if rate and 0 < rate <= 1000:
            return Fraction(rate)
    return None


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as it is displayed: rotated counter-clockwise by `rotation` degrees."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def stored(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Inverse of `upright`: back to the stored orientation."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, -k)) if k else rgb


class Demuxer:
    """Opens a video and streams its content.

    Use as a context manager. `info` is known after construction; iterate
    `items()` once.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        check_readable(self.path)
        try:
            self.container = av.open(str(self.path), "r", metadata_errors="ignore")
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"{self.path}: not a readable media file ({_short(exc)})") from None
        if not self.container.streams.video:
            kinds = sorted({s.type for s in self.container.streams}) or ["no streams"]
            self.container.close()
            raise InputError(f"{self.path}: no video stream (found {', '.join(kinds)})")
        self.video = main_video(self.container)
        self.video.thread_type = "AUTO"
        self._decoding = threading.Lock()  # the decode thread's, taken by close() to park the decoder
        self.stats = DecodeStats()
        self._first: list[av.VideoFrame] = []
        self._pending: list[PacketItem] = []
        self._packets = self.container.demux()
        self.info = self._probe()
        # names under which FFmpeg logs problems with this input
        self.source_names = {self.container.format.name, self.info.codec, self.video.codec_context.codec.name}

    def _probe(self) -> VideoInfo:
        """Decodes up to the first video frame (kept for `items`) to learn size and rotation."""
        first = None
        while first is None:
            packet = self._next_packet()
            if packet is None:
                break
            if not packet.size:
                continue
            if packet.stream.index != self.video.index:
                self._pending.append(PacketItem(packet, packet.stream.index))
                continue
            frames = self._decode(packet)
            if frames:
                self._first.extend(frames)
                first = frames[0]
        if first is None:
            self._first.extend(self._flush())
            first = self._first[0] if self._first else None
        if first is None:
            self.container.close()
            raise InputError(f"{self.path}: the video stream has no decodable frames")
        rot = _rotation_of(self.video, first)
        w, h = first.width, first.height
        if rot in (90, 270):
            w, h = h, w
        tb = self.video.time_base or Fraction(1, 90000)
        return VideoInfo(
            width=w,
            height=h,
            time_base=Fraction(tb),
            average_rate=_frame_rate(self.video),
            frames=int(self.video.frames or 0),
            rotation=rot,
            pix_fmt=str(first.format.name),
            codec=self.video.codec_context.name,
            mirror_matrix=_mirror_matrix(first),
            pixel_aspect=_pixel_aspect(self.video),
            color=_color(first, self.video.codec_context),
            field_order=int(getattr(self.video.codec_context, "field_order", 0) or 0) if first.interlaced_frame else 0,
        )

    def _next_packet(self) -> av.Packet | None:
        while True:
            try:
                return next(self._packets)
            except StopIteration:
                return None
            except av.error.EOFError:
                return None
            except (av.error.FFmpegError, OSError):
                self.stats.demux_errors += 1
                if self.stats.demux_errors > 50:
                    return None

    def _decode(self, packet: av.Packet | None) -> list[av.VideoFrame]:
        try:
            with self._decoding:
                return list(self.video.codec_context.decode(packet))
        except av.error.EOFError:
            return []
        except (av.error.FFmpegError, ValueError):
            self.stats.corrupt_packets += 1
            return []

    def _flush(self) -> list[av.VideoFrame]:
        return self._decode(None)

    def items(self) -> Iterator[VideoItem | PacketItem]:
        """Yields video frames and other-stream packets in file order, then flushes the decoder."""
        index = 0
        tb = self.info.time_base
        rot = self.info.rotation
        size = (self.info.height, self.info.width) if rot in (90, 270) else (self.info.width, self.info.height)

        def emit(frames: list[av.VideoFrame]) -> Iterator[VideoItem]:
            nonlocal index
            for f in frames:
                if (f.width, f.height) != size:
                    self.stats.resized += 1
                rgb = f.to_ndarray(format="rgb24")  # through the frame's own matrix and range
                meta = FrameMeta(
                    index=index, pts=f.pts, time_base=tb, extra={"interlaced": True} if f.interlaced_frame else {}
                )
                index += 1
                self.stats.frames = index
                yield VideoItem(upright(rgb, rot), meta)

        yield from self._pending
        self._pending = []
        yield from emit(self._first)
        self._first = []
        while True:
            packet = self._next_packet()
            if packet is None:
                break
            if packet.stream.index == self.video.index:
                if packet.size:  # empty packets are demux flush markers
                    yield from emit(self._decode(packet))
            elif packet.size:
                yield PacketItem(packet, packet.stream.index)
        yield from emit(self._flush())

    def close(self) -> None:
        # a decode still running in another thread (an early exit) is given time to end first
        if self._decoding.acquire(timeout=10.0):
            try:
                park_decoder(self.video)
            finally:
                self._decoding.release()
        self.container.close()

    def __enter__(self) -> Demuxer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def park_decoder(stream: av.stream.Stream) -> None:
    """Lets `stream`'s decoder threads finish their frames, with the GIL released.

    Freeing a decoder waits for its frame threads while holding the GIL, and a thread that
    logs through PyAV's log callback needs the GIL: a decoder freed mid-stream (an error,
    an interrupt, a reader that stops early) hung the process forever, every time under
    `av.logging.set_level(ERROR)`. Call before closing a container that was decoding.
    """
    try:
        stream.codec_context.flush_buffers()
    except (av.error.FFmpegError, ValueError, AttributeError):
        pass


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    msg = re.sub(r"^\[Errno -?\d+\] ", "", msg)
    # PyAV messages end with the file name: drop it, the caller names the path
    return msg.split(": '")[0]


def iter_frames(path: str | Path) -> Iterator[tuple[np.ndarray, FrameMeta]]:
    """Upright RGB frames of a video with their timing, one at a time."""
    with Demuxer(path) as dm:
        for item in dm.items():
            if isinstance(item, VideoItem):
                yield item.rgb, item.meta
